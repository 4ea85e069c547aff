"""Session broker for the test suite: env bootstrap → testcontainers (Docker) → local jar broker.

One broker per session; tests isolate themselves with unique topic and group names. With ``CI=true`` a
missing broker fails the run instead of skipping the integration tier.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import kafka_local
import kafka_secure


@dataclasses.dataclass
class Broker:
    """A broker the tests talk to; ``local`` is set only when this session controls its process."""

    bootstrap: str
    origin: str
    local: kafka_local.BrokerConfig | None = None

    def kill(self) -> None:
        """SIGKILL the broker (fault tests); only possible for the local jar broker."""
        assert self.local is not None, "broker process is not controlled by this session"
        kafka_local.kill(self.local)

    def restart(self) -> None:
        """Start the killed broker again on the same ports and data dir."""
        assert self.local is not None, "broker process is not controlled by this session"
        kafka_local.start(self.local)


def docker_engine_answers() -> bool:
    """True when a Docker engine (not merely the client binary) responds to a ping."""
    try:
        import docker

        return bool(docker.from_env(timeout=3).ping())
    except Exception:  # noqa: BLE001 - any failure means there is no usable engine
        return False


def unique(prefix: str) -> str:
    """A name no other test in this session (or a previous one) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _fail_or_skip(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI requires a Kafka broker: {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def session_broker(tmp_root: Path) -> Iterator[Broker]:
    """Yield the session's broker, started in the documented order, and stop what we started."""
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        yield Broker(env, "env")
        return
    if docker_engine_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as container:
            yield Broker(container.get_bootstrap_server(), "testcontainers")
        return
    cfg = kafka_local.BrokerConfig(
        data_dir=tmp_root / "kafka",
        port=kafka_local.free_port(),
        controller_port=kafka_local.free_port(),
    )
    try:
        kafka_local.start(cfg)
    except Exception as exc:  # noqa: BLE001 - reported through pytest as failure or skip
        kafka_local.stop(cfg)
        _fail_or_skip(f"local jar broker did not start: {exc}")
    try:
        yield Broker(cfg.bootstrap, "local-jar", cfg)
    finally:
        kafka_local.stop(cfg)


@dataclasses.dataclass
class SecureBroker:
    """A SASL_SSL broker with the StandardAuthorizer on; ``admin`` is its super user."""

    bootstrap: str
    creds: kafka_secure.Credentials

    def client(self, user: str) -> dict[str, str]:
        """Librdkafka properties of ``user`` on this broker."""
        return {**self.creds.client(user), "bootstrap.servers": self.bootstrap}


@contextlib.contextmanager
def secure_broker(tmp_root: Path) -> Iterator[SecureBroker]:
    """A throw-away secured jar broker (users ``admin`` and ``worker``), stopped on exit."""
    port, controller, internal = (kafka_local.free_port() for _ in range(3))
    cfg, creds = kafka_secure.secure_config(tmp_root / "kafka-secure", port, controller, internal)
    try:
        kafka_local.start(cfg)
    except Exception as exc:  # noqa: BLE001 - reported through pytest as failure or skip
        kafka_local.stop(cfg)
        _fail_or_skip(f"secured jar broker did not start: {exc}")
    try:
        yield SecureBroker(cfg.bootstrap, creds)
    finally:
        kafka_local.stop(cfg)
