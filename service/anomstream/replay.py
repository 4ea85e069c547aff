"""``anomstream replay``: files (or a topic) through the live ``Scorer`` path without a broker.

Writes one verdict row per input row: score, threshold, decision, alert status and explanation.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from anomstream.config import Settings
from anomstream.detectors.base import Band
from anomstream.detectors.registry import Registry
from anomstream.models import Event
from anomstream.outputs import Progress, open_writer
from anomstream.scorer import Outcome, Scorer, features
from anomstream.sources import ColumnMap, Row, count_rows, kafka_rows, rows
from anomstream.spec import DetectorSpecs
from anomstream.specfiles import add_spec_options, chosen_specs


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """What replay decided for one input row (``outcome`` is ``None`` for a rejected row).

    ``expected`` is the band every feature was judged against: from the alert when one was raised,
    else from the model before it scored the row when bands are recorded, else empty.
    """

    row: Row
    outcome: Outcome | None
    expected: dict[str, Band]

    @property
    def status(self) -> str | None:
        """The alert status emitted for this row, if any."""
        alert = self.outcome.alert if self.outcome else None
        return alert.status if alert else None

    @property
    def alarm(self) -> bool:
        """True when this row raised an ``open`` or ``ongoing`` alert (what a pager would receive)."""
        return self.status in ("open", "ongoing")

    def as_dict(self) -> dict[str, Any]:
        """The output row: coordinates, values, decision and explanation."""
        row, out = self.row, self.outcome
        event = row.event
        alert = out.alert if out else None
        top = max(alert.contributions, key=alert.contributions.__getitem__) if alert else None
        if top is None and event is not None and len(event.values) == 1:
            top = next(iter(event.values))
        band = self.expected.get(top) if top else None
        return {
            "topic": row.source.topic,
            "partition": row.source.partition,
            "offset": row.source.offset,
            "entity_id": event.entity_id if event else None,
            "stream": event.stream if event else None,
            "timestamp": row.timestamp,
            "values": dict(event.values) if event else None,
            "score": out.score if out else None,
            "threshold": out.threshold if out else None,
            "anomalous": out.anomalous if out else None,
            "warming": out.warming if out else None,
            "adapted": out.adapted if out else None,
            "alert_status": self.status,
            "alert_id": alert.alert_id if alert else None,
            "severity": alert.severity if alert else None,
            "top_feature": top,
            "top_share": alert.contributions.get(top) if alert and top else None,
            "expected_mean": band.mean if band else None,
            "expected_low": band.low if band else None,
            "expected_high": band.high if band else None,
            "label": row.label,
            "error": row.error,
        }


class Replayer:
    """One ``Scorer`` over every replayed row, like a single worker owning every key.

    Parameters
    ----------
    specs
        The detector specs, exactly as the worker would load them.
    bands
        Also record, for every row, the band the model judged it against (one ``explain_one`` per row
        on the model before it sees the row; reads state only, so scores are unchanged).

    Examples
    --------
    >>> from anomstream.models import Source
    >>> rep = Replayer(DetectorSpecs())
    >>> row = Row(Source(topic="f.csv", partition=0, offset=0), "0", Event(
    ...     entity_id="a", timestamp=0, values={"x": 1.0}))
    >>> rep.feed(row).outcome.warming
    True
    """

    def __init__(self, specs: DetectorSpecs, *, bands: bool = False) -> None:
        self.scorer = Scorer(specs, Registry(max_keys=sys.maxsize, ttl_s=math.inf))
        self.bands = bands

    def feed(self, row: Row) -> Verdict:
        """Score one row through the live decision path."""
        if row.event is None:
            return Verdict(row, None, {})
        expected = self._bands(row.event) if self.bands else {}
        outcome = self.scorer.process(row.event, row.source)
        if outcome.alert is not None:
            expected = {k: Band(e.mean, e.low, e.high) for k, e in outcome.alert.expected.items()} or expected
        return Verdict(row, outcome, expected)

    def _bands(self, event: Event) -> dict[str, Band]:
        spec = self.scorer.specs.for_stream(event.stream)
        state = self.scorer.registry.peek((event.stream, event.entity_id))
        if state is None or state.n_seen == 0 or state.digest != spec.digest():
            return {}
        x = features(event, spec)
        return dict(state.detector.explain_one(x, event.timestamp.timestamp()).expected) if x else {}


def replay_files(
    paths: Sequence[Path], cmap: ColumnMap, replayer: Replayer, label_col: str | None = None
) -> Iterator[Verdict]:
    """Verdicts of every row of every file, in file order, with a progress line on a terminal."""
    for path in paths:
        progress = Progress(path.name, count_rows(path))
        try:
            for row in rows(path, cmap, label_col):
                yield replayer.feed(row)
                progress.step()
        finally:
            progress.close()


def add_column_options(parser: argparse.ArgumentParser) -> None:
    """Column-mapping options shared by ``replay`` and ``evaluate``."""
    parser.add_argument("--entity-col", help="entity id column (default: entity_id, else file stem)")
    parser.add_argument("--timestamp-col", default="timestamp", help="timestamp column")
    parser.add_argument("--value-cols", help="comma-separated value columns (default: all other)")
    parser.add_argument("--stream", help="stream of every event (default: the record's, else default)")
    parser.add_argument("--label-col", help="per-row 0/1 label column (excluded from values)")


def column_map(args: argparse.Namespace) -> ColumnMap:
    """The ``ColumnMap`` from the column options."""
    cols = tuple(c.strip() for c in (args.value_cols or "").split(",") if c.strip())
    return ColumnMap(args.entity_col, args.timestamp_col, cols, args.stream)


def add_parser(subparsers: Any) -> None:
    """Register ``anomstream replay``."""
    p = subparsers.add_parser("replay", help="score files (or a topic) offline through the live scorer")
    p.add_argument("files", nargs="*", type=Path, help="CSV, JSONL or Parquet files")
    p.add_argument("--out", type=Path, help="output .csv or .jsonl (default: CSV on stdout)")
    p.add_argument("--bands", action="store_true", help="record every row's expected band (slower)")
    p.add_argument("--from-kafka", metavar="TOPIC", help="replay a topic instead of files")
    p.add_argument("--offset", type=int, default=0, help="with --from-kafka: first offset (all partitions)")
    p.add_argument("--partition", type=int, help="with --from-kafka: only this partition")
    add_column_options(p)
    add_spec_options(p)


def run(args: argparse.Namespace, specs: DetectorSpecs, settings: Settings | None = None) -> int:
    """Run ``anomstream replay``; returns the exit code."""
    name, chosen = chosen_specs(args, specs)[0]
    replayer = Replayer(chosen, bands=args.bands)
    if args.from_kafka:
        verdicts: Iterable[Verdict] = map(replayer.feed, _topic_rows(args, settings))
    elif args.files:
        verdicts = replay_files(args.files, column_map(args), replayer, args.label_col)
    else:
        print("anomstream replay: give FILE... or --from-kafka TOPIC", file=sys.stderr)
        return 2
    counts = {"rows": 0, "rejected": 0, "alarms": 0}
    with open_writer(args.out) as write:
        for verdict in verdicts:
            write(verdict.as_dict())
            counts["rows"] += 1
            counts["rejected"] += verdict.outcome is None
            counts["alarms"] += verdict.alarm
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    print(f"replayed with {name}: {summary}", file=sys.stderr)
    return 0


def _topic_rows(args: argparse.Namespace, settings: Settings | None) -> Iterator[Row]:
    if settings is None:
        from anomstream import config

        settings = config.load()[0]
    return kafka_rows(settings, args.from_kafka, args.offset, args.partition)
