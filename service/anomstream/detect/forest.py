"""Streaming isolation forest (IForestASD): a forest refit on a sliding window, numpy arrays, seeded.

Trees are grown as in Robust Random Cut Forests (Guha et al. 2016): at each node the cut dimension is
drawn in proportion to the node's range in it, the cut uniformly within that range. A point is scored
by the depth at which it *would be inserted* into each tree: at each node on its path the chance that
a random cut of the node's bounding box, grown to include the point, separates it is
``Σ gap_f / Σ span_f``. Far outliers are cut off at the root (depth → 1), so the score keeps growing with
distance instead of saturating at the edge of the data, which is what made plain isolation depth (and
HST's min-max cube) blind to a single far spike.

Each tree is a complete binary tree in heap layout (node ``i`` has children ``2i+1``, ``2i+2``); every
walk is exactly ``height`` steps (below a leaf it goes left and cuts nothing). The state is numpy
arrays only, so it pickles small and never carries code.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from anomstream.detect.vector import VectorDetector

_EULER = 0.5772156649
#: The box of a node below a leaf: nothing is ever cut off there (|standardised values| ≤ Z_CLIP).
_HUGE = 1e30


def avg_path(n: np.ndarray | float) -> np.ndarray:
    """Average path length of an unsuccessful BST search among ``n`` points, ``c(n)`` of Liu et al."""
    n = np.asarray(n, dtype=float)
    safe = np.maximum(n, 2.0)
    c = 2.0 * (np.log(safe - 1.0) + _EULER) - 2.0 * (safe - 1.0) / safe
    return np.where(n > 2, c, np.where(n == 2, 1.0, 0.0))


@dataclasses.dataclass(slots=True)
class ForestState:
    """Sliding window of standardised points and the forest fitted on it (all numpy arrays).

    ``forest`` = (feature, threshold, lo, hi, leaf): per tree and inner node (heap order) the cut
    feature and value (+inf below a leaf: go left), the node's bounding box ``lo``/``hi`` (trees × inner
    × d; a box of ±1e30 below a leaf), and the path length (depth + c(size)) of each bottom slot.
    """

    names: list[str] = dataclasses.field(default_factory=list)
    window: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0)))
    filled: int = 0
    pos: int = 0
    since_fit: int = 0
    fits: int = 0
    forest: tuple[np.ndarray, ...] | None = None
    sample_n: int = 0


def _cut(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per node: a dimension drawn in proportion to its range, and a cut uniform within it."""
    span = np.where(np.isfinite(hi - lo), hi - lo, 0.0)
    total = span.sum(axis=1)
    pick = rng.random(len(lo)) * total
    f = np.minimum((np.cumsum(span, axis=1) < pick[:, None]).sum(axis=1), lo.shape[1] - 1)
    rows = np.arange(len(lo))
    return f, lo[rows, f] + rng.random(len(lo)) * span[rows, f]


def grow_forest(rng: np.random.Generator, pts: np.ndarray, n_trees: int, n: int) -> tuple[np.ndarray, ...]:
    """Grow ``n_trees`` random-cut trees on ``n``-point subsamples of ``pts``, all trees level by level."""
    height = max(1, math.ceil(math.log2(max(n, 2))))
    nodes, d = 2 ** (height + 1) - 1, pts.shape[1]
    feature = np.full(n_trees * nodes, -1, dtype=np.int64)
    thr = np.full(n_trees * nodes, np.inf)
    lo, hi = np.full((n_trees * nodes, d), np.inf), np.full((n_trees * nodes, d), -np.inf)
    rows = np.argsort(rng.random((n_trees, len(pts))), axis=1)[:, :n]  # subsample without replacement
    tree = np.repeat(np.arange(n_trees), n)
    node = np.zeros(n_trees * n, dtype=np.int64)
    sample = pts[rows.ravel()]
    for _ in range(height + 1):
        flat = tree * nodes + node
        np.minimum.at(lo, flat, sample)
        np.maximum.at(hi, flat, sample)
        f, cut = _cut(rng, lo, hi)
        split = ((hi - lo).max(axis=1) > 0) & (feature < 0) & (np.arange(len(lo)) % nodes < nodes // 2)
        feature[split], thr[split] = f[split], cut[split]
        node = np.where(
            split[flat], 2 * node + 1 + (sample[np.arange(len(sample)), f[flat]] >= cut[flat]), node
        )
    size = np.zeros(n_trees * nodes, dtype=np.int64)
    np.add.at(size, tree * nodes + node, 1)
    return _flatten(
        feature.reshape(n_trees, nodes),
        thr.reshape(n_trees, nodes),
        lo.reshape(n_trees, nodes, d),
        hi.reshape(n_trees, nodes, d),
        size.reshape(n_trees, nodes),
    )


def _flatten(
    feature: np.ndarray, thr: np.ndarray, lo: np.ndarray, hi: np.ndarray, size: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Below a leaf every node goes left with an empty box; bottom slots carry their leaf's path length."""
    inner = feature.shape[1] // 2
    value = np.floor(np.log2(np.arange(feature.shape[1]) + 1.0)) + avg_path(size)
    dead = feature < 0
    for parent in range(inner):
        mask = dead[:, parent]
        if mask.any():
            for kid in (2 * parent + 1, 2 * parent + 2):
                value[mask, kid] = value[mask, parent]
                dead[mask, kid] = True
    box_dead = dead[:, :inner, None]
    return (
        np.where(dead, 0, feature)[:, :inner].astype(np.int16),
        np.where(dead, np.inf, thr)[:, :inner].astype(np.float32),
        np.where(box_dead, -_HUGE, lo[:, :inner]).astype(np.float32),
        np.where(box_dead, _HUGE, hi[:, :inner]).astype(np.float32),
        value[:, inner:].astype(np.float32),
    )


def insertion_depth(forest: tuple[np.ndarray, ...], v: np.ndarray) -> float:
    """Expected depth at which ``v`` would be inserted, averaged over the trees (see the module doc)."""
    feature, thr, lo, hi, leaf = forest
    trees, inner = feature.shape
    tree = np.arange(trees)
    node = np.zeros(trees, dtype=np.int64)
    alive, depth = np.ones(trees), np.zeros(trees)
    width = min(len(v), lo.shape[2])
    q = v[:width]
    for level in range(1, int(math.log2(inner + 1)) + 1):
        low, high = lo[tree, node, :width], hi[tree, node, :width]
        gap = np.maximum(np.maximum(low - q, q - high), 0.0).sum(axis=1)
        span = (np.maximum(high, q) - np.minimum(low, q)).sum(axis=1)  # below a leaf: ±_HUGE, p = 0
        p = gap / np.maximum(span, 1e-12)
        depth += alive * p * level
        alive *= 1.0 - p
        node = 2 * node + 1 + (q[feature[tree, node]] >= thr[tree, node])
    return float(np.mean(depth + alive * leaf[tree, node - inner]))


class IsolationForest(VectorDetector):
    """Streaming isolation forest (IForestASD): trees refit on a sliding window of standardised points.

    ``n_trees`` trees are refit every ``refit_every`` points on the last ``window_size`` points.

    Far outliers are isolated in few splits whatever their distance, so a single spike scores high;
    the raw score is Liu et al.'s ``2^(-E[h]/c(n))``. The state is numpy arrays (window + forest),
    about ``window_size·d·8 + n_trees·2^(height+1)·10`` bytes per key; with ``scope = "stream"`` one
    forest serves every key of the stream, each key keeping only its feature moments.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> det = IsolationForest(seed=1)
    >>> for _ in range(300):
    ...     det.learn_one({"a": rng.gauss(0, 1), "b": rng.gauss(5, 1)})
    >>> det.score_one({"a": 0.1, "b": 5.0}) < 0.5 < det.score_one({"a": 9.0, "b": 5.0})
    True
    """

    name = "iforest"
    summary = "streaming isolation forest refit on a sliding window (IForestASD): isolated points"

    def __init__(
        self,
        n_trees: int = 20,
        window_size: int = 128,
        sample_size: int = 32,
        refit_every: int = 32,
        *,
        band: float = 3.0,
        scope: str = "key",
        seed: int = 42,
        fading: float = 0.05,
    ) -> None:
        super().__init__(band=band, scope=scope, seed=seed, fading=fading)
        self.n_trees = n_trees
        self.window_size = window_size
        self.sample_size = sample_size
        self.refit_every = refit_every

    def _new_model(self) -> ForestState:
        return ForestState()

    def _model_learn(self, model: ForestState, v: np.ndarray) -> None:
        if len(v) == 0:
            return
        if model.window.shape[1] < len(v):  # new features: older points sit at the mean (0)
            grown = np.zeros((self.window_size, len(v)))
            grown[: model.window.shape[0], : model.window.shape[1]] = model.window
            model.window = grown
        model.window[model.pos] = v
        model.pos = (model.pos + 1) % self.window_size
        model.filled = min(model.filled + 1, self.window_size)
        model.since_fit += 1
        if (
            model.forest is None and model.filled >= min(self.sample_size, self.window_size) // 2
        ) or model.since_fit >= self.refit_every:
            self._fit(model)

    def _fit(self, model: ForestState) -> None:
        rng = np.random.default_rng([self.seed, model.fits])
        pts = model.window[: model.filled]
        n = min(self.sample_size, len(pts))
        model.forest = grow_forest(rng, pts, self.n_trees, n)
        model.sample_n, model.since_fit = n, 0
        model.fits += 1

    def _model_raw(self, model: ForestState, v: np.ndarray) -> float | None:
        if model.forest is None:
            return None
        # Isolation speed-up: the average depth c(n) over this point's expected insertion depth (≈ 1 inside
        # the data, ≫ 1 far out). Liu et al.'s score is its monotone map 2^(-1/raw); the ratio keeps spread.
        return float(avg_path(model.sample_n)) / max(insertion_depth(model.forest, v), 1e-3)
