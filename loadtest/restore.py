"""Restore benchmark: time to restore N keys' snapshots from the state topic, against a raw read of it.

``python -m loadtest.restore --keys 10000 100000`` (broker from ``KAFKA_BOOTSTRAP_SERVERS``, default
127.0.0.1:9092). The baseline, measured in the same run on the same partitions, is consuming the
state records without verifying or unpickling them; the ratio is what authentication + loading cost.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from anomstream.config import Settings
from anomstream.detect.spec import StreamSpec
from anomstream.detect.store import KeyState, Registry
from anomstream.ops import logs
from anomstream.ops.metrics import Metrics
from anomstream.stream import clients as broker
from anomstream.stream.snapshot import Snapshots, encode_key, seal

PARTITIONS = 4
SECRET = b"restore-benchmark"
RESULTS = Path(__file__).resolve().parent / "results"


def _settings(bootstrap: str) -> Settings:
    run = uuid.uuid4().hex[:8]
    return Settings.model_validate(
        {
            "kafka": {"bootstrap_servers": bootstrap, "group_id": f"restore-bench-{run}"},
            "topics": {
                "events": f"rb-events-{run}",
                "alerts": f"rb-alerts-{run}",
                "dlq": f"rb-dlq-{run}",
                "state": f"rb-state-{run}",
                "partitions": PARTITIONS,
            },
        }
    )


def _trained(spec: StreamSpec, seed: int) -> KeyState:
    state = KeyState(spec, partition=0, now=0.0)
    for i in range(40):  # past the default warm-up, with real statistics inside
        state.detector.learn_one({"cpu": 40.0 + (seed + i) % 7, "latency_ms": 120.0 + (seed * i) % 11})
        state.threshold.observe(0.1 + ((seed + i) % 10) / 100)
        state.n_seen += 1
    state.offset = 0
    return state


def _write(settings: Settings, keys: int) -> int:
    """Produce ``keys`` snapshots spread over the partitions; commit input offsets past them."""
    spec = StreamSpec()
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "linger.ms": 20,
            "compression.type": "lz4",
            "enable.idempotence": True,
        }
    )
    template = [_trained(spec, seed) for seed in range(64)]
    written = 0
    for i in range(keys):
        state = template[i % len(template)]
        value = seal(state, SECRET)
        written += len(value)
        while True:
            try:
                producer.produce(
                    settings.topics.state,
                    value,
                    encode_key(("default", f"entity-{i}")),
                    partition=i % PARTITIONS,
                )
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0
    committer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": settings.kafka.group_id,
            "enable.auto.commit": False,
        }
    )
    committer.commit(
        offsets=[TopicPartition(settings.topics.events, p, 1) for p in range(PARTITIONS)], asynchronous=False
    )
    committer.close()
    return written


def _raw_read(settings: Settings) -> float:
    """Baseline: consume every state record of every partition, doing nothing with it."""
    reader = broker.reader(settings)
    began = time.perf_counter()
    for part in range(PARTITIONS):
        tp = TopicPartition(settings.topics.state, part)
        _, high = reader.get_watermark_offsets(tp, timeout=30)
        reader.assign([TopicPartition(settings.topics.state, part, OFFSET_BEGINNING)])
        while reader.position([tp])[0].offset < high:
            reader.consume(10_000, 0.5)
    took = time.perf_counter() - began
    reader.close()
    return took


def _restore(settings: Settings) -> tuple[float, int]:
    registry = Registry(max_keys=10**7, ttl_s=1e9)
    store = Snapshots(
        sink=None,
        consumer_factory=lambda: broker.reader(settings),
        registry=registry,
        events_topic=settings.topics.events,
        state_topic=settings.topics.state,
        secret=SECRET,
        spec_digest=lambda _: StreamSpec().digest(),
        metrics=Metrics(CollectorRegistry()),
        log=logs.get("restore-bench"),
    )
    group = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": settings.kafka.group_id,
            "enable.auto.commit": False,
        }
    )
    began = time.perf_counter()
    store.restore(group, [TopicPartition(settings.topics.events, p) for p in range(PARTITIONS)])
    took = time.perf_counter() - began
    group.close()
    return took, len(registry)


def bench(bootstrap: str, keys: int) -> dict[str, Any]:
    """Write ``keys`` snapshots, then time the raw read and the real restore of them."""
    settings = _settings(bootstrap)
    broker.ensure_topics(broker.admin(settings), settings.topics)
    written = _write(settings, keys)
    raw = _raw_read(settings)
    took, restored = _restore(settings)
    assert restored == keys, f"restored {restored} of {keys} keys"
    return {
        "keys": keys,
        "snapshot_bytes": written,
        "bytes_per_key": round(written / keys, 1),
        "raw_read_s": round(raw, 3),
        "restore_s": round(took, 3),
        "restore_keys_per_s": round(keys / took),
        "restore_vs_raw_read": round(took / raw, 2),
    }


def main() -> None:
    """Run the benchmark for each ``--keys`` and write ``results/restore-<time>.json`` and a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    args = parser.parse_args()
    logs.configure("json", "WARNING")
    rows = [bench(args.bootstrap, n) for n in args.keys]
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"restore-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print("| keys | bytes/key | raw read s | restore s | keys/s | restore / raw read |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['keys']} | {r['bytes_per_key']} | {r['raw_read_s']} | {r['restore_s']} | "
            f"{r['restore_keys_per_s']} | {r['restore_vs_raw_read']} |"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
