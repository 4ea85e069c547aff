"""The worker consumes the feedback topic beside events: verdicts change the key, bad ones dead-letter."""

from __future__ import annotations

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from prometheus_client import CollectorRegistry

from anomstream.config import TopicSettings, WorkerSettings
from anomstream.detect.scorer import Scorer
from anomstream.detect.spec import DetectorSpecs
from anomstream.detect.store import Registry
from anomstream.errors import BrokerError
from anomstream.ops import logs
from anomstream.ops.metrics import Metrics
from anomstream.stream.checkpoint import Checkpoint, CommitPolicy
from anomstream.stream.feedback import FeedbackIntake
from anomstream.stream.producer import Sink
from anomstream.stream.worker import Worker
from anomstream.wire.records import DeadLetter
from unit.fakes import FakeConsumer, FakeMessage, FakeProducer

TOPICS = TopicSettings(events="in", alerts="out", dlq="dlq", scores="scores", feedback="fb")


def _event(i: int) -> bytes:
    return orjson.dumps({"entity_id": "e", "timestamp": i * 1000, "values": {"x": 1.0 + (i % 3) * 0.1}})


def _verdict(verdict: str, alert_id: str) -> bytes:
    doc = {"entity_id": "e", "verdict": verdict, "alert_id": alert_id, "score": 0.8, "submitted_at": 0}
    return orjson.dumps(doc)


class _Reader:
    """A group-less consumer of the feedback topic: assignment by hand, batches from a queue."""

    def __init__(self, queue: list[FakeMessage]) -> None:
        self.queue, self.assigned = queue, list[tuple[str, int, int]]()

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned += [(tp.topic, tp.partition, tp.offset) for tp in partitions]

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self.assigned = [a for a in self.assigned if a[:2] not in gone]

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        batch, self.queue = self.queue[:num_messages], self.queue[num_messages:]
        return batch


def test_feedback_records_change_the_key_and_commit_with_events() -> None:
    """Verdicts move the key's threshold and precision; a bad one is dead-lettered; both offsets commit."""
    consumer, producer = FakeConsumer("in", [_event(i) for i in range(5)]), FakeProducer()
    reader = _Reader(
        [
            FakeMessage("fb", 0, 0, _verdict("false_positive", "a1")),
            FakeMessage("fb", 0, 1, _verdict("true_positive", "a2")),
            FakeMessage("fb", 0, 2, b'{"entity_id": "e", "verdict": "false_positive"}'),
        ]
    )
    sink = Sink(producer, exactly_once=False, flush_timeout_s=1)
    registry, metrics, log = Registry(1000, 3600), Metrics(CollectorRegistry()), logs.get("test")
    scorer = Scorer(DetectorSpecs(), registry)
    checkpoint = Checkpoint(
        consumer=consumer, sink=sink, registry=registry, snapshots=None,
        policy=CommitPolicy(), metrics=metrics, log=log,
    )  # fmt: skip
    intake = FeedbackIntake(scorer, metrics, 10_000, log, reader=reader, topic="fb")
    worker = Worker(
        consumer=consumer, sink=sink, checkpoint=checkpoint, scorer=scorer, metrics=metrics, topics=TOPICS,
        cfg=WorkerSettings(batch_size=100), log=log, feedback=intake,
    )  # fmt: skip
    consumer.subscribe(["in"], on_assign=worker._on_assign)
    worker.poll_once()
    assert reader.assigned == [("fb", 0, OFFSET_BEGINNING)], "follows the owned partition from the start"
    worker.commit()
    # base 0.4 (risk 1e-4); FP at 0.8 lifts the floor to 0.82, the later TP at 0.8 keeps it under 0.8
    assert scorer.threshold_of("default", "e") == pytest.approx(0.78)
    assert sorted(consumer.commits[-1]) == [("fb", 0, 3), ("in", 0, 5)]
    letters = [DeadLetter.model_validate_json(raw) for raw in producer.on("dlq")]
    assert [(d.reason, d.source.topic, d.source.offset) for d in letters] == [("schema_violation", "fb", 2)]
    labels = {"stream": "default", "detector": "multiview"}
    assert metrics.registry.get_sample_value("anomstream_detection_precision", labels) == 0.5
    fp = metrics.registry.get_sample_value(
        "anomstream_feedback_total", {**labels, "verdict": "false_positive"}
    )
    assert fp == 1.0


def test_reader_errors_stay_in_the_intake() -> None:
    """The reader's group-lookup refusal is expected; other errors are logged; only records come out."""
    record = FakeMessage("fb", 0, 0, _verdict("true_positive", "a1"))
    refused = FakeMessage("fb", 0, -1, None, _error=KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED))
    eof = FakeMessage("fb", 0, -1, None, _error=KafkaError(KafkaError._PARTITION_EOF))
    reader = _Reader([refused, record, eof])
    intake = FeedbackIntake(
        Scorer(DetectorSpecs(), Registry(10, 60)), Metrics(CollectorRegistry()), 10_000, logs.get("t"),
        reader=reader, topic="fb",
    )  # fmt: skip
    intake.follow(FakeConsumer("in", []), {0})
    assert intake.poll(10) == [record]
    fatal = FakeMessage("fb", 0, -1, None, _error=KafkaError(KafkaError._FATAL, fatal=True))
    reader.queue = [fatal]
    with pytest.raises(BrokerError, match="fatal feedback reader error"):
        intake.poll(10)
