"""The argument parser of every sub-command, and the conversion of parsed arguments to typed options."""

from __future__ import annotations

import argparse
from pathlib import Path

from anomstream import __version__
from anomstream.app import DemoOptions, RunOptions
from anomstream.detect.catalog import CATALOG
from anomstream.detect.specfiles import SpecChoice, shipped
from anomstream.offline.evaluate import EvaluateOptions
from anomstream.offline.replay import ReplayOptions
from anomstream.offline.sources import ColumnMap
from anomstream.ops.demo import DemoConfig


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of every sub-command (also used by tests to parse real argv)."""
    parser = argparse.ArgumentParser(prog="anomstream", description="Real-time anomaly detection on Kafka")
    parser.add_argument("--version", action="version", version=f"anomstream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the detection worker")
    run.add_argument("--demo", action="store_true", help="also run the demo producer")
    run.add_argument("--demo-rate", type=float, default=40.0, help="demo events per second")
    run.add_argument(
        "--demo-feedback", type=float, default=0.0, help="with --demo: share of alerts the demo labels itself"
    )
    run.add_argument("--print-alerts", action="store_true", help="print alerts as they arrive")
    run.add_argument(
        "--summary-every",
        type=float,
        default=30.0,
        help="with --print-alerts: a summary line every N s (0: off)",
    )
    run.add_argument("--workers", type=int, default=1, help="worker processes in this group (one per core)")
    run.add_argument("--metrics-port", type=int, default=None, help="overrides ANOMSTREAM_METRICS__PORT")
    dem = sub.add_parser("demo", help="produce a labelled demo stream with injected anomalies")
    dem.add_argument("--rate", type=float, default=40.0, help="events per second (0 = unthrottled)")
    dem.add_argument("--entities", type=int, default=8)
    dem.add_argument("--count", type=int, default=None, help="stop after this many events")
    dem.add_argument("--spike-prob", type=float, default=0.004)
    dem.add_argument("--shift-prob", type=float, default=0.0005)
    dem.add_argument("--seed", type=int, default=7)
    ui = sub.add_parser("ui", help="serve the anomaly explorer (alerts, series, feedback)")
    ui.add_argument("--port", type=int, default=None, help="listen port (default ANOMSTREAM_UI__PORT, 8080)")
    sub.add_parser("create-topics", help="create the topics anomstream needs")
    sub.add_parser("show-config", help="print the effective configuration, secrets masked")
    _add_replay(sub)
    _add_evaluate(sub)
    det = sub.add_parser("detectors", help="list the detector catalog: summary, kind and parameters")
    det.add_argument("--markdown", action="store_true", help="print the README / docs table instead")
    exp = sub.add_parser("export-schemas", help="write JSON Schemas of the wire contract")
    exp.add_argument("--out", type=Path, default=Path("schemas"))
    return parser


def _add_replay(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="score files (or a topic) offline through the live scorer")
    p.add_argument("files", nargs="*", type=Path, help="CSV, JSONL or Parquet files")
    p.add_argument("--out", type=Path, help="output .csv or .jsonl (default: CSV on stdout)")
    p.add_argument("--bands", action="store_true", help="record every row's expected band (slower)")
    p.add_argument("--from-kafka", metavar="TOPIC", help="replay a topic instead of files")
    p.add_argument("--offset", type=int, default=0, help="with --from-kafka: first offset (all partitions)")
    p.add_argument("--partition", type=int, help="with --from-kafka: only this partition")
    _add_columns(p)
    _add_spec(p)


def _add_evaluate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("evaluate", help="backtest a detector on labelled files (metrics + NAB)")
    p.add_argument("paths", nargs="+", type=Path, help="labelled files, or folders searched recursively")
    p.add_argument("--labels", type=Path, help="NAB windows JSON (e.g. combined_windows.json)")
    p.add_argument(
        "--format", choices=("text", "json", "nab"), default="text", help="nab: also write results"
    )
    p.add_argument("--out", type=Path, help="with --format nab: NAB results folder")
    p.add_argument("--report", type=Path, help="write an HTML report (and PNGs) into this folder")
    p.add_argument(
        "--loco", action="store_true", help="leave-one-category-out: threshold chosen without each category"
    )
    _add_columns(p)
    _add_spec(p, all_detectors=True)


def _add_columns(parser: argparse.ArgumentParser) -> None:
    """Column-mapping options shared by ``replay`` and ``evaluate``."""
    parser.add_argument("--entity-col", help="entity id column (default: entity_id, else file stem)")
    parser.add_argument("--timestamp-col", default="timestamp", help="timestamp column")
    parser.add_argument("--value-cols", help="comma-separated value columns (default: all other)")
    parser.add_argument("--stream", help="stream of every event (default: the record's, else default)")
    parser.add_argument("--label-col", help="per-row 0/1 label column (excluded from values)")


def _add_spec(parser: argparse.ArgumentParser, *, all_detectors: bool = False) -> None:
    """``--spec`` and ``--detector`` (and ``--all-detectors`` for evaluate)."""
    parser.add_argument(
        "--spec", help=f"TOML detector spec file, or a shipped spec name ({', '.join(shipped())})"
    )
    parser.add_argument(
        "--detector", choices=sorted(CATALOG), help="score with this catalog detector at default params"
    )
    if all_detectors:
        parser.add_argument(
            "--all-detectors", action="store_true", help="evaluate every catalog detector in turn"
        )


def _columns(args: argparse.Namespace) -> ColumnMap:
    cols = tuple(c.strip() for c in (args.value_cols or "").split(",") if c.strip())
    return ColumnMap(args.entity_col, args.timestamp_col, cols, args.stream)


def _choice(args: argparse.Namespace) -> SpecChoice:
    return SpecChoice(args.spec, args.detector, getattr(args, "all_detectors", False), args.stream)


def run_options(args: argparse.Namespace) -> RunOptions:
    """Typed options of ``anomstream run``."""
    return RunOptions(
        args.demo, args.demo_rate, args.print_alerts, args.workers, args.summary_every, args.demo_feedback
    )


def demo_options(args: argparse.Namespace) -> DemoOptions:
    """Typed options of ``anomstream demo``."""
    cfg = DemoConfig(
        entities=args.entities, spike_prob=args.spike_prob, shift_prob=args.shift_prob, seed=args.seed
    )
    return DemoOptions(cfg, args.rate, args.count)


def replay_options(args: argparse.Namespace) -> ReplayOptions:
    """Typed options of ``anomstream replay``."""
    return ReplayOptions(
        files=tuple(args.files),
        out=args.out,
        bands=args.bands,
        from_kafka=args.from_kafka,
        offset=args.offset,
        partition=args.partition,
        columns=_columns(args),
        label_col=args.label_col,
        choice=_choice(args),
    )


def evaluate_options(args: argparse.Namespace) -> EvaluateOptions:
    """Typed options of ``anomstream evaluate``."""
    return EvaluateOptions(
        paths=tuple(args.paths),
        labels=args.labels,
        format=args.format,
        out=args.out,
        report=args.report,
        loco=args.loco,
        columns=_columns(args),
        label_col=args.label_col,
        choice=_choice(args),
    )
