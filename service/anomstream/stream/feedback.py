"""The feedback topic inside the worker loop: follow the owned partitions, decode, apply, count.

The worker's group consumer subscribes to events only: its cooperative-sticky assignor balances
topic-partitions without keeping equal numbers together, so subscribing to both topics could hand events
partition p and feedback partition p to different workers. Instead the intake *assigns* its own
group-less reader the feedback partitions numbered like the events partitions the worker owns, from the
group's committed feedback offsets; the worker commits those offsets with its group consumer by the same
protocol as event offsets (``checkpoint``), snapshots and dead letters included.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from anomstream.detect.scorer import Scorer
from anomstream.errors import BrokerError
from anomstream.ops.metrics import Metrics
from anomstream.wire.codec import Rejection, decode_feedback
from anomstream.wire.records import Source

# The reader never joins its group (librdkafka only insists on a group.id): its coordinator lookup may be
# refused by an authoriser, and end-of-partition is no news.
_EXPECTED = frozenset({KafkaError._PARTITION_EOF, KafkaError.GROUP_AUTHORIZATION_FAILED})


class FeedbackIntake:
    """Applies people's verdicts (``wire.records.Feedback``) to the keys this worker owns.

    Parameters
    ----------
    scorer
        The worker's scorer; the verdict changes its key's state (which is then snapshotted).
    metrics
        Where verdicts, precision and the labelled share are counted.
    max_bytes
        Larger records are rejected as ``oversize``.
    reader
        A group-less consumer, assigned the owned feedback partitions (``follow`` / ``drop``).
    topic
        The feedback topic.
    """

    def __init__(
        self,
        scorer: Scorer,
        metrics: Metrics,
        max_bytes: int,
        log: Any,
        *,
        reader: Any = None,
        topic: str = "",
    ) -> None:
        self.scorer, self.metrics, self.max_bytes, self.log = scorer, metrics, max_bytes, log
        self.reader, self.topic = reader, topic
        self.following: set[int] = set()

    def follow(self, group: Any, parts: set[int]) -> None:
        """Read feedback partitions ``parts`` from the group's committed offsets (the start if none)."""
        new = sorted(parts - self.following)
        if not new or self.reader is None:
            return
        committed = group.committed([TopicPartition(self.topic, p) for p in new], timeout=30)
        start = [
            TopicPartition(self.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
            for tp in committed
        ]
        self.reader.incremental_assign(start)
        self.following.update(new)

    def drop(self, parts: set[int]) -> None:
        """Stop reading the feedback partitions of events partitions this worker no longer owns."""
        gone = sorted(parts & self.following)
        if gone and self.reader is not None:
            self.reader.incremental_unassign([TopicPartition(self.topic, p) for p in gone])
        self.following -= set(gone)

    def poll(self, limit: int) -> list[Any]:
        """Feedback records already fetched (never waits: events set the loop's pace); errors stay here."""
        if not self.following or self.reader is None:
            return []
        records = []
        for msg in self.reader.consume(limit, 0):
            err = msg.error()
            if err is None:
                records.append(msg)
            elif err.fatal():
                raise BrokerError(f"fatal feedback reader error: {err.str()}")
            elif err.code() not in _EXPECTED:
                self.log.warning("feedback_reader_error", error=err.str())
        return records

    def close(self) -> None:
        """Close the reader (it commits nothing; the worker's group consumer does)."""
        if self.reader is not None:
            self.reader.close()

    def handle(self, raw: bytes | None, source: Source) -> Rejection | None:
        """Apply one feedback record; an invalid one is returned as a rejection for the dead-letter topic."""
        decoded = decode_feedback(raw, self.max_bytes)
        if isinstance(decoded, Rejection):
            return decoded
        applied = self.scorer.apply_feedback(decoded, source.partition)
        stream = decoded.stream if decoded.stream in self.scorer.specs.streams else "unconfigured"
        detector = decoded.detector or self.scorer.specs.for_stream(decoded.stream).detector
        if not applied.duplicate:
            self.metrics.verdict(stream, detector, applied.verdict)
        # Feedback is rare and each verdict changes a key: one line each is what an operator wants.
        self.log.info(
            "feedback",
            verdict=applied.verdict,
            stream=decoded.stream,
            entity=decoded.entity_id,
            alert_id=decoded.alert_id,
            duplicate=applied.duplicate,
            threshold_before=round(applied.bar_before, 6),
            threshold_after=round(applied.bar_after, 6),
        )
        return None
