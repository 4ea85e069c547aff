"""The worker loop against a fake broker: commit order, delivery failures, dead letters, the brake."""

from __future__ import annotations

import itertools

import orjson
import pytest
from prometheus_client import CollectorRegistry

from anomstream.config import TopicSettings, WorkerSettings
from anomstream.detect.scorer import Scorer
from anomstream.detect.spec import DetectorSpecs
from anomstream.detect.store import Registry
from anomstream.errors import DeadLetterLimitError, DeliveryError
from anomstream.ops import logs
from anomstream.ops.metrics import Metrics
from anomstream.stream.checkpoint import Checkpoint, CommitPolicy
from anomstream.stream.producer import Sink
from anomstream.stream.worker import Worker
from unit.fakes import FakeConsumer, FakeMessage, FakeProducer

TOPICS = TopicSettings(events="in", alerts="out", dlq="dlq", scores="scores")


def _event(i: int, x: float = 1.0) -> bytes:
    return orjson.dumps({"entity_id": "e", "timestamp": i * 1000, "values": {"x": x + (i % 3) * 0.1}})


def _worker(values: list[bytes | None], **cfg: float) -> tuple[Worker, FakeConsumer, FakeProducer]:
    log: list[str] = []
    ticks = itertools.count()  # each clock read is one second later
    consumer, producer = FakeConsumer("in", values, log=log), FakeProducer(log=log)
    settings = WorkerSettings(batch_size=10, **cfg)  # type: ignore[arg-type]  # test overrides
    sink = Sink(producer, exactly_once=False, flush_timeout_s=1)
    registry, metrics = Registry(1000, 3600), Metrics(CollectorRegistry())
    clock = lambda: float(next(ticks))  # noqa: E731 - a one-line clock reads better inline
    checkpoint = Checkpoint(
        consumer=consumer,
        sink=sink,
        registry=registry,
        snapshots=None,
        policy=CommitPolicy(settings.commit_interval_s, settings.commit_max_records),
        metrics=metrics,
        log=logs.get("test"),
        clock=clock,
    )
    worker = Worker(
        consumer=consumer,
        sink=sink,
        checkpoint=checkpoint,
        scorer=Scorer(DetectorSpecs(), registry),
        metrics=metrics,
        topics=TOPICS,
        cfg=settings,
        log=logs.get("test"),
        clock=clock,
    )
    consumer.subscribe(["in"], on_assign=worker._on_assign)
    return worker, consumer, producer


def test_offsets_committed_after_flush() -> None:
    """The producer is flushed before offsets are committed, and the committed offset is last+1."""
    worker, consumer, producer = _worker([_event(i) for i in range(25)])
    for _ in range(3):
        worker.poll_once()
    worker.commit()
    assert consumer.log[-2:] == ["flush", "commit"]
    assert consumer.commits[-1] == [("in", 0, 25)]
    assert len(producer.on("scores")) == 25


def test_delivery_failure_blocks_the_commit() -> None:
    """A failed delivery raises DeliveryError and leaves the offsets uncommitted."""
    worker, consumer, producer = _worker([_event(i) for i in range(5)])
    producer.hold = True
    worker.poll_once()
    producer.fail, producer.hold = "broker said no", False
    with pytest.raises(DeliveryError, match="broker said no"):
        worker.commit()
    assert consumer.commits == []


def test_malformed_record_goes_to_dlq_and_is_committed() -> None:
    """A malformed record is dead-lettered with its reason, and its offset still advances."""
    worker, consumer, producer = _worker([_event(0), b"{oops", _event(2)])
    worker.poll_once()
    worker.commit()
    letters = [orjson.loads(v) for v in producer.on("dlq")]
    assert [(x["reason"], x["source"]["offset"]) for x in letters] == [("invalid_json", 1)]
    assert consumer.commits[-1] == [("in", 0, 3)]


def test_brake_stops_a_bad_deploy_without_committing() -> None:
    """When everything is malformed the brake raises, and nothing past the last commit is committed."""
    worker, consumer, _ = _worker([b"nope"] * 50, dlq_max_consecutive=20)

    def poll_until_stopped() -> None:
        for _ in range(5):
            worker.poll_once()

    with pytest.raises(DeadLetterLimitError, match="20 consecutive"):
        poll_until_stopped()
    assert consumer.commits == []


def test_run_commits_on_stop_and_closes() -> None:
    """stop() ends run() with a final commit of everything processed, then closes the consumer."""
    worker, consumer, _ = _worker([_event(i) for i in range(7)])
    original = consumer.consume

    def consume_then_stop(num_messages: int, timeout: float) -> list[FakeMessage]:
        batch = original(num_messages, timeout)
        if not batch:
            worker.stop()
        return batch

    consumer.consume = consume_then_stop  # type: ignore[method-assign]  # test seam
    worker.run()
    assert consumer.commits[-1] == [("in", 0, 7)]
    assert consumer.closed


def test_revoke_commits_then_releases_partition_state() -> None:
    """On revoke the partition's offsets are committed and its keys released even if commit fails."""
    worker, consumer, producer = _worker([_event(i) for i in range(4)])
    worker.poll_once()
    assert len(worker.scorer.registry) == 1
    from confluent_kafka import TopicPartition

    producer.fail = "down"
    worker._on_revoke(consumer, [TopicPartition("in", 0)])
    assert len(worker.scorer.registry) == 0
    assert worker.assigned == set()


def test_timed_commit_waits_for_acks_without_blocking() -> None:
    """The loop's commit is a barrier: offsets are committed only once its outputs are acked."""
    worker, consumer, producer = _worker([_event(i) for i in range(30)], commit_interval_s=0.5)
    producer.hold = True
    worker.poll_once()  # 10 records processed, barrier closed, nothing acked yet
    worker.poll_once()
    assert consumer.commits == []
    assert "flush" not in consumer.log, "the loop must not block in flush()"
    producer.hold = False
    worker.poll_once()  # acks arrive; both barriers settle and commit in order
    assert consumer.commits
    assert consumer.commits[-1][0][2] >= 20


def test_failed_ack_stops_before_committing_past_it() -> None:
    """A delivery error seen while settling a barrier raises, and its offsets are never committed."""
    worker, consumer, producer = _worker([_event(i) for i in range(20)], commit_interval_s=0.5)
    producer.hold = True
    worker.poll_once()
    producer.fail, producer.hold = "msg timed out", False
    with pytest.raises(DeliveryError, match="msg timed out"):
        worker.poll_once()
    assert consumer.commits == []
