"""Model state per entity, measured two ways in a fresh process per (detector, entity count).

* ``rss_bytes_per_entity`` — growth of the process RSS while ``n`` keys are created through the real
  ``Registry`` + ``Scorer`` path (includes registry overhead, allocator slack, key strings);
* ``pickle_bytes_per_entity`` — mean pickled size of a sample of those ``KeyState`` objects (what a
  snapshot on the state topic carries, minus the envelope).

Each key gets ``events_per_entity`` events with the spec's warm-up shortened to one less, so the
detector, the threshold quantile and the lifecycle all exist. ``python -m loadtest.memory <json>`` is
the child; ``measure`` runs it and parses its one line of JSON.
"""

from __future__ import annotations

import pickle
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from anomstream.detect.scorer import Scorer
from anomstream.detect.spec import DetectorSpecs, StreamSpec
from anomstream.detect.store import Registry
from anomstream.wire.records import Event, Source
from loadtest import ROOT
from loadtest.generator import START_MS, Generator, entity_id
from loadtest.process import proc_field_kib, proc_status_kib
from loadtest.scenario import DataSpec, MemorySpec

_CHUNK = 10_000


def _populate(scorer: Scorer, gen: Generator, steps: int) -> None:
    """``steps`` events for every entity, built chunk by chunk so the data itself stays small."""
    features = gen.data.features
    offset = 0
    for step in range(steps):
        ts = datetime.fromtimestamp((START_MS + step * 60_000) / 1000, UTC)
        for lo in range(0, gen.n, _CHUNK):
            hi = min(gen.n, lo + _CHUNK)
            noise = gen.rng.standard_normal(gen.level[lo:hi].shape) * gen.sigma[lo:hi]
            for i, row in enumerate((gen.level[lo:hi] + noise).tolist(), start=lo):
                values = dict(zip(features, row, strict=True))
                event = Event.model_construct(
                    entity_id=entity_id(i), timestamp=ts, values=values, stream="default", attributes={}
                )
                scorer.process(event, Source.model_construct(topic="m", partition=0, offset=offset))
                offset += 1


def child(config: dict[str, Any]) -> dict[str, Any]:
    """Create ``entities`` keys in this process and report the two measures."""
    n, steps = int(config["entities"]), int(config["events_per_entity"])
    spec = StreamSpec.model_validate(config["spec"])
    spec = spec.model_copy(update={"warmup": max(1, steps - 1)})
    gen = Generator(DataSpec.model_validate(config["data"]), entities=n)
    del gen.names  # the registry keeps its own key strings; this list would inflate nothing but RSS
    scorer = Scorer(DetectorSpecs(streams={"default": spec}), Registry(n + 1, 1e12))
    before = proc_status_kib("self", "VmRSS")
    began = time.perf_counter()
    _populate(scorer, gen, steps)
    elapsed = time.perf_counter() - began
    after = proc_status_kib("self", "VmRSS")
    rng = random.Random(1)
    sample = rng.sample(range(n), min(n, int(config["sample"])))
    sizes = [len(pickle.dumps(scorer.registry.peek(("default", entity_id(i))))) for i in sample]
    return {
        "entities": n,
        "rss_bytes_per_entity": round((after - before) * 1024 / n, 1),
        "pickle_bytes_per_entity": round(float(np.mean(sizes)), 1),
        "rss_delta_mib": round((after - before) / 1024, 1),
        "populate_s": round(elapsed, 2),
        "keys_per_s": round(n * steps / elapsed, 1),
    }


def measure(spec: StreamSpec, data: DataSpec, n: int, mem: MemorySpec) -> dict[str, Any]:
    """Run ``child`` in a fresh interpreter (so RSS deltas are not polluted by earlier runs)."""
    config = {
        "spec": spec.model_dump(mode="json"),
        "data": data.model_dump(mode="json"),
        "entities": n,
        "events_per_entity": mem.events_per_entity,
        "sample": mem.sample,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest.memory", orjson.dumps(config).decode()],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    result: dict[str, Any] = orjson.loads(proc.stdout.splitlines()[-1])
    return result


def available_bytes() -> int:
    """``MemAvailable`` from ``/proc/meminfo``, in bytes."""
    return proc_field_kib(Path("/proc/meminfo"), "MemAvailable") * 1024


if __name__ == "__main__":
    sys.stdout.write(orjson.dumps(child(orjson.loads(sys.argv[1]))).decode() + "\n")
