"""Half-space trees as arrays: River's ``HalfSpaceTrees`` with every tree's masses in numpy arrays.

The trees' shape (split feature and threshold per node) depends only on the seed, the number of features
and the tree size, so it is built once per process with River's own ``make_padded_tree`` (the same random
draws, so the same trees as River's for the same seed) and shared by every key. A key holds two small
integer arrays: the latest window's count per leaf (an inner node's mass is the sum of its leaves'), and
the reference window summarised as each leaf's share of the score. All trees move at once: one matrix
product finds every tree's leaf, one gather scores, one scatter learns.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from river.tree.padded import make_padded_tree

#: River's split padding: thresholds are drawn from the middle 70 % of a node's range.
PADDING = 0.15
#: River's ``size_limit``: scoring stops at the first node whose mass is below this share of the window.
SIZE_LIMIT_SHARE = 0.1
#: Up to this height a single point finds its leaves with one matrix product over all leaves (fewer numpy
#: calls); taller trees descend depth by depth (the product grows as 4^height).
MATRIX_HEIGHT = 6


@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    """The trees of one (n_trees, height, n_features, seed): splits in heap order, and leaf paths.

    Node ``i`` of a tree has children ``2i + 1`` (left, value < threshold) and ``2i + 2`` (right); leaf
    ``j`` (left to right) is reached by the turns spelled by ``j``'s bits, most significant first.
    """

    feature: np.ndarray  # (n_trees * n_internal,) feature index per internal node
    threshold: np.ndarray  # (n_trees * n_internal,)
    turns: np.ndarray  # (n_internal, n_leaves): +1 where the leaf's path turns left, -1 right, else 0
    target: np.ndarray  # (n_leaves,): minus the right turns on the leaf's path


_LAYOUTS: dict[tuple[int, int, int, int], Layout] = {}


def layout(n_trees: int, height: int, n_features: int, seed: int) -> Layout:
    """The trees River's ``HalfSpaceTrees(seed=seed)`` builds for ``n_features`` features in [0, 1].

    River names features by their sorted names; here feature ``j`` is the ``j``-th sorted name, so the
    random draws (feature choice, then threshold, depth first, left before right) are the same.
    """
    key = (n_trees, height, n_features, seed)
    cached = _LAYOUTS.get(key)
    if cached is None:
        cached = _LAYOUTS[key] = _build(n_trees, height, n_features, seed)
    return cached


def _build(n_trees: int, height: int, n_features: int, seed: int) -> Layout:
    import random

    n_internal, n_leaves = 2**height - 1, 2**height
    feature = np.zeros((n_trees, n_internal), dtype=np.intp)
    threshold = np.zeros((n_trees, n_internal))
    rng = random.Random(seed)
    for t in range(n_trees):
        limits = {j: (0.0, 1.0) for j in range(n_features)}
        stack: list[tuple[Any, int]] = [
            (
                make_padded_tree(  # type: ignore[no-untyped-call]  # River's helper is unannotated
                    limits=limits, height=height, padding=PADDING, rng=rng, r_mass=0, l_mass=0
                ),
                0,
            )
        ]
        while stack:
            node, i = stack.pop()
            if i < n_internal:
                feature[t, i], threshold[t, i] = node.feature, node.threshold
                stack += [(node.children[0], 2 * i + 1), (node.children[1], 2 * i + 2)]
    turns = np.zeros((n_internal, n_leaves))
    for leaf in range(n_leaves):
        i = 0
        for depth in range(height):
            right = (leaf >> (height - 1 - depth)) & 1
            turns[i, leaf] = -1.0 if right else 1.0
            i = 2 * i + 1 + right
    target = -np.array([bin(leaf).count("1") for leaf in range(n_leaves)], dtype=np.float64)
    return Layout(feature.ravel(), threshold.ravel(), turns, target)


class HalfSpaceForest:
    """One key's half-space trees, scoring and learning exactly as River's ``HalfSpaceTrees``.

    Same scores as ``river.anomaly.HalfSpaceTrees(n_trees, height, window_size, seed=seed)`` fed the same
    feature dicts (features in [0, 1]); a missing feature follows the child with more mass in the latest
    window, as River does. The features are fixed by the first learned point (sorted names, as River).

    Examples
    --------
    >>> forest = HalfSpaceForest(n_trees=5, height=3, window_size=3, seed=42)
    >>> for x in [0.5, 0.45, 0.43, 0.44, 0.445, 0.45]:
    ...     forest.learn_one({"x": x})
    >>> round(forest.score_one({"x": 0.45}), 3), round(forest.score_one({"x": 0.0}), 3)
    (0.071, 0.853)
    """

    __slots__ = ("counter", "height", "latest", "n_trees", "names", "reference", "seed", "window_size")

    def __init__(self, n_trees: int, height: int, window_size: int, seed: int) -> None:
        self.n_trees, self.height, self.window_size, self.seed = n_trees, height, window_size, seed
        self.names: list[str] = []
        self.counter = 0
        leaves = n_trees * 2**height
        self.latest = np.zeros(leaves, dtype=np.uint16 if window_size < 2**16 else np.uint32)
        # Per leaf: Σ reference mass · 2^depth along its path (River's score terms); None before the
        # first full window. Bounded by window_size · (2^(height+1) - 1).
        self.reference: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def vector(self, x: dict[str, float]) -> np.ndarray | None:
        """``x`` in the trees' feature order (NaN = missing); ``None`` before the first learned point."""
        if not self.names:
            return None
        return np.array([x.get(name, math.nan) for name in self.names], dtype=np.float64)

    def score_one(self, x: dict[str, float]) -> float:
        """River's ``score_one``: 0 until one window is full, then higher in sparser regions."""
        v = self.vector(x)
        return 0.0 if v is None else self.score(self.leaves(v, _incomplete(x, self.names)))

    def learn_one(self, x: dict[str, float]) -> None:
        """River's ``learn_one``: the first point fixes the features."""
        if not self.names:
            self.names = sorted(x)
        v = self.vector(x)
        assert v is not None
        self.learn(self.leaves(v, _incomplete(x, self.names)))

    def leaves(self, v: np.ndarray, missing: bool = True) -> np.ndarray:
        """Flat index (tree-major) of the leaf ``v`` reaches in every tree (``missing``: v may hold NaN).

        Scoring and then learning one point reach the same leaves (masses steer only a missing feature,
        and learning changes them after its walk), so a caller may compute them once for both.
        """
        lay = layout(self.n_trees, self.height, len(self.names), self.seed)
        values = v.take(lay.feature)
        if missing and np.isnan(v).any():
            return self._leaves_missing(values, lay)
        right = values >= lay.threshold
        if self.height > MATRIX_HEIGHT:
            return self._descend(right)
        # A leaf's mismatches = the right turns its path needs that v does not take plus the left turns
        # v does not take = rights + right · turns: exactly one leaf per tree has none. Flat indices of
        # the zeros come out tree by tree.
        hits = right.reshape(self.n_trees, -1) @ lay.turns == lay.target
        return np.flatnonzero(hits)

    def _descend(self, right: np.ndarray) -> np.ndarray:
        """Every tree's leaf from its split outcomes, one depth at a time (O(height) per tree)."""
        right = right.reshape(-1, 2**self.height - 1)
        pos = np.zeros(len(right), dtype=np.intp)
        every = np.arange(len(right))
        for depth in range(self.height):
            pos = 2 * pos + right[every, (1 << depth) - 1 + pos]
        out: np.ndarray = pos.reshape(-1, self.n_trees) + self._offsets()
        return out

    def score_learn_many(self, rows: list[dict[str, float]]) -> np.ndarray:
        """Score each row before learning it, in order: the same as ``score_one`` then ``learn_one`` per row.

        Within a window the reference masses are fixed, so the rows up to the next window turn are
        scored and counted all at once (one matrix product for every tree of every row).
        """
        if not rows:
            return np.zeros(0)
        if not self.names:
            self.names = sorted(rows[0])
        names = self.names
        if any(len(x) != len(names) or any(n not in x for n in names) for x in rows):
            return np.array([self._one_at_a_time(x) for x in rows])  # missing features steer by mass
        lay = layout(self.n_trees, self.height, len(names), self.seed)
        matrix = np.array([[x[n] for n in names] for x in rows], dtype=np.float64)
        right = (matrix[:, lay.feature] >= lay.threshold).reshape(len(rows) * self.n_trees, -1)
        # Descend every tree of every row together, one depth at a time: O(height) work per tree.
        leaves = self._descend(right)
        scores = np.zeros(len(rows))
        start = 0
        while start < len(rows):
            stop = min(len(rows), start + self.window_size - self.counter)
            if self.reference is not None:
                terms = self.reference.take(leaves[start:stop]).sum(axis=1, dtype=np.int64)
                scores[start:stop] = 1.0 - terms / self._max_score()
            self.latest += np.bincount(leaves[start:stop].ravel(), minlength=len(self.latest)).astype(
                self.latest.dtype
            )
            self.counter += stop - start
            if self.counter == self.window_size:
                self._turn_window()
            start = stop
        return scores

    def _one_at_a_time(self, x: dict[str, float]) -> float:
        leaves = self.leaves(self.vector(x))  # type: ignore[arg-type]  # the caller set the names
        score = self.score(leaves)
        self.learn(leaves)
        return score

    def _max_score(self) -> int:
        return int(self.n_trees * self.window_size * (2 ** (self.height + 1) - 1))

    def _offsets(self) -> np.ndarray:
        offsets: np.ndarray = np.arange(self.n_trees) * 2**self.height
        return offsets

    def _leaves_missing(self, values: np.ndarray, lay: Layout) -> np.ndarray:
        """River's walk where some feature is missing: it takes the child with more latest mass."""
        levels = _levels(self.latest.reshape(self.n_trees, -1).astype(np.int64), self.height)
        n_internal = 2**self.height - 1
        out = []
        for t in range(self.n_trees):
            pos = 0
            for depth in range(self.height):
                i = t * n_internal + 2**depth - 1 + pos
                value = float(values[i])
                if math.isnan(value):
                    below = levels[depth + 1][t]
                    right = bool(below[2 * pos] < below[2 * pos + 1])
                else:
                    right = value >= lay.threshold[i]
                pos = 2 * pos + right
            out.append(pos)
        leaves: np.ndarray = np.asarray(out, dtype=np.intp) + self._offsets()
        return leaves

    def score(self, leaves: np.ndarray) -> float:
        """River's score: 1 − Σ_trees (reference mass · 2^depth along the path) / the largest such sum."""
        if self.reference is None:
            return 0.0
        return 1.0 - int(self.reference.take(leaves).sum()) / self._max_score()

    def learn(self, leaves: np.ndarray) -> None:
        """Count a point at its leaves; a full window becomes the reference."""
        self.latest[leaves] += 1  # one leaf per tree: no index repeats
        self.counter += 1
        if self.counter == self.window_size:
            self._turn_window()

    def _turn_window(self) -> None:
        """River's pivot: the full latest window becomes the reference, a new one starts empty."""
        self.reference = self._score_terms()
        self.latest[:] = 0
        self.counter = 0

    def _score_terms(self) -> np.ndarray:
        """Per leaf, River's score sum over its path under the latest masses (taken as the reference).

        River stops after the first node below size_limit, counting it; masses never grow down a path
        (a point is counted at every node it passes), so a node counts when its parent is dense.
        """
        h, limit = self.height, SIZE_LIMIT_SHARE * self.window_size
        levels = _levels(self.latest.reshape(self.n_trees, -1).astype(np.int64), h)
        leaf = np.arange(2**h)
        masses = [levels[d][:, leaf >> (h - d)] for d in range(h + 1)]  # each (n_trees, n_leaves)
        total = masses[0].copy()
        for d in range(1, h + 1):
            total += masses[d] * (1 << d) * (masses[d - 1] >= limit)
        bound = self.window_size * (2 ** (h + 1) - 1)
        return total.ravel().astype(np.uint16 if bound < 2**16 else np.uint32)


def _incomplete(x: dict[str, float], names: list[str]) -> bool:
    return len(x) < len(names) or any(name not in x for name in names)


def _levels(leaf_mass: np.ndarray, height: int) -> list[np.ndarray]:
    """Masses per depth (0 = root) from per-leaf masses (n_trees, n_leaves): a node sums its children."""
    levels = [leaf_mass]
    for _ in range(height):
        levels.append(levels[-1].reshape(leaf_mass.shape[0], -1, 2).sum(axis=2))
    return levels[::-1]
