"""The composition root: parses the command line, loads configuration once, wires the parts together."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from anomstream import broker, config
from anomstream.errors import AnomstreamError, ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anomstream", description="Real-time anomaly detection on Kafka")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the detection worker")
    run.add_argument("--demo", action="store_true", help="also run the demo producer")
    run.add_argument("--print-alerts", action="store_true", help="print alerts as they arrive")
    sub.add_parser("create-topics", help="create the topics anomstream needs")
    sub.add_parser("show-config", help="print the effective configuration, secrets masked")
    return parser


def _show_config(settings: config.Settings, specs: Any) -> int:
    doc = {"settings": config.masked(settings), "detectors": specs.model_dump(mode="json")}
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _create_topics(settings: config.Settings) -> int:
    created = broker.ensure_topics(broker.admin(settings), settings.topics)
    print(f"topics on {settings.kafka.bootstrap_servers}: created {created or 'none (all existed)'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``anomstream`` console script; returns the process exit code."""
    args = _parser().parse_args(argv)
    try:
        settings, specs = config.load()
        if args.command == "show-config":
            return _show_config(settings, specs)
        if args.command in ("create-topics", "run"):
            code = _create_topics(settings)
            if args.command == "run":
                print("the detection worker is not built yet (issue: detection worker); topics are ready")
            return code
    except ConfigError as exc:
        print(f"anomstream: {exc}", file=sys.stderr)
        return exc.exit_code
    except AnomstreamError as exc:
        print(f"anomstream: {exc}", file=sys.stderr)
        return exc.exit_code
    return 2
