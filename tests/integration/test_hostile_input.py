"""Hostile input at scale through a live worker process: it stays up and accounts for every record.

The key flood checks memory stays within the key bound (``ANOMSTREAM_WORKER__MAX_KEYS``).

``FLOOD_KEYS`` sets the size of the key flood (CI: 100k; the 1M benchmark run is the same test with
``FLOOD_KEYS=1000000``, see loadtest/README.md).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource  # re-exported without __all__

from anomstream.config import Settings
from anomstream.wire.records import DeadLetter
from integration.faults import wait_for_log
from integration.harness import committed, drain, end_offsets, env_for, produce, settings_for, start_process
from integration.hostile import hostile

FUZZED = 100_000
FLOOD_KEYS = int(os.environ.get("FLOOD_KEYS", "100000"))
MAX_KEYS = 10_000


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _commits(log: Path) -> list[dict[str, int]]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "commit"]


def _wait_committed(
    settings: Settings, bootstrap: str, total: int, alive: Callable[[], bool], timeout: float
) -> None:
    topic = settings.topics.events
    deadline = time.monotonic() + timeout
    group = settings.kafka.group_id
    while sum(max(0, o) for o in committed(bootstrap, group, topic, range(3)).values()) < total:
        assert alive(), "the worker died"
        assert time.monotonic() < deadline, "the worker did not get through the input in time"
        time.sleep(1)


@pytest.mark.parametrize(
    "oversize",
    [
        False,
        True,
    ],
    ids=["within_limit", "with_oversize"],
)
def test_100k_fuzzed_records_are_all_accounted_for(
    kafka_bootstrap: str, tmp_path: Path, oversize: bool
) -> None:
    """100k hostile records: worker stays up, consumed = processed + dead-lettered, RSS bounded."""
    settings = settings_for(kafka_bootstrap, partitions=3, worker={"max_keys": MAX_KEYS})
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    big = ConfigResource("topic", settings.topics.events, set_config={"max.message.bytes": "3000000"})
    admin.alter_configs([big])[big].result(timeout=30)
    log = tmp_path / "worker.log"
    proc = start_process(env_for(settings), log)
    try:
        wait_for_log(log, '"worker_started"', 1)
        sent = produce(
            kafka_bootstrap,
            settings.topics.events,
            hostile(FUZZED, oversize=oversize),
            client={"message.max.bytes": "3000000"},
        )
        _wait_committed(settings, kafka_bootstrap, sent, lambda: proc.poll() is None, 600)
        peak_kib = _status_kib(proc.pid, "VmHWM")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0, log.read_text()[-3000:]
    assert sent == FUZZED == sum(end_offsets(kafka_bootstrap, settings.topics.events).values())
    commits = _commits(log)
    consumed = sum(c["consumed"] for c in commits)
    processed = sum(c["processed"] for c in commits)
    dead = sum(c["dead_lettered"] for c in commits)
    assert consumed == processed + dead == FUZZED
    letters = drain(kafka_bootstrap, settings.topics.dlq, lambda got: len(got) >= dead, 120)
    assert len({(d.source.partition, d.source.offset) for d in map(_letter, letters)}) == dead
    assert max(c["keys"] for c in commits) <= MAX_KEYS
    assert peak_kib < 1_200_000, f"peak RSS {peak_kib // 1024} MiB"
    print(f"\nfuzzed {FUZZED}: processed {processed}, dead-lettered {dead}, peak RSS {peak_kib // 1024} MiB")


def _letter(msg: object) -> DeadLetter:
    return DeadLetter.model_validate_json(bytes(msg.value() or b""))  # type: ignore[attr-defined]


def test_key_flood_stays_within_max_keys(kafka_bootstrap: str, tmp_path: Path) -> None:
    """``FLOOD_KEYS`` distinct entities: live keys never exceed MAX_KEYS; peak RSS measured and bounded."""
    settings = settings_for(kafka_bootstrap, partitions=3, worker={"max_keys": MAX_KEYS})
    log = tmp_path / "worker.log"
    proc = start_process(env_for(settings), log)
    try:
        wait_for_log(log, '"worker_started"', 1)
        base_kib = _status_kib(proc.pid, "VmRSS")
        began = time.monotonic()
        records = (
            (f"k{i}".encode(), b'{"entity_id":"k%d","timestamp":%d,"values":{"x":%d}}' % (i, i, i % 7))
            for i in range(FLOOD_KEYS)
        )
        produce(kafka_bootstrap, settings.topics.events, records)
        produced = time.monotonic() - began  # how fast the flood arrived
        _wait_committed(settings, kafka_bootstrap, FLOOD_KEYS, lambda: proc.poll() is None, 900)
        took = time.monotonic() - began
        peak_kib = _status_kib(proc.pid, "VmHWM")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0, log.read_text()[-3000:]
    commits = _commits(log)
    assert sum(c["processed"] for c in commits) == FLOOD_KEYS
    assert max(c["keys"] for c in commits) <= MAX_KEYS
    assert sum(c["evicted"] for c in commits) >= FLOOD_KEYS - MAX_KEYS
    assert peak_kib < 1_200_000, f"peak RSS {peak_kib // 1024} MiB"
    result = {"keys": FLOOD_KEYS, "max_keys": MAX_KEYS, "seconds": round(took, 1)}
    result |= {
        "produce_seconds": round(produced, 1),
        "max_keys_after_commit": max(c["keys"] for c in commits),
    }
    result |= {"rss_start_mib": base_kib // 1024, "rss_peak_mib": peak_kib // 1024}
    out = os.environ.get("FLOOD_RESULT")
    if out:
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nkey flood: {result}")
