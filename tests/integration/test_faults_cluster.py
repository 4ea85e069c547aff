"""Faults beyond one worker: takeover by a survivor, a broker crash, a tampered state snapshot.

Every test runs real worker processes or threads against the session's real broker.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from anomstream.ops.demo import Labelled
from anomstream.wire.codec import encode_event
from integration.faults import produce_paced, read_outputs, reference_scores, stop, stream, wait_for_log
from integration.harness import drain, env_for, produce, settings_for, start_process, worker_thread
from kafka_fixtures import Broker

TOTAL = 12_000


def _assert_matches_reference(
    out_scores: dict[str, list[float]], events: list[Labelled], partition_of: dict[str, int]
) -> None:
    expected = reference_scores(events, partition_of)
    for entity, ref in expected.items():
        worst = max(abs(a - b) for a, b in zip(out_scores[entity], ref, strict=True))
        assert worst <= 1e-9, f"{entity}: scores drift by {worst} from the uninterrupted run"


def _restored(log: Path) -> list[dict[str, object]]:
    lines = [orjson.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "restored"]


def test_survivor_takes_over_and_restores_killed_peers_state(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Two workers, one SIGKILLed: the other restores the orphaned partitions' state and finishes."""
    settings = settings_for(kafka_bootstrap, partitions=4, kafka={"session_timeout_ms": 3000})
    events = stream(TOTAL)
    producer = produce_paced(kafka_bootstrap, settings.topics.events, events, rate=TOTAL / 15)
    env = env_for(settings)
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a, b = start_process(env, log_a), start_process(env, log_b)
    try:
        wait_for_log(log_a, '"restored"', 1)
        wait_for_log(log_b, '"restored"', 1)
        drain(kafka_bootstrap, settings.topics.scores, lambda got: len(got) >= TOTAL // 3, 120)
        # Two commit lines from b: the first one's snapshots and offsets have landed (its barrier
        # settles before the next commit), so there is state for the survivor to restore.
        wait_for_log(log_b, '"snapshot_bytes"', 2)
        b.kill()
        b.wait(30)
        producer.join(timeout=60)
        out = read_outputs(kafka_bootstrap, settings.topics.scores, settings.topics.alerts, TOTAL)
    finally:
        assert stop(a) == 0, log_a.read_text()[-2000:]
    assert len(out.covered()) == TOTAL
    owned_by_b = {int(str(r["partition"])) for r in _restored(log_b)}
    taken_over = [r for r in _restored(log_a) if r["partition"] in owned_by_b]
    assert owned_by_b, "worker b never owned a partition"
    assert taken_over, "the survivor never restored the killed worker's partitions"
    assert any(int(str(r["keys"])) > 0 for r in taken_over), "takeover restored no model state"
    partition_of = {s.entity_id: s.source.partition for s in out.scores}
    _assert_matches_reference(out.first_scores_by_entity(), events, partition_of)


def test_broker_sigkill_and_restart_mid_stream(kafka: Broker, tmp_path: Path) -> None:
    """The broker is SIGKILLed and restarted mid-stream: the worker rides it out, nothing is lost."""
    if kafka.local is None:
        pytest.skip("needs the session's own jar broker, whose process the test controls")
    settings = settings_for(kafka.bootstrap, partitions=3)
    events = stream(TOTAL)
    env = env_for(settings)
    log = tmp_path / "worker.log"
    worker = start_process(env, log)
    try:
        wait_for_log(log, '"worker_started"', 1)
        producer = produce_paced(kafka.bootstrap, settings.topics.events, events, rate=TOTAL / 20)
        drain(kafka.bootstrap, settings.topics.scores, lambda got: len(got) >= TOTAL // 3, 120)
        kafka.kill()
        time.sleep(3)
        kafka.restart()
        producer.join(timeout=180)
        out = read_outputs(kafka.bootstrap, settings.topics.scores, settings.topics.alerts, TOTAL)
        assert worker.poll() is None, f"worker died during the outage: {log.read_text()[-2000:]}"
    finally:
        assert stop(worker) == 0, log.read_text()[-2000:]
    assert len(out.covered()) == TOTAL
    ids: dict[tuple[int, int], set[str]] = {}
    for alert in out.alerts:
        ids.setdefault((alert.source.partition, alert.source.offset), set()).add(alert.alert_id)
    assert all(len(v) == 1 for v in ids.values()), "an alert was produced twice with different ids"
    partition_of = {s.entity_id: s.source.partition for s in out.scores}
    _assert_matches_reference(out.first_scores_by_entity(), events, partition_of)


def test_tampered_snapshot_is_refused_and_counted(kafka_bootstrap: str) -> None:
    """A snapshot altered on the state topic is refused on restore, counted, and never loaded."""
    settings = settings_for(kafka_bootstrap, partitions=1)
    events = stream(3000, entities=4)
    produce(
        kafka_bootstrap,
        settings.topics.events,
        ((x.event.entity_id.encode(), encode_event(x.event)) for x in events),
    )
    with worker_thread(settings) as first:
        drain(kafka_bootstrap, settings.topics.scores, lambda got: len(got) >= len(events), 60)
    # Leaving the block stops the worker: its final commit writes the last snapshots.
    assert not first.error, first.error
    snapshots = drain(kafka_bootstrap, settings.topics.state, lambda got: False, 5)
    victim = snapshots[-1]
    tampered = bytearray(victim.value() or b"")
    tampered[-10] ^= 0xFF
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(settings.topics.state, bytes(tampered), victim.key(), partition=victim.partition() or 0)
    producer.produce(
        settings.topics.state,
        b"ASN1" + hashlib.sha256(b"forged").digest() + b"junk",
        b"default\x1fintruder",
        partition=0,
    )
    assert producer.flush(10) == 0

    with worker_thread(settings) as second:
        deadline = time.monotonic() + 30
        while second.sample("anomstream_snapshots_rejected_total", {"reason": "bad_hmac"}) < 2:
            assert time.monotonic() < deadline, "tampered snapshots were not refused"
            time.sleep(0.2)
        assert second.thread.is_alive()
        restored = {k[1] for k, _ in second.worker.scorer.registry.recent()}
    assert "intruder" not in restored
    assert len(restored) == 4, "the authentic snapshots (older one for the victim) still restore"
