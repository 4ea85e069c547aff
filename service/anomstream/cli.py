"""The composition root: parses the command line, loads configuration once, wires the parts together."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from anomstream import __version__, broker, config, demo, evaluate, logs, printer, replay, schemas
from anomstream.checkpoint import Checkpointer
from anomstream.detectors import catalog
from anomstream.detectors.registry import Registry
from anomstream.endpoint import Endpoint
from anomstream.errors import AnomstreamError, ConfigError
from anomstream.metrics import Metrics
from anomstream.scorer import Scorer
from anomstream.sink import Sink
from anomstream.spec import DetectorSpecs
from anomstream.supervisor import Supervisor
from anomstream.worker import Worker


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of every sub-command (also used by tests to parse real argv)."""
    parser = argparse.ArgumentParser(prog="anomstream", description="Real-time anomaly detection on Kafka")
    parser.add_argument("--version", action="version", version=f"anomstream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the detection worker")
    run.add_argument("--demo", action="store_true", help="also run the demo producer")
    run.add_argument("--demo-rate", type=float, default=40.0, help="demo events per second")
    run.add_argument("--print-alerts", action="store_true", help="print alerts as they arrive")
    run.add_argument("--workers", type=int, default=1, help="worker processes in this group (one per core)")
    run.add_argument("--metrics-port", type=int, default=None, help="overrides ANOMSTREAM_METRICS__PORT")
    dem = sub.add_parser("demo", help="produce a labelled demo stream with injected anomalies")
    dem.add_argument("--rate", type=float, default=40.0, help="events per second (0 = unthrottled)")
    dem.add_argument("--entities", type=int, default=8)
    dem.add_argument("--count", type=int, default=None, help="stop after this many events")
    dem.add_argument("--spike-prob", type=float, default=0.004)
    dem.add_argument("--shift-prob", type=float, default=0.0005)
    dem.add_argument("--seed", type=int, default=7)
    sub.add_parser("create-topics", help="create the topics anomstream needs")
    sub.add_parser("show-config", help="print the effective configuration, secrets masked")
    replay.add_parser(sub)
    evaluate.add_parser(sub)
    exp = sub.add_parser("export-schemas", help="write JSON Schemas of the wire contract")
    exp.add_argument("--out", type=Path, default=Path("schemas"))
    return parser


def _install_signals(stop: Callable[[], None]) -> None:
    def handler(signum: int, _frame: Any) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _thread(target: Callable[[], Any], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def _run(args: argparse.Namespace, settings: config.Settings, specs: DetectorSpecs) -> int:
    # Signals first: a SIGTERM during start-up must still end in a clean stop, not a killed process.
    stopped = threading.Event()
    worker: Worker | None = None

    def stop() -> None:
        stopped.set()
        if worker is not None:
            worker.stop()

    _install_signals(stop)
    log = logs.get("worker")
    created = broker.ensure_topics(broker.admin(settings, logger=logs.kafka_logger()), settings.topics)
    if created:
        log.info("topics_created", topics=created)
    if args.workers > 1:
        return _supervise(args, settings, stopped)
    metrics = Metrics(CollectorRegistry())
    metrics.info.info({"version": __version__, "guarantee": str(settings.processing_guarantee)})
    worker = build_worker(settings, specs, metrics, log)
    if stopped.is_set():
        worker.stop()
    endpoint = Endpoint(
        metrics.registry, *_probes(worker, settings), settings.metrics.host, settings.metrics.port
    ).start()
    helpers = _helpers(args, settings, stopped)
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


def build_worker(settings: config.Settings, specs: DetectorSpecs, metrics: Metrics, log: Any) -> Worker:
    """Wire one worker (clients, sink, registry, checkpointer) from settings; used by ``run`` and tests."""
    kafka_log = logs.kafka_logger()
    exactly_once = settings.processing_guarantee == "exactly_once"
    txn_id = None
    if exactly_once:
        txn_id = settings.kafka.transactional_id or f"{settings.kafka.group_id}-{uuid.uuid4().hex[:12]}"
    sink = Sink(
        broker.producer(settings, logger=kafka_log, transactional_id=txn_id),
        exactly_once=exactly_once,
        flush_timeout_s=settings.worker.shutdown_timeout_s,
    )
    registry = Registry(settings.worker.max_keys, settings.worker.key_ttl_s)
    store = None
    secret = settings.state.secret()
    if settings.state.enabled and secret is not None:
        store = Checkpointer(
            sink=sink,
            consumer_factory=lambda: broker.reader(settings, logger=kafka_log),
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
    return Worker(
        consumer=broker.consumer(settings, logger=kafka_log, on_stats=metrics.on_stats),
        sink=sink,
        scorer=Scorer(specs, registry),
        metrics=metrics,
        topics=settings.topics,
        cfg=settings.worker,
        log=log,
        store=store,
    )


def _supervise(args: argparse.Namespace, settings: config.Settings, stopped: threading.Event) -> int:
    supervisor = Supervisor(["run"], args.workers, settings.metrics.port)

    def stop() -> None:
        stopped.set()
        supervisor.stop()

    _install_signals(stop)
    supervisor.start()
    if stopped.is_set():
        supervisor.stop()
    helpers = _helpers(args, settings, stopped)
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


def _helpers(args: argparse.Namespace, settings: config.Settings, stopped: threading.Event) -> list[Any]:
    threads = []
    if args.demo:
        cfg = demo.DemoConfig(shift_prob=0.0005)
        producer = broker.producer(settings, logger=logs.kafka_logger())
        threads.append(
            _thread(
                lambda: demo.produce(
                    producer,
                    settings.topics.events,
                    cfg,
                    rate=args.demo_rate,
                    count=None,
                    stopped=stopped.is_set,
                ),
                "demo",
            )
        )
    if args.print_alerts:
        # A throwaway group reading from "now": printing must never move the workers' offsets.
        consumer = _printer_consumer(settings)
        consumer.subscribe([settings.topics.alerts])
        threads.append(_thread(lambda: printer.print_alerts(consumer, sys.stdout, stopped.is_set), "printer"))
    return threads


def _printer_consumer(settings: config.Settings) -> Any:
    group = f"anomstream-printer-{uuid.uuid4().hex[:8]}"
    return broker.consumer(settings, logger=logs.kafka_logger(), group_id=group, offset_reset="latest")


def _demo(args: argparse.Namespace, settings: config.Settings) -> int:
    broker.ensure_topics(broker.admin(settings), settings.topics)
    cfg = demo.DemoConfig(
        entities=args.entities, spike_prob=args.spike_prob, shift_prob=args.shift_prob, seed=args.seed
    )
    stopped = threading.Event()
    _install_signals(stopped.set)
    sent = demo.produce(
        broker.producer(settings),
        settings.topics.events,
        cfg,
        rate=args.rate,
        count=args.count,
        stopped=stopped.is_set,
    )
    print(f"produced {sent} demo events to {settings.topics.events}")
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "export-schemas":
        for path in schemas.export(args.out):
            print(f"wrote {path}")
        return 0
    overrides = {"metrics.port": args.metrics_port} if getattr(args, "metrics_port", None) is not None else {}
    settings, specs = config.load(overrides)
    catalog.validate(specs)  # a bad spec is a config error before any client exists
    logs.configure(settings.log_format, settings.log_level)
    if args.command == "show-config":
        doc = {"settings": config.masked(settings), "detectors": specs.model_dump(mode="json")}
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if args.command == "create-topics":
        created = broker.ensure_topics(broker.admin(settings), settings.topics)
        print(f"topics on {settings.kafka.bootstrap_servers}: created {created or 'none (all existed)'}")
        return 0
    if args.command == "demo":
        return _demo(args, settings)
    if args.command == "replay":
        return replay.run(args, specs, settings)
    if args.command == "evaluate":
        return evaluate.run(args, specs)
    return _run(args, settings, specs)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``anomstream`` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"anomstream: {exc}", file=sys.stderr)
        return exc.exit_code
    except AnomstreamError as exc:
        print(f"anomstream: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
