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

        self._feedback_metrics(r)

        # Series that exist from the start read as 0, not "no data", on dashboards and in alert rules.
        for reason in REASONS:
            self.dead_lettered.labels(reason)
        for reason in SNAPSHOT_REJECTIONS:
            self.snapshot_rejected.labels(reason)
        for kind in ("assign", "revoke", "lost"):
            self.rebalances.labels(kind)
        ProcessCollector(registry=r)  # RSS, CPU and open fds of the worker process

    # -- detection quality from people's feedback ---------------------------------------------------
    def _feedback_metrics(self, r: CollectorRegistry) -> None:
        self.alerts_opened = Counter(
            "anomstream_alerts_opened", "Alerts opened (published)", ["stream", "detector"], registry=r
        )
        self.feedback = Counter(
            "anomstream_feedback",
            "Verdicts applied (a redelivered verdict is not counted again)",
            ["stream", "detector", "verdict"],
            registry=r,
        )
        self.precision = Gauge(
            "anomstream_detection_precision",
            "true / (true + false positive) verdicts this worker applied",
            ["stream", "detector"],
            registry=r,
        )
        self.labelled = Gauge(
            "anomstream_alerts_labelled_ratio",
            "Share of the alerts this worker opened that have a verdict",
            ["stream", "detector"],
            registry=r,
        )
        self.suppressed = Counter(
            "anomstream_rerank_suppressed",
            "Alerts the feedback re-ranker held back as confident false positives",
            ["stream", "detector"],
            registry=r,
        )
        self._verdicts: dict[tuple[str, str], dict[str, int]] = {}
        self._opened: dict[tuple[str, str], int] = {}

    def declare_streams(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Create the quality series of each configured ``(stream, detector)`` at 0.

        Panels then show 0, not "no data", before the first alert or verdict.
        """
        for stream, detector in pairs:
            self.alerts_opened.labels(stream, detector)
            self.suppressed.labels(stream, detector)
            for verdict in ("true_positive", "false_positive", "missed"):
                self.feedback.labels(stream, detector, verdict)

    def alert_opened(self, stream: str, detector: str) -> None:
        """Count an opened alert (the denominator of the labelled share)."""
        self.alerts_opened.labels(stream, detector).inc()
        self._opened[stream, detector] = self._opened.get((stream, detector), 0) + 1
        self._quality(stream, detector)

    def verdict(self, stream: str, detector: str, verdict: str) -> None:
        """Count an applied verdict and refresh precision and labelled share of its stream and detector."""
        self.feedback.labels(stream, detector, verdict).inc()
        tally = self._verdicts.setdefault((stream, detector), {})
        tally[verdict] = tally.get(verdict, 0) + 1
        self._quality(stream, detector)

    def _quality(self, stream: str, detector: str) -> None:
        tally = self._verdicts.get((stream, detector), {})
        tp, fp = tally.get("true_positive", 0), tally.get("false_positive", 0)
        if tp + fp:
            self.precision.labels(stream, detector).set(tp / (tp + fp))
        opened = self._opened.get((stream, detector), 0)
        if opened:
            self.labelled.labels(stream, detector).set(min(1.0, (tp + fp) / opened))

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

    def totals(self) -> dict[str, float]:
        """Running totals for the terminal summary of ``make run``: events, alerts, dead letters, keys."""

        def total(metric: Counter) -> float:
            return sum(s.value for f in metric.collect() for s in f.samples if s.name.endswith("_total"))

        return {
            "events": total(self.consumed),
            "alerts": total(self.alerts),
            "dead_letters": total(self.dead_lettered),
            "keys": sum(s.value for f in self.active_keys.collect() for s in f.samples),
        }
