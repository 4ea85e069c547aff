"""``anomstream replay``: files (or a topic) through the live ``Scorer`` path without a broker.

Writes one verdict row per input row: score, threshold, decision, alert status and explanation.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from anomstream import config
from anomstream.config import Settings
from anomstream.detect.scorer import Outcome, Scorer
from anomstream.detect.spec import DetectorSpecs
from anomstream.detect.specfiles import SpecChoice, chosen_specs
from anomstream.detect.store import Registry
from anomstream.offline.outputs import Progress, open_writer
from anomstream.offline.sources import ColumnMap, Row, count_rows, kafka_rows, rows
from anomstream.wire.records import Alert, Event, Expected


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """What replay decided for one input row (``outcome`` is ``None`` for a rejected row).

    ``expected`` is the band every feature was judged against: from the alert when one was raised,
    else from the model before it scored the row when bands are recorded, else empty.
    """

    row: Row
    outcome: Outcome | None
    expected: dict[str, Expected]
    #: Stream-wide alerts (``silent``, ``population``) this row released, as the worker publishes them.
    stream_alerts: tuple[Alert, ...] = ()

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
            # silent/population alerts this row released (JSON in CSV; empty when none), as the worker
            # would publish them right after this record
            "stream_alerts": [_stream_alert(a) for a in self.stream_alerts] or None,
        }


def _stream_alert(alert: Alert) -> dict[str, Any]:
    """The columns of a stream-wide alert worth a replay row: what, whom, when, how sure, which keys."""
    return {
        "kind": alert.kind,
        "status": alert.status,
        "entity_id": alert.entity_id,
        "alert_id": alert.alert_id,
        "timestamp": alert.timestamp.isoformat(),
        "severity": alert.severity,
        "probability": alert.probability,
        "values": dict(alert.values),
        **({"top_keys": alert.attributes["top_keys"]} if "top_keys" in alert.attributes else {}),
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
    >>> from anomstream.wire.records import Source
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
            expected = dict(outcome.alert.expected) or expected
        return Verdict(row, outcome, expected, tuple(self.scorer.drain()))

    def _bands(self, event: Event) -> dict[str, Expected]:
        return self.scorer.bands(event)


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


@dataclasses.dataclass(frozen=True, slots=True)
class ReplayOptions:
    """What ``anomstream replay`` reads, how it maps columns, and where it writes."""

    files: tuple[Path, ...] = ()
    out: Path | None = None
    bands: bool = False
    from_kafka: str | None = None
    offset: int = 0
    partition: int | None = None
    columns: ColumnMap = dataclasses.field(default_factory=ColumnMap)
    label_col: str | None = None
    choice: SpecChoice = dataclasses.field(default_factory=SpecChoice)


def run(opts: ReplayOptions, specs: DetectorSpecs, settings: Settings | None = None) -> int:
    """Run ``anomstream replay``; returns the exit code."""
    name, chosen = chosen_specs(opts.choice, specs)[0]
    replayer = Replayer(chosen, bands=opts.bands)
    if opts.from_kafka:
        rows_in = kafka_rows(settings or config.load()[0], opts.from_kafka, opts.offset, opts.partition)
        verdicts: Iterable[Verdict] = map(replayer.feed, rows_in)
    elif opts.files:
        verdicts = replay_files(opts.files, opts.columns, replayer, opts.label_col)
    else:
        print("anomstream replay: give FILE... or --from-kafka TOPIC", file=sys.stderr)
        return 2
    counts = {"rows": 0, "rejected": 0, "alarms": 0, "stream alerts": 0}
    with open_writer(opts.out) as write:
        for verdict in verdicts:
            write(verdict.as_dict())
            counts["rows"] += 1
            counts["rejected"] += verdict.outcome is None
            counts["alarms"] += verdict.alarm
            counts["stream alerts"] += len(verdict.stream_alerts)
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    print(f"replayed with {name}: {summary}", file=sys.stderr)
    return 0
