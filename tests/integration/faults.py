"""Shared pieces of the fault tests: a labelled stream, its uninterrupted reference, output readers."""

from __future__ import annotations

import itertools
import signal
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Message

from anomstream.detect.scorer import Scorer
from anomstream.detect.store import Registry
from anomstream.ops.demo import DemoConfig, Labelled, generate
from anomstream.wire.codec import encode_event
from anomstream.wire.records import Alert, ScoreRecord, Source
from integration.harness import SPIKE_SPECS, alerts_in, drain, start_process

Position = tuple[int, int]


def stream(n: int, entities: int = 12, seed: int = 3) -> list[Labelled]:
    """``n`` demo events with dense spikes, so every fault test sees anomalies."""
    return list(itertools.islice(generate(DemoConfig(entities=entities, spike_prob=0.01, seed=seed)), n))


def produce_paced(bootstrap: str, topic: str, events: list[Labelled], rate: float) -> threading.Thread:
    """Produce ``events`` at ``rate`` per second from a background thread (so faults land mid-stream)."""
    from integration.harness import produce

    def paced() -> Iterator[tuple[bytes, bytes]]:
        began = time.monotonic()
        for i, item in enumerate(events):
            ahead = i / rate - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)
            yield item.event.entity_id.encode(), encode_event(item.event)

    thread = threading.Thread(target=produce, args=(bootstrap, topic, paced()), daemon=True)
    thread.start()
    return thread


def as_written(bootstrap: str, topic: str, events: list[Labelled], total: int) -> list[Labelled]:
    """The ``total`` records of the input topic as ``events`` items, in (partition, offset) order.

    A producer retrying across a leader kill may write a record twice even when idempotent (an epoch
    bump after a timed-out batch); the worker must score what the topic holds, so the reference must too.
    """
    by_bytes = {encode_event(item.event): item for item in events}
    raw = drain(bootstrap, topic, lambda got: len(got) >= total, 60)
    raw.sort(key=lambda m: (m.partition() or 0, m.offset() or 0))
    return [by_bytes[bytes(m.value() or b"")] for m in raw]


def reference_scores(events: list[Labelled], partition_of: dict[str, int]) -> dict[str, list[float]]:
    """Scores of an uninterrupted in-process run, per entity in stream order (= partition order)."""
    scorer = Scorer(SPIKE_SPECS, Registry(10**6, 1e12))
    by_entity: dict[str, list[float]] = defaultdict(list)
    for i, item in enumerate(events):
        source = Source(topic="ref", partition=partition_of[item.event.entity_id], offset=i)
        by_entity[item.event.entity_id].append(scorer.process(item.event, source).score)
    return by_entity


@dataclass
class Outputs:
    """Score records and alerts read back from the broker."""

    scores: list[ScoreRecord]
    alerts: list[Alert]

    def covered(self) -> set[Position]:
        """Input positions with at least one score record."""
        return {(s.source.partition, s.source.offset) for s in self.scores}

    def duplicates(self) -> int:
        """Score records beyond the first for the same input position."""
        return len(self.scores) - len(self.covered())

    def first_scores_by_entity(self) -> dict[str, list[float]]:
        """Per entity, in offset order, the score of the first record of each position."""
        first: dict[Position, ScoreRecord] = {}
        for rec in self.scores:
            first.setdefault((rec.source.partition, rec.source.offset), rec)
        out: dict[str, list[float]] = defaultdict(list)
        for _, rec in sorted(first.items()):
            out[rec.entity_id].append(rec.score)
        return out


def read_outputs(bootstrap: str, scores_topic: str, alerts_topic: str, expect: int) -> Outputs:
    """Drain both output topics (read_committed) until ``expect`` positions are scored."""
    raw = drain(bootstrap, scores_topic, Reached(expect), 240)
    alerts = drain(bootstrap, alerts_topic, lambda got: False, 5)
    return Outputs(
        [ScoreRecord.model_validate_json(bytes(m.value() or b"")) for m in raw],
        alerts_in(alerts),
    )


class Reached:
    """``drain`` stop condition: true once ``target`` distinct input positions have score records.

    Incremental: each call parses only the records that arrived since the previous call.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.seen: set[Position] = set()
        self._parsed = 0

    def __call__(self, messages: list[Message]) -> bool:
        for msg in messages[self._parsed :]:
            rec = ScoreRecord.model_validate_json(bytes(msg.value() or b""))
            self.seen.add((rec.source.partition, rec.source.offset))
        self._parsed = len(messages)
        return len(self.seen) >= self.target


def kill_loop(
    env: dict[str, str], log: Path, *, bootstrap: str, scores_topic: str, total: int, kills: int
) -> int:
    """Start a worker, SIGKILL it whenever it has made progress, ``kills`` times; then let it finish.

    Returns how many kills landed while the stream was still being processed.
    """
    landed = 0
    step = total // (kills + 2)
    for k in range(kills):
        proc = start_process(env, log)
        try:
            drain(bootstrap, scores_topic, Reached(step * (k + 1)), 120)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        landed += proc.returncode == -signal.SIGKILL
    started_before = log.read_text().count('"worker_started"')
    final = start_process(env, log)
    drain(bootstrap, scores_topic, Reached(total), 240)
    # A signal before start-up would just kill it: wait for the final worker's own start line.
    wait_for_log(log, '"worker_started"', started_before + 1)
    final.send_signal(signal.SIGTERM)
    code = final.wait(60)
    assert code == 0, f"exit code {code}; log tail:\n{log.read_text()[-3000:]}"
    return landed


def wait_for_log(log: Path, needle: str, count: int, timeout: float = 60.0) -> None:
    """Wait until ``needle`` occurs ``count`` times in the worker log."""
    deadline = time.monotonic() + timeout
    while log.read_text().count(needle) < count:
        assert time.monotonic() < deadline, f"{needle} seen fewer than {count} times"
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM a worker process and return its exit code."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(60)
