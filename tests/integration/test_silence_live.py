"""A key that stops sending gets one ``silent`` alert on the real broker, ``resolved`` when it returns."""

from __future__ import annotations

from datetime import UTC, datetime

from confluent_kafka import Message

from anomstream.detect.spec import DetectorSpecs, SilenceSpec, StreamSpec
from anomstream.offline.replay import Replayer
from anomstream.offline.sources import Row
from anomstream.wire.codec import encode_event
from anomstream.wire.records import Alert, Event, Source
from integration.harness import alerts_in, drain, produce, settings_for, worker_thread

STEP_S = 10
T0 = 1_767_225_600  # 2026-01-01, epoch seconds
SPECS = DetectorSpecs(streams={"default": StreamSpec(detector="zscore", silence=SilenceSpec(enabled=True))})


def _events() -> list[Event]:
    """A and b send every 10 s; a stops after step 29 while b goes on, then a comes back at step 60."""
    out = []
    for step in range(70):
        for entity in ("a", "b"):
            if entity == "a" and 30 <= step < 60:
                continue
            when = datetime.fromtimestamp(T0 + STEP_S * step, tz=UTC)
            out.append(Event(entity_id=entity, timestamp=when, values={"v": 1.0 + step % 3}))
    return out


def test_silent_key_alerts_once_and_resolves_and_replay_agrees(kafka_bootstrap: str) -> None:
    """One silent alert at the predicted deadline, one resolved on return; replay emits the same alerts."""
    settings = settings_for(kafka_bootstrap, partitions=1)
    events = _events()
    produce(
        kafka_bootstrap, settings.topics.events, ((e.entity_id.encode(), encode_event(e)) for e in events)
    )

    def done(got: list[Message]) -> bool:
        return any(a.status == "resolved" and a.kind == "silent" for a in alerts_in(got))

    with worker_thread(settings, SPECS) as w:
        live = [
            a
            for a in alerts_in(drain(kafka_bootstrap, settings.topics.alerts, done, 90))
            if a.kind == "silent"
        ]
        assert not w.error, w.error
    assert [(a.entity_id, a.status) for a in live] == [("a", "open"), ("a", "resolved")]
    opened, resolved = live
    last_a = T0 + STEP_S * 29
    # Regular 10 s gaps predict at most 3 × 10 s: the alert is due then, and raised by the first record
    # past it (one step later at most), long before a returns.
    assert opened.timestamp.timestamp() == last_a + 3 * STEP_S
    assert 3 * STEP_S < opened.values["gap_s"] <= 3 * STEP_S + STEP_S
    assert resolved.timestamp.timestamp() == T0 + STEP_S * 60

    replayer = Replayer(SPECS)
    replayed: list[Alert] = []
    for offset, event in enumerate(events):
        source = Source(topic=settings.topics.events, partition=0, offset=offset)
        replayed += replayer.feed(Row(source, str(offset), event)).stream_alerts
    key = [(a.alert_id, a.status, a.timestamp, a.values) for a in live]
    assert [(a.alert_id, a.status, a.timestamp, a.values) for a in replayed] == key
