"""Graceful stop on a real broker: SIGTERM mid-stream and restart loses no event."""

from __future__ import annotations

import signal
from collections import defaultdict
from pathlib import Path

from confluent_kafka import Message

from anomstream.ops.demo import DemoConfig, generate
from anomstream.wire.codec import encode_event
from anomstream.wire.records import ScoreRecord
from integration.harness import (
    alerts_in,
    committed,
    drain,
    end_offsets,
    env_for,
    produce,
    settings_for,
    start_process,
)

TOTAL = 30_000


def test_sigterm_and_restart_loses_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Every input offset is processed at least once across a SIGTERM; duplicate alerts reuse their ids."""
    settings = settings_for(kafka_bootstrap, partitions=3)
    gen = generate(DemoConfig(entities=12, spike_prob=0.01, seed=3))
    produce(
        kafka_bootstrap,
        settings.topics.events,
        (
            (x.event.entity_id.encode(), encode_event(x.event))
            for x, _ in zip(gen, range(TOTAL), strict=False)
        ),
    )
    env = env_for(settings)
    log = tmp_path / "worker.log"

    first = start_process(env, log)
    drain(kafka_bootstrap, settings.topics.scores, lambda got: len(got) >= TOTAL // 4, 120)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0, log.read_text()[-3000:]
    stopped_at = committed(kafka_bootstrap, settings.kafka.group_id, settings.topics.events, range(3))
    assert 0 < sum(max(o, 0) for o in stopped_at.values()) < TOTAL, stopped_at  # really mid-stream

    second = start_process(env, log)
    try:
        records = drain(kafka_bootstrap, settings.topics.scores, lambda got: _covered(got) >= TOTAL, 180)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0, log.read_text()[-3000:]

    assert _covered(records) == TOTAL, "some input offsets were never processed"
    ends = end_offsets(kafka_bootstrap, settings.topics.events)
    assert committed(kafka_bootstrap, settings.kafka.group_id, settings.topics.events, ends) == ends

    alerts = alerts_in(drain(kafka_bootstrap, settings.topics.alerts, lambda got: False, 5))
    assert alerts, "the stream has spikes; alerts were expected"
    ids_by_source: dict[tuple[int, int], set[str]] = defaultdict(set)
    for alert in alerts:
        ids_by_source[(alert.source.partition, alert.source.offset)].add(alert.alert_id)
    assert all(len(ids) == 1 for ids in ids_by_source.values()), "a duplicate carried a new alert_id"
    assert "commit" in log.read_text()


def _covered(messages: list[Message]) -> int:
    seen = set()
    for msg in messages:
        rec = ScoreRecord.model_validate_json(bytes(msg.value() or b""))
        seen.add((rec.source.partition, rec.source.offset))
    return len(seen)
