"""Every catalog detector scores the same input identically in two processes with different hash seeds.

A worker and a replay of the same input are two processes; anything that orders work by ``hash(str)``
(a set of feature names, say) makes their scores, and so their alerts, differ.
"""

from __future__ import annotations

import os
import subprocess
import sys

from anomstream.detect.catalog import CATALOG, available

SCRIPT = """
import hashlib, random, sys
from anomstream.detect.catalog import CATALOG
for name in sys.argv[1:]:
    det, rng, digest = CATALOG[name](), random.Random(5), hashlib.sha256()
    for i in range(400):
        x = {"cpu": rng.gauss(50, 5), "lat": rng.gauss(100, 10), "err": rng.gauss(0.1, 0.01)}
        if i % 97 == 96:
            x["cpu"] += 60
        digest.update(repr(det.score_one(x, 60.0 * i)).encode())
        det.learn_one(x, 60.0 * i)
    print(name, digest.hexdigest())
"""


def _scores(hash_seed: str, names: list[str]) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *names],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_scores_do_not_depend_on_the_hash_seed() -> None:
    """Two processes (PYTHONHASHSEED 1 and 2) give bit-identical scores for every catalog detector."""
    names = sorted(n for n in CATALOG if available(n))
    first, second = _scores("1", names), _scores("2", names)
    assert len(first.splitlines()) == len(names)
    assert first == second
