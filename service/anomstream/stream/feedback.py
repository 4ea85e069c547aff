"""The feedback topic inside the worker loop: decode a verdict, apply it to its key, count it.

The worker calls ``FeedbackIntake.handle`` for records of the feedback topic; offsets, snapshots and
dead letters go through the same commit protocol as events (``checkpoint``).
"""

from __future__ import annotations

from typing import Any

from anomstream.detect.scorer import Scorer
from anomstream.ops.metrics import Metrics
from anomstream.wire.codec import Rejection, decode_feedback
from anomstream.wire.records import Source


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
    """

    def __init__(self, scorer: Scorer, metrics: Metrics, max_bytes: int, log: Any) -> None:
        self.scorer, self.metrics, self.max_bytes, self.log = scorer, metrics, max_bytes, log

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
