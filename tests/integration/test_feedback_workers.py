"""Feedback reaches the worker that owns its key, with two workers in the group, and its offsets commit."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, TopicPartition

from anomstream.detect.spec import DetectorSpecs
from anomstream.ops.demo import DemoConfig, generate
from anomstream.wire.codec import encode, encode_event
from anomstream.wire.records import Feedback
from integration.harness import end_offsets, produce, settings_for, worker_thread

ENTITIES = 8
PARTITIONS = 4


def _wait(what: str, check: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_each_verdict_lands_on_the_worker_owning_the_key(kafka_bootstrap: str) -> None:
    """Two workers split 4 partitions; every key's verdict is applied by its owner only; offsets commit."""
    settings = settings_for(kafka_bootstrap, partitions=PARTITIONS)
    stream = list(itertools.islice(generate(DemoConfig(entities=ENTITIES, seed=8)), ENTITIES * 150))
    entities = sorted({x.event.entity_id for x in stream})
    produce(
        kafka_bootstrap,
        settings.topics.events,
        ((x.event.entity_id.encode(), encode_event(x.event)) for x in stream),
    )
    t = datetime(2026, 1, 1, tzinfo=UTC)
    verdicts = [
        Feedback(entity_id=e, verdict="false_positive", alert_id=f"a-{e}", score=0.55, submitted_at=t)
        for e in entities
    ]
    with worker_thread(settings, DetectorSpecs()) as one, worker_thread(settings, DetectorSpecs()) as two:
        workers = (one, two)

        def processed() -> float:
            return sum(w.sample("anomstream_events_processed_total", {"stream": "default"}) for w in workers)

        _wait("both workers to own partitions", lambda: all(w.worker.assigned for w in workers))
        _wait("the events", lambda: processed() >= len(stream))
        assert sorted(one.worker.assigned | two.worker.assigned) == list(range(PARTITIONS))
        assert not one.worker.assigned & two.worker.assigned
        # Keyed like the events (same producer partitioner): each verdict is co-partitioned with its key.
        produce(
            kafka_bootstrap, settings.topics.feedback, ((f.entity_id.encode(), encode(f)) for f in verdicts)
        )

        def applied() -> float:
            labels = {"stream": "default", "detector": "multiview", "verdict": "false_positive"}
            return sum(w.sample("anomstream_feedback_total", labels) for w in workers)

        _wait("every verdict", lambda: applied() >= len(verdicts))
        for entity in entities:
            owners = [w for w in workers if w.worker.scorer.registry.peek(("default", entity)) is not None]
            assert len(owners) == 1, f"{entity}: state on {len(owners)} workers"
            assert owners[0].worker.scorer.threshold_of("default", entity) == pytest.approx(0.57)
        assert not any(w.error for w in workers)

        ends = {p: end for p, end in end_offsets(kafka_bootstrap, settings.topics.feedback).items() if end}
        probe = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": settings.kafka.group_id})
        try:

            def committed() -> dict[int, int]:
                tps = [TopicPartition(settings.topics.feedback, p) for p in ends]
                return {tp.partition: tp.offset for tp in probe.committed(tps, timeout=10)}

            _wait("the feedback offsets to be committed", lambda: committed() == ends, 60)
        finally:
            probe.close()
