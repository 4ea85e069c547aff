"""Per-feature statistical detectors: z-score, robust (median/IQR) and EWMA control chart.

Each feature keeps a location and a scale estimator from ``river.stats``; the score is the largest
deviation in standard units, squashed to [0, 1].
"""

from __future__ import annotations

import dataclasses
import math
from array import array
from typing import Any

from river import stats

from anomstream.detect.detector import Detector, Explanation, Features, shares, z_to_score
from anomstream.wire.records import Expected

# Gaussian IQR = 1.349 σ: converts the robust spread to standard units.
_IQR_TO_SIGMA = 1.349


@dataclasses.dataclass(slots=True)
class RobustState:
    """One feature of ``Robust``: running median and inter-quartile range."""

    median: Any
    iqr: Any


@dataclasses.dataclass(slots=True)
class EwmaState:
    """One feature of ``EWMA``: the level's mean and variance, and the optional seasonal profile.

    ``profile`` holds one smoothed value per slot of the period (NaN: slot not seen yet);
    ``resid_mean`` / ``resid_var`` follow the residual from that profile.
    """

    mean: Any
    var: Any
    profile: array[float] | None = None
    resid_mean: Any = None
    resid_var: Any = None


class _FeatureStats(Detector):
    """Shared engine: per-feature (location, scale) estimators, max-|z| score, z-share contributions."""

    def __init__(self, band: float = 3.0, min_scale: float = 1e-6, rel_scale: float = 1e-3) -> None:
        self.band = band
        self.min_scale = min_scale
        self.rel_scale = rel_scale

    # -- what subclasses define -------------------------------------------------------------------
    def _new(self) -> Any:
        raise NotImplementedError

    def _update(self, est: Any, value: float, t: float | None) -> None:
        raise NotImplementedError

    def _center_scale(self, est: Any) -> tuple[float, float]:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------------
    @property
    def _stats(self) -> dict[str, Any]:
        try:
            return self.__dict__["_est"]  # type: ignore[no-any-return]  # lazily created state
        except KeyError:
            est: dict[str, Any] = {}
            self.__dict__["_est"] = est
            return est

    def _scale(self, center: float, scale: float) -> float:
        # A flat or nearly flat history would make any change infinitely anomalous; floor the scale.
        return max(scale, self.min_scale, self.rel_scale * abs(center))

    def _z(self, est: Any, value: float, t: float | None) -> float:
        center, scale = self._center_scale(est)
        return abs(value - center) / self._scale(center, scale)

    def _expect(self, est: Any, t: float | None) -> tuple[float, float]:
        """Expected centre and (floored) spread of a feature at time ``t``."""
        center, scale = self._center_scale(est)
        return center, self._scale(center, scale)

    def _feature_z(self, name: str, value: float, t: float | None) -> float:
        est = self._stats.get(name)
        return 0.0 if est is None else self._z(est, value, t)  # an unseen feature has no expectation

    def learn_one(self, x: Features, t: float | None = None) -> None:
        """Update every feature's estimators (new features start lazily)."""
        table = self._stats
        for name, value in x.items():
            est = table.get(name)
            if est is None:
                est = table[name] = self._new()
            self._update(est, value, t)

    def score_one(self, x: Features, t: float | None = None) -> float:
        """Largest per-feature deviation, in standard units, squashed to [0, 1]."""
        worst = 0.0
        for name, value in x.items():
            worst = max(worst, self._feature_z(name, value, t))
        return z_to_score(worst)

    def explain_one(self, x: Features, t: float | None = None) -> Explanation:
        """Contributions are each feature's share of the total |z|; the band is centre ± ``band`` σ."""
        expected = {}
        for name in x:
            est = self._stats.get(name)
            if est is None:
                continue
            center, spread = self._expect(est, t)
            width = self.band * spread
            expected[name] = Expected(mean=center, low=center - width, high=center + width)
        return Explanation(shares({n: self._feature_z(n, v, t) for n, v in x.items()}), expected)


class ZScore(_FeatureStats):
    """Running mean and variance per feature (Welford, ``river.stats.Var``); score from max |z|.

    Examples
    --------
    >>> det = ZScore()
    >>> for v in [10.0, 11.0, 9.0, 10.5, 9.5] * 10:
    ...     det.learn_one({"x": v})
    >>> det.score_one({"x": 10.0}) < 0.1 < 0.9 < det.score_one({"x": 30.0})
    True
    """

    name = "zscore"
    summary = "running mean and variance per feature, largest z-score: spikes on stationary metrics"

    def _new(self) -> Any:
        return stats.Var()

    def _update(self, est: Any, value: float, t: float | None) -> None:
        est.update(value)

    def _center_scale(self, est: Any) -> tuple[float, float]:
        var = est.get()
        return est.mean.get(), math.sqrt(var) if var > 0 else 0.0


class Robust(_FeatureStats):
    """Median and inter-quartile range per feature (``river.stats.Quantile`` / ``IQR``): outlier-proof.

    Examples
    --------
    >>> det = Robust()
    >>> for v in [10.0, 11.0, 9.0, 10.5, 9.5, 500.0] * 10:   # a sixth of the history is wild
    ...     det.learn_one({"x": v})
    >>> round(det.explain_one({"x": 10.0}).expected["x"].mean)   # the median ignores the 500s
    10
    """

    name = "robust"
    summary = "median and IQR per feature: spikes on heavy-tailed, outlier-polluted metrics"

    def _new(self) -> RobustState:
        return RobustState(stats.Quantile(0.5), stats.IQR(0.25, 0.75))

    def _update(self, est: RobustState, value: float, t: float | None) -> None:
        est.median.update(value)
        est.iqr.update(value)

    def _center_scale(self, est: RobustState) -> tuple[float, float]:
        median, iqr = est.median.get(), est.iqr.get()
        if median is None:
            return 0.0, 0.0
        return median, (iqr or 0.0) / _IQR_TO_SIGMA


class EWMA(_FeatureStats):
    """Exponentially weighted mean and variance per feature: a control chart that follows drift.

    ``fading_factor`` is the weight of the newest point (0.05 ≈ the last 20 points dominate). With
    ``period_s`` > 0 it also keeps a seasonal profile per feature: one exponentially smoothed value per
    ``slot_s``-wide slot of the period (e.g. a week of 30-minute slots), plus the mean and spread of
    the residual from that profile; the score is the larger of the level and the seasonal deviation,
    so a missing daily peak is anomalous even though the value is within the overall range.

    Examples
    --------
    >>> det = EWMA(fading_factor=0.1)
    >>> for i in range(200):
    ...     det.learn_one({"x": 100.0 + i * 0.1 + (i % 3)})   # a slow ramp is followed, not flagged
    >>> det.score_one({"x": 120.8}) < 0.5 < det.score_one({"x": 160.0})
    True
    >>> daily = EWMA(fading_factor=0.01, period_s=86400, slot_s=3600)
    >>> for h in range(24 * 14):                               # two weeks: 100 by day, 10 by night
    ...     daily.learn_one({"x": 100.0 if 8 <= h % 24 < 20 else 10.0}, t=h * 3600.0)
    >>> noon_at_night = daily.score_one({"x": 100.0}, t=(24 * 14 + 2) * 3600.0)
    >>> noon_at_noon = daily.score_one({"x": 100.0}, t=(24 * 14 + 12) * 3600.0)
    >>> noon_at_noon < 0.2 < 0.9 < noon_at_night
    True
    """

    name = "ewma"
    summary = "exponentially weighted control chart (+ seasonal profile): drifting, seasonal metrics"

    def __init__(
        self,
        fading_factor: float = 0.05,
        *,
        band: float = 3.0,
        min_scale: float = 1e-6,
        rel_scale: float = 1e-3,
        period_s: float = 0.0,
        slot_s: float = 1800.0,
        season_fading: float = 0.5,
    ) -> None:
        super().__init__(band=band, min_scale=min_scale, rel_scale=rel_scale)
        self.fading_factor = fading_factor
        self.period_s = period_s
        self.slot_s = slot_s
        self.season_fading = season_fading

    def _new(self) -> EwmaState:
        # river's EWVar (Rust) keeps its own mean privately; EWMean gives us the centre.
        state = EwmaState(stats.EWMean(self.fading_factor), stats.EWVar(self.fading_factor))
        if self.period_s > 0:
            slots = math.ceil(self.period_s / self.slot_s)
            state.profile = array("d", [math.nan]) * slots  # NaN: slot not seen yet
            state.resid_mean = stats.EWMean(self.fading_factor)
            state.resid_var = stats.EWVar(self.fading_factor)
        return state

    def _slot(self, est: EwmaState, t: float | None) -> int | None:
        if t is None or est.profile is None:
            return None
        return int((t % self.period_s) // self.slot_s)

    def _update(self, est: EwmaState, value: float, t: float | None) -> None:
        slot = self._slot(est, t)
        if slot is not None and est.profile is not None:
            # 1. the residual against the profile as it was, 2. then the profile learns the value
            seen = est.profile[slot]
            if not math.isnan(seen):
                est.resid_mean.update(value - seen)
                est.resid_var.update(value - seen)
            est.profile[slot] = value if math.isnan(seen) else seen + self.season_fading * (value - seen)
        est.mean.update(value)
        est.var.update(value)

    def _center_scale(self, est: EwmaState) -> tuple[float, float]:
        var = est.var.get()
        return est.mean.get(), math.sqrt(var) if var > 0 else 0.0

    def _seasonal(self, est: EwmaState, t: float | None) -> tuple[float, float] | None:
        slot = self._slot(est, t)
        if slot is None or est.profile is None or math.isnan(est.profile[slot]):
            return None
        var = est.resid_var.get()
        level = est.mean.get()
        spread = self._scale(level, math.sqrt(var) if var > 0 else 0.0)
        return est.profile[slot] + est.resid_mean.get(), spread

    def _z(self, est: EwmaState, value: float, t: float | None) -> float:
        level = super()._z(est, value, t)
        seasonal = self._seasonal(est, t)
        if seasonal is None:
            return level
        center, spread = seasonal
        return max(level, abs(value - center) / spread)

    def _expect(self, est: EwmaState, t: float | None) -> tuple[float, float]:
        return self._seasonal(est, t) or super()._expect(est, t)
