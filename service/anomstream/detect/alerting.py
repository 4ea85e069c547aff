"""The alert one scored event emits: its deterministic id, explanation, view, severity and re-ranking.

``Point`` carries an event through the scorer; ``emit`` turns a lifecycle status into the alert to
publish, or the one the feedback re-ranker holds back.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import datetime

from anomstream.detect import reranker
from anomstream.detect.judge import Judged
from anomstream.detect.spec import StreamSpec
from anomstream.detect.store import KeyState
from anomstream.detect.thresholds import severity
from anomstream.wire.records import Alert, Event, Source, Status

_ALERT_NS = uuid.UUID("6f1c3a52-8d4e-4b8a-9a57-2f0e5d7c1b90")


def alert_id(source: Source, stream: str, detector: str) -> str:
    """Deterministic id: the same input record scored by the same detector always gives the same id."""
    name = f"{source.topic}/{source.partition}/{source.offset}/{stream}/{detector}"
    return str(uuid.uuid5(_ALERT_NS, name))


@dataclasses.dataclass(frozen=True, slots=True)
class Point:
    """One event in flight through the scorer, with what was decided about it so far."""

    event: Event
    source: Source
    spec: StreamSpec
    state: KeyState
    x: dict[str, float]
    t: float
    score: float
    threshold: float
    now: Callable[[], datetime]
    judged: Judged | None

    @property
    def probability(self) -> float | None:
        """The calibrated tail probability, when the threshold is a ``risk``."""
        return self.judged.probability if self.judged is not None else None


def emit(p: Point, status: Status | None) -> tuple[Alert | None, Alert | None]:
    """The alert to publish, and the one the re-ranker held back (an episode it opened stays held)."""
    alert = _alert(p, status)
    if alert is None:
        return None, None
    fb = p.state.feedback
    if alert.status == "open":
        fb.holding = fb.reranker.suppress(reranker.features(alert), p.spec.feedback) is not None
    held = fb.holding
    if alert.status == "resolved":
        fb.holding = False
    return (None, alert) if held else (alert, None)


def _alert(p: Point, status: Status | None) -> Alert | None:
    if status is None:
        return None
    why = p.state.detector.explain_one(p.x, p.t)
    resolved = status == "resolved"
    view, life = _view(p, why.contributions), p.state.lifecycle
    if status == "open":
        life.cause = view
    elif life.cause:
        view = life.cause  # a resolved (or ongoing) alert names what opened its episode
    return Alert(
        alert_id=alert_id(p.source, p.event.stream, p.spec.detector),
        entity_id=p.event.entity_id,
        stream=p.event.stream,
        timestamp=p.event.timestamp,
        detected_at=p.now(),
        status=status,
        # a resolved alert carries the severity of the episode's worst point
        severity=severity(p.state.lifecycle.peak if resolved else p.score, p.threshold),
        score=p.score,
        threshold=p.threshold,
        detector=p.spec.detector,
        values=dict(p.event.values),
        expected=why.expected,
        contributions=why.contributions,
        source=p.source,
        attributes=dict(p.event.attributes),
        kind=p.state.detector.kind,
        probability=p.probability,
        view=view,
    )


def _view(p: Point, contributions: dict[str, float]) -> str:
    """What fired: the calibrated winner, else the feature with the largest contribution."""
    if p.judged is not None and p.judged.view:
        return p.judged.view
    return max(contributions, key=lambda k: contributions[k]) if contributions else ""
