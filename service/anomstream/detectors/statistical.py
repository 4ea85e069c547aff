"""Per-feature statistical detectors: z-score, robust (median/IQR) and EWMA control chart.

Each feature keeps a location and a scale estimator from ``river.stats``; the score is the largest
deviation in standard units, squashed to [0, 1].
"""

from __future__ import annotations

import math
from typing import Any

from river import stats

from anomstream.detectors.base import Band, Detector, Explanation, Features, shares, z_to_score

# Gaussian IQR = 1.349 σ: converts the robust spread to standard units.
_IQR_TO_SIGMA = 1.349


class _FeatureStats(Detector):
    """Shared engine: per-feature (location, scale) estimators, max-|z| score, z-share contributions."""

    def __init__(self, band: float = 3.0, min_scale: float = 1e-6, rel_scale: float = 1e-3) -> None:
        self.band = band
        self.min_scale = min_scale
        self.rel_scale = rel_scale

    # -- what subclasses define -------------------------------------------------------------------
    def _new(self) -> Any:
        raise NotImplementedError

    def _update(self, est: Any, value: float) -> None:
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

    def _z(self, name: str, value: float) -> float:
        est = self._stats.get(name)
        if est is None:
            return 0.0  # a feature never seen before has no expectation yet
        center, scale = self._center_scale(est)
        return abs(value - center) / self._scale(center, scale)

    def learn_one(self, x: Features) -> None:
        """Update every feature's estimators (new features start lazily)."""
        table = self._stats
        for name, value in x.items():
            est = table.get(name)
            if est is None:
                est = table[name] = self._new()
            self._update(est, value)

    def score_one(self, x: Features) -> float:
        """Largest per-feature deviation, in standard units, squashed to [0, 1]."""
        worst = 0.0
        for name, value in x.items():
            z = self._z(name, value)
            worst = max(worst, z)
        return z_to_score(worst)

    def explain_one(self, x: Features) -> Explanation:
        """Contributions are each feature's share of the total |z|; the band is centre ± ``band`` σ."""
        expected = {}
        for name in x:
            est = self._stats.get(name)
            if est is None:
                continue
            center, scale = self._center_scale(est)
            width = self.band * self._scale(center, scale)
            expected[name] = Band(center, center - width, center + width)
        return Explanation(shares({n: self._z(n, v) for n, v in x.items()}), expected)


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

    def _new(self) -> Any:
        return stats.Var()

    def _update(self, est: Any, value: float) -> None:
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

    def _new(self) -> Any:
        return (stats.Quantile(0.5), stats.IQR(0.25, 0.75))

    def _update(self, est: Any, value: float) -> None:
        est[0].update(value)
        est[1].update(value)

    def _center_scale(self, est: Any) -> tuple[float, float]:
        median, iqr = est[0].get(), est[1].get()
        if median is None:
            return 0.0, 0.0
        return median, (iqr or 0.0) / _IQR_TO_SIGMA


class EWMA(_FeatureStats):
    """Exponentially weighted mean and variance per feature: a control chart that follows drift.

    ``fading_factor`` is the weight of the newest point (0.05 ≈ the last 20 points dominate).

    Examples
    --------
    >>> det = EWMA(fading_factor=0.1)
    >>> for i in range(200):
    ...     det.learn_one({"x": 100.0 + i * 0.1 + (i % 3)})   # a slow ramp is followed, not flagged
    >>> det.score_one({"x": 120.8}) < 0.5 < det.score_one({"x": 160.0})
    True
    """

    name = "ewma"

    def __init__(
        self,
        fading_factor: float = 0.05,
        band: float = 3.0,
        min_scale: float = 1e-6,
        rel_scale: float = 1e-3,
    ) -> None:
        super().__init__(band=band, min_scale=min_scale, rel_scale=rel_scale)
        self.fading_factor = fading_factor

    def _new(self) -> Any:
        # river's EWVar (Rust) keeps its own mean privately; EWMean gives us the centre.
        return (stats.EWMean(self.fading_factor), stats.EWVar(self.fading_factor))

    def _update(self, est: Any, value: float) -> None:
        est[0].update(value)
        est[1].update(value)

    def _center_scale(self, est: Any) -> tuple[float, float]:
        var = est[1].get()
        return est[0].get(), math.sqrt(var) if var > 0 else 0.0
