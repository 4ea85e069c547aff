"""Hypothesis tests: streaming generalised-ESD / Grubbs over a window, and change-point detection.

Change points come from River's drift detectors (Page-Hinkley, ADWIN) and are reported as level shifts.

Both report their test statistic as the deviation, per feature, so the calibration layer sees the
statistic itself; ``score_one`` squashes it like the statistical detectors.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from typing import Any

import numpy as np
from river import drift
from scipy import special

from anomstream.detect.detector import Detector, Explanation, Features, shares, z_to_score
from anomstream.detect.vector import Welford
from anomstream.wire.records import Expected


@dataclasses.dataclass(slots=True)
class WindowTest:
    """One feature of ``ESD``: the window and the mean/std/size of its ESD-cleaned part."""

    window: np.ndarray
    filled: int = 0
    pos: int = 0
    mean: float = 0.0
    std: float = 0.0
    n: int = 0


@functools.lru_cache(maxsize=4096)
def esd_critical(n: int, i: int, alpha: float) -> float:
    """Rosner's critical value λ_i for the i-th most extreme of ``n`` values at level ``alpha``."""
    p = 1.0 - alpha / (2.0 * (n - i + 1))
    t = float(special.stdtrit(n - i - 1, p))
    return (n - i) * t / math.sqrt((n - i - 1 + t * t) * (n - i + 1))


def esd_clean(values: np.ndarray, max_outliers: int, alpha: float) -> np.ndarray:
    """Rosner's generalised ESD: ``values`` without the (up to ``max_outliers``) significant outliers."""
    n = len(values)
    keep = np.ones(n, dtype=bool)
    removed, found = [], 0
    for i in range(1, min(max_outliers, n - 3) + 1):
        rest = values[keep]
        std = float(rest.std(ddof=1))
        if std <= 0:
            break
        dev = np.abs(values - rest.mean()) / std
        dev[~keep] = -1.0
        j = int(dev.argmax())
        keep[j] = False
        removed.append(j)
        if dev[j] > esd_critical(n, i, alpha):
            found = i
    keep[:] = True
    keep[removed[:found]] = False
    return values[keep]


class ESD(Detector):
    """Streaming Grubbs test of each value against its feature's window, cleaned by generalised ESD.

    The window holds the last ``window_size`` values; a generalised-ESD pass (Rosner) removes up to
    ``max_outliers`` outliers from it.

    The statistic is the prediction-interval t: ``|x - mean| / (s·√(1 + 1/n))`` with ``n - 1`` degrees
    of freedom; ``p_value`` is its two-sided tail, Bonferroni-corrected over the point's features.

    Examples
    --------
    >>> det = ESD(window_size=30)
    >>> for i in range(60):
    ...     det.learn_one({"x": 10.0 + (i % 5) * 0.5})
    >>> det.p_value({"x": 11.0}) > 0.05 > 1e-6 > det.p_value({"x": 30.0})
    True
    """

    name = "esd"
    summary = "Grubbs / generalised-ESD test over a sliding window: p-value per point"

    def __init__(
        self, window_size: int = 64, max_outliers: int = 5, alpha: float = 0.05, band: float = 3.0
    ) -> None:
        self.window_size = window_size
        self.max_outliers = max_outliers
        self.alpha = alpha
        self.band = band

    def _tests(self) -> dict[str, WindowTest]:
        return self.__dict__.setdefault("_st", {})  # type: ignore[no-any-return]  # lazily created state

    def learn_one(self, x: Features, t: float | None = None) -> None:
        """Add each value to its window and refresh the window's cleaned mean and spread."""
        for name, value in x.items():
            if not math.isfinite(value):
                continue
            w = self._tests().setdefault(name, WindowTest(np.zeros(self.window_size)))
            w.window[w.pos] = value
            w.pos, w.filled = (w.pos + 1) % self.window_size, min(w.filled + 1, self.window_size)
            clean = esd_clean(w.window[: w.filled], self.max_outliers, self.alpha)
            w.mean, w.n = float(clean.mean()), len(clean)
            w.std = float(clean.std(ddof=1)) if len(clean) > 1 else 0.0

    def _stat(self, name: str, value: float) -> tuple[float, int]:
        w = self._tests().get(name)
        if w is None or w.n < 3:
            return 0.0, 0
        scale = max(w.std, 1e-3 * abs(w.mean), 1e-9) * math.sqrt(1.0 + 1.0 / w.n)
        stat = abs(value - w.mean) / scale
        return (stat if math.isfinite(stat) else 1e300), w.n - 1

    def deviations(self, x: Features, t: float | None = None) -> dict[str, float]:
        """The test statistic per feature (0 for features without a window yet)."""
        return {name: self._stat(name, value)[0] for name, value in x.items()}

    def p_value(self, x: Features) -> float:
        """Two-sided p-value of the most extreme feature, Bonferroni-corrected over the features."""
        best = 1.0
        for name, value in x.items():
            stat, df = self._stat(name, value)
            if df > 0:
                best = min(best, 2.0 * float(special.stdtr(df, -stat)))
        return min(1.0, best * max(1, len(x)))

    def score_one(self, x: Features, t: float | None = None) -> float:
        """The p-value as the equivalent normal deviate, squashed like the statistical detectors."""
        p = self.p_value(x)
        return 0.0 if p >= 1.0 else z_to_score(float(-special.ndtri(p / 2.0)) if p > 0 else math.inf)

    def explain_one(self, x: Features, t: float | None = None) -> Explanation:
        """Shares of the per-feature statistic; bands: cleaned window mean ± ``band`` σ."""
        expected = {}
        for name in x:
            w = self._tests().get(name)
            if w is not None and w.n >= 3:
                width = self.band * w.std
                expected[name] = Expected(mean=w.mean, low=w.mean - width, high=w.mean + width)
        return Explanation(shares(self.deviations(x, t)), expected)


METHODS = ("page_hinkley", "adwin")
#: Points a feature's moments need before its standardised values feed the drift detector.
_SETTLE = 30


@dataclasses.dataclass(slots=True)
class DriftState:
    """One feature of ``ChangePoint``: its standardisation and River's drift detector."""

    moments: Welford
    detector: Any


class ChangePoint(Detector):
    """Change-point detection per feature with River's ``PageHinkley`` or ``ADWIN``: ``shift`` alerts.

    The drift detector sees the standardised value; it alarms when the level moves and stays moved.

    The deviation is the test statistic the point would produce: Page-Hinkley's cumulative deviation
    (in σ·points; it alarms above ``threshold``), or ADWIN's jump of the window mean (in σ) when it cuts
    its window. Scores are ``z_to_score(5 · statistic / threshold)`` (Page-Hinkley) and, when ADWIN
    cuts, ``z_to_score(5 · max(1, jump / min_shift))``: a detection scores above the default floor.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> det = ChangePoint(threshold=20.0)
    >>> for _ in range(200):
    ...     det.learn_one({"x": rng.gauss(10, 1)})
    >>> det.score_one({"x": 10.0}) < 0.5
    True
    >>> for _ in range(15):
    ...     det.learn_one({"x": rng.gauss(13, 1)})
    >>> det.score_one({"x": 13.0}) > 0.7
    True
    """

    name = "changepoint"
    kind = "shift"
    summary = "change-point test (River Page-Hinkley or ADWIN drift detectors): level shifts"

    def __init__(
        self,
        method: str = "page_hinkley",
        threshold: float = 30.0,
        delta: float = 0.5,
        min_shift: float = 1.0,
        band: float = 3.0,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.method = method
        self.threshold = threshold
        self.delta = delta
        self.min_shift = min_shift
        self.band = band

    def _states(self) -> dict[str, DriftState]:
        return self.__dict__.setdefault("_st", {})  # type: ignore[no-any-return]  # lazily created state

    def _new(self) -> DriftState:
        if self.method == "adwin":
            return DriftState(Welford(), drift.ADWIN())  # type: ignore[no-untyped-call]  # River: unannotated
        return DriftState(Welford(), drift.PageHinkley(min_instances=10, delta=self.delta, threshold=1e300))

    @staticmethod
    def _u(st: DriftState, value: float) -> float:
        w = st.moments
        u = (value - w.mean) / max(w.std, 1e-3 * abs(w.mean), 1e-9)
        return max(-1e6, min(1e6, u)) if math.isfinite(u) else 1e6

    def learn_one(self, x: Features, t: float | None = None) -> None:
        """Feed each feature's standardised value to its drift detector, then update its moments."""
        for name, value in x.items():
            if not math.isfinite(value):
                continue
            st = self._states().setdefault(name, self._new())
            if st.moments.n >= _SETTLE:  # a scale from a handful of points would inject huge steps
                st.detector.update(self._u(st, value))
            st.moments.update(value)

    def _stat(self, name: str, value: float) -> float:
        st = self._states().get(name)
        if st is None or st.moments.n < _SETTLE:
            return 0.0
        u = self._u(st, value)
        if self.method == "adwin":
            probe = copy.deepcopy(st.detector)
            before = probe.estimation
            probe.update(u)
            return abs(probe.estimation - before) if probe.drift_detected else 0.0
        return _page_hinkley_stat(st.detector, u)

    def deviations(self, x: Features, t: float | None = None) -> dict[str, float]:
        """The test statistic per feature, had ``x`` been fed to the detector."""
        return {name: self._stat(name, value) for name, value in x.items()}

    def score_one(self, x: Features, t: float | None = None) -> float:
        """Largest statistic over its alarm level, times 5, squashed (detection ⇒ above 0.7)."""
        stat = max(self.deviations(x, t).values(), default=0.0)
        if self.method == "adwin":  # ADWIN's cut is the detection; the jump only grades it
            return z_to_score(5.0 * max(1.0, stat / self.min_shift)) if stat > 0 else 0.0
        return z_to_score(5.0 * stat / self.threshold)

    def explain_one(self, x: Features, t: float | None = None) -> Explanation:
        """Shares of the per-feature statistic; bands: running mean ± ``band`` σ."""
        expected = {}
        for name in x:
            st = self._states().get(name)
            if st is not None and st.moments.n >= 2:
                w, width = st.moments, self.band * st.moments.std
                expected[name] = Expected(mean=w.mean, low=w.mean - width, high=w.mean + width)
        return Explanation(shares(self.deviations(x, t)), expected)


def _page_hinkley_stat(ph: Any, u: float) -> float:
    """Page-Hinkley's statistic after ``u``, without updating ``ph`` (mirrors ``PageHinkley.update``).

    Its own alarm threshold is disabled so the detector never resets itself: ``ChangePoint`` decides.
    """
    n = ph._x_mean.n + 1  # River keeps these private; read-only here
    mean = ph._x_mean.get() + (u - ph._x_mean.get()) / n
    dev = u - mean
    up = ph.alpha * ph._sum_increase + dev - ph.delta
    down = ph.alpha * ph._sum_decrease + dev + ph.delta
    if n < ph.min_instances:
        return 0.0
    return float(max(up - min(ph._min_increase, up), max(ph._max_decrease, down) - down))
