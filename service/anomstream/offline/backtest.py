"""Backtests: replayed verdicts gathered per series, with labels, point metrics and NAB scores both ways.

A series is one entity of one file; rejected rows are left out, as the worker would dead-letter them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from anomstream.offline import nab
from anomstream.offline import pointscore as metrics
from anomstream.offline.replay import Verdict

Windows = list[tuple[datetime, datetime]]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclasses.dataclass(frozen=True)
class SeriesRun:
    """Every scored row of one series, as arrays in stream order."""

    name: str
    timestamps: list[str]  # as written in the input
    ts: npt.NDArray[np.datetime64]  # naive UTC, microseconds
    values: FloatArray  # the first feature
    scores: FloatArray
    thresholds: FloatArray
    anomalous: BoolArray
    warming: BoolArray
    alarms: BoolArray  # an ``open`` or ``ongoing`` alert was raised on the row
    status: list[str | None]
    band: FloatArray  # (n, 3): expected mean, low, high of the first feature; NaN where unknown
    labels: BoolArray
    window_rows: tuple[tuple[int, int], ...]
    windows: Windows  # as labelled; empty when labels came per row

    @property
    def probation(self) -> int:
        """Leading rows NAB never scores (point metrics skip them too)."""
        return nab.probation_rows(len(self.scores))

    def nab_series(self) -> nab.Series:
        """The series as NAB scores it (real timestamps for windows files, row numbers for label columns)."""
        if self.windows:
            return nab.Series(self.name, self.ts, self.scores, self.windows)
        ts = np.datetime64("2000-01-01T00:00") + np.arange(len(self.scores)) * np.timedelta64(1, "s")
        spans = [(ts[a], ts[b]) for a, b in self.window_rows]
        return nab.Series(self.name, ts, self.scores, spans)


def _naive_utc(verdict: Verdict) -> datetime:
    assert verdict.row.event is not None
    return verdict.row.event.timestamp.astimezone(UTC).replace(tzinfo=None)


def series_runs(
    name: str, verdicts: Iterable[Verdict], windows: Windows | None
) -> tuple[list[SeriesRun], int]:
    """Group one file's verdicts by entity; returns the runs and how many rows were rejected.

    ``windows`` (NAB's inclusive time windows) label rows inside them; ``None`` uses each row's label.
    """
    groups: dict[str, list[Verdict]] = {}
    rejected = 0
    for verdict in verdicts:
        if verdict.row.event is None or verdict.outcome is None:
            rejected += 1
            continue
        groups.setdefault(verdict.row.event.entity_id, []).append(verdict)
    many = len(groups) > 1
    runs = [_run(f"{name}#{entity}" if many else name, rows, windows) for entity, rows in groups.items()]
    return runs, rejected


def _run(name: str, rows: Sequence[Verdict], windows: Windows | None) -> SeriesRun:
    ts = np.asarray([_naive_utc(v) for v in rows], dtype="datetime64[us]")
    outcomes = [v.outcome for v in rows if v.outcome is not None]
    if windows is None:
        labels = np.asarray([bool(v.row.label) for v in rows], dtype=bool)
        window_rows = tuple(_runs_of(labels))
    else:
        labels = metrics.labels_from_windows(ts, windows)
        window_rows = nab.Series(name, ts, np.zeros(len(ts)), windows).window_rows
    return SeriesRun(
        name=name,
        timestamps=[v.row.timestamp for v in rows],
        ts=ts,
        values=np.asarray([_first(v)[0] for v in rows], dtype=np.float64),
        scores=np.asarray([o.score for o in outcomes], dtype=np.float64),
        thresholds=np.asarray([o.threshold for o in outcomes], dtype=np.float64),
        anomalous=np.asarray([o.anomalous for o in outcomes], dtype=bool),
        warming=np.asarray([o.warming for o in outcomes], dtype=bool),
        alarms=np.asarray([v.alarm for v in rows], dtype=bool),
        status=[v.status for v in rows],
        band=np.asarray([_first(v)[1:] for v in rows], dtype=np.float64).reshape(len(rows), 3),
        labels=labels,
        window_rows=window_rows,
        windows=list(windows or []),
    )


def _first(verdict: Verdict) -> tuple[float, float, float, float]:
    assert verdict.row.event is not None
    feature, value = next(iter(verdict.row.event.values.items()))
    band = verdict.expected.get(feature)
    if band is None:
        return value, math.nan, math.nan, math.nan
    return value, band.mean, band.low, band.high


def _runs_of(labels: BoolArray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.r_[0, labels.astype(np.int8), 0]))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


@dataclasses.dataclass(frozen=True)
class PointMetrics:
    """Row-level metrics past the probationary period, and event-wise recall of the labelled windows."""

    rows: int
    positives: int
    precision: float
    recall: float
    f1: float
    roc_auc: float
    pr_auc: float
    windows: int
    windows_alarmed: int
    alarms: int
    false_alarms: int  # alarms outside every window

    @property
    def window_recall(self) -> float:
        """Share of windows holding at least one alarm (NaN with no window)."""
        return self.windows_alarmed / self.windows if self.windows else math.nan


def point_metrics(runs: Sequence[SeriesRun]) -> PointMetrics:
    """Pool every run's scored rows: P/R/F1 of the live ``anomalous`` flag, ROC/PR AUC of the raw score."""
    keep = [slice(r.probation, None) for r in runs]
    labels = np.concatenate([r.labels[k] for r, k in zip(runs, keep, strict=True)] or [np.zeros(0, bool)])
    flags = np.concatenate([r.anomalous[k] for r, k in zip(runs, keep, strict=True)] or [np.zeros(0, bool)])
    scores = np.concatenate([r.scores[k] for r, k in zip(runs, keep, strict=True)] or [np.zeros(0)])
    precision, recall, f1 = metrics.precision_recall_f1(labels, flags)
    windows = sum(len(r.window_rows) for r in runs)
    alarmed = sum(bool(r.alarms[a : b + 1].any()) for r in runs for a, b in r.window_rows)
    alarms = sum(int(r.alarms.sum()) for r in runs)
    false_alarms = sum(int((r.alarms & ~r.labels).sum()) for r in runs)
    return PointMetrics(
        rows=len(labels),
        positives=int(labels.sum()),
        precision=precision,
        recall=recall,
        f1=f1,
        roc_auc=metrics.roc_auc(labels, scores),
        pr_auc=metrics.pr_auc(labels, scores),
        windows=windows,
        windows_alarmed=alarmed,
        alarms=alarms,
        false_alarms=false_alarms,
    )


@dataclasses.dataclass(frozen=True)
class NabScores:
    """One profile's corpus score: from raw scores at NAB's optimal threshold, and from the live alarms."""

    optimised: nab.CorpusScore
    live: nab.CorpusScore


def nab_scores(runs: Sequence[SeriesRun]) -> dict[str, NabScores]:
    """Corpus NAB score of each profile (standard, reward_low_FP_rate, reward_low_FN_rate), both ways."""
    series = [r.nab_series() for r in runs]
    alarms = [r.alarms for r in runs]
    return {
        name: NabScores(nab.corpus_score(series, profile), nab.corpus_score_alarms(series, alarms, profile))
        for name, profile in nab.PROFILES.items()
    }


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One detector (spec) evaluated over every input series."""

    name: str
    runs: list[SeriesRun]
    rejected: int
    points: PointMetrics
    nab: dict[str, NabScores]
