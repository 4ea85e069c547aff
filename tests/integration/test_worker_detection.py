"""The worker on a real broker: injected anomalies become explained alerts; normal data stays quiet."""

from __future__ import annotations

import itertools

import pytest
from confluent_kafka import Message

from anomstream.detect.spec import DetectorSpecs
from anomstream.ops.demo import DemoConfig, generate
from anomstream.wire.codec import encode_event
from anomstream.wire.records import ScoreRecord
from integration.harness import SPIKE_SPECS, alerts_in, drain, produce, settings_for, worker_thread

EVENTS_PER_ENTITY = 1500
ENTITIES = 8


@pytest.mark.parametrize(
    "specs", [pytest.param(DetectorSpecs(), id="default"), pytest.param(SPIKE_SPECS, id="ewma-quantile")]
)
def test_every_injected_spike_is_alerted_with_its_feature(kafka_bootstrap: str, specs: DetectorSpecs) -> None:
    """Each injected spike opens an alert on its own row naming the spiked feature; <1% false opens."""
    settings = settings_for(kafka_bootstrap, partitions=3)
    stream = list(
        itertools.islice(generate(DemoConfig(entities=ENTITIES, seed=11)), ENTITIES * EVENTS_PER_ENTITY)
    )
    spikes = {(x.event.entity_id, x.event.timestamp): x.feature for x in stream if x.label == "spike"}
    assert len(spikes) >= 20, "the generator must inject enough spikes for the test to mean something"
    produce(
        kafka_bootstrap,
        settings.topics.events,
        ((x.event.entity_id.encode(), encode_event(x.event)) for x in stream),
    )

    with worker_thread(settings, specs) as w:
        scores = drain(kafka_bootstrap, settings.topics.scores, lambda got: len(got) >= len(stream), 120)
        assert not w.error, w.error
    assert len(scores) == len(stream)
    alerts = alerts_in(
        drain(
            kafka_bootstrap,
            settings.topics.alerts,
            lambda got: len(got) >= sum(1 for s in scores if _has_alert(s)),
            30,
        )
    )
    opened = {(a.entity_id, a.timestamp): a for a in alerts if a.status == "open"}

    missed = [k for k in spikes if k not in opened]
    assert not missed, f"spikes without an open alert: {missed}"
    for key, feature in spikes.items():
        top = max(opened[key].contributions, key=opened[key].contributions.__getitem__)
        assert top == feature, f"{key}: top contribution {top}, injected on {feature}"

    scored_normal = [
        s for s in map(_record, scores) if not s.warming and (s.entity_id, s.timestamp) not in spikes
    ]
    false_opens = [k for k in opened if k not in spikes]
    assert len(false_opens) / len(scored_normal) < 0.01, (len(false_opens), len(scored_normal))


def _record(msg: Message) -> ScoreRecord:
    return ScoreRecord.model_validate_json(bytes(msg.value() or b""))


def _has_alert(msg: Message) -> bool:
    return _record(msg).alert_id is not None
