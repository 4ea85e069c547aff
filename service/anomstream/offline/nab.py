"""Numenta Anomaly Benchmark (NAB v1.1) scoring: cost profiles, per-file raw scores, corpus scores.

Follows NAB's ``Sweeper``, ``optimizeThreshold`` and ``Runner.normalize``; row-level rules are in
:mod:`anomstream.offline.nab_sweep`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from anomstream.offline.nab_sweep import SweepPoints, concat, sweep_points, threshold_table

Timestamp = datetime | np.datetime64

# Alarm flags are scored as 0/1 anomaly scores cut at 1.0.
_ALARM_THRESHOLD = 1.0


@dataclass(frozen=True)
class CostProfile:
    """Weights of one NAB application profile (``tn`` is carried for completeness; NAB never uses it)."""

    tp: float
    fp: float
    fn: float
    tn: float = 1.0


# From NAB's config/profiles.json.
PROFILES: dict[str, CostProfile] = {
    "standard": CostProfile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": CostProfile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": CostProfile(tp=1.0, fp=0.11, fn=2.0),
}

PROBATION_FRACTION = 0.15


def probation_rows(n: int) -> int:
    """Leading rows NAB never scores: ``min(floor(0.15 * n), 0.15 * 5000)``, i.e. at most 750.

    Examples
    --------
    >>> probation_rows(100), probation_rows(4000), probation_rows(22695)
    (15, 600, 750)
    """
    # Same float expression as NAB's util.getProbationPeriod, so rounding can never differ.
    return int(min(math.floor(PROBATION_FRACTION * n), PROBATION_FRACTION * 5000))


@dataclass(frozen=True)
class Series:
    """One scored file: timestamps, the detector's scores and the labelled anomaly windows.

    ``timestamps`` is coerced to ``datetime64[us]`` (naive wall-clock time; lists of ``datetime`` work
    too) and kept in stream order: NAB neither sorts nor de-duplicates rows. ``scores`` is coerced to
    float64 and is expected in [0, 1] as in NAB. ``windows`` are inclusive ``(start, end)`` pairs
    (``datetime`` or ``datetime64``) in chronological order; each end point must match exactly one
    row, as NAB's labeller requires.
    """

    name: str
    timestamps: npt.NDArray[np.datetime64]
    scores: npt.NDArray[np.float64]
    windows: Sequence[tuple[Timestamp, Timestamp]] = ()
    window_rows: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ts = np.asarray(self.timestamps, dtype="datetime64[us]")
        scores = np.asarray(self.scores, dtype=np.float64)
        if ts.ndim != 1 or scores.shape != ts.shape:
            raise ValueError(f"{self.name}: timestamps and scores must be 1-D and of equal length")
        if np.isnan(scores).any():
            raise ValueError(f"{self.name}: scores must not contain NaN")
        object.__setattr__(self, "timestamps", ts)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "window_rows", _window_rows(self.name, ts, self.windows))


def _window_rows(
    name: str, ts: npt.NDArray[np.datetime64], windows: Sequence[tuple[Timestamp, Timestamp]]
) -> tuple[tuple[int, int], ...]:
    rows: list[tuple[int, int]] = []
    for start, end in windows:
        first, last = (_row_of(name, ts, t) for t in (start, end))
        # NAB would silently skip this and every later window; refuse instead.
        if last < first or (rows and first <= rows[-1][1]):
            raise ValueError(f"{name}: window {start}..{end} is reversed, overlapping or out of order")
        rows.append((first, last))
    return tuple(rows)


def _row_of(name: str, ts: npt.NDArray[np.datetime64], t: Timestamp) -> int:
    hits = np.flatnonzero(ts == np.asarray(t, dtype="datetime64[us]"))
    if len(hits) != 1:
        raise ValueError(f"{name}: window end point {t} matches {len(hits)} rows, expected exactly 1")
    return int(hits[0])


@dataclass(frozen=True)
class SeriesScore:
    """NAB's result for one file. Counts are rows past the probationary period, as in NAB."""

    name: str
    threshold: float  # NaN when explicit alarm flags were scored
    score: float  # raw, unnormalised NAB score
    tp: int
    tn: int
    fp: int
    fn: int
    windows: int  # labelled windows (each worth ``tp`` to the perfect detector)
    windows_scored: int  # windows with a row past the probationary period (each costs ``fn`` if missed)
    windows_detected: int  # windows holding at least one alarm


@dataclass(frozen=True)
class CorpusScore:
    """Normalised corpus score: ``100 * (raw - null) / (perfect - null)``; NaN when perfect == null."""

    score: float
    threshold: float  # NaN when explicit alarm flags were scored
    raw: float
    null: float  # raw score of a detector that never fires
    perfect: float  # ``tp`` weight times the number of windows, as in NAB's ``Runner.normalize``
    files: tuple[SeriesScore, ...]


def _points(series: Series, profile: CostProfile) -> SweepPoints:
    probation = probation_rows(len(series.scores))
    return sweep_points(series.scores, series.window_rows, probation, profile.tp, profile.fp)


def _score(series: Series, points: SweepPoints, threshold: float, profile: CostProfile) -> SeriesScore:
    table = threshold_table(points, profile.fn)
    k = table.row(threshold)
    return SeriesScore(
        name=series.name,
        threshold=threshold,
        score=float(table.totals[k]),
        tp=int(table.tp[k]),
        tn=int(table.tn[k]),
        fp=int(table.fp[k]),
        fn=int(table.fn[k]),
        windows=len(series.window_rows),
        windows_scored=table.windows_scored,
        windows_detected=int(table.windows_detected[k]),
    )


def score_series(series: Series, threshold: float, profile: CostProfile) -> SeriesScore:
    """Raw NAB score of one file with alarms on every row whose score is >= ``threshold``.

    Examples
    --------
    >>> ts = np.datetime64("2024-01-01T00:00") + np.arange(100) * np.timedelta64(1, "m")
    >>> scores = np.zeros(100)
    >>> scores[40] = 0.9  # an alarm on the first row of the window
    >>> s = Series("demo", ts, scores, [(ts[40], ts[50])])
    >>> score_series(s, 0.5, PROFILES["standard"]).score
    1.0
    """
    return _score(series, _points(series, profile), threshold, profile)


def _as_alarms(series: Series, alarms: npt.ArrayLike) -> Series:
    flags = np.asarray(alarms, dtype=bool)
    if flags.shape != series.scores.shape:
        raise ValueError(f"{series.name}: alarms must have one flag per row")
    return replace(series, scores=flags.astype(np.float64))


def score_alarms(series: Series, alarms: npt.ArrayLike, profile: CostProfile) -> SeriesScore:
    """Raw NAB score of one file given explicit alarm flags (``series.scores`` is ignored).

    Examples
    --------
    >>> ts = np.datetime64("2024-01-01T00:00") + np.arange(100) * np.timedelta64(1, "m")
    >>> s = Series("demo", ts, np.zeros(100), [(ts[40], ts[50])])
    >>> score_alarms(s, np.arange(100) == 20, PROFILES["standard"]).score  # one far false positive
    -1.11
    """
    result = score_series(_as_alarms(series, alarms), _ALARM_THRESHOLD, profile)
    return replace(result, threshold=math.nan)


def corpus_score(
    series_list: Sequence[Series], profile: CostProfile, threshold: float | None = None
) -> CorpusScore:
    """Normalised NAB score of a corpus at one shared threshold (``None``: NAB's optimal threshold).

    The optimum is taken over the sweep of the whole corpus at once (NAB's ``optimizeThreshold``):
    every distinct score, plus 1.1 for "no alarm", is a candidate and ties go to the highest one.

    Examples
    --------
    >>> ts = np.datetime64("2024-01-01T00:00") + np.arange(100) * np.timedelta64(1, "m")
    >>> scores = np.full(100, 0.2)
    >>> scores[40] = 0.9
    >>> result = corpus_score([Series("demo", ts, scores, [(ts[40], ts[50])])], PROFILES["standard"])
    >>> result.threshold, result.score
    (0.9, 100.0)
    """
    points = [_points(s, profile) for s in series_list]
    if threshold is None:
        table = threshold_table(concat(points), profile.fn)
        threshold = float(table.thresholds[table.best()])
    files = [_score(s, p, threshold, profile) for s, p in zip(series_list, points, strict=True)]
    return normalise(files, profile, threshold)


def corpus_score_alarms(
    series_list: Sequence[Series], alarms_list: Sequence[npt.ArrayLike], profile: CostProfile
) -> CorpusScore:
    """Normalised NAB score of a corpus given explicit alarm flags per file.

    Examples
    --------
    >>> ts = np.datetime64("2024-01-01T00:00") + np.arange(100) * np.timedelta64(1, "m")
    >>> s = Series("demo", ts, np.zeros(100), [(ts[40], ts[50])])
    >>> corpus_score_alarms([s], [np.arange(100) == 40], PROFILES["standard"]).score
    100.0
    """
    if len(series_list) != len(alarms_list):
        raise ValueError("need one alarm array per series")
    flagged = [_as_alarms(s, a) for s, a in zip(series_list, alarms_list, strict=True)]
    result = corpus_score(flagged, profile, _ALARM_THRESHOLD)
    files = tuple(replace(f, threshold=math.nan) for f in result.files)
    return replace(result, threshold=math.nan, files=files)


def normalise(files: Sequence[SeriesScore], profile: CostProfile, threshold: float) -> CorpusScore:
    """NAB's normalisation of summed per-file scores (0 = never fires, 100 = perfect)."""
    raw = sum(f.score for f in files)
    null = sum(-profile.fn * f.windows_scored for f in files)
    perfect = sum(f.windows for f in files) * profile.tp
    score = 100 * (raw - null) / (perfect - null) if perfect != null else math.nan
    return CorpusScore(float(score), threshold, float(raw), float(null), float(perfect), tuple(files))


def load_windows(path: str | Path) -> dict[str, list[tuple[datetime, datetime]]]:
    """Read NAB's ``combined_windows.json``: relative file path -> inclusive ``(start, end)`` windows.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
    ...     _ = f.write('{"a.csv": [["2014-04-10 07:15:00.000000", "2014-04-11 16:45:00.000000"]]}')
    >>> load_windows(f.name)["a.csv"][0][0]
    datetime.datetime(2014, 4, 10, 7, 15)
    """
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object of file -> windows")
    return {
        name: [(datetime.fromisoformat(start), datetime.fromisoformat(end)) for start, end in windows]
        for name, windows in raw.items()
    }
