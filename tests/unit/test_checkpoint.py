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
        self.seeks: list[tuple[int, int]] = []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        if self.reject:
            self.reject -= 1
            raise KafkaException(KafkaError(KafkaError.REBALANCE_IN_PROGRESS))
        super().commit(offsets, asynchronous)

    def consumer_group_metadata(self) -> str:
        return "group-metadata"

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.partition, tp.offset))


class TxnProducer(FakeProducer):
    """Records the transactional calls, in order, in ``log``; fails commits with ``failures`` in turn."""

    def __init__(self, failures: list[KafkaError] | None = None) -> None:
        super().__init__()
        self.failures = list(failures or [])

    def begin_transaction(self) -> None:
        self.log.append("begin")

    def send_offsets_to_transaction(
        self, offsets: list[TopicPartition], meta: Any, timeout: float = -1
    ) -> None:
        self.log.append(f"send_offsets:{[(tp.partition, tp.offset) for tp in offsets]}")

    def commit_transaction(self, timeout: float = -1) -> None:
        if self.failures:
            self.log.append("commit_failed")
            raise KafkaException(self.failures.pop(0))
        self._deliver()
        self.log.append("commit_txn")

    def abort_transaction(self, timeout: float = -1) -> None:
        self.log.append("abort")


def _checkpoint(consumer: Any, producer: Any, *, exactly_once: bool = False) -> Checkpoint:
    ticks = itertools.count()
    return Checkpoint(
        consumer=consumer,
        sink=Sink(producer, exactly_once=exactly_once, flush_timeout_s=1, sleep=lambda _s: None),
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


def test_fatal_transaction_error_raises_and_keeps_offsets() -> None:
    """A fatal commit error (fenced) raises DeliveryError and leaves offsets pending for the restart."""
    from anomstream.errors import DeliveryError

    fenced = KafkaError(KafkaError._FENCED, fatal=True)
    consumer, producer = RejectingConsumer(reject=0), TxnProducer([fenced])
    cp = _checkpoint(consumer, producer, exactly_once=True)
    cp.sink.produce("out", b"x", None)
    cp.track("in", 0, 6)
    with pytest.raises(DeliveryError, match="commit failed"):
        cp.commit()
    assert "abort" not in producer.log  # a fenced producer cannot abort; the broker times it out
    assert cp.pending == {("in", 0): 7}


def test_retriable_transaction_commit_is_retried() -> None:
    """A retriable commit failure (coordinator moving) retries the commit instead of aborting."""
    moving = KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS, retriable=True)
    consumer, producer = RejectingConsumer(reject=0), TxnProducer([moving, moving])
    cp = _checkpoint(consumer, producer, exactly_once=True)
    cp.sink.produce("out", b"x", None)
    cp.track("in", 0, 6)
    cp.commit()
    assert producer.log == ["begin", "send_offsets:[(0, 7)]", "commit_failed", "commit_failed", "commit_txn"]
    assert cp.pending == {}


def _key_in(cp: Checkpoint, partition: int, entity: str) -> tuple[str, str]:
    key = ("default", entity)
    cp.registry.put(key, KeyState(SPEC, partition=partition, now=0.0))
    return key


def test_abortable_transaction_error_aborts_and_rewinds() -> None:
    """An abortable failure aborts, drops the touched partitions' state and seeks to the last commit."""
    abortable = KafkaError(KafkaError._TIMED_OUT, txn_requires_abort=True)
    consumer, producer = RejectingConsumer(reject=0), TxnProducer([abortable])
    cp = _checkpoint(consumer, producer, exactly_once=True)
    touched, untouched = _key_in(cp, 0, "a"), _key_in(cp, 1, "b")
    for offset in (3, 4, 5):
        cp.track("in", 0, offset)
    cp.sink.produce("out", b"x", None)
    done = cp.commit()
    assert producer.log[-2:] == ["commit_failed", "abort"]
    assert consumer.seeks == [(0, 3)]
    assert cp.registry.peek(touched) is None
    assert cp.registry.peek(untouched) is not None
    assert cp.pending == {}
    assert done.partitions == 0
    assert cp.metrics.commit_failures._value.get() == 1
    cp.track("in", 0, 3)  # consumed again after the seek, then committed in a new transaction
    cp.sink.produce("out", b"x", None)
    cp.commit()
    assert producer.log[-3:] == ["begin", "send_offsets:[(0, 4)]", "commit_txn"]


def test_record_refused_by_a_failed_transaction_aborts_it() -> None:
    """A record the producer refuses (transaction already failed) makes the commit abort and rewind."""

    class Refusing(TxnProducer):
        def produce(self, *args: Any, **kw: Any) -> None:
            raise KafkaException(KafkaError(KafkaError._STATE))

    consumer, producer = RejectingConsumer(reject=0), Refusing()
    cp = _checkpoint(consumer, producer, exactly_once=True)
    cp.track("in", 0, 8)
    cp.sink.produce("out", b"x", None)
    cp.commit()
    assert producer.log == ["begin", "abort"]
    assert consumer.seeks == [(0, 8)]


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


def test_a_transactional_call_that_never_returns_ends_the_worker() -> None:
    """A send_offsets librdkafka leaves blocked (its #5511) raises DeliveryError after the call timeout."""
    import threading

    from anomstream.errors import DeliveryError

    release = threading.Event()

    class Blocking(TxnProducer):
        def send_offsets_to_transaction(
            self, offsets: list[TopicPartition], meta: Any, timeout: float = -1
        ) -> None:
            release.wait(10)

    consumer, producer = RejectingConsumer(reject=0), Blocking()
    sink = Sink(producer, exactly_once=True, flush_timeout_s=1, call_timeout_s=0.2)
    sink.produce("out", b"x", None)
    try:
        with pytest.raises(DeliveryError, match="#5511"):
            sink.commit_transaction(consumer, [TopicPartition("in", 0, 7)])
        with pytest.raises(DeliveryError, match="wedged"):  # no second call into the blocked producer
            sink.commit_transaction(consumer, [TopicPartition("in", 0, 7)])
        sink.close()
        assert "abort" not in producer.log
    finally:
        release.set()


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
