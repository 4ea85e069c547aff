"""Per-event cost of the real ``Scorer`` and per-key snapshot cost, in-process (no Kafka), per detector.

The quick profile's generator stream (``entities`` keys, one event per key per step) is scored by the
``Scorer`` the worker uses: the first ``warm_steps`` untimed, the rest timed (µs per event, CPU time). Then
a key that has seen ``history`` rows of a daily cycle at 1-minute steps (a seasonal key at steady state)
is sealed as the worker would snapshot it: bytes and µs per seal. Results go to
``results/cost-<run-id>.json``; the ratios are against ``zscore`` in the same run.
"""

from __future__ import annotations

import math
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from anomstream.detect.scorer import Scorer
from anomstream.detect.spec import DetectorSpecs, StreamSpec
from anomstream.detect.store import Registry
from anomstream.stream.snapshot import seal
from anomstream.wire.codec import decode_event
from anomstream.wire.records import Event, Source
from loadtest.generator import Generator
from loadtest.scenario import Scenario

SECRET = b"cost-benchmark-secret-of-32-byte"


def _events(scenario: Scenario, entities: int, steps: int) -> list[Event]:
    gen = Generator(scenario.data.model_copy(update={"entities": entities}))
    out = []
    for _ in range(steps):
        for item in gen.step():
            decoded = decode_event(item.encode(), 1_000_000)
            assert isinstance(decoded, Event)
            out.append(decoded)
    return out


def per_event_us(spec: StreamSpec, events: list[Event], warm: int) -> float:
    """CPU µs per ``Scorer.process`` over ``events[warm:]`` after scoring ``events[:warm]`` untimed."""
    scorer = Scorer(DetectorSpecs(streams={"default": spec}), Registry(10 * len(events), 1e12))
    sources = [Source(topic="cost", partition=0, offset=i) for i in range(len(events))]
    for i in range(warm):
        scorer.process(events[i], sources[i])
    began = time.process_time()
    for i in range(warm, len(events)):
        scorer.process(events[i], sources[i])
    return (time.process_time() - began) / max(1, len(events) - warm) * 1e6


def seal_cost(spec: StreamSpec, history: int, features: int = 3, repeats: int = 200) -> tuple[int, float]:
    """(sealed bytes, CPU µs per seal) of one key after ``history`` rows of a noisy daily cycle."""
    scorer = Scorer(DetectorSpecs(streams={"default": spec}), Registry(10, 1e12))
    rng, start = random.Random(1), datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(history):
        day = 2 * math.pi * i / 1440
        values = {f"f{j}": 50 + 10 * math.sin(day + j) + rng.gauss(0, 1) for j in range(features)}
        event = Event(entity_id="k", timestamp=start + timedelta(minutes=i), values=values)
        scorer.process(event, Source(topic="cost", partition=0, offset=i))
    state = scorer.registry.peek(("default", "k"))
    assert state is not None
    began = time.process_time()
    for _ in range(repeats):
        raw = seal(state, SECRET)
    return len(raw), (time.process_time() - began) / repeats * 1e6


def run(
    scenario: Scenario, detectors: list[str], entities: int = 1000, steps: int = 30, history: int = 20_160
) -> dict[str, Any]:
    """Every chosen detector table's per-event and per-seal cost, with ratios to ``zscore``'s."""
    events = _events(scenario, entities, steps)
    warm = entities * (steps * 2 // 3)
    rows: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    for name in detectors:
        spec = scenario.detectors[name]
        timings[name] = us = per_event_us(spec, events, warm)
        size, seal_us = seal_cost(spec, history)
        row = {"detector": name, "us_per_event": round(us, 1), "sealed_bytes": size}
        rows.append({**row, "seal_us": round(seal_us, 1)})
    base = timings.get("zscore")
    for r in rows:
        r["vs_zscore"] = round(timings[r["detector"]] / base, 2) if base else None
    return {
        "kind": "cost",
        "entities": entities,
        "steps": steps,
        "timed_events": len(events) - warm,
        "history_rows": history,
        "rows": rows,
    }
