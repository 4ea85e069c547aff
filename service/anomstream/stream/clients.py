"""Kafka client factories and topic creation; the only place librdkafka settings are assembled."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from anomstream.config import KafkaSettings, Settings, TopicSettings
from anomstream.errors import AuthorizationError, BrokerError

StatsCallback = Callable[[str], None]


def _base(kafka: KafkaSettings, logger: logging.Logger | None) -> dict[str, Any]:
    conf: dict[str, Any] = dict(kafka.client_config())
    if logger is not None:
        conf["logger"] = logger  # librdkafka's own log lines go through our logging/structlog setup
    return conf


def consumer(
    settings: Settings,
    *,
    logger: logging.Logger | None = None,
    on_stats: StatsCallback | None = None,
    stats_interval_ms: int = 5000,
    group_id: str | None = None,
    offset_reset: str = "earliest",
) -> Consumer:
    """A consumer for the detection group (or ``group_id``): manual commits, cooperative rebalancing."""
    conf = _base(settings.kafka, logger)
    conf.update(
        {
            "group.id": group_id or settings.kafka.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": offset_reset,
            "session.timeout.ms": settings.kafka.session_timeout_ms,
            "heartbeat.interval.ms": max(500, settings.kafka.session_timeout_ms // 5),
            "partition.assignment.strategy": "cooperative-sticky",
            # read_committed hides aborted transactional output in exactly-once chains; harmless otherwise
            "isolation.level": "read_committed",
        }
    )
    if on_stats is not None:
        conf["stats_cb"] = on_stats
        conf["statistics.interval.ms"] = stats_interval_ms
    conf.update(settings.kafka.extra)
    return Consumer(conf)


def producer(
    settings: Settings,
    *,
    logger: logging.Logger | None = None,
    transactional_id: str | None = None,
) -> Producer:
    """An idempotent producer (librdkafka defaults to non-idempotent; Java does not)."""
    conf = _base(settings.kafka, logger)
    conf.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.max.bytes": max(1_000_000, settings.worker.max_message_bytes + 65_536),
        }
    )
    if transactional_id:
        conf["transactional.id"] = transactional_id
        conf["transaction.timeout.ms"] = settings.kafka.transaction_timeout_ms
    conf.update(settings.kafka.extra)
    return Producer(conf)


def reader(settings: Settings, *, logger: logging.Logger | None = None) -> Consumer:
    """A group-less consumer for reading a topic by assignment (state restore); never commits."""
    conf = _base(settings.kafka, logger)
    conf.update(
        {
            "group.id": f"{settings.kafka.group_id}.restore",  # required by librdkafka, never joined
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",  # aborted exactly-once snapshots must not be restored
            "fetch.max.bytes": 52_428_800,
        }
    )
    conf.update(settings.kafka.extra)
    return Consumer(conf)


def admin(settings: Settings, *, logger: logging.Logger | None = None) -> AdminClient:
    """An admin client on the configured cluster."""
    return AdminClient(_base(settings.kafka, logger))


def topic_specs(topics: TopicSettings) -> list[NewTopic]:
    """The topics anomstream needs; the state topic is compacted and co-partitioned with events."""
    rf = topics.replication_factor
    # Feedback is co-partitioned with events: a key's verdicts reach the worker owning its state.
    optional = [name for name in (topics.scores, topics.feedback) if name]
    return [
        *(NewTopic(name, num_partitions=topics.partitions, replication_factor=rf) for name in optional),
        NewTopic(topics.events, num_partitions=topics.partitions, replication_factor=rf),
        NewTopic(topics.alerts, num_partitions=topics.partitions, replication_factor=rf),
        NewTopic(topics.dlq, num_partitions=1, replication_factor=rf),
        NewTopic(
            topics.state,
            num_partitions=topics.partitions,
            replication_factor=rf,
            config={"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
        ),
    ]


def ensure_topics(client: AdminClient, topics: TopicSettings, timeout: float = 30.0) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left as they are."""
    existing = set(client.list_topics(timeout=timeout).topics)
    missing = [spec for spec in topic_specs(topics) if spec.topic not in existing]
    if not missing:
        return []
    created = []
    for name, future in client.create_topics(missing, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() in (err.TOPIC_AUTHORIZATION_FAILED, err.CLUSTER_AUTHORIZATION_FAILED):
                raise AuthorizationError(
                    f"topic {name} is not visible to this principal (no DESCRIBE ACL) and it may not "
                    f"create it (no CREATE ACL): {err.str()}; create the topic and grant the ACLs in "
                    "docs/security.md"
                ) from None
            if err.code() != err.TOPIC_ALREADY_EXISTS:  # a racing worker made it
                raise BrokerError(f"cannot create topic {name}: {err.str()}") from exc
    return created
