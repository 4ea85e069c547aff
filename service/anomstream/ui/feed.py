"""The explorer's Kafka side: read alerts, scores and verdicts into the book; publish new verdicts.

The reader uses a throwaway consumer group from the earliest retained offset (the explorer commits
nothing and never moves the workers' offsets); the publisher sends each verdict to the partition its
entity's events use, so it reaches the worker that owns the key's state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from anomstream.detect.reranker import features
from anomstream.errors import DeliveryError
from anomstream.ui.book import AlertBook
from anomstream.wire.codec import encode
from anomstream.wire.records import Alert, Feedback, ScoreRecord


class Feed:
    """Polls ``consumer`` (subscribed to the alert, score and feedback topics) into ``book`` until stopped."""

    def __init__(self, consumer: Any, book: AlertBook, topics: dict[str, str], log: Any) -> None:
        self.consumer, self.book, self.log = consumer, book, log
        self.kinds = {name: kind for kind, name in topics.items() if name}  # topic name → "alerts"…
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Feed:
        """Subscribe and poll in a daemon thread."""
        self.consumer.subscribe(list(self.kinds))
        self._thread = threading.Thread(target=self._run, name="ui-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling and close the consumer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for msg in self.consumer.consume(500, 0.5):
                    if msg.error() is None:
                        self._take(self.kinds.get(msg.topic(), ""), msg.value())
        finally:
            self.consumer.close()

    def _take(self, kind: str, raw: bytes | None) -> None:
        if not raw:
            return
        try:
            if kind == "alerts":
                self.book.add_alert(Alert.model_validate_json(raw))
            elif kind == "scores":
                self.book.add_score(ScoreRecord.model_validate_json(raw))
            elif kind == "feedback":
                self.book.add_feedback(Feedback.model_validate_json(raw))
        except ValidationError as exc:  # not ours to dead-letter: the worker does that for its inputs
            self.log.warning("ui_record_skipped", topic_kind=kind, error=str(exc)[:200])


class Publisher:
    """Publishes verdicts to the feedback topic and waits for the broker's acknowledgement."""

    def __init__(self, producer: Any, topic: str, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.producer, self.topic, self.now = producer, topic, now

    def verdict(self, alert: Alert, verdict: str, comment: str = "", who: str = "") -> Feedback:
        """A verdict on ``alert``, carrying its score and re-ranker features; returns what was published."""
        fb = Feedback.model_validate(
            {
                "entity_id": alert.entity_id,
                "stream": alert.stream,
                "verdict": verdict,
                "alert_id": alert.alert_id,
                "score": alert.score,
                "features": features(alert),
                "detector": alert.detector,
                "comment": comment,
                "submitted_by": who,
                "submitted_at": self.now(),
            }
        )
        self.publish(fb, alert.source.partition)
        return fb

    def publish(self, fb: Feedback, partition: int | None) -> None:
        """Produce one feedback record (keyed by entity, to ``partition``) and wait for its delivery."""
        errors: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        extra = {"partition": partition} if partition is not None else {}
        self.producer.produce(self.topic, encode(fb), fb.entity_id.encode(), on_delivery=delivered, **extra)
        if self.producer.flush(10) != 0 or errors:
            raise DeliveryError(f"feedback not delivered: {errors or 'timed out'}")
