"""``anomstream`` on the command line: argparse only, typed options in, exit codes out."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import orjson
from confluent_kafka import KafkaException

from anomstream import app, config
from anomstream.cli.parser import (
    build_parser,
    demo_options,
    evaluate_options,
    replay_options,
    run_options,
)
from anomstream.detect import catalog, describe
from anomstream.errors import AnomstreamError, ConfigError
from anomstream.offline import evaluate, replay
from anomstream.ops import logs
from anomstream.wire import schemas

__all__ = ["build_parser", "evaluate_options", "main", "replay_options"]


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "export-schemas":
        for path in schemas.export(args.out):
            print(f"wrote {path}")
        return 0
    if args.command == "detectors":  # needs no settings: it describes the code
        sys.stdout.write(describe.markdown() if args.markdown else describe.text())
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
        created = app.create_topics(settings)
        print(f"topics on {settings.kafka.bootstrap_servers}: created {created or 'none (all existed)'}")
        return 0
    if args.command == "demo":
        return app.run_demo(demo_options(args), settings)
    if args.command == "replay":
        if args.from_kafka:
            app.check_broker(settings)  # unreachable / refused: one line and exit 4 / 5, not a traceback
        return replay.run(replay_options(args), specs, settings)
    if args.command == "ui":
        return app.run_ui(settings, args.port)
    if args.command == "evaluate":
        return evaluate.run(evaluate_options(args), specs)
    return app.run_service(run_options(args), settings, specs)


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
    except KafkaException as exc:  # a broker failure no check above anticipated: still one line
        print(f"anomstream: Kafka error: {exc.args[0].str()}", file=sys.stderr)
        return 1
