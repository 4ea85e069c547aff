"""``anomstream evaluate``: replay labelled files and score the detector (point metrics, windows, NAB).

Labels come per row (``--label-col``) or as NAB windows (``--labels combined_windows.json``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from anomstream.detect.spec import DetectorSpecs
from anomstream.detect.specfiles import SpecChoice, chosen_specs
from anomstream.errors import ConfigError
from anomstream.offline.backtest import (
    Evaluation,
    SeriesRun,
    Windows,
    nab_scores,
    point_metrics,
    series_runs,
)
from anomstream.offline.loco import loco, print_loco
from anomstream.offline.nab import PROFILES, load_windows
from anomstream.offline.replay import Replayer, replay_files
from anomstream.offline.sources import FORMATS, ColumnMap


def discover(paths: Sequence[Path]) -> list[tuple[str, Path]]:
    """``(key, file)`` of every input: folders are searched recursively, keys are paths relative to them.

    Examples
    --------
    >>> discover([Path("data/realKnownCause/nyc_taxi.csv")])
    [('realKnownCause/nyc_taxi.csv', PosixPath('data/realKnownCause/nyc_taxi.csv'))]
    """
    found: list[tuple[str, Path]] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in FORMATS and p.is_file())
            found.extend((p.relative_to(path).as_posix(), p) for p in files)
        else:
            found.append(("/".join(path.parts[-2:]), path))
    return found


def _windows_for(key: str, path: Path, labels: dict[str, Windows]) -> tuple[str, Windows]:
    """The labels entry of a file: its key, else the longest trailing part of its path that is a key."""
    if key in labels:
        return key, labels[key]
    parts = path.resolve().parts
    for n in range(len(parts), 0, -1):
        candidate = "/".join(parts[-n:])
        if candidate in labels:
            return candidate, labels[candidate]
    raise ConfigError(f"{path}: no entry in the labels file (tried {key!r} and trailing parts of the path)")


def evaluate(
    name: str,
    specs: DetectorSpecs,
    files: Sequence[tuple[str, Path]],
    args: EvaluateOptions,
    labels: dict[str, Windows] | None,
) -> Evaluation:
    """Replay every file with ``specs`` and score the result."""
    replayer = Replayer(specs, bands=args.report is not None)
    cmap = args.columns
    runs: list[SeriesRun] = []
    rejected = 0
    for key, path in files:
        series, windows = _windows_for(key, path, labels) if labels is not None else (key, None)
        verdicts = replay_files([path], cmap, replayer, args.label_col)
        got, bad = series_runs(series, verdicts, windows)
        runs.extend(got)
        rejected += bad
    return Evaluation(name, runs, rejected, point_metrics(runs), nab_scores(runs))


@dataclasses.dataclass(frozen=True, slots=True)
class EvaluateOptions:
    """What ``anomstream evaluate`` scores, against which labels, and how it reports."""

    paths: tuple[Path, ...] = ()
    labels: Path | None = None
    format: str = "text"
    out: Path | None = None
    report: Path | None = None
    loco: bool = False  # also print leave-one-category-out scores (keys' first folder = category)
    columns: ColumnMap = dataclasses.field(default_factory=ColumnMap)
    label_col: str | None = None
    choice: SpecChoice = dataclasses.field(default_factory=SpecChoice)


def run(args: EvaluateOptions, specs: DetectorSpecs) -> int:
    """Run ``anomstream evaluate``; returns the exit code."""
    if (args.labels is None) == (args.label_col is None):
        print(
            "anomstream evaluate: give exactly one of --labels WINDOWS.json or --label-col COL",
            file=sys.stderr,
        )
        return 2
    if args.format == "nab" and (args.out is None or args.labels is None):
        print("anomstream evaluate: --format nab needs --labels and --out DIR", file=sys.stderr)
        return 2
    labels = load_windows(args.labels) if args.labels else None
    files = discover(args.paths)
    if not files:
        print("anomstream evaluate: no CSV, JSONL or Parquet file found", file=sys.stderr)
        return 2
    results = [
        evaluate(name, chosen, files, args, labels) for name, chosen in chosen_specs(args.choice, specs)
    ]
    if args.format == "nab" and args.out is not None:  # checked above; narrows the type
        for result in results:
            folder = "anomstream" if len(results) == 1 else f"anomstream-{result.name}"
            written = write_nab_results(args.out, folder, result.runs)
            print(f"wrote {len(written)} NAB result files under {args.out / folder}", file=sys.stderr)
    if args.format == "json":
        json.dump([summary(r) for r in results], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_results(results, sys.stdout)
    if args.loco:
        for result in results:
            sys.stdout.write(f"\n{result.name}: ")
            print_loco([loco(result.runs, p) for p in PROFILES], sys.stdout)
    if args.report:
        from anomstream.offline.report import write_report

        print(f"report: {write_report(args.report, results)}", file=sys.stderr)
    return 0


def write_nab_results(out: Path, detector: str, runs: Sequence[SeriesRun]) -> list[Path]:
    """NAB's results layout: ``out/<detector>/<category>/<detector>_<file>.csv``.

    Columns ``timestamp,value,anomaly_score,label`` (label 1 inside a window), one row per scored row.
    """
    written = []
    for run_ in runs:
        key = Path(run_.name.replace("#", "_"))
        target = out / detector / key.parent / f"{detector}_{key.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8") as handle:
            handle.write("timestamp,value,anomaly_score,label\n")
            for stamp, value, score, label in zip(
                run_.timestamps, run_.values, run_.scores, run_.labels, strict=True
            ):
                handle.write(f"{stamp},{float(value)!r},{float(score)!r},{int(label)}\n")
        written.append(target)
    return written


def summary(result: Evaluation) -> dict[str, Any]:
    """Plain-data summary of one evaluation (``--format json``)."""
    points = dataclasses.asdict(result.points) | {"window_recall": result.points.window_recall}
    return {
        "detector": result.name,
        "series": len(result.runs),
        "rejected": result.rejected,
        "points": {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in points.items()},
        "nab": {
            profile: {
                "optimised": s.optimised.score,
                "threshold": s.optimised.threshold,
                "live": s.live.score,
            }
            for profile, s in result.nab.items()
        },
    }


def _f(x: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def print_results(results: Sequence[Evaluation], out: IO[str]) -> None:
    """One block per detector, or a table when several were evaluated."""
    if len(results) == 1:
        _print_one(results[0], out)
        return
    head = ["detector", "P", "R", "F1", "ROC", "PR", "win"]
    head += [f"{p}:{way}" for p in PROFILES for way in ("opt", "live")]
    out.write("  ".join(f"{h:>{_width(h)}}" for h in head) + "\n")
    for r in results:
        p = r.points
        cells = [
            r.name,
            *(_f(x) for x in (p.precision, p.recall, p.f1, p.roc_auc, p.pr_auc, p.window_recall)),
        ]
        cells += [
            _f(getattr(r.nab[prof], way).score, 1) for prof in PROFILES for way in ("optimised", "live")
        ]
        out.write("  ".join(f"{c:>{_width(h)}}" for c, h in zip(cells, head, strict=True)) + "\n")


def _width(head: str) -> int:
    return 22 if head == "detector" else max(len(head), 5)


def _print_one(r: Evaluation, out: IO[str]) -> None:
    p = r.points
    rows = sum(len(run_.scores) for run_ in r.runs)
    out.write(f"detector: {r.name}; {len(r.runs)} series, {rows} rows, {r.rejected} rejected\n")
    out.write(
        f"points past probation ({p.rows} rows, {p.positives} labelled): precision {_f(p.precision)}"
        f"  recall {_f(p.recall)}  F1 {_f(p.f1)}  ROC-AUC {_f(p.roc_auc)}  PR-AUC {_f(p.pr_auc)}\n"
    )
    out.write(
        f"windows: recall {_f(p.window_recall)} ({p.windows_alarmed}/{p.windows} with an alarm);"
        f" {p.alarms} alarms, {p.false_alarms} outside every window\n"
    )
    out.write(f"{'NAB profile':<20}{'optimised threshold':>26}{'live alerts':>14}\n")
    for profile, s in r.nab.items():
        opt = f"{s.optimised.score:.2f} (at {s.optimised.threshold:.4f})"
        out.write(f"{profile:<20}{opt:>26}{s.live.score:>14.2f}\n")
