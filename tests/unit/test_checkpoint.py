"""The commit protocol on a fake broker: rejected commits, lost partitions, transactions, restore rules."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry

from anomstream.detect.spec import DetectorSpecs, StreamSpec
from anomstream.detect.store import KeyState, Registry
from anomstream.ops import logs
from anomstream.ops.metrics import Metrics
from anomstream.stream.checkpoint import Checkpoint, CommitPolicy
from anomstream.stream.producer import Sink
from anomstream.stream.snapshot import OFFSET_HEADER, Snapshots, encode_key, seal
from unit.fakes import FakeConsumer, FakeMessage, FakeProducer

SECRET = b"k"
SPEC = StreamSpec(detector="zscore")


class RejectingConsumer(FakeConsumer):
    """Refuses the next ``reject`` offset commits as a group in mid-rebalance would."""

    def __init__(self, reject: int) -> None:
        super().__init__("in", [])
        self.reject = reject

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        if self.reject:
            self.reject -= 1
            raise KafkaException(KafkaError(KafkaError.REBALANCE_IN_PROGRESS))
        super().commit(offsets, asynchronous)

    def consumer_group_metadata(self) -> str:
        return "group-metadata"


class TxnProducer(FakeProducer):
    """Records the transactional calls, in order, in ``log``."""

    def __init__(self, fail_commit: bool = False) -> None:
        super().__init__()
        self.fail_commit = fail_commit

    def begin_transaction(self) -> None:
        self.log.append("begin")

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], meta: Any, timeout: float) -> None:
        self.log.append(f"send_offsets:{[(tp.partition, tp.offset) for tp in offsets]}")

    def commit_transaction(self, timeout: float) -> None:
        if self.fail_commit:
            raise KafkaException(KafkaError(KafkaError._FENCED))
        self._deliver()
        self.log.append("commit_txn")

    def abort_transaction(self, timeout: float) -> None:
        self.log.append("abort")


def _checkpoint(consumer: Any, producer: Any, *, exactly_once: bool = False) -> Checkpoint:
    ticks = itertools.count()
    return Checkpoint(
        consumer=consumer,
        sink=Sink(producer, exactly_once=exactly_once, flush_timeout_s=1),
        registry=Registry(100, 3600, clock=lambda: 0.0),
        snapshots=None,
        policy=CommitPolicy(interval_s=5, max_pending=1000),
        metrics=Metrics(CollectorRegistry()),
        log=logs.get("test"),
        clock=lambda: float(next(ticks)),
        sleep=lambda _s: None,
    )


def test_commit_rejected_in_a_rebalance_keeps_offsets_pending() -> None:
    """A commit refused because the group moved on is counted, not raised; the next commit sends them."""
    consumer = RejectingConsumer(reject=1)
    cp = _checkpoint(consumer, FakeProducer())
    cp.track("in", 0, 41)
    cp.commit()
    assert consumer.commits == []
    assert cp.pending == {("in", 0): 42}
    assert cp.metrics.commit_failures._value.get() == 1
    cp.commit()
    assert consumer.commits == [[("in", 0, 42)]]
    assert cp.pending == {}


def test_release_drops_pending_offsets_and_queued_barriers_of_lost_partitions() -> None:
    """After a partition is lost, no queued barrier commits its offsets over the new owner."""
    consumer, producer = FakeConsumer("in", []), FakeProducer()
    producer.hold = True
    cp = _checkpoint(consumer, producer)
    cp.track("in", 0, 9)
    cp.track("in", 1, 19)
    cp.sink.produce("out", b"x", None)
    cp.commit(blocking=False)  # a barrier waits for the ack of "x"
    cp.release({1}, "in")
    producer.hold = False
    producer.poll()
    cp.settle()
    assert consumer.commits == [[("in", 0, 10)]]
    assert cp.pending == {}


def test_worker_on_lost_aborts_the_transaction_and_stops() -> None:
    """on_lost in exactly-once mode aborts the open transaction; the loop then raises, committing nothing."""
    from anomstream.config import TopicSettings, WorkerSettings
    from anomstream.detect.scorer import Scorer
    from anomstream.errors import BrokerError
    from anomstream.stream.worker import Worker

    consumer, producer = RejectingConsumer(reject=0), TxnProducer()
    cp = _checkpoint(consumer, producer, exactly_once=True)
    worker = Worker(
        consumer=consumer,
        sink=cp.sink,
        checkpoint=cp,
        scorer=Scorer(DetectorSpecs(), cp.registry),
        metrics=cp.metrics,
        topics=TopicSettings(events="in"),
        cfg=WorkerSettings(),
        log=logs.get("test"),
    )
    cp.sink.produce("out", b"x", None)  # opens the transaction
    cp.track("in", 0, 4)
    worker._on_lost(consumer, [TopicPartition("in", 0)])
    assert producer.log == ["begin", "abort"]
    assert cp.pending == {}
    consumer.queue = [FakeMessage("in", 1, 0, None)]
    with pytest.raises(BrokerError, match="lost"):
        worker.poll_once()
    assert consumer.commits == []


def test_exactly_once_commit_is_begin_send_offsets_commit() -> None:
    """Exactly-once: outputs and offsets go into one transaction, committed in that order."""
    consumer, producer = RejectingConsumer(reject=0), TxnProducer()
    cp = _checkpoint(consumer, producer, exactly_once=True)
    cp.sink.produce("out", b"x", None)
    cp.track("in", 0, 6)
    cp.commit(blocking=False)  # exactly-once always commits in place
    assert producer.log == ["begin", "send_offsets:[(0, 7)]", "commit_txn"]
    assert consumer.commits == []  # offsets travel in the transaction, not through the consumer
    assert cp.pending == {}


def test_failed_transaction_commit_aborts_and_keeps_offsets() -> None:
    """A transaction that cannot commit is aborted, raises DeliveryError and leaves offsets pending."""
    from anomstream.errors import DeliveryError

    consumer, producer = RejectingConsumer(reject=0), TxnProducer(fail_commit=True)
    cp = _checkpoint(consumer, producer, exactly_once=True)
    cp.sink.produce("out", b"x", None)
    cp.track("in", 0, 6)
    with pytest.raises(DeliveryError):
        cp.commit()
    assert producer.log[-1] == "abort"
    assert cp.pending == {("in", 0): 7}


class StateTopic:
    """A group-less reader over fixed state-topic records (what restore reads)."""

    def __init__(self, records: list[FakeMessage]) -> None:
        self.records = records
        self.pos = 0

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        return 0, len(self.records)

    def assign(self, tps: list[TopicPartition]) -> None:
        self.pos = 0

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tps[0].topic, tps[0].partition, self.pos)]

    def consume(self, n: int, timeout: float) -> list[FakeMessage]:
        batch = self.records[self.pos : self.pos + n]
        self.pos += len(batch)
        return batch

    def close(self) -> None:
        pass


class HeaderMessage(FakeMessage):
    """A state record with headers."""

    def __init__(
        self, key: bytes, value: bytes | None, offset: int, headers: list[tuple[str, bytes]]
    ) -> None:
        super().__init__("state", 0, offset, value, key)
        self._headers = headers

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


def _snapshot(offset: int, n_seen: int) -> bytes:
    state = KeyState(SPEC, partition=0, now=0.0)
    state.offset, state.n_seen = offset, n_seen
    return seal(state, SECRET)


def _restore(records: list[HeaderMessage], committed: int) -> Registry:
    class Committed(FakeConsumer):
        def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
            return [TopicPartition(tp.topic, tp.partition, committed) for tp in tps]

    registry = Registry(100, 3600)
    snaps = Snapshots(
        sink=None,
        consumer_factory=lambda: StateTopic(list(records)),  # type: ignore[arg-type,return-value]  # fake
        registry=registry,
        events_topic="in",
        state_topic="state",
        secret=SECRET,
        spec_digest=lambda _stream: SPEC.digest(),
        metrics=Metrics(CollectorRegistry()),
        log=logs.get("test"),
    )
    snaps.restore(Committed("in", []), [TopicPartition("in", 0)])
    return registry


KEY = encode_key(("default", "a"))


def test_restore_takes_the_newest_authentic_snapshot_older_than_the_commit() -> None:
    """Restore keeps the newest snapshot below the committed offset, skipping newer and forged ones."""
    forged = bytearray(_snapshot(30, 3))
    forged[-1] ^= 1
    records = [
        HeaderMessage(KEY, _snapshot(10, 1), 0, []),
        HeaderMessage(KEY, _snapshot(20, 2), 1, []),
        HeaderMessage(KEY, bytes(forged), 2, []),  # tampered: refused, never unpickled
        HeaderMessage(KEY, _snapshot(50, 5), 3, []),  # reflects events that will be replayed
    ]
    state = _restore(records, committed=40).peek(("default", "a"))
    assert state is not None
    assert state.n_seen == 2


def test_tombstone_from_an_uncommitted_eviction_does_not_wipe_the_key() -> None:
    """A tombstone whose offset is not below the committed one is ignored; an older one clears the key."""
    snap = HeaderMessage(KEY, _snapshot(10, 1), 0, [])
    late = HeaderMessage(KEY, None, 1, [(OFFSET_HEADER, b"60")])
    assert _restore([snap, late], committed=40).peek(("default", "a")) is not None
    early = HeaderMessage(KEY, None, 1, [(OFFSET_HEADER, b"30")])
    assert _restore([snap, early], committed=40).peek(("default", "a")) is None


def test_restored_keys_count_their_envelope_bytes() -> None:
    """After restore, ``state_bytes`` is the exact size of the snapshots that were loaded."""
    kept = _snapshot(10, 1)
    other = encode_key(("default", "b"))
    records = [
        HeaderMessage(KEY, _snapshot(5, 0), 0, []),  # superseded by the next one
        HeaderMessage(KEY, kept, 1, []),
        HeaderMessage(other, _snapshot(60, 6), 2, []),  # newer than the commit: not loaded
    ]
    registry = _restore(records, committed=40)
    assert registry.state_bytes == len(kept)
