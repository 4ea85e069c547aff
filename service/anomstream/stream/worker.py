"""The detection worker: consume → decode → score → produce, and the rebalance callbacks.

When offsets are committed, and in which order outputs and snapshots become durable first, is owned by
``checkpoint``; this module only asks it to ``track`` each processed record and to ``maybe_commit``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from anomstream.config import TopicSettings, WorkerSettings
from anomstream.detect.scorer import Outcome, Scorer, score_json
from anomstream.errors import BrokerError
from anomstream.ops.metrics import Metrics
from anomstream.stream.checkpoint import Checkpoint, Committed
from anomstream.stream.deadletters import DeadLetterBrake, DeadLetterPolicy
from anomstream.stream.feedback import FeedbackIntake
from anomstream.stream.producer import Sink
from anomstream.stream.snapshot import Snapshots
from anomstream.wire.codec import Rejection, dead_letter, decode_event, encode
from anomstream.wire.records import Alert, Event, Source

Clock = Callable[[], float]


@dataclasses.dataclass
class Counts:
    """Per-commit-interval counters for the canonical commit log line."""

    consumed: int = 0
    processed: int = 0
    dead_lettered: int = 0
    alerts: int = 0


class Worker:
    """One consumer-group member running the detection loop.

    ``consumer`` is a confluent-kafka consumer (or a fake with the same methods in unit tests); ``sink``
    wraps the producer. ``stop()`` may be called from a signal handler.
    """

    def __init__(
        self,
        *,
        consumer: Any,
        sink: Sink,
        scorer: Scorer,
        metrics: Metrics,
        topics: TopicSettings,
        cfg: WorkerSettings,
        log: Any,
        checkpoint: Checkpoint,
        store: Snapshots | None = None,
        feedback: FeedbackIntake | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.consumer, self.sink, self.scorer = consumer, sink, scorer
        self.metrics, self.topics, self.cfg, self.log = metrics, topics, cfg, log
        self.checkpoint, self.store = checkpoint, store
        self.feedback = feedback if topics.feedback else None  # verdicts from the co-partitioned topic
        self._follow: set[int] = set()  # newly owned partitions whose feedback to start reading
        self.clock = clock
        policy = DeadLetterPolicy(cfg.dlq_max_ratio, cfg.dlq_window, cfg.dlq_max_consecutive)
        self.brake = DeadLetterBrake(policy)
        self.assigned: set[int] = set()
        self.restoring: list[TopicPartition] = []
        self.counts = Counts()
        self.heartbeat = clock()
        self._stopping = False
        self._fatal: BrokerError | None = None  # raised by the loop, outside the callback that hit it
        self._processed: dict[str, int] = {}  # per stream, this batch

    # -- lifecycle ---------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish its batch, commit and exit (safe from a signal handler)."""
        self._stopping = True

    def run(self) -> None:
        """Subscribe and process until ``stop()``; a final commit precedes the consumer's close."""
        self.sink.start()
        self.consumer.subscribe(
            [self.topics.events], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        try:
            while not self._stopping:
                self.poll_once()
            self.commit()
        finally:
            self.consumer.close()  # triggers on_revoke, which commits whatever is still pending
            if self.feedback is not None:
                self.feedback.close()
            self.sink.close()

    def poll_once(self) -> None:
        """One batch: consume, restore new partitions, handle records, commit when due."""
        # Take what is already fetched without waiting for a full batch (that wait is pure latency);
        # block for up to poll_timeout_s only when nothing is there.
        messages = self.consumer.consume(self.cfg.batch_size, 0) or self.consumer.consume(
            self.cfg.batch_size, self.cfg.poll_timeout_s
        )
        if self._fatal is not None:
            raise self._fatal
        if self.restoring:
            self._restore()  # before any record of a new partition is scored
        if self._follow and self.feedback is not None:
            self.feedback.follow(self.consumer, self._follow)  # after its keys' state is restored
            self._follow = set()
        if self.feedback is not None:
            messages = [*messages, *self.feedback.poll(self.cfg.batch_size)]
        self.heartbeat = self.clock()
        self.metrics.heartbeat.set_to_current_time()
        for msg in messages:
            self._handle(msg)
        self._publish_stream_alerts()
        self._count_batch(len(messages))
        self.sink.poll()
        committed = self.checkpoint.maybe_commit(idle=not messages)
        if committed is not None:
            self._after_commit(committed)

    def _count_batch(self, consumed: int) -> None:
        # Counters move once per batch, not once per event: Prometheus calls are not free.
        self.metrics.consumed.inc(consumed)
        for stream, n in self._processed.items():
            self.metrics.processed.labels(stream).inc(n)
        self._processed.clear()

    def _restore(self) -> None:
        parts, self.restoring = self.restoring, []
        self.consumer.pause(parts)
        try:
            if self.store is not None:
                self.store.restore(self.consumer, parts)
                for tp in parts:
                    self.scorer.rearm(tp.partition)  # silence deadlines of the restored keys
        finally:
            self.consumer.resume(parts)

    def _publish_stream_alerts(self) -> None:
        # Silence and population alerts of this batch (and of idle partitions), produced before the
        # batch's offsets can be committed, like every other alert.
        self.scorer.tick(self.clock(), self.cfg.idle_watermark_s)
        for alert in self.scorer.drain():
            self._publish(alert, None, alert.stream)

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
        self.counts.consumed += 1
        # pydantic-core validates three plain fields faster than the Python-side model_construct skips it.
        source = Source(topic=msg.topic(), partition=msg.partition(), offset=msg.offset())
        raw = msg.value()
        if self.feedback is not None and source.topic == self.topics.feedback:
            rejected = self.feedback.handle(raw, source)  # rare: not counted by the brake
            if rejected is not None:
                self._dead_letter(msg, raw, rejected, source)
            self.checkpoint.track(source.topic, source.partition, source.offset)
            return
        decoded = decode_event(raw, self.cfg.max_message_bytes)
        if isinstance(decoded, Rejection):
            self.brake.record(True)
            self._dead_letter(msg, raw, decoded, source)
        else:
            self.brake.record(False)
            self._score(decoded, source, msg)
        self.checkpoint.track(source.topic, source.partition, source.offset)
        self.metrics.processing.observe(time.perf_counter() - started)

    def _score(self, event: Event, source: Source, msg: Any) -> None:
        bands = self.scorer.bands(event) if self.cfg.score_bands and self.topics.scores else None
        outcome = self.scorer.process(event, source)
        stream = event.stream if event.stream in self.scorer.specs.streams else "unconfigured"
        self._processed[stream] = self._processed.get(stream, 0) + 1
        self.counts.processed += 1
        if outcome.alert is not None:
            self._publish(outcome.alert, msg, stream)
        if outcome.suppressed is not None:
            self._suppressed(outcome, stream)
        if self.topics.scores:
            record = score_json(event, source, outcome, self.scorer.specs, bands)
            self.sink.produce(self.topics.scores, record, msg.key(), partition=source.partition)

    def _suppressed(self, outcome: Outcome, stream: str) -> None:
        held = outcome.suppressed
        if held is None or held.status != "open":
            return  # the rest of a held episode stays held; its opening was the counted decision
        self.metrics.suppressed.labels(stream, held.detector).inc()
        self.log.info(
            "alert_suppressed", alert_id=held.alert_id, stream=held.stream, entity=held.entity_id,
            score=round(held.score, 4), why="feedback re-ranker: confident false positive",
        )  # fmt: skip

    def _dead_letter(self, msg: Any, raw: bytes | None, why: Rejection, source: Source) -> None:
        letter = dead_letter(raw, why, source)
        headers = [("anomstream.reason", why.reason.encode())]
        self.sink.produce(self.topics.dlq, encode(letter), msg.key(), headers=headers)
        self.metrics.dead_lettered.labels(why.reason).inc()
        self.counts.dead_lettered += 1

    def _publish(self, alert: Alert, msg: Any, stream: str) -> None:
        self.sink.produce(self.topics.alerts, encode(alert), alert.entity_id.encode())
        self.metrics.alerts.labels(alert.detector, alert.severity, alert.status, alert.kind).inc()
        if alert.status == "open":
            self.metrics.alert_opened(stream, alert.detector)
        self.counts.alerts += 1
        if msg is None:  # a stream-wide alert: no single input record to time it from
            return
        kind, created_ms = msg.timestamp()
        if kind != 0 and created_ms > 0:  # 0 = TIMESTAMP_NOT_AVAILABLE
            self.metrics.end_to_end.observe(max(0.0, time.time() - created_ms / 1000))

    # -- commit ------------------------------------------------------------------------------------
    def commit(self, partitions: set[int] | None = None, *, blocking: bool = True) -> None:
        """Commit what has been processed (all partitions, or just ``partitions``); see ``Checkpoint``."""
        self._after_commit(self.checkpoint.commit(partitions, blocking=blocking))

    def _after_commit(self, done: Committed) -> None:
        registry = self.scorer.registry
        self.metrics.active_keys.set(len(registry))
        self.metrics.observe_keys(self.scorer.key_summary(limit=1000))
        if self.counts.consumed or done.partitions:
            self.log.info(
                "commit",
                **dataclasses.asdict(self.counts),
                partitions=done.partitions,
                keys=len(registry),
                evicted=done.evicted,
                snapshot_bytes=done.snapshot_bytes,
                duration_ms=round(done.seconds * 1000, 2),
            )
        self.counts = Counts()

    # -- rebalance callbacks (run inside consume()) ------------------------------------------------
    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels("assign").inc()
        self.assigned |= {tp.partition for tp in partitions}
        self._follow |= {tp.partition for tp in partitions}
        self.metrics.assigned.set(len(self.assigned))
        if self.store is not None:
            self.restoring.extend(partitions)  # restored in the loop, never inside the callback

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalances.labels("revoke").inc()
        parts = {tp.partition for tp in partitions}
        try:
            self.commit(parts)  # bounded by the sink's flush timeout
        except Exception as exc:  # noqa: BLE001 - the partition is released either way; see finally
            self.log.error("revoke_commit_failed", error=str(exc), partitions=sorted(parts))
            self.sink.abort()
            # Outputs of kept partitions may be lost too; a later commit must not skip past them.
            fatal = BrokerError(f"commit failed during revoke: {exc}")
            fatal.__cause__ = exc  # keep the original failure (and its traceback) for the log
            self._fatal = fatal
        finally:
            self._release(parts)

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # Another member may already own these: committing now could overwrite its progress.
        self.metrics.rebalances.labels("lost").inc()
        self._release({tp.partition for tp in partitions})
        if self.sink.exactly_once:
            # The open transaction mixes lost and kept partitions; abort it and restart clean.
            self.sink.abort()
            self._fatal = BrokerError(
                "partitions lost during an exactly-once transaction; restarting to restore"
            )

    def _release(self, parts: set[int]) -> None:
        inputs = [self.topics.events] + ([self.topics.feedback] if self.feedback is not None else [])
        for part in parts:
            self.scorer.registry.drop_partition(part)
            self.scorer.forget(part)
            for topic in inputs:
                self.metrics.forget_partition(topic, part)
        for topic in inputs:
            self.checkpoint.release(parts, topic)
        self.restoring = [tp for tp in self.restoring if tp.partition not in parts]
        self._follow -= parts
        if self.feedback is not None:
            self.feedback.drop(parts)
        self.assigned -= parts
        self.metrics.assigned.set(len(self.assigned))
