"""The broker side of a run: which Kafka to use (or start), topics, bulk produce, watermarks.

Bootstrap order: ``--bootstrap`` → ``KAFKA_BOOTSTRAP_SERVERS`` → a local jar broker started through
``deploy/kafka/kafka_local.py`` on free ports with a throw-away data dir, stopped at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from anomstream.config import Settings, TopicSettings
from anomstream.stream import clients as broker
from loadtest import ROOT
from loadtest.generator import produced_header


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A reachable broker and where it came from (``env``, ``flag`` or ``local-jar``)."""

    bootstrap: str
    origin: str


@contextlib.contextmanager
def cluster(bootstrap: str | None) -> Iterator[Cluster]:
    """Yield a broker to benchmark against, starting (and finally stopping) a local one if needed."""
    if bootstrap:
        yield Cluster(bootstrap, "flag")
        return
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        yield Cluster(env, "env")
        return
    sys.path.insert(0, str(ROOT / "deploy" / "kafka"))
    import kafka_local

    data_dir = Path(tempfile.mkdtemp(prefix="loadtest-kafka-"))
    cfg = kafka_local.BrokerConfig(
        data_dir=data_dir, port=kafka_local.free_port(), controller_port=kafka_local.free_port()
    )
    try:
        kafka_local.start(cfg)
        yield Cluster(cfg.bootstrap, "local-jar")
    finally:
        kafka_local.stop(cfg)
        shutil.rmtree(data_dir, ignore_errors=True)


def topics_for(prefix: str, partitions: int, scores: bool) -> TopicSettings:
    """Fresh topic names for one worker run (events, alerts, dlq, state and optionally scores)."""
    return TopicSettings(
        events=f"{prefix}.events",
        alerts=f"{prefix}.alerts",
        dlq=f"{prefix}.dlq",
        state=f"{prefix}.state",
        scores=f"{prefix}.scores" if scores else "",
        partitions=partitions,
    )


# Authenticates the benchmark's own throw-away snapshots; not a secret of any deployment.
BENCH_HMAC_KEY = "anomstream-loadtest-snapshots"


def worker_settings(
    bootstrap: str, topics: TopicSettings, group: str, worker: dict[str, Any], **top: Any
) -> dict[str, Any]:
    """Plain settings data for one worker run (own group and topics, metrics port off).

    ``top`` sets top-level fields (``processing_guarantee``) or sections (``state``). Returned as data,
    not a ``Settings``, because dumping a ``Settings`` masks secrets such as the snapshot key.
    """
    data: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": group, "session_timeout_ms": 6000},
        "topics": topics.model_dump(),
        "worker": worker,
        "metrics": {"port": 0},
        "log_format": "json",
        "log_level": "INFO",
        **top,
    }
    Settings.model_validate(data)  # fail here, not in the worker process
    return data


def create_topics(settings: dict[str, Any]) -> None:
    """Create the run's topics (anomstream's own topic layout)."""
    parsed = Settings.model_validate(settings)
    broker.ensure_topics(broker.admin(parsed), parsed.topics)


def delete_topics(bootstrap: str, topics: TopicSettings) -> None:
    """Remove a run's topics so a shared broker does not fill up; failures are ignored."""
    names = [t for t in (topics.events, topics.alerts, topics.dlq, topics.state, topics.scores) if t]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(names, operation_timeout=30).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)


def bulk_producer(bootstrap: str) -> Producer:
    """A producer tuned for pre-loading (large batches, lz4)."""
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
        }
    )


def produce_all(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> tuple[int, float]:
    """Produce keyed records (each with the ``lt.produced_ns`` header); returns (count, seconds)."""
    producer = bulk_producer(bootstrap)
    began = time.perf_counter()
    n = 0
    for key, value in records:
        headers = produced_header()
        while True:
            try:
                producer.produce(topic, value, key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
    if producer.flush(120):
        raise RuntimeError(f"could not deliver all {n} records to {topic}")
    return n, time.perf_counter() - began


def end_consumer(bootstrap: str, topic: str) -> Consumer:
    """A consumer assigned to every partition of ``topic`` at its current end (sees only new records)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"loadtest-observer-{time.time_ns()}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 20,
            "isolation.level": "read_uncommitted",
        }
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    assignment = []
    for part in parts:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, part), timeout=10)
        assignment.append(TopicPartition(topic, part, high))
    consumer.assign(assignment)
    return consumer
