"""Shared fixtures: the session broker and per-test unique topics and groups."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from kafka_fixtures import Broker, session_broker, unique


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by tier from their folder, so ``-m unit`` / ``-m integration`` select them."""
    for item in items:
        path = str(item.path)
        if "/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/unit/" in path:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """The one broker of this test session."""
    with session_broker(tmp_path_factory.mktemp("broker")) as broker:
        yield broker


@pytest.fixture(scope="session")
def admin(kafka: Broker) -> AdminClient:
    """An admin client on the session broker."""
    return AdminClient({"bootstrap.servers": kafka.bootstrap})


TopicFactory = Callable[..., str]


@pytest.fixture
def make_topic(admin: AdminClient) -> TopicFactory:
    """Create a uniquely named topic: ``make_topic("events", partitions=3, config={...})``."""

    def create(prefix: str = "t", partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = unique(prefix)
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})]
        )
        futures[name].result(timeout=30)
        return name

    return create


@pytest.fixture
def group_id() -> str:
    """A consumer group name unique to this test."""
    return unique("group")


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka: Broker) -> str:
    """Bootstrap address of the session broker."""
    return kafka.bootstrap
