"""Half-space trees as arrays: River's scores for the same seed, batch = one at a time, small array state."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
from river import anomaly

from anomstream.detect.halfspace import HalfSpaceForest
from anomstream.detect.hst import HST

pytestmark = pytest.mark.unit


def _points(n: int, d: int, seed: int, drop_every: int = 0) -> list[dict[str, float]]:
    rng = random.Random(seed)
    xs = [{f"f{j}": rng.random() ** (j + 1) for j in range(d)} for _ in range(n)]
    if drop_every:
        for x in xs[drop_every::drop_every]:
            x.pop("f0")
    return xs


@pytest.mark.parametrize(
    ("n_trees", "height", "window", "d"), [(10, 6, 25, 3), (5, 4, 50, 2), (3, 8, 40, 5), (4, 1, 5, 1)]
)
def test_forest_scores_equal_river_for_the_same_seed(n_trees: int, height: int, window: int, d: int) -> None:
    """Score before learn, point by point, equals River's HalfSpaceTrees to 1e-9 (missing features too)."""
    river_hst = anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window, seed=11)
    forest = HalfSpaceForest(n_trees, height, window, seed=11)
    theirs, ours = [], []
    for x in _points(1500, d, seed=d, drop_every=97 if d > 1 else 0):
        theirs.append(river_hst.score_one(x))  # type: ignore[no-untyped-call]  # River
        ours.append(forest.score_one(x))
        river_hst.learn_one(x)  # type: ignore[no-untyped-call]  # River is unannotated
        forest.learn_one(x)
    assert max(theirs) > 0.5  # the comparison covers scored windows, not only the warm-up zeros
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)


def test_batch_scoring_equals_one_at_a_time() -> None:
    """score_learn_many over chunks gives the scores of score_one + learn_one per point."""
    xs = _points(700, 3, seed=4)
    one, many = HalfSpaceForest(10, 6, 25, seed=2), HalfSpaceForest(10, 6, 25, seed=2)
    expected = []
    for x in xs:
        expected.append(one.score_one(x))
        one.learn_one(x)
    got = np.concatenate([many.score_learn_many(xs[i : i + 60]) for i in range(0, len(xs), 60)])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_key_state_is_arrays_and_under_8_kb() -> None:
    """A trained default HST key pickles small, and its forest holds numpy arrays, not node objects."""
    det = HST()
    rng = random.Random(3)
    for _ in range(300):
        det.learn_one({"cpu": rng.gauss(50, 5), "mem": rng.gauss(10, 1), "err": rng.random()})
    forest = det._model().forest
    assert type(forest.latest) is np.ndarray
    assert type(forest.reference) is np.ndarray
    assert len(pickle.dumps(det)) < 8 * 1024
    restored = pickle.loads(pickle.dumps(det))
    x = {"cpu": 90.0, "mem": 10.0, "err": 0.5}
    assert restored.score_one(x) == det.score_one(x)
