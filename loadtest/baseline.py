"""In-process baselines: raw River cost (no Kafka, no scorer) and the scorer alone (no Kafka).

``river_eps``: one detector built from the spec, ``score_one`` + ``learn_one`` per record over one
entity's series of the scenario's features — the best a Python worker could do per core.
"""

from __future__ import annotations

import time

from anomstream.detect.catalog import build
from anomstream.detect.spec import StreamSpec
from loadtest.generator import Generator
from loadtest.scenario import DataSpec


def series(data: DataSpec, records: int) -> list[dict[str, float]]:
    """``records`` consecutive feature dicts of one entity (with its injected anomalies)."""
    gen = Generator(data, entities=1)
    return [gen.step()[0].values for _ in range(records)]


def river_eps(spec: StreamSpec, xs: list[dict[str, float]]) -> dict[str, float]:
    """Records per second (wall and CPU) of ``score_one`` + ``learn_one`` on one detector."""
    detector = build(spec)
    wall, cpu = time.perf_counter(), time.process_time()
    for x in xs:
        detector.score_one(x)
        detector.learn_one(x)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "river_eps": round(len(xs) / wall, 1) if wall > 0 else 0.0,
        "river_cpu_eps": round(len(xs) / cpu, 1) if cpu > 0 else 0.0,
    }
