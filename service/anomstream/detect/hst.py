"""Half-space trees (River ``HalfSpaceTrees``) on standardised, squashed features: multivariate detection.

Explanations come from per-feature running statistics (expected band) and a leave-one-feature-out
perturbation of the tree score (contributions), computed only when an alert is raised.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from river import anomaly, stats

from anomstream.detect.detector import Detector, Explanation, Features, shares, z_to_score
from anomstream.detect.vector import Welford, standardise
from anomstream.wire.records import Expected


class HST(Detector):
    """Multivariate half-space trees on standardised, logistic-squashed features, with a standardised score.

    River's raw tree score crowds into a narrow high band (ordinary points score 0.7–0.97), so it is
    standardised against the running mean and spread of the raw scores of learned points and squashed
    like the statistical detectors: thresholds mean the same thing for every detector. The trees need
    one full ``window_size`` before they score at all; keep the spec's warm-up above it. Values outside
    the learned range land on the unit cube's face, among ordinary edge points, so a single far outlier
    is not what half-space trees see best: they find points in sparse *combinations* of features;
    use ``ewma``/``zscore`` for per-feature spikes. Memory grows as
    ``n_trees * 2**(height+1)`` nodes per entity, so keep trees small when there are many entities.

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
    summary = "half-space trees (River) on standardised, squashed features: unusual combinations"

    def __init__(
        self,
        n_trees: int = 10,
        height: int = 6,
        window_size: int = 25,
        *,
        band: float = 3.0,
        seed: int = 42,
        squash: float = 2.0,
    ) -> None:
        self.squash = squash
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
            state: tuple[Any, Any, dict[str, Any]] = (None, trees, {})
            self.__dict__["_st"] = state
            self.__dict__["_raw"] = stats.Var()  # raw tree scores of learned points
            self.__dict__["_n"] = 0
            return state

    def __getstate__(self) -> dict[str, Any]:
        # The score memo is a per-call cache, not model state: it is never persisted or compared.
        return {k: v for k, v in self.__dict__.items() if k != "_last"}

    def _raw_score(self, x: Features) -> float:
        _, trees, moments = self._state()
        raw = float(trees.score_one(self._scaled(moments, x)))
        return raw if math.isfinite(raw) else 1.0

    def _scaled(self, moments: dict[str, Welford], x: Features) -> dict[str, float]:
        names = [k for k in x if k in moments]
        z = standardise(moments, x, names, 1e-3) / self.squash
        return dict(zip(names, (1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))).tolist(), strict=True))

    def learn_one(self, x: Features, t: float | None = None) -> None:
        """Learn the point in the scaler, the trees, the raw-score statistics and per-feature moments."""
        _, trees, moments = self._state()
        # The scorer calls score_one(x) right before learn_one(x): reuse that raw score, don't recompute.
        cached = self.__dict__.pop("_last", None)
        raw = cached[1] if cached is not None and cached[0] is x else self._raw_score(x)
        if self.__dict__["_n"] >= self.window_size:  # the trees score nothing until one window is full
            self.__dict__["_raw"].update(raw)
        self.__dict__["_n"] += 1
        for name, value in x.items():
            if math.isfinite(value):
                moments.setdefault(name, Welford()).update(value)
        trees.learn_one(self._scaled(moments, x))

    def score_one(self, x: Features, t: float | None = None) -> float:
        """How far the raw tree score exceeds its usual level, in standard units, squashed to [0, 1]."""
        raw = self._raw_score(x)
        self.__dict__["_last"] = (x, raw)
        return self._standardised(raw)

    def _standardised(self, raw: float) -> float:
        spread: Any = self.__dict__["_raw"]
        if spread.n < 2:
            return 0.0
        std = max(math.sqrt(max(spread.get(), 0.0)), 1e-3)  # ties of identical raw scores are common
        return z_to_score(max(0.0, (raw - spread.mean.get()) / std))

    def explain_one(self, x: Features, t: float | None = None) -> Explanation:
        """Contribution = how much the score drops when one feature is replaced by its running mean."""
        _, _, moments = self._state()
        base = self._standardised(self._raw_score(x))
        drops, expected = {}, {}
        for name in x:
            var = moments.get(name)
            if var is None:
                drops[name] = 0.0
                continue
            mean, std = var.mean, var.std
            expected[name] = Expected(mean=mean, low=mean - self.band * std, high=mean + self.band * std)
            drops[name] = max(0.0, base - self._standardised(self._raw_score({**x, name: mean})))
        if not any(drops.values()):  # the trees cannot tell: fall back to standardised distance
            for name, value in x.items():
                band = expected.get(name)
                spread = (band.high - band.mean) / self.band if band else 0.0
                drops[name] = abs(value - band.mean) / spread if band and spread > 0 else 0.0
        return Explanation(shares(drops), expected)
