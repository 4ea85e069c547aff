"""HST engine benchmark: ``HalfSpaceForest`` against River's ``HalfSpaceTrees`` in the same run.

Same seed, same points (uniform in [0, 1]^d), score-then-learn per record: records/s of River's
per-node objects, of the array forest one record at a time (what the worker does today), and of the
array forest over each key's records in batches (what a per-key batch scorer would do); the ratios are
against River's rate in the same run, the scores are checked equal, and bytes per key are the pickled
state of one trained model of each. Results go to ``results/hst-<run-id>.json``.
"""

from __future__ import annotations

import pickle
import random
import time
from typing import Any

import numpy as np
from river import anomaly

from anomstream.detect.halfspace import HalfSpaceForest

#: (n_trees, height, window_size): the catalog default first, then River's own default.
SHAPES = ((10, 6, 50), (10, 8, 250))


def _points(n: int, d: int, seed: int) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [{f"f{j}": rng.random() for j in range(d)} for _ in range(n)]


def _timed(fn: Any) -> tuple[float, Any]:
    began = time.process_time()
    out = fn()
    return time.process_time() - began, out


def measure(
    n_trees: int, height: int, window: int, *, records: int, d: int = 3, batch: int = 64
) -> dict[str, Any]:
    """One shape: CPU records/s of each path, the speed ratios to River, scores equal, bytes per key."""
    xs = _points(records, d, seed=height)
    river_hst = anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window, seed=1)
    one, many = HalfSpaceForest(n_trees, height, window, 1), HalfSpaceForest(n_trees, height, window, 1)

    def river_run() -> list[float]:
        out = []
        for x in xs:
            out.append(river_hst.score_one(x))  # type: ignore[no-untyped-call]  # River
            river_hst.learn_one(x)  # type: ignore[no-untyped-call]  # River is unannotated
        return out

    def one_run() -> list[float]:
        out = []
        for x in xs:
            out.append(one.score_one(x))
            one.learn_one(x)
        return out

    def many_run() -> np.ndarray:
        return np.concatenate([many.score_learn_many(xs[i : i + batch]) for i in range(0, len(xs), batch)])

    t_river, s_river = _timed(river_run)
    t_one, s_one = _timed(one_run)
    t_many, s_many = _timed(many_run)
    diff = max(float(np.max(np.abs(np.asarray(s_one) - s_river))), float(np.max(np.abs(s_many - s_river))))
    return {
        "n_trees": n_trees,
        "height": height,
        "window_size": window,
        "records": records,
        "river_eps": round(records / t_river, 1),
        "array_eps": round(records / t_one, 1),
        "array_batch_eps": round(records / t_many, 1),
        "batch": batch,
        "ratio_one_at_a_time": round(t_river / t_one, 3),
        "ratio_batched": round(t_river / t_many, 3),
        "max_score_difference": diff,
        "river_bytes_per_key": len(pickle.dumps(river_hst)),
        "array_bytes_per_key": len(pickle.dumps(one)),
    }


def run(records: int = 20_000) -> dict[str, Any]:
    """Every shape of ``SHAPES``."""
    return {"kind": "hst-engine", "rows": [measure(*shape, records=records) for shape in SHAPES]}
