"""Every Prometheus metric anomstream exposes, built on an injected registry (one per test).

Names carry the ``anomstream_`` prefix; labels stay low-cardinality (never the entity id).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector

from anomstream.wire.codec import REASONS

SNAPSHOT_REJECTIONS = (
    "not_a_snapshot",
    "bad_hmac",
    "format_mismatch",
    "river_version_mismatch",
    "unloadable",
    "spec_changed",
)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """The metric set of one worker process.

    Examples
    --------
    >>> from prometheus_client import CollectorRegistry
    >>> m = Metrics(CollectorRegistry())
    >>> m.consumed.inc(3)
    >>> m.registry.get_sample_value("anomstream_events_consumed_total")
    3.0
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.info = Info("anomstream_build", "Version and settings of this worker", registry=r)
        self.consumed = Counter("anomstream_events_consumed", "Input records consumed", registry=r)
        self.processed = Counter("anomstream_events_processed", "Events scored", ["stream"], registry=r)
        self.dead_lettered = Counter(
            "anomstream_events_dead_lettered", "Input records sent to the DLQ", ["reason"], registry=r
        )
        self.alerts = Counter(
            "anomstream_alerts", "Alerts published", ["detector", "severity", "status", "kind"], registry=r
        )
        self.processing = Histogram(
            "anomstream_processing_seconds",
            "Decode+score+produce time per event",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "anomstream_end_to_end_seconds",
            "Input record timestamp (producer create time) to alert handed to the producer",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "anomstream_consumer_lag",
            "Consumer lag per partition (librdkafka stats)",
            ["topic", "partition"],
            registry=r,
        )
        self.commit = Histogram(
            "anomstream_commit_seconds",
            "Flush + offset commit duration",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_failures = Counter(
            "anomstream_commit_failures", "Commits that failed (offsets left uncommitted)", registry=r
        )
        self.active_keys = Gauge("anomstream_active_keys", "Keys with live model state", registry=r)
        self.evicted = Counter("anomstream_keys_evicted", "Keys evicted (TTL or max-keys)", registry=r)
        self.state_bytes = Gauge(
            "anomstream_state_bytes",
            "Exact sum over live keys of the size of each key's latest encoded snapshot envelope",
            registry=r,
        )
        self.warm = Gauge("anomstream_warm_keys_ratio", "Share of keys past their warm-up", registry=r)
        self.threshold = Gauge(
            "anomstream_threshold", "Current thresholds across sampled keys", ["stat"], registry=r
        )
        self.rebalances = Counter(
            "anomstream_rebalances", "Partition assignment changes", ["kind"], registry=r
        )
        self.assigned = Gauge(
            "anomstream_assigned_partitions", "Input partitions owned by this worker", registry=r
        )
        self.restore = Histogram(
            "anomstream_restore_seconds",
            "Time to restore one partition's state",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.snapshots = Counter("anomstream_snapshots", "State snapshots written", ["kind"], registry=r)
        self.snapshot_rejected = Counter(
            "anomstream_snapshots_rejected", "Snapshots refused on restore", ["reason"], registry=r
        )
        self.heartbeat = Gauge(
            "anomstream_heartbeat_timestamp_seconds", "Unix time of the last loop iteration", registry=r
        )

        # Series that exist from the start read as 0, not "no data", on dashboards and in alert rules.
        for reason in REASONS:
            self.dead_lettered.labels(reason)
        for reason in SNAPSHOT_REJECTIONS:
            self.snapshot_rejected.labels(reason)
        for kind in ("assign", "revoke", "lost"):
            self.rebalances.labels(kind)
        ProcessCollector(registry=r)  # RSS, CPU and open fds of the worker process

    def observe_keys(self, states: Iterable[tuple[float, bool]]) -> None:
        """Set the threshold summary and warm ratio from ``(threshold, warm)`` of (a sample of) keys."""
        pairs = list(states)
        if not pairs:
            return
        thresholds = sorted(t for t, _ in pairs)
        last = len(thresholds) - 1
        for stat, q in (("min", 0.0), ("p50", 0.5), ("p90", 0.9), ("max", 1.0)):
            self.threshold.labels(stat).set(thresholds[round(q * last)])
        self.warm.set(sum(1 for _, warm in pairs if warm) / len(pairs))

    def on_stats(self, raw: str) -> None:
        """Read per-partition consumer lag from a librdkafka statistics document."""
        try:
            doc: dict[str, Any] = json.loads(raw)
        except ValueError:
            return
        for topic, tdoc in doc.get("topics", {}).items():
            for pid, pdoc in tdoc.get("partitions", {}).items():
                lag = pdoc.get("consumer_lag", -1)
                if pid == "-1" or lag is None or lag < 0:
                    continue  # -1 is librdkafka's internal UA partition; lag -1 means unknown
                self.lag.labels(topic, pid).set(lag)

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop the lag series of a partition this worker no longer owns (no stale lines in Grafana)."""
        with contextlib.suppress(KeyError):
            self.lag.remove(topic, str(partition))
