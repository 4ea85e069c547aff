"""Windowed Local Outlier Factor: LOF of each point against the key's last ``window_size`` points (numpy).

River's ``LocalOutlierFactor`` keeps every point it has learned (its cost per event grows without
bound: see ``docs/detectors.md``); this one keeps a ring buffer and recomputes the window's k-distances
and local reachability densities when it learns, so a point costs ``O(window_size² · d)`` at most.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from anomstream.detect.vector import VectorDetector


@dataclasses.dataclass(slots=True)
class LofState:
    """The window (standardised points), its k-distances and local reachability densities."""

    names: list[str] = dataclasses.field(default_factory=list)
    window: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0)))
    filled: int = 0
    pos: int = 0
    kdist: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    lrd: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2), 0.0))
    return out


class LocalOutlierFactor(VectorDetector):
    """Local Outlier Factor over a sliding window of the key's standardised points.

    How much sparser ``x``'s neighbourhood is than its ``n_neighbors`` nearest neighbours' own
    neighbourhoods (≈ 1 inside a cluster, ≫ 1 far out). The raw score is ``max(0, log LOF)``: LOF is a
    ratio with a long right tail even among ordinary points, and its log keeps the tail in proportion.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> det = LocalOutlierFactor(window_size=64)
    >>> for _ in range(200):
    ...     det.learn_one({"a": rng.gauss(0, 1), "b": rng.gauss(5, 1)})
    >>> det.score_one({"a": 0.1, "b": 5.0}) < 0.5 < det.score_one({"a": 9.0, "b": 5.0})
    True
    """

    name = "lof"
    summary = "local outlier factor over a sliding window: points in sparse neighbourhoods"

    def __init__(
        self,
        n_neighbors: int = 10,
        window_size: int = 64,
        *,
        band: float = 3.0,
        scope: str = "key",
        seed: int = 42,
        fading: float = 0.0,
    ) -> None:
        super().__init__(band=band, scope=scope, seed=seed, fading=fading)
        self.n_neighbors = n_neighbors
        self.window_size = window_size

    def _new_model(self) -> LofState:
        return LofState()

    def _k(self, model: LofState) -> int:
        return min(self.n_neighbors, model.filled - 1)

    def _model_learn(self, model: LofState, v: np.ndarray) -> None:
        if len(v) == 0:
            return
        if model.window.shape[1] < len(v):
            grown = np.zeros((self.window_size, len(v)))
            grown[: model.window.shape[0], : model.window.shape[1]] = model.window
            model.window = grown
        model.window[model.pos] = v
        model.pos = (model.pos + 1) % self.window_size
        model.filled = min(model.filled + 1, self.window_size)
        k = self._k(model)
        if k < 1:
            return
        pts = model.window[: model.filled]
        dist = _distances(pts, pts)
        np.fill_diagonal(dist, np.inf)
        nn = np.argpartition(dist, k - 1, axis=1)[:, :k]
        kdist = np.take_along_axis(dist, nn, axis=1).max(axis=1)
        reach = np.maximum(kdist[nn], np.take_along_axis(dist, nn, axis=1))
        model.kdist, model.lrd = kdist, 1.0 / np.maximum(reach.mean(axis=1), 1e-9)

    def _model_raw(self, model: LofState, v: np.ndarray) -> float | None:
        k = self._k(model)
        if k < 1 or len(model.lrd) != model.filled:
            return None
        pts = model.window[: model.filled]
        width = pts.shape[1]
        d = _distances(v[None, :width], pts)[0]
        nn = np.argpartition(d, k - 1)[:k]
        reach = np.maximum(model.kdist[nn], d[nn])
        lrd_q = 1.0 / max(float(reach.mean()), 1e-9)
        return max(0.0, math.log(float(model.lrd[nn].mean() / lrd_q)))
