"""Many keys deviating together give one ``population`` alert on the real broker; replay gives the same."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from confluent_kafka import Message

from anomstream.detect.spec import DetectorSpecs, PopulationSpec, StreamSpec, ThresholdSpec
from anomstream.offline.replay import Replayer
from anomstream.offline.sources import Row
from anomstream.wire.codec import encode_event
from anomstream.wire.records import Alert, Event, Source
from integration.harness import alerts_in, drain, produce, settings_for, worker_thread

STEP_S = 10
T0 = 1_767_225_600  # 2026-01-01, epoch seconds (a multiple of the 60 s window)
KEYS = [f"k{i:02d}" for i in range(20)]
SHIFTED = set(KEYS[:10])
SPECS = DetectorSpecs(
    streams={
        "default": StreamSpec(
            detector="zscore",
            warmup=5,
            # zscore's own choice (SPOT) judges from 300 points per key; these keys send 120
            threshold=ThresholdSpec(calibrator="likelihood"),
            population=PopulationSpec(enabled=True, window_s=60.0),
        )
    }
)


def _events() -> list[Event]:
    """20 keys every 10 s for 20 one-minute windows; half of them jump together in window 15."""
    rng, out = random.Random(13), []
    for step in range(120):
        for key in KEYS:
            value = 10.0 + rng.gauss(0, 1) + (60.0 if key in SHIFTED and 90 <= step < 93 else 0.0)
            when = datetime.fromtimestamp(T0 + STEP_S * step, tz=UTC)
            out.append(Event(entity_id=key, timestamp=when, values={"v": value}))
    return out


def test_population_alert_opens_once_names_the_keys_and_replay_agrees(kafka_bootstrap: str) -> None:
    """One population alert for window 15 naming shifted keys, resolved next window; replay: same alerts."""
    settings = settings_for(kafka_bootstrap, partitions=1)
    events = _events()
    produce(
        kafka_bootstrap, settings.topics.events, ((e.entity_id.encode(), encode_event(e)) for e in events)
    )

    def done(got: list[Message]) -> bool:
        return any(a.status == "resolved" and a.kind == "population" for a in alerts_in(got))

    with worker_thread(settings, SPECS) as w:
        got = alerts_in(drain(kafka_bootstrap, settings.topics.alerts, done, 90))
        assert not w.error, w.error
    live = [a for a in got if a.kind == "population"]
    assert [(a.entity_id, a.status) for a in live] == [("*", "open"), ("*", "resolved")]
    opened = live[0]
    assert opened.timestamp.timestamp() == T0 + 16 * 60  # the end of window 15
    assert opened.values["deviating_keys"] >= 8
    assert set(opened.attributes["top_keys"].split(",")) <= SHIFTED

    replayer = Replayer(SPECS)
    replayed: list[Alert] = []
    for offset, event in enumerate(events):
        source = Source(topic=settings.topics.events, partition=0, offset=offset)
        replayed += replayer.feed(Row(source, str(offset), event)).stream_alerts
    key = [(a.alert_id, a.status, a.timestamp, a.values, a.attributes) for a in live]
    assert [(a.alert_id, a.status, a.timestamp, a.values, a.attributes) for a in replayed] == key
