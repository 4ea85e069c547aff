"""Command line: ``python -m loadtest run --profile quick|entities|latency [--bootstrap HOST:PORT]``.

Also ``profile --detector ewma --detector hst`` (pyinstrument of the worker's hot path) and
``render results/<run-id>.json`` (redraw the PNGs and the Markdown of an earlier run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from loadtest import (
    RESULTS,
    cluster,
    cost,
    demoquality,
    hstbench,
    plots,
    report,
    runner,
    saturation,
    scenario,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario and write results/<run-id>.{json,md,png}")
    run.add_argument(
        "--profile", default="quick", help="scenario name (quick, entities, latency) or TOML path"
    )
    run.add_argument(
        "--bootstrap", help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or a local broker)"
    )
    run.add_argument(
        "--only",
        action="append",
        choices=PHASES,
        help="run only these phases of the scenario (repeatable), e.g. --only quality for fast iteration",
    )
    run.add_argument("--detector", action="append", help="run only these detector tables (repeatable)")
    run.add_argument(
        "--quix-python",
        type=Path,
        help="interpreter of the Quix Streams venv of the peer benchmark (make bench: .venv-quix/bin/python)",
    )
    prof = sub.add_parser("profile", help="pyinstrument the worker draining the backlog")
    prof.add_argument(
        "--detector",
        action="append",
        help="detector table name, or ceiling for detection off (repeatable; default ewma, hst)",
    )
    prof.add_argument("--scenario", default="quick", help="scenario providing data and specs")
    prof.add_argument("--bootstrap")
    hst = sub.add_parser("hst", help="HST engine: array forest vs River's HalfSpaceTrees, same run")
    hst.add_argument("--records", type=int, default=20_000)
    demo = sub.add_parser("demo", help="default spec on make run's demo stream: spikes caught, false opens")
    demo.add_argument("--seed", type=int, action="append", help="demo seeds (repeatable; default 7)")
    demo.add_argument("--rows", type=int, default=6000, help="rows per demo entity")
    costs = sub.add_parser("cost", help="in-process Scorer µs per event and snapshot bytes/µs per key")
    costs.add_argument("--detector", action="append", help="detector tables (repeatable; default: all)")
    costs.add_argument("--scenario", default="quick", help="scenario providing data and specs")
    costs.add_argument("--entities", type=int, default=1000)
    render = sub.add_parser("render", help="redraw the PNGs and rewrite the Markdown of a results JSON")
    render.add_argument("results", type=Path)
    return parser


def _draw(doc: dict[str, Any], out: Path) -> list[Path]:
    compacted = doc["series"]
    if not compacted.get("runs"):
        return []
    rid = doc["run_id"]
    try:
        return [
            plots.timeline(compacted, out / f"{rid}-timeline.png"),
            plots.distribution(compacted, out / f"{rid}-latency.png"),
        ]
    except ImportError as exc:  # results stay useful without plots
        print(f"no plots ({exc}); install the bench extra: pip install -e '.[bench]'", file=sys.stderr)
        return []


#: Scenario tables ``run --only`` can keep (the others are dropped).
PHASES = ("river", "quality", "memory", "throughput")


def _narrowed(
    sc: scenario.Scenario, only: list[str] | None, detectors: list[str] | None
) -> scenario.Scenario:
    """The scenario with only the chosen phases and detector tables (unknown detector names exit)."""
    update: dict[str, Any] = {}
    if only:
        update = {phase: None for phase in PHASES if phase not in only}
        if "throughput" not in only:
            update["latency"] = update["peers"] = None  # both drain the throughput phase's backlog
    if detectors:
        unknown = sorted(set(detectors) - set(sc.detectors))
        if unknown:
            raise SystemExit(f"unknown detector tables {unknown}; {sc.name} has {sorted(sc.detectors)}")
        update["detectors"] = {n: s for n, s in sc.detectors.items() if n in detectors}
        if sc.peers is not None and sc.peers.detectors and update.get("peers", sc.peers) is not None:
            kept = tuple(n for n in sc.peers.detectors if n in detectors)
            update["peers"] = sc.peers.model_copy(update={"detectors": kept}) if kept else None
    return sc.model_copy(update=update)


def cmd_run(args: argparse.Namespace) -> int:
    """Run a scenario end to end (or the chosen phases and detectors of it) and write its results."""
    sc = _narrowed(scenario.load(args.profile), args.only, args.detector)
    rid = runner.run_id(sc.name)
    began = time.monotonic()
    doc = runner.run(sc, rid, args.bootstrap, quix_python=args.quix_python)
    doc["series"] = plots.compact(doc["series"])
    doc["phases"]["total"] = round(time.monotonic() - began, 2)
    json_path = report.write_json(doc, RESULTS / f"{rid}.json")
    images = _draw(doc, RESULTS)
    md_path = report.write_markdown(doc, RESULTS / f"{rid}.md", images)
    print(md_path.read_text())
    for path in (json_path, md_path, *images):
        print(f"wrote {path}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    """Profile the worker's drain for each detector into results/profile-<detector>.txt."""
    sc = scenario.load(args.scenario)
    if sc.throughput is None:
        raise SystemExit(f"scenario {sc.name} has no [throughput] table to profile")
    names = args.detector or ["ewma", "hst"]
    data = saturation.backlog(sc)
    with cluster.cluster(args.bootstrap) as clu, tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        for name in names:
            out = RESULTS / f"profile-{name}.txt"
            spec = None if name == "ceiling" else sc.detectors[name]  # ceiling: detection off
            plan = saturation.RunPlan(name, spec, Path(tmp), profile=out, latency=False)
            result = saturation.run(clu, sc, data, plan)
            print(f"{name}: {result['throughput_eps']:.0f} events/s under the profiler; wrote {out}")
    return 0


def cmd_hst(args: argparse.Namespace) -> int:
    """Time the array HST against River's and write results/hst-<run-id>.json."""
    doc = hstbench.run(args.records)
    doc["run_id"] = runner.run_id("hst")
    path = report.write_json(doc, RESULTS / f"hst-{doc['run_id']}.json")
    for row in doc["rows"]:
        print(orjson.dumps(row).decode())
    print(f"wrote {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo stream through the default spec and write results/demo-<run-id>.json."""
    doc = demoquality.run(args.seed or [7], args.rows)
    doc["run_id"] = runner.run_id("demo")
    path = report.write_json(doc, RESULTS / f"demo-{doc['run_id']}.json")
    for row in doc["rows"]:
        print(
            f"seed {row['seed']}: caught {row['caught']}/{row['spikes']} spikes, {row['false_opens']} false "
            f"opens in {row['normal_rows']} normal rows ({row['false_open_rate']:.4%})"
        )
    print(f"wrote {path}")
    return 0


def cmd_cost(args: argparse.Namespace) -> int:
    """Time the Scorer per event and a seal per key; write results/cost-<run-id>.json."""
    chosen = scenario.load(args.scenario)
    doc = cost.run(chosen, args.detector or list(chosen.detectors), entities=args.entities)
    doc["run_id"] = runner.run_id("cost")
    path = report.write_json(doc, RESULTS / f"cost-{doc['run_id']}.json")
    for row in doc["rows"]:
        print(
            f"{row['detector']:>12}: {row['us_per_event']:8.1f} us/event (x{row['vs_zscore']} zscore), "
            f"sealed {row['sealed_bytes']:,} B in {row['seal_us']:.0f} us"
        )
    print(f"wrote {path}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    """Redraw the PNGs and rewrite the Markdown of an earlier run, next to its JSON."""
    doc = orjson.loads(args.results.read_bytes())
    images = _draw(doc, args.results.parent)
    md_path = report.write_markdown(doc, args.results.with_suffix(".md"), images)
    for path in (md_path, *images):
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m loadtest``."""
    args = _parser().parse_args(argv)
    commands = {"run": cmd_run, "profile": cmd_profile, "hst": cmd_hst, "demo": cmd_demo}
    commands.update(render=cmd_render, cost=cmd_cost)
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
