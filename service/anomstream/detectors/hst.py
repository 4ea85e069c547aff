"""Half-space trees (River ``HalfSpaceTrees``) behind an online min-max scaler: multivariate detection.

Explanations come from per-feature running statistics (expected band) and a leave-one-feature-out
perturbation of the tree score (contributions), computed only when an alert is raised.
"""

from __future__ import annotations

import math
from typing import Any

from river import anomaly, preprocessing, stats

from anomstream.detectors.base import Band, Detector, Explanation, Features, shares


class HST(Detector):
    """Multivariate half-space trees on min-max scaled features.

    River's tree score is already in [0, 1] (1 = the point falls in the emptiest regions). Memory grows
    as ``n_trees * 2**(height+1)`` nodes per entity, so keep trees small when there are many entities.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> det = HST(n_trees=10, height=6, window_size=50, seed=1)
    >>> for _ in range(400):
    ...     x = {"a": rng.gauss(0, 1), "b": rng.gauss(5, 1)}
    ...     det.learn_one(x)
    >>> det.score_one({"a": 0.0, "b": 5.0}) < det.score_one({"a": 9.0, "b": 5.0})
    True
    """

    name = "hst"

    def __init__(
        self, n_trees: int = 10, height: int = 6, window_size: int = 100, band: float = 3.0, seed: int = 42
    ) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.band = band
        self.seed = seed

    def _state(self) -> tuple[Any, Any, dict[str, Any]]:
        try:
            return self.__dict__["_st"]  # type: ignore[no-any-return]  # lazily created state
        except KeyError:
            trees = anomaly.HalfSpaceTrees(
                n_trees=self.n_trees, height=self.height, window_size=self.window_size, seed=self.seed
            )
            state: tuple[Any, Any, dict[str, Any]] = (preprocessing.MinMaxScaler(), trees, {})
            self.__dict__["_st"] = state
            return state

    def _scaled(self, scaler: Any, x: Features) -> dict[str, float]:
        # Values beyond the learned range are clipped to the unit cube's faces: still "extreme".
        return {k: min(1.0, max(0.0, v)) for k, v in scaler.transform_one(dict(x)).items()}

    def learn_one(self, x: Features) -> None:
        """Learn the point in the scaler, the trees and the per-feature statistics."""
        scaler, trees, moments = self._state()
        scaler.learn_one(dict(x))
        trees.learn_one(self._scaled(scaler, x))
        for name, value in x.items():
            moments.setdefault(name, stats.Var()).update(value)

    def score_one(self, x: Features) -> float:
        """Tree score of the scaled point, in [0, 1]."""
        scaler, trees, _ = self._state()
        score = float(trees.score_one(self._scaled(scaler, x)))
        return min(1.0, max(0.0, score)) if math.isfinite(score) else 1.0

    def explain_one(self, x: Features) -> Explanation:
        """Contribution = how much the score drops when one feature is replaced by its running mean."""
        _, _, moments = self._state()
        base = self.score_one(x)
        drops, expected = {}, {}
        for name in x:
            var = moments.get(name)
            if var is None:
                drops[name] = 0.0
                continue
            mean, std = var.mean.get(), math.sqrt(max(var.get(), 0.0))
            expected[name] = Band(mean, mean - self.band * std, mean + self.band * std)
            drops[name] = max(0.0, base - self.score_one({**x, name: mean}))
        if not any(drops.values()):  # the trees cannot tell: fall back to standardised distance
            for name, value in x.items():
                band = expected.get(name)
                spread = (band.high - band.mean) / self.band if band else 0.0
                drops[name] = abs(value - band.mean) / spread if band and spread > 0 else 0.0
        return Explanation(shares(drops), expected)
