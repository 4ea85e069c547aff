"""Collective detector: judges a key's recent *sequence*, not its last point.

Three statistics per key, each a view the calibration layer turns into a tail probability: per feature a
two-sided CUSUM (small same-direction deviations that add up), the shape of the window of recent increments
against the key's history (relative entropy of its histogram and its serial correlation), and the key's
event rate (a burst of many individually normal events: the DDoS shape).
"""

from __future__ import annotations

import bisect
import collections
import functools
import itertools
import math
import statistics
from array import array

from anomstream.detect.detector import Detector, Explanation, Features, shares, z_to_score
from anomstream.detect.persistent import PersistentViews
from anomstream.wire.records import Expected


@functools.cache
def _edges(bins: int) -> tuple[float, ...]:
    """Edges of ``bins`` equiprobable bins of a standard normal (increments are standardised, then binned)."""
    return tuple(statistics.NormalDist().inv_cdf(i / bins) for i in range(1, bins))


_MAX_DEV = 1e300
_BURST = math.log(2.0)  # a burst: the recent gaps are on average at least this much shorter (log scale)
_Z_CLIP = 50.0  # a standardised value beyond this is learned as this (an outlier must not poison moments)
# Window statistics judge shape, not size: one huge increment must not dominate them (or their long-run
# moments) for a whole window; size is the point detectors' and the CUSUM's business.
_W_CLIP = 4.0


def _chi2_z(stat: float, dof: int) -> float:
    """Wilson-Hilferty: a chi-square statistic with ``dof`` degrees of freedom in standard normal units."""
    if stat <= 0.0:
        return 0.0
    c = 2.0 / (9.0 * dof)
    root: float = (stat / dof) ** (1.0 / 3.0)
    return max(0.0, (root - (1.0 - c)) / math.sqrt(c))


class _Moments:
    """Exponentially weighted mean and variance (``alpha`` per point, 1/n while young)."""

    __slots__ = ("alpha", "mean", "n", "var")

    def __init__(self, alpha: float) -> None:
        self.alpha, self.mean, self.var, self.n = alpha, 0.0, 0.0, 0

    def sd(self, floor: float) -> float:
        return max(math.sqrt(self.var), floor)

    def update(self, value: float) -> None:
        self.n += 1
        a = max(self.alpha, 1.0 / self.n)
        d = value - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)


class _Feature:
    """One feature's sequence state: level, increments, CUSUM sums, history histogram, recent window."""

    __slots__ = ("cross", "hist", "inc", "last", "level", "neg", "pos", "square", "window")

    def __init__(self, alpha: float, history: float, window: int, bins: int) -> None:
        self.level = _Moments(alpha)  # the value's level (CUSUM and the expected band): follows the season
        self.inc = _Moments(history)  # first differences (standardise the window): slow, so a run
        # of anomalous increments barely moves the yardstick it is measured with
        self.last = math.nan
        self.pos = self.neg = 0.0
        # Lag-1 correlation of the increments = cross / square (white noise: -1/2, the prior), learned.
        self.cross, self.square = -0.5, 1.0
        self.hist = array("d", [1.0] * bins)  # a uniform prior worth ``bins`` points
        self.window: collections.deque[float] = collections.deque(maxlen=window)


class Collective(Detector):
    """Sequence statistics per key: CUSUM drift, window shape (relative entropy, serial correlation), rate.

    Views (all in standard-normal units, non-negative; the ``risk`` calibration turns each into a tail
    probability against the key's own history):

    * ``<feature>.cusum`` — two-sided CUSUM of the value's standardised deviation from its level, slack
      ``k``: small deviations in one direction accumulate until they matter;
    * ``<feature>.kl`` — relative entropy of the histogram of the last ``window`` standardised increments
      against the key's long-run histogram (G = 2·n·KL as a chi-square): a frozen signal, a new noise shape;
    * ``<feature>.acf`` — lag-1 serial correlation of those increments against its long-run value (Fisher
      z): an oscillation or a ramp replacing white noise;
    * ``rate`` — how much shorter the last ``rate_window`` inter-arrival gaps are than the key's usual gap
      (in event time; needs ``t``): a burst of many individually normal events.

    Examples
    --------
    >>> import random
    >>> rng, det = random.Random(3), Collective()
    >>> for i in range(400):
    ...     det.learn_one({"v": 50 + rng.gauss(0, 1)}, t=60.0 * i)
    >>> normal = max(det.deviations({"v": 50.0}, t=60.0 * 400).values())
    >>> for i in range(400, 416):                 # a frozen signal: the same value sixteen times
    ...     det.learn_one({"v": 50.0}, t=60.0 * i)
    >>> det.deviations({"v": 50.0}, t=60.0 * 416)["v.kl"] > 5 > normal
    True
    >>> for i in range(7):                         # then a burst: events one second apart
    ...     det.learn_one({"v": 50.0}, t=60.0 * 415 + 1 + i)
    >>> det.deviations({"v": 50.0}, t=60.0 * 415 + 8)["rate"] > 3
    True
    """

    name = "collective"
    kind = "collective"
    summary = "sequence views per key: CUSUM drift, window shape (relative entropy, serial correlation), rate"
    calibrated = True

    def __init__(
        self,
        window: int = 16,
        *,
        bins: int = 4,
        k: float = 0.5,
        alpha: float = 0.02,
        history: float = 0.002,
        rate_window: int = 8,
        band: float = 3.0,
        persist: int = 2,
        min_history: int = 100,
    ) -> None:
        self.window = window
        self.bins = bins
        self.k = k
        self.alpha = alpha
        self.history = history
        self.rate_window = rate_window
        self.band = band
        self.persist = persist
        self.min_history = min_history

    # -- lazily created state ----------------------------------------------------------------------
    @property
    def _features(self) -> dict[str, _Feature]:
        return self.__dict__.setdefault("_feat", {})  # type: ignore[no-any-return]  # lazy state

    @property
    def _gaps(self) -> tuple[_Moments, collections.deque[float], list[float]]:
        """(long-run log gap, recent log gaps, [last event time])."""
        if "_arrivals" not in self.__dict__:
            self.__dict__["_arrivals"] = (
                _Moments(self.alpha),
                collections.deque(maxlen=self.rate_window),
                [],
            )
        return self.__dict__["_arrivals"]  # type: ignore[no-any-return]  # lazy state

    @property
    def _calibration(self) -> PersistentViews:
        """The views' calibrators and their last verdicts (``detect.persistent``)."""
        if "_cal" not in self.__dict__:
            self.__dict__["_cal"] = PersistentViews(self.persist, self.min_history)
        return self.__dict__["_cal"]  # type: ignore[no-any-return]  # lazy state

    # -- statistics --------------------------------------------------------------------------------
    def _standard(self, f: _Feature, value: float) -> tuple[float, float]:
        """(standardised deviation from the level, standardised increment) of ``value``."""
        lvl_sd = f.level.sd(1e-9 + 1e-6 * abs(f.level.mean))
        z = (value - f.level.mean) / lvl_sd
        if math.isnan(f.last):
            return z, 0.0
        inc_sd = f.inc.sd(1e-9 + 1e-6 * abs(f.inc.mean))
        return z, (value - f.last - f.inc.mean) / inc_sd

    def _cusum(self, f: _Feature, z: float) -> tuple[float, float]:
        zc = max(-_Z_CLIP, min(_Z_CLIP, z)) if math.isfinite(z) else math.copysign(_Z_CLIP, z)
        return max(0.0, f.pos + zc - self.k), max(0.0, f.neg - zc - self.k)

    def _shape(self, f: _Feature, w: list[float]) -> tuple[float, float]:
        """(G = 2·n·relative entropy, serial-correlation z) of the increments window ``w`` against history."""
        n = len(w)
        if n < 4:
            return 0.0, 0.0
        total = sum(f.hist)
        edges = _edges(self.bins)
        counts = [0] * self.bins
        for v in w:
            counts[bisect.bisect_left(edges, v)] += 1
        kl = sum(c / n * math.log(c / n / (f.hist[i] / total)) for i, c in enumerate(counts) if c)
        g = 2.0 * n * kl  # the G statistic: chi-square with bins - 1 degrees of freedom under no change
        ss = sum(v * v for v in w)
        r = sum(a * b for a, b in itertools.pairwise(w)) / ss if ss > 1e-12 else 0.0
        # White-noise increments have lag-1 correlation -1/2; the history tracks the key's own value.
        r_hist = max(-0.99, min(0.99, f.cross / f.square))
        r = max(-0.99, min(0.99, r))
        acf_z = abs(math.atanh(r) - math.atanh(r_hist)) * math.sqrt(max(n - 3, 1))
        return g, acf_z

    def _views(self, x: Features, t: float | None) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, value in x.items():
            f = self._features.get(name)
            if f is None or f.inc.n < self.window or not math.isfinite(value):
                out[f"{name}.cusum"] = _MAX_DEV if f is not None and not math.isfinite(value) else 0.0
                continue
            _, inc = self._standard(f, value)
            pos, neg = self._cusum(f, inc)
            w = [*list(f.window)[1 if len(f.window) == self.window else 0 :], _clip(inc)]
            g, acf_z = self._shape(f, w)
            out[f"{name}.cusum"] = min(max(pos, neg), _MAX_DEV)
            out[f"{name}.kl"] = g
            out[f"{name}.acf"] = acf_z
        # Joint views over the features: a sequence change that shows in all of them at once adds up
        # (G statistics sum; correlation z's combine as Stouffer's sum / sqrt(count)).
        gs = [v for k, v in out.items() if k.endswith(".kl")]
        if len(gs) > 1:
            out["all.kl"] = sum(gs)
            out["all.acf"] = sum(v for k, v in out.items() if k.endswith(".acf")) / math.sqrt(len(gs))
        if t is not None:
            out["rate"] = self._rate(t)
        return out

    def _rate(self, t: float) -> float:
        lr, recent, last = self._gaps
        if not last or lr.n < self.rate_window:
            return 0.0
        gaps = [*list(recent)[1 if len(recent) == self.rate_window else 0 :], _log_gap(t - last[0])]
        # Only a real burst counts: gaps at least halved on average (a perfectly regular key has no spread,
        # and after one long gap its mean moves up a little, which must not read as a burst).
        drop = lr.mean - sum(gaps) / len(gaps) - _BURST
        return max(0.0, drop / lr.sd(0.1) * math.sqrt(len(gaps)))

    # -- the detector contract -----------------------------------------------------------------------
    def deviations(self, x: Features, t: float | None = None) -> dict[str, float]:
        """One value per view (see the class docstring), before learning ``x``."""
        return self._views(x, t) or {"rate": 0.0}

    def score_one(self, x: Features, t: float | None = None) -> float:
        """The largest view in standard units (``kl`` via its chi-square), squashed to [0, 1)."""
        dof = self.bins - 1
        views = self.deviations(x, t)
        return z_to_score(max(_chi2_z(v, dof) if k.endswith(".kl") else v for k, v in views.items()))

    def log10p_one(self, x: Features, t: float | None = None) -> tuple[float, str]:
        """(log10 tail probability, winning view): each view against its own history, persisting.

        A view speaks only when it was improbable on each of the last ``persist`` points (a sequence
        change lasts; one odd window does not), and the smallest p is multiplied by the number of views
        (Bonferroni: many views must not mean many false alarms).
        """
        return self._calibration.judge(self._views(x, t))[:2]

    def learn_one(self, x: Features, t: float | None = None) -> None:
        """Update every feature's sequence state (and the rate, when ``t`` is given)."""
        self._calibration.learn(self._views(x, t))
        for name, value in x.items():
            if not math.isfinite(value):
                continue
            f = self._features.get(name)
            if f is None:
                f = self._features[name] = _Feature(self.alpha, self.history, self.window, self.bins)
            self._learn_feature(f, value)
        if t is not None:
            self._learn_rate(t)

    def _learn_feature(self, f: _Feature, value: float) -> None:
        # The window statistics start once the increments' scale is known (before, everything is an outlier).
        if f.inc.n >= self.window:
            _, inc = self._standard(f, value)
            f.pos, f.neg = self._cusum(f, inc)
            inc = _clip(inc)
            if f.window:
                f.cross += self.history * (f.window[-1] * inc - f.cross)
                f.square += self.history * (inc * inc - f.square)
            f.window.append(inc)
            decay = 1.0 - self.history
            for i in range(self.bins):
                f.hist[i] *= decay
            f.hist[bisect.bisect_left(_edges(self.bins), inc)] += 1.0
        if not math.isnan(f.last) and abs(value - f.last) < _MAX_DEV:
            f.inc.update(value - f.last)
        if abs(value) < _MAX_DEV:
            f.level.update(value)
        f.last = value

    def _learn_rate(self, t: float) -> None:
        lr, recent, last = self._gaps
        if last:
            gap = _log_gap(t - last[0])
            recent.append(gap)
            lr.update(gap)
            last[0] = t
        else:
            last.append(t)

    def explain_one(self, x: Features, t: float | None = None) -> Explanation:
        """Shares of each feature's strongest sequence view; bands from each feature's level."""
        views = self._views(x, t)
        weights = {name: 0.0 for name in x}
        for view, value in views.items():
            feature = view.rpartition(".")[0]
            if feature in weights:
                weights[feature] = max(weights[feature], value if math.isfinite(value) else _MAX_DEV)
        expected = {}
        for name in x:
            f = self._features.get(name)
            if f is not None and f.level.n >= 2:
                m, sd = f.level.mean, f.level.sd(0.0)
                expected[name] = Expected(mean=m, low=m - self.band * sd, high=m + self.band * sd)
        return Explanation(shares(weights), expected)


def _clip(v: float) -> float:
    """A standardised increment as the window statistics see it: capped at ``_W_CLIP`` either way."""
    return max(-_W_CLIP, min(_W_CLIP, v)) if math.isfinite(v) else math.copysign(_W_CLIP, v)


def _log_gap(gap: float) -> float:
    """Log of an inter-arrival gap in seconds; ties and reordered events count as a millisecond."""
    return math.log(max(gap, 1e-3))
