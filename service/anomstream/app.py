"""The composition root: the one place that wires parts together (the worker, the run command, the explorer).

The CLI, the integration tests and the load test build every worker through ``build_worker``.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from anomstream import __version__, config
from anomstream.detect.scorer import Scorer
from anomstream.detect.spec import DetectorSpecs
from anomstream.detect.store import Registry
from anomstream.ops import demo, logs, printer
from anomstream.ops.endpoint import Endpoint
from anomstream.ops.metrics import Metrics
from anomstream.ops.supervisor import Supervisor
from anomstream.stream import clients, preflight
from anomstream.stream.checkpoint import Checkpoint, CommitPolicy
from anomstream.stream.feedback import FeedbackIntake
from anomstream.stream.producer import Sink
from anomstream.stream.snapshot import Snapshots
from anomstream.stream.worker import Worker
from anomstream.ui.book import AlertBook
from anomstream.ui.feed import Feed, Publisher
from anomstream.ui.server import Explorer, UiServer


@dataclasses.dataclass(frozen=True, slots=True)
class RunOptions:
    """``anomstream run``: the worker, optionally with the demo producer and the alert printer."""

    demo: bool = False
    demo_rate: float = 40.0
    print_alerts: bool = False
    workers: int = 1
    summary_s: float = 30.0  # with print_alerts: a summary line this often (0: never)
    demo_feedback: float = 0.0  # with demo: the share of opened alerts the demo labels itself


@dataclasses.dataclass(frozen=True, slots=True)
class DemoOptions:
    """``anomstream demo``: a labelled demo stream."""

    config: demo.DemoConfig
    rate: float = 40.0
    count: int | None = None


def build_worker(settings: config.Settings, specs: DetectorSpecs, metrics: Metrics, log: Any) -> Worker:
    """Wire one worker (clients, sink, registry, checkpointer) from settings; used by ``run`` and tests."""
    kafka_log = logs.kafka_logger()
    exactly_once = settings.processing_guarantee == "exactly_once"
    txn_id = None
    if exactly_once:
        txn_id = settings.kafka.transactional_id or f"{settings.kafka.group_id}-{uuid.uuid4().hex[:12]}"
    sink = Sink(
        clients.producer(settings, logger=kafka_log, transactional_id=txn_id),
        exactly_once=exactly_once,
        flush_timeout_s=settings.worker.shutdown_timeout_s,
        # A transactional call still blocked after the transaction has timed out can never succeed.
        call_timeout_s=settings.kafka.transaction_timeout_ms / 1000 + settings.worker.shutdown_timeout_s,
    )
    registry = Registry(
        settings.worker.max_keys, settings.worker.key_ttl_s, max_bytes=settings.worker.max_state_bytes
    )
    store = None
    secret = settings.state.secret()
    if settings.state.enabled and secret is not None:
        store = Snapshots(
            sink=sink,
            consumer_factory=lambda: clients.reader(settings, logger=kafka_log),
            registry=registry,
            events_topic=settings.topics.events,
            state_topic=settings.topics.state,
            secret=secret,
            spec_digest=lambda stream: specs.for_stream(stream).digest(),
            metrics=metrics,
            log=log,
        )
    elif settings.state.enabled:
        log.warning(
            "snapshots_disabled",
            why="no ANOMSTREAM_STATE__HMAC_KEY or __HMAC_KEY_FILE set; model state will not survive restarts",
        )
    metrics.declare_streams((name, spec.detector) for name, spec in specs.streams.items())
    consumer = clients.consumer(settings, logger=kafka_log, on_stats=metrics.on_stats)
    policy = CommitPolicy(
        settings.worker.commit_interval_s,
        settings.worker.commit_max_records,
        snapshot_slice=settings.worker.snapshot_slice,
        snapshot_budget_s=settings.worker.snapshot_budget_s,
    )
    checkpoint = Checkpoint(
        consumer=consumer,
        sink=sink,
        registry=registry,
        snapshots=store,
        policy=policy,
        metrics=metrics,
        log=log,
    )
    scorer = Scorer(specs, registry)
    feedback = None
    if settings.topics.feedback:
        reader, limit = clients.reader(settings, logger=kafka_log), settings.worker.max_message_bytes
        feedback = FeedbackIntake(scorer, metrics, limit, log, reader=reader, topic=settings.topics.feedback)
    return Worker(
        consumer=consumer,
        sink=sink,
        checkpoint=checkpoint,
        scorer=scorer,
        feedback=feedback,
        metrics=metrics,
        topics=settings.topics,
        cfg=settings.worker,
        log=log,
        store=store,
    )


def build_ui(settings: config.Settings, port: int | None = None) -> UiServer:
    """Wire the explorer: a feed of the alert, score and feedback topics, a publisher, the web app."""
    log = logs.get("ui")
    ui = settings.ui
    book = AlertBook(ui.max_alerts, ui.series_points)
    topics = settings.topics
    reader = _throwaway(settings, "ui", "earliest")
    feed = Feed(
        reader, book, {"alerts": topics.alerts, "scores": topics.scores, "feedback": topics.feedback}, log
    )
    token = ui.token()
    publisher = None
    if token is not None and topics.feedback:
        publisher = Publisher(clients.producer(settings, logger=logs.kafka_logger()), topics.feedback)
    explorer = Explorer(book, publisher, token, log)
    return UiServer(explorer, feed, ui.host, ui.port if port is None else port)


def run_ui(settings: config.Settings, port: int | None = None) -> int:
    """``anomstream ui``: serve the explorer until SIGINT / SIGTERM."""
    preflight.connect(settings, logs.get("admin"))  # unreachable / refused: one line and exit 4 / 5
    build_ui(settings, port).serve(announce=True)
    return 0


def create_topics(settings: config.Settings) -> list[str]:
    """Create the topics anomstream needs (after a bounded wait for the broker); returns the new ones."""
    return clients.ensure_topics(preflight.connect(settings, logs.get("admin")), settings.topics)


def check_broker(settings: config.Settings) -> None:
    """Fail with a one-line error (exit 4 or 5) unless the broker answers and accepts our identity."""
    preflight.connect(settings, logs.get("admin"))


def run_service(opts: RunOptions, settings: config.Settings, specs: DetectorSpecs) -> int:
    """``anomstream run``: one worker in this process, or a supervisor of ``opts.workers`` processes."""
    # Signals first: a SIGTERM during start-up must still end in a clean stop, not a killed process.
    stopped = threading.Event()
    worker: Worker | None = None

    def stop() -> None:
        stopped.set()
        if worker is not None:
            worker.stop()

    _install_signals(stop)
    log = logs.get("worker")
    created = preflight.start_up(settings, log)  # reachable, authenticated, authorised: or exit 4/5/6
    if created:
        log.info("topics_created", topics=created)
    if opts.workers > 1:
        return _supervise(opts, settings, stopped)
    metrics = Metrics(CollectorRegistry())
    metrics.info.info({"version": __version__, "guarantee": str(settings.processing_guarantee)})
    worker = build_worker(settings, specs, metrics, log)
    if stopped.is_set():
        worker.stop()
    endpoint = Endpoint(
        metrics.registry, *_probes(worker, settings), settings.metrics.host, settings.metrics.port
    ).start()
    helpers = _helpers(opts, settings, stopped, metrics)
    log.info(
        "worker_started",
        metrics_port=endpoint.port,
        bootstrap=settings.kafka.bootstrap_servers,
        events=settings.topics.events,
        alerts=settings.topics.alerts,
        group=settings.kafka.group_id,
        guarantee=settings.processing_guarantee,
        snapshots=worker.store is not None,
    )
    try:
        worker.run()
    finally:
        stopped.set()
        for thread in helpers:
            thread.join(timeout=10)
        endpoint.close()
        log.info("worker_stopped")
    return 0


def run_demo(opts: DemoOptions, settings: config.Settings) -> int:
    """``anomstream demo``: produce labelled demo events until ``count`` or a signal."""
    create_topics(settings)
    stopped = threading.Event()
    _install_signals(stopped.set)
    sent = demo.produce(
        clients.producer(settings),
        settings.topics.events,
        opts.config,
        rate=opts.rate,
        count=opts.count,
        stopped=stopped.is_set,
    )
    print(f"produced {sent} demo events to {settings.topics.events}")
    return 0


def _install_signals(stop: Callable[[], None]) -> None:
    def handler(signum: int, _frame: Any) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _thread(target: Callable[[], Any], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def _supervise(opts: RunOptions, settings: config.Settings, stopped: threading.Event) -> int:
    supervisor = Supervisor(["run"], opts.workers, settings.metrics.port)

    def stop() -> None:
        stopped.set()
        supervisor.stop()

    _install_signals(stop)
    supervisor.start()
    if stopped.is_set():
        supervisor.stop()
    helpers = _helpers(opts, settings, stopped)
    try:
        return supervisor.wait()
    finally:
        stopped.set()
        for thread in helpers:
            thread.join(timeout=10)
        supervisor.kill_stragglers()


def _probes(worker: Worker, settings: config.Settings) -> tuple[Any, Any]:
    def live() -> tuple[bool, str]:
        age = worker.clock() - worker.heartbeat
        ok = age <= settings.metrics.heartbeat_timeout_s
        return ok, f"loop heartbeat {age:.1f}s ago"

    def ready() -> tuple[bool, str]:
        if not worker.assigned:
            return False, "no partitions assigned"
        return True, f"{len(worker.assigned)} partitions assigned"

    return live, ready


def _helpers(
    opts: RunOptions, settings: config.Settings, stopped: threading.Event, metrics: Metrics | None = None
) -> list[Any]:
    threads = []
    if opts.demo:
        cfg = demo.DemoConfig(shift_prob=0.0005)
        producer = clients.producer(settings, logger=logs.kafka_logger())
        threads.append(
            _thread(
                lambda: demo.produce(
                    producer,
                    settings.topics.events,
                    cfg,
                    rate=opts.demo_rate,
                    count=None,
                    stopped=stopped.is_set,
                ),
                "demo",
            )
        )
    if opts.demo and opts.demo_feedback > 0 and settings.topics.feedback:
        threads.append(_thread(lambda: _demo_labeller(opts, settings, stopped), "demo-feedback"))
    if opts.print_alerts:
        consumer = _throwaway(settings, "printer", "latest")  # from "now"
        consumer.subscribe([settings.topics.alerts])
        summary = printer.Summary(metrics.totals, opts.summary_s) if metrics and opts.summary_s > 0 else None
        threads.append(
            _thread(lambda: printer.print_alerts(consumer, sys.stdout, stopped.is_set, summary), "printer")
        )
    return threads


def _demo_labeller(opts: RunOptions, settings: config.Settings, stopped: threading.Event) -> None:
    consumer = _throwaway(settings, "demo-feedback", "latest")
    consumer.subscribe([settings.topics.alerts])
    publisher = Publisher(clients.producer(settings, logger=logs.kafka_logger()), settings.topics.feedback)
    demo.label_alerts(
        consumer, lambda alert, verdict: publisher.verdict(alert, verdict, who="demo"), opts.demo_feedback,
        stopped.is_set,
    )  # fmt: skip


def _throwaway(settings: config.Settings, purpose: str, offset_reset: str) -> Any:
    """A consumer in a group of its own: readers beside the workers must never move their offsets."""
    group = f"anomstream-{purpose}-{uuid.uuid4().hex[:8]}"
    return clients.consumer(settings, logger=logs.kafka_logger(), group_id=group, offset_reset=offset_reset)
