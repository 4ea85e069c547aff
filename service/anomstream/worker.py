"""The detection worker: consume → decode → score → threshold → produce → commit, with rebalances.

At-least-once: input offsets are committed only after every alert, dead letter and snapshot they
depend on has been acknowledged by the broker.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from anomstream.codec import Rejection, dead_letter, decode_event, encode
from anomstream.config import TopicSettings, WorkerSettings
from anomstream.deadletters import DeadLetterBrake, DeadLetterPolicy
from anomstream.errors import BrokerError, DeliveryError
from anomstream.metrics import Metrics
from anomstream.models import Alert, Source
from anomstream.scorer import Scorer, score_record

Clock = Callable[[], float]


class StateStore(Protocol):
    """What the worker needs from checkpointing (``checkpoint.Checkpointer`` implements it)."""

    def write(self, keys: list[Any], tombstones: list[Any]) -> int:
        """Produce snapshots of ``keys`` and tombstones; returns bytes written."""

    def restore(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Load the state of newly assigned partitions into the registry."""


@dataclasses.dataclass
class Counts:
    """Per-commit-interval counters for the canonical commit log line."""

    consumed: int = 0
    processed: int = 0
    dead_lettered: int = 0
    alerts: int = 0


class Worker:
    """One consumer-group member running the detection loop.

    ``consumer`` and ``producer`` are confluent-kafka clients (or fakes with the same methods in unit
    tests); ``stop()`` may be called from a signal handler.
    """

    def __init__(
        self,
        *,
        consumer: Any,
        producer: Any,
        scorer: Scorer,
        metrics: Metrics,
        topics: TopicSettings,
        cfg: WorkerSettings,
        log: Any,
        store: StateStore | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.consumer, self.producer, self.scorer = consumer, producer, scorer
        self.metrics, self.topics, self.cfg, self.log = metrics, topics, cfg, log
        self.store = store
        self.clock = clock
        policy = DeadLetterPolicy(cfg.dlq_max_ratio, cfg.dlq_window, cfg.dlq_max_consecutive)
        self.brake = DeadLetterBrake(policy)
        self.pending: dict[tuple[str, int], int] = {}
        self.assigned: set[int] = set()
        self.counts = Counts()
        self.heartbeat = clock()
        self._delivery_errors: list[str] = []
        self._last_commit = clock()
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish its batch, commit and exit (safe from a signal handler)."""
        self._stopping = True

    def run(self) -> None:
        """Subscribe and process until ``stop()``; a final commit precedes the consumer's close."""
        self.consumer.subscribe(
            [self.topics.events], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        try:
            while not self._stopping:
                self.poll_once()
            self.commit()
        finally:
            self.consumer.close()  # triggers on_revoke, which commits whatever is still pending
            self.producer.flush(self.cfg.shutdown_timeout_s)

    def poll_once(self) -> None:
        """One batch: consume, handle each record, serve delivery callbacks, commit when due."""
        messages = self.consumer.consume(self.cfg.batch_size, self.cfg.poll_timeout_s)
        self.heartbeat = self.clock()
        self.metrics.heartbeat.set_to_current_time()
        for msg in messages:
            self._handle(msg)
        self.producer.poll(0)
        if self.clock() - self._last_commit >= self.cfg.commit_interval_s:
            self.commit()

    # -- per record --------------------------------------------------------------------------------
    def _handle(self, msg: Any) -> None:
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                return
            if err.fatal():
                raise BrokerError(f"fatal consumer error: {err.str()}")
            self.log.warning("consumer_error", error=err.str())
            return
        started = time.perf_counter()
        self.metrics.consumed.inc()
        self.counts.consumed += 1
        source = Source(topic=msg.topic(), partition=msg.partition(), offset=msg.offset())
        raw = msg.value()
        decoded = decode_event(raw, self.cfg.max_message_bytes)
        if isinstance(decoded, Rejection):
            self.brake.record(True)
            self._dead_letter(msg, raw, decoded, source)
        else:
            self.brake.record(False)
            outcome = self.scorer.process(decoded, source)
            stream = decoded.stream if decoded.stream in self.scorer.specs.streams else "unconfigured"
            self.metrics.processed.labels(stream).inc()
            self.counts.processed += 1
            if outcome.alert is not None:
                self._publish(outcome.alert, msg)
            if self.topics.scores:
                record = score_record(decoded, source, outcome, self.scorer.specs)
                self._produce(self.topics.scores, msg.key(), encode(record), None)
        self.pending[(source.topic, source.partition)] = source.offset + 1
        self.metrics.processing.observe(time.perf_counter() - started)

    def _dead_letter(self, msg: Any, raw: bytes | None, why: Rejection, source: Source) -> None:
        letter = dead_letter(raw, why, source)
        headers = [("anomstream.reason", why.reason.encode())]
        self._produce(self.topics.dlq, msg.key(), encode(letter), headers)
        self.metrics.dead_lettered.labels(why.reason).inc()
        self.counts.dead_lettered += 1

    def _publish(self, alert: Alert, msg: Any) -> None:
        self._produce(self.topics.alerts, alert.entity_id.encode(), encode(alert), None)
        self.metrics.alerts.labels(alert.detector, alert.severity, alert.status).inc()
        self.counts.alerts += 1
        kind, created_ms = msg.timestamp()
        if kind != 0 and created_ms > 0:  # 0 = TIMESTAMP_NOT_AVAILABLE
            self.metrics.end_to_end.observe(max(0.0, time.time() - created_ms / 1000))

    def _produce(self, topic: str, key: bytes | None, value: bytes, headers: Any) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers, on_delivery=self._on_delivery)
                return
            except BufferError:  # local queue full: let deliveries drain, then retry
                self.producer.poll(0.1)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._delivery_errors.append(f"{msg.topic()}: {err}")

    # -- commit ------------------------------------------------------------------------------------
    def commit(self, partitions: set[int] | None = None) -> None:
        """Commit what has been processed (all partitions, or just ``partitions`` on revoke).

        The order is the at-least-once guarantee:
        1. evict idle / over-limit keys (their tombstones join this commit),
        2. produce snapshots of dirty keys,
        3. flush the producer and fail on any delivery error (offsets stay uncommitted),
        4. commit the input offsets synchronously,
        5. clear dirty flags.
        """
        started = self.clock()
        registry = self.scorer.registry
        evicted = registry.evict()
        self.metrics.evicted.inc(len(evicted))
        written = 0
        if self.store is not None:
            written = self.store.write(sorted(registry.dirty), evicted)
        self._flush()
        offsets = [
            TopicPartition(topic, part, offset)
            for (topic, part), offset in self.pending.items()
            if partitions is None or part in partitions
        ]
        if offsets:
            self._commit_offsets(offsets)
        registry.dirty.clear()
        self._after_commit(started, offsets, written)

    def _flush(self) -> None:
        remaining = self.producer.flush(self.cfg.shutdown_timeout_s)
        if remaining or self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            self.metrics.commit_failures.inc()
            raise DeliveryError(f"{remaining} records undelivered; errors: {errors[:5]}")

    def _commit_offsets(self, offsets: list[TopicPartition]) -> None:
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            self.metrics.commit_failures.inc()
            raise BrokerError(f"offset commit failed: {exc}") from exc
        for tp in offsets:
            if self.pending.get((tp.topic, tp.partition)) == tp.offset:
                del self.pending[(tp.topic, tp.partition)]

    def _after_commit(self, started: float, offsets: list[TopicPartition], written: int) -> None:
        now = self.clock()
        self._last_commit = now
        self.metrics.commit.observe(now - started)
        registry = self.scorer.registry
        self.metrics.active_keys.set(len(registry))
        if self.counts.consumed or offsets:
            self.log.info(
                "commit",
                **dataclasses.asdict(self.counts),
                partitions=len(offsets),
                keys=len(registry),
                snapshot_bytes=written,
                duration_ms=round((now - started) * 1000, 2),
            )
        self.counts = Counts()

    # -- rebalance callbacks (run inside consume()) ------------------------------------------------
    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels("assign").inc()
        self.assigned |= {tp.partition for tp in partitions}
        self.metrics.assigned.set(len(self.assigned))
        if self.store is not None and partitions:
            self.store.restore(consumer, partitions)

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels("revoke").inc()
        parts = {tp.partition for tp in partitions}
        try:
            self.commit(parts)
        except Exception as exc:  # noqa: BLE001 - the partition is released either way; see finally
            self.log.error("revoke_commit_failed", error=str(exc), partitions=sorted(parts))
        finally:
            self._release(parts)

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # Another member may already own these: committing now could overwrite its progress.
        self.metrics.rebalances.labels("lost").inc()
        self._release({tp.partition for tp in partitions})

    def _release(self, parts: set[int]) -> None:
        for part in parts:
            self.scorer.registry.drop_partition(part)
            self.pending.pop((self.topics.events, part), None)
            self.metrics.forget_partition(self.topics.events, part)
        self.assigned -= parts
        self.metrics.assigned.set(len(self.assigned))
