"""The views of one feature of one key, each calibrated: level, jump, variance change, seasonal residuals.

Each view turns the value into a raw deviation in its own units; each deviation has its own
``Likelihood`` (see ``calibration``); the feature's tail probability is the smallest, and a value outside
the range seen so far is anomalous whatever the views say. ``score`` only peeks; ``commit`` learns.
"""

from __future__ import annotations

import math
from array import array

from anomstream.detect.calibration import SCORE_DECADES, Likelihood
from anomstream.detect.season import PeriodDetector
from anomstream.detect.viewparams import COUNT_TYPE, MAX_COUNT, SLOT_TYPE, VIEWS, Config, Peek

__all__ = ["VIEWS", "Config", "Peek", "SeriesViews"]  # Config: older snapshots name it here


class SeriesViews:
    """All views + their calibrators for one feature of one key.

    State: ~45 floats + 5 likelihoods (10 floats each) + 3 slot arrays (``week/step`` floats each).
    """

    # Jump-rule state; class defaults let snapshots taken before the rule restore unchanged.
    jrate = 0.0  # EW share of rows whose jump was at least ``jump_min`` sds
    dmax = 0.0  # decaying envelope of single-point jump |z| (flagged jumps and their returns left out)
    prev_jump = False
    # Slot values are offsets from this level (snapshots from before kept absolute doubles: 0.0 fits them).
    slot_ref = 0.0

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.n = 0
        self.last = 0.0
        self.last_t = math.nan
        self.step = math.inf  # smallest positive sampling interval seen
        self.lo = math.inf
        self.hi = -math.inf
        # [mean, var] per residual series
        self.lev = [0.0, 0.0]
        self.dif = [0.0, 0.0]
        self.short_var = 0.0
        self.lagst = [0.0, 0.0, 0.0]  # mean, var, count
        self.profst = [0.0, 0.0, 0.0]
        self.lik = [Likelihood(cfg.ma_window, cfg.lik_alpha, cfg.lik_min, cfg.lik_sd_floor) for _ in VIEWS]
        self.first_t = math.nan
        self.slot_period = 0.0
        self.slot_width = 0.0
        self.lag_vals: array[float] = array("d")
        self.prof_vals: array[float] = array("d")
        self.prof_n: array[int] = array(COUNT_TYPE)
        self.period = PeriodDetector(cfg.periods) if cfg.period_gate == "acf" else None
        self.active_period = 0.0
        self._usable = tuple(v in cfg.views for v in VIEWS)

    # -- helpers --------------------------------------------------------------------------------
    def _floor(self) -> float:
        span = self.hi - self.lo if self.n else 0.0
        return self.cfg.rel_floor * span + 1e-9 * abs(self.lev[0]) + 1e-12

    def _slot(self, t: float) -> int:
        if not self.slot_period:
            return -1
        return int((t % self.slot_period) // self.slot_width) % len(self.lag_vals)

    def _seasonal_on(self) -> bool:
        if not self.slot_period:
            return False
        gate = self.cfg.period_gate
        if gate == "always":
            return self.lagst[2] >= self.cfg.warmup
        if gate == "acf":
            return self.active_period > 0.0
        return False

    # -- peek / commit --------------------------------------------------------------------------
    def peek(self, x: float, t: float) -> Peek:
        """Every view's raw deviation and tail probability for ``x`` at ``t``, without learning it."""
        cfg = self.cfg
        nan = math.nan
        if self.n == 0:
            return Peek((nan,) * 5, (0.0,) * 5, nan, nan, nan, -1, 0.0, True, 0.0, "", nan, False)
        fl = self._floor()
        m, v = self.lev
        z_level = abs(x - m) / max(math.sqrt(v), fl)
        d = x - self.last
        md, vd = self.dif
        z_diff = abs(d - md) / max(math.sqrt(vd), fl)
        dd = d - md
        sv = (1.0 - cfg.short_alpha) * self.short_var + cfg.short_alpha * dd * dd
        f2 = fl * fl
        vr = abs(math.log((sv + f2) / (vd + f2)))
        slot = self._slot(t)
        lag_r, prof_r, z_lag, z_prof = self._seasonal_residuals(x, slot, fl)
        raws = self._raws(z_level, z_diff, vr, z_lag, z_prof)
        lps, best, winner = self._calibrate(raws)
        in_range = True
        if self.n >= 1:
            w = cfg.range_widen * (self.hi - self.lo)
            in_range = self.lo - w <= x <= self.hi + w
            if cfg.range_rule and self.n >= cfg.warmup and not in_range and self._range_known(t):
                best, winner = -SCORE_DECADES, "range"
        jumped = self._jumped(x, z_diff, slot, math.sqrt(vd), fl)
        if jumped and best > -SCORE_DECADES:
            best, winner = -SCORE_DECADES, "jump"
        return Peek(raws, lps, d, lag_r, prof_r, slot, sv, in_range, best, winner, z_diff, jumped)

    def _jumped(self, x: float, z_diff: float, slot: int, sd_diff: float, fl: float) -> bool:
        """The jump rule (see ``Config``); on a seasonal key the jump must also be one against the season."""
        cfg = self.cfg
        if self.n < cfg.warmup or not z_diff >= cfg.jump_min or self.jrate >= cfg.jump_rate:
            return False
        if z_diff <= self.dmax * (1.0 + cfg.jump_widen):
            return False
        if self.active_period > 0.0:
            # A square wave jumps daily: count it only if it is a jump against the slot one period ago.
            ref = self._period_ago(slot)
            return not math.isnan(ref) and abs(x - ref) >= cfg.jump_min * max(sd_diff, fl)
        return True

    def _period_ago(self, slot: int) -> float:
        """The value at ``slot`` one detected period ago (NaN if unknown; slots span the largest period)."""
        if slot < 0:
            return math.nan
        back = round(self.active_period / self.slot_width)
        size = len(self.lag_vals)
        return self.slot_ref + (self.lag_vals[(slot - back) % size] if back < size else self.lag_vals[slot])

    def _range_known(self, t: float) -> bool:
        """Has the key shown its range? A possibly daily metric (step ≤ 1 h) needs a day of history."""
        if self.cfg.range_after_s <= 0 or self.step > self.cfg.max_slot_step:
            return True
        return t - self.first_t >= self.cfg.range_after_s

    def _seasonal_residuals(self, x: float, slot: int, fl: float) -> tuple[float, float, float, float]:
        """(lag residual, profile residual, their |z|) at ``slot`` (NaN where not known yet)."""
        lag_r = prof_r = z_lag = z_prof = math.nan
        if slot < 0:
            return lag_r, prof_r, z_lag, z_prof
        prev = self.slot_ref + self.lag_vals[slot]
        if not math.isnan(prev):
            lag_r = x - prev
            ml, vl, _ = self.lagst
            z_lag = abs(lag_r - ml) / max(math.sqrt(vl), fl)
        if self.prof_n[slot] > 0:
            prof_r = x - (self.slot_ref + self.prof_vals[slot])
            mp, vp, _ = self.profst
            z_prof = abs(prof_r - mp) / max(math.sqrt(vp), fl)
        return lag_r, prof_r, z_lag, z_prof

    def _raws(self, *zs: float) -> tuple[float, ...]:
        """The calibrators' inputs: log1p-compressed, capped, NaN until a view has warmed up."""
        cfg, nan = self.cfg, math.nan
        squash = math.log1p if cfg.log_raw else float
        vw = cfg.view_warmup
        ready = (self.n >= vw, self.n >= vw + 1, self.n >= vw + 1, self.lagst[2] >= vw, self.profst[2] >= vw)
        return tuple(
            min(squash(z), cfg.z_cap) if ok and not math.isnan(z) else nan
            for z, ok in zip(zs, ready, strict=True)
        )

    def _calibrate(self, raws: tuple[float, ...]) -> tuple[tuple[float, ...], float, str]:
        """Per view log10 p (peeked), and the smallest over the views that may speak now, Bonferroni'd."""
        cfg = self.cfg
        seasonal, warm = self._seasonal_on(), self.n >= cfg.warmup
        season_n = (self.lagst[2], self.profst[2])
        lps: list[float] = []
        best, winner, looks = 0.0, "", 0
        for i, r in enumerate(raws):
            lp = 0.0 if math.isnan(r) else self.lik[i].peek(r)
            lps.append(lp)
            eligible = warm and self._usable[i] and not math.isnan(r)
            if i >= 3:  # seasonal views speak once a period is evident and they have seen enough
                eligible = eligible and seasonal and season_n[i - 3] >= cfg.warmup
            if eligible:
                looks += 1
                if lp < best:
                    best, winner = lp, VIEWS[i]
        if cfg.bonferroni and looks > 1:
            # The smallest of ``looks`` p-values: multiply by their number so it stays a probability.
            best = min(0.0, best + math.log10(looks))
        return tuple(lps), best, winner

    def commit(self, x: float, t: float, pk: Peek) -> None:
        """Learn ``x`` using what ``peek`` computed for it."""
        cfg = self.cfg
        a = cfg.alpha
        if self.n > 0:
            for i, r in enumerate(pk.raws):
                if not math.isnan(r):
                    self.lik[i].commit(r)
            _ew(self.dif, self._jump_clipped(pk), max(a, 1.0 / self.n))
            self._learn_jump(pk)
            self.short_var = pk.short_var
            if not math.isnan(pk.lag_r):
                _ew3(self.lagst, pk.lag_r, a)
            if not math.isnan(pk.prof_r):
                _ew3(self.profst, pk.prof_r, a)
            dt = t - self.last_t
            if dt > 0 and dt < self.step:
                self.step = dt
                self._alloc_slots()
        if self.n == 0:
            self.first_t = t
        self.n += 1
        _ew(self.lev, x, max(a, 1.0 / self.n))
        self.lo = min(self.lo, x)
        self.hi = max(self.hi, x)
        self.last = x
        self.last_t = t
        if self.period is not None:
            self.active_period = self.period.update(x, t)
        slot = self._slot(t)
        if slot >= 0:
            ref = self.slot_ref
            self.lag_vals[slot] = x - ref
            k = min(self.prof_n[slot] + 1, MAX_COUNT)
            self.prof_n[slot] = int(k)  # int(): snapshots from before kept float counts, and restore
            pa = max(cfg.profile_alpha, 1.0 / k)
            self.prof_vals[slot] += pa * (x - ref - self.prof_vals[slot])

    def _jump_clipped(self, pk: Peek) -> float:
        """The first difference to learn: a flagged jump (and the return after it) counts as ``jump_min`` sds.

        Learnt whole, every spike added its square to the variance of the differences, so a key's own
        alarms raised the bar for the next one: on the demo's hosts the sd of the differences grew to 1.65x
        its noise-only value and 9-sigma spikes fell under ``jump_min``.
        """
        if not (pk.jumped or self.prev_jump):
            return pk.d
        md, limit = self.dif[0], self.cfg.jump_min * math.sqrt(self.dif[1])
        return md + max(-limit, min(limit, pk.d - md))

    def _learn_jump(self, pk: Peek) -> None:
        """Update the jump rate and the envelope of ordinary differences.

        The return after a flagged jump is not a second jump (a spike is one event, not two). Only
        differences under ``jump_min`` feed the envelope: a jump that went unflagged (or was caught by
        another rule) used to lift it, which let the next spike through unflagged too, and so on; on one
        demo key the envelope climbed 2.6 -> 7.9 sds in four spikes and missed three of them.
        """
        cfg = self.cfg
        if not math.isnan(pk.z_diff):
            big = 1.0 if pk.z_diff >= cfg.jump_min and not self.prev_jump else 0.0
            self.jrate += (big - self.jrate) / cfg.jump_window
            ordinary = pk.z_diff < cfg.jump_min and not (pk.jumped or self.prev_jump)
            if ordinary and self.n >= cfg.view_warmup:
                self.dmax = max(self.dmax * 0.5 ** (1.0 / cfg.jump_window), pk.z_diff)
        self.prev_jump = pk.jumped

    def _alloc_slots(self) -> None:
        """(Re)allocate the daily slot arrays when the sampling step becomes known or smaller."""
        if self.step > self.cfg.max_slot_step or (
            "lag" not in self.cfg.views and "profile" not in self.cfg.views
        ):
            return
        period = max(self.cfg.periods)
        # Slot arrays follow the largest candidate period (the detector only gates them on/off), at most
        # ``max_slots`` per period: finer data shares a slot (5-minute slots for a week), which bounds a
        # seasonal key's state at 3 x 2,016 floats per feature.
        size = min(round(period / self.step), self.cfg.max_slots)
        if size < 2:
            return
        self.slot_period, self.slot_width = period, period / size
        # Slots hold offsets from the key's level when they were laid out, in single precision: a slot
        # value is then as exact as the cycle's amplitude needs, at half a double's bytes.
        self.slot_ref = self.lev[0]
        self.lag_vals = array(SLOT_TYPE, [math.nan] * size)
        self.prof_vals = array(SLOT_TYPE, [0.0] * size)
        self.prof_n = array(COUNT_TYPE, bytes(size * 2))
        self.lagst = [0.0, 0.0, 0.0]
        self.profst = [0.0, 0.0, 0.0]

    def expected(self, t: float, z: float) -> tuple[float, float, float]:
        """(expected, low, high): profile (if seasonal) or EWMA level, ± z residual sds."""
        fl = self._floor()
        slot = self._slot(t)
        if self._seasonal_on() and slot >= 0 and self.prof_n[slot] > 0:
            c = self.slot_ref + self.prof_vals[slot] + self.profst[0]
            s = max(math.sqrt(self.profst[1]), fl)
        else:
            c, s = self.lev[0], max(math.sqrt(self.lev[1]), fl)
        return c, c - z * s, c + z * s


def _ew(st: list[float], x: float, a: float) -> None:
    d = x - st[0]
    st[0] += a * d
    st[1] = (1.0 - a) * (st[1] + a * d * d)


def _ew3(st: list[float], x: float, a: float) -> None:
    st[2] += 1.0
    _ew(st, x, max(a, 1.0 / st[2]))
