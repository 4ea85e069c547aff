"""Feedback is event-sourced: re-reading the events and feedback topics rebuilds the same thresholds.

A fresh worker (new group, no state) ends where the worker that applied the verdicts live ended.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from anomstream.detect.spec import DetectorSpecs
from anomstream.ops.demo import DemoConfig, generate
from anomstream.wire.codec import encode, encode_event
from anomstream.wire.records import Feedback
from integration.harness import ThreadedWorker, produce, settings_for, worker_thread
from kafka_fixtures import unique

ENTITIES = ("host-01", "sensor-01", "sensor-02")


def _wait(what: str, check: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _verdicts() -> list[Feedback]:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        Feedback(entity_id="host-01", verdict="false_positive", alert_id="a1", score=0.55, submitted_at=t),
        Feedback(entity_id="host-01", verdict="false_positive", alert_id="a1", score=0.55, submitted_at=t),
        Feedback(entity_id="sensor-02", verdict="false_positive", alert_id="a2", score=0.5, submitted_at=t),
        Feedback(entity_id="sensor-02", verdict="true_positive", alert_id="a3", score=0.45, submitted_at=t),
        Feedback(
            entity_id="sensor-01",
            verdict="missed",
            start=t,
            end=t + timedelta(hours=1),
            score=0.3,
            submitted_at=t,
        ),
    ]


def _thresholds(w: ThreadedWorker) -> dict[str, float | None]:
    return {e: w.worker.scorer.threshold_of("default", e) for e in ENTITIES}


def _settled(w: ThreadedWorker, events: int, verdicts: int) -> bool:
    applied = sum(
        w.sample("anomstream_feedback_total", {"stream": "default", "detector": "multiview", "verdict": v})
        for v in ("true_positive", "false_positive", "missed")
    )
    return (
        w.sample("anomstream_events_processed_total", {"stream": "default"}) >= events and applied >= verdicts
    )


def test_a_fresh_worker_replaying_events_and_feedback_gets_the_same_thresholds(kafka_bootstrap: str) -> None:
    """Worker A applies verdicts live; worker B (new group, no state) re-reads both: same thresholds."""
    settings = settings_for(kafka_bootstrap, partitions=2)
    specs = DetectorSpecs()  # calibrated default: the threshold is the risk's, moved only by feedback
    stream = list(itertools.islice(generate(DemoConfig(entities=len(ENTITIES), seed=4)), 3 * 300))
    produce(
        kafka_bootstrap,
        settings.topics.events,
        ((x.event.entity_id.encode(), encode_event(x.event)) for x in stream),
    )
    verdicts = _verdicts()
    with worker_thread(settings, specs) as live:
        _wait("the events", lambda: _settled(live, len(stream), 0))
        untouched = _thresholds(live)
        produce(
            kafka_bootstrap, settings.topics.feedback, ((f.entity_id.encode(), encode(f)) for f in verdicts)
        )
        _wait("the verdicts", lambda: _settled(live, len(stream), len(verdicts) - 1))  # one is a redelivery
        first = _thresholds(live)
        assert not live.error, live.error
    # risk 1e-4 is a bar of 0.4; FP 0.55 → 0.57; FP 0.5 then TP 0.45 → 0.43; missed at 0.3 → 0.28
    assert untouched == dict.fromkeys(ENTITIES, pytest.approx(0.4))
    assert first == {
        "host-01": pytest.approx(0.57),
        "sensor-02": pytest.approx(0.43),
        "sensor-01": pytest.approx(0.28),
    }

    fresh = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"group_id": unique("grp")}),
            "state": settings.state.model_copy(update={"enabled": False}),
        }
    )
    with worker_thread(fresh, specs) as replayed:
        _wait("the replay", lambda: _settled(replayed, len(stream), len(verdicts) - 1))
        assert _thresholds(replayed) == first
        assert not replayed.error, replayed.error
