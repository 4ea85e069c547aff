"""Seasonality from timestamps: a causal test of whether a key's series repeats daily or weekly.

Nobody has to say a metric is seasonal: the views that compare a point with the same slot one period ago
switch on once this test sees the evidence.
"""

from __future__ import annotations

import math
from array import array

DAY = 86_400.0
WEEK = 7 * DAY


class PeriodDetector:
    """Causal, cheap seasonality test on hourly bin means.

    Values are averaged into bins of ``max(step, 1 h)``; the last ``max(period)/bin`` bin means are
    kept in a ring. For each candidate period P (and for P/2 as a non-seasonal reference lag) running
    sums give the autocorrelation of the bin series. A period is *evident* once two full periods
    were seen, rho(P) > 0.5 (the seasonal-naive forecast beats the mean) and rho(P) exceeds
    rho(P/2) by 0.2 (so a slowly wandering level, which correlates at every lag, does not count).
    The strongest evident candidate wins. State: ring (168 floats for a weekly candidate) + 6 floats
    per candidate lag.
    """

    def __init__(self, periods: tuple[float, ...] = (DAY,), bin_seconds: float = 3600.0) -> None:
        self.periods = periods
        self.bin = bin_seconds
        self.lags = [round(p / bin_seconds) for p in periods]
        self.ring = array("d", [math.nan] * max(self.lags))
        self.pos = 0
        self.nbins = 0
        self.cur_bin = -1
        self.cur_sum = 0.0
        self.cur_n = 0
        # per lag (candidate lags and their halves): n, sx, sy, sxx, syy, sxy
        self.all_lags = sorted({lag for lag in self.lags} | {max(1, lag // 2) for lag in self.lags})
        self.sums = {lag: [0.0] * 6 for lag in self.all_lags}
        self.chosen = 0.0
        self.ref = math.nan

    # Bin means enter the sums as offsets from the first one: raw sums of squares of a metric at 1e7 and
    # more cancel catastrophically and no period was ever found. Snapshots from before hold raw sums; the
    # class default (0.0) keeps them raw.
    ref = 0.0

    def _push(self, y: float) -> None:
        if math.isnan(self.ref):
            self.ref = y
        y -= self.ref
        size = len(self.ring)
        for lag in self.all_lags:
            if lag <= self.nbins:
                x = self.ring[(self.pos - lag) % size]
                if not math.isnan(x):
                    s = self.sums[lag]
                    s[0] += 1
                    s[1] += x
                    s[2] += y
                    s[3] += x * x
                    s[4] += y * y
                    s[5] += x * y
        self.ring[self.pos] = y
        self.pos = (self.pos + 1) % size
        self.nbins += 1
        self.chosen = self._decide()

    def rho(self, lag: int) -> float:
        """Autocorrelation of the hourly bin means at ``lag`` bins."""
        n, sx, sy, sxx, syy, sxy = self.sums[lag]
        if n < 3:
            return 0.0
        vx = sxx - sx * sx / n
        vy = syy - sy * sy / n
        if vx <= 1e-12 * (1 + abs(sxx)) or vy <= 1e-12 * (1 + abs(syy)):
            return 0.0
        return (sxy - sx * sy / n) / math.sqrt(vx * vy)

    def _decide(self) -> float:
        # The shortest evident period wins unless a longer one is clearly stronger: a daily cycle also
        # repeats weekly, and calling it weekly would hide what users expect to read ("daily").
        best, best_rho = 0.0, 0.0
        for period, lag in sorted(zip(self.periods, self.lags, strict=True)):
            if self.nbins < 2 * lag:
                continue
            r = self.rho(lag)
            if r > 0.5 and r > self.rho(max(1, lag // 2)) + 0.2 and r > best_rho + 0.05:
                best, best_rho = period, r
        return best

    def update(self, x: float, t: float) -> float:
        """Add one value at event time ``t``; returns the period in force (0: none evident)."""
        b = int(t // self.bin)
        if b != self.cur_bin:
            if self.cur_n:
                # bins skipped by a gap are pushed as missing (NaN) so lags stay aligned in time
                gap = b - self.cur_bin - 1 if self.cur_bin >= 0 else 0
                self._push(self.cur_sum / self.cur_n)
                for _ in range(min(max(gap, 0), len(self.ring))):
                    self.ring[self.pos] = math.nan
                    self.pos = (self.pos + 1) % len(self.ring)
                    self.nbins += 1
            self.cur_bin, self.cur_sum, self.cur_n = b, 0.0, 0
        self.cur_sum += x
        self.cur_n += 1
        return self.chosen
