"""End-to-end latency at a fixed share of saturation: paced producer → worker → score record.

The producer thread stamps each event (``lt.produced_ns`` header and an in-memory map keyed by
``(entity_id, timestamp_ms)``, since the worker does not copy input headers to its outputs); the main
thread reads the worker's score topic from its current end in small batches and times each record
against that map twice:

* ``consumed`` — until the observer holds the record (what the brief calls end-to-end);
* ``output`` — until the worker handed it to its producer (the score record's CreateTime, ms), which
  does not depend on how quickly this process gets CPU to read.

Events are generated before the clock starts so the measuring process stays idle between sends; its
CPU share is recorded, because on a 2-core machine the load generator competes with the worker.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from datetime import datetime
from typing import Any

import orjson
from confluent_kafka import Producer

from loadtest import stats
from loadtest.cluster import end_consumer
from loadtest.generator import Generator, Pacer, produced_header

Key = tuple[str, int]


@dataclasses.dataclass
class LatencyRun:
    """Raw material of one paced level: what was sent when, and what came back when."""

    rate: float
    sent: dict[Key, int] = dataclasses.field(default_factory=dict)
    points: list[tuple[float, float]] = dataclasses.field(default_factory=list)  # (t since start, s)
    output: list[float] = dataclasses.field(default_factory=list)  # produce → worker output, s
    started_ns: int = 0
    finished_ns: int = 0
    observer_cpu_s: float = 0.0


def pre_generate(gen: Generator, count: int) -> list[tuple[Key, bytes]]:
    """The next ``count`` events of ``gen`` (continuing its clock), encoded, keyed for the join."""
    out: list[tuple[Key, bytes]] = []
    while len(out) < count:
        out.extend(((e.entity, e.ts_ms), e.encode()) for e in gen.step())
    return out[:count]


_MIN_SLEEP_S = 0.002  # send what is due in small bursts: one sleep per event would cost a core


def _producer(bootstrap: str) -> Producer:
    # linger 5 ms like the worker's own producer: per-record requests would load the broker instead
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})


def _send(run: LatencyRun, bootstrap: str, topic: str, events: list[tuple[Key, bytes]]) -> None:
    producer = _producer(bootstrap)
    pacer = Pacer(run.rate, time.monotonic())
    run.started_ns = time.time_ns()
    for i, (key, value) in enumerate(events):
        wait = pacer.delay(i, time.monotonic())
        if wait > _MIN_SLEEP_S:
            time.sleep(wait)
        now = time.time_ns()
        run.sent[key] = now
        producer.produce(topic, value, key[0].encode(), headers=produced_header(now))
        producer.poll(0)
    producer.flush(30)
    run.finished_ns = time.time_ns()


def _ts_ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def measure(
    bootstrap: str, events_topic: str, scores_topic: str, events: list[tuple[Key, bytes]], rate: float
) -> LatencyRun:
    """Send ``events`` at ``rate``/s and time every matching score record; waits ≤ 15 s for stragglers."""
    run = LatencyRun(rate)
    consumer = end_consumer(bootstrap, scores_topic)
    sender = threading.Thread(target=_send, args=(run, bootstrap, events_topic, events), daemon=True)
    cpu = time.process_time()
    try:
        sender.start()
        _collect(consumer, run, sender, len(events))
    finally:
        consumer.close()
        sender.join(timeout=30)
    run.observer_cpu_s = time.process_time() - cpu
    return run


def _collect(consumer: Any, run: LatencyRun, sender: threading.Thread, expected: int) -> None:
    grace_until: float | None = None
    while len(run.points) < expected:
        batch = consumer.consume(1000, 0.005)  # waits ≤ 5 ms for a full batch: bounded timing error
        recv = time.time_ns()
        if not batch and not sender.is_alive():
            grace_until = grace_until or time.monotonic() + 15.0
            if time.monotonic() > grace_until:
                return
        for msg in batch:
            if msg.error() is not None:
                continue
            doc = orjson.loads(msg.value())
            sent = run.sent.get((doc["entity_id"], _ts_ms(doc["timestamp"])))
            if sent is None:
                continue
            run.points.append(((sent - run.started_ns) / 1e9, (recv - sent) / 1e9))
            kind, created_ms = msg.timestamp()  # kind 0: no timestamp; keep the lists aligned
            run.output.append(max(0.0, created_ms / 1e3 - sent / 1e9) if kind != 0 else math.nan)


def summarize(run: LatencyRun, settle_s: float) -> dict[str, Any]:
    """Percentiles over records produced after ``settle_s``; counts of sent and unmatched records."""
    kept = [i for i, (t, _) in enumerate(run.points) if t >= settle_s]
    steady = [run.points[i][1] for i in kept]
    output = stats.summarize([run.output[i] for i in kept if not math.isnan(run.output[i])])
    seconds = (run.finished_ns - run.started_ns) / 1e9
    slope = stats.slope([run.points[i][0] for i in kept], steady)
    return {
        "target_eps": round(run.rate, 1),
        "achieved_eps": round(stats.rate(len(run.sent), seconds), 1),
        "sent": len(run.sent),
        "received": len(run.points),
        "missing": len(run.sent) - len(run.points),
        **stats.summarize(steady),
        "output_p50_ms": output["p50_ms"],
        "output_p99_ms": output["p99_ms"],
        # latency growth in ms per second of sending: > 50 means a backlog was building up, i.e. the
        # worker (sharing the machine with broker and load generator) did not keep up at this load
        "slope_ms_per_s": None if math.isnan(slope) else round(slope * 1000, 1),
        "observer_cpu_share": round(run.observer_cpu_s / seconds, 3) if seconds > 0 else None,
    }
