"""A three-node KRaft cluster on loopback from the same jars: every node broker + controller.

Replication factor 3 and ``min.insync.replicas`` 2 for user and internal topics, so any one node may die
without losing an acknowledged write or blocking producers. Used by the ``cluster`` test fixture.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import kafka_local
from kafka_local import BrokerConfig

REPLICATED = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "share.coordinator.state.topic.replication.factor": "3",
    "share.coordinator.state.topic.min.isr": "2",
    "unclean.leader.election.enable": "false",
    # A dead follower leaves the ISR quickly, so acks=all writes continue on the two survivors.
    "replica.lag.time.max.ms": "6000",
    "broker.session.timeout.ms": "6000",
    "broker.heartbeat.interval.ms": "1000",
}


@dataclasses.dataclass(frozen=True)
class Cluster:
    """The nodes of one local cluster."""

    nodes: tuple[BrokerConfig, ...]

    @property
    def bootstrap(self) -> str:
        """Every node's client address."""
        return ",".join(node.bootstrap for node in self.nodes)

    def node(self, node_id: int) -> BrokerConfig:
        """The node with ``node_id``."""
        return next(n for n in self.nodes if n.node_id == node_id)


def cluster_config(root: Path, size: int = 3, heap: str = "256m") -> Cluster:
    """``size`` nodes on fresh loopback ports sharing one cluster id and a static controller quorum."""
    ports = [(kafka_local.free_port(), kafka_local.free_port()) for _ in range(size)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports))
    cluster_id = kafka_local.new_cluster_id()
    nodes = tuple(
        BrokerConfig(
            root / f"node{i + 1}",
            port,
            controller,
            node_id=i + 1,
            voters=voters,
            cluster_id=cluster_id,
            heap=heap,
            properties=dict(REPLICATED),
        )
        for i, (port, controller) in enumerate(ports)
    )
    return Cluster(nodes)


def wait_healthy(cluster: Cluster, timeout: float = 90.0) -> None:
    """Until every node is registered and every partition's ISR holds all of them."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "log_level": 0})
    size = len(cluster.nodes)
    deadline = time.monotonic() + timeout
    while True:
        try:
            meta = admin.list_topics(timeout=5)
            isrs = [len(p.isrs) for t in meta.topics.values() for p in t.partitions.values()]
            if len(meta.brokers) == size and all(n == size for n in isrs):
                return
        except Exception:  # noqa: BLE001 - not ready yet; the deadline decides
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"cluster {cluster.bootstrap} not healthy after {timeout}s")
        time.sleep(0.5)


def start(cluster: Cluster, timeout: float = 90.0) -> None:
    """Start every node (a quorum needs a majority, so none waits alone), then wait until healthy."""
    for node in cluster.nodes:
        kafka_local.launch(node)
    wait_healthy(cluster, timeout)


def stop(cluster: Cluster) -> None:
    """Stop every node by pid."""
    for node in cluster.nodes:
        kafka_local.stop(node)


def restart(cluster: Cluster, node: BrokerConfig, timeout: float = 90.0) -> None:
    """Start ``node`` again; return once it serves requests itself and every ISR is whole again."""
    kafka_local.launch(node)
    kafka_local.wait_ready(node.bootstrap, timeout)  # this node, not a surviving peer, answers
    wait_healthy(cluster, timeout)
