"""The two passes of NAB v1.1's ``Sweeper``: a weighted score per row, then a total per threshold.

Mirrors ``nab/sweeper.py`` (``calcSweepScore``, ``calcScoreByThreshold``) step by step, down to the
order in which partial scores are summed, so that totals and threshold ties come out as in NAB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# NAB starts its sweep above every score in [0, 1], so its first row stands for "no alarm at all".
NO_ALARM_THRESHOLD = 1.1


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def scaled_sigmoid(position: float) -> float:
    """NAB's reward curve ``2 * sigmoid(-5 * position) - 1``, pinned to -1 beyond 3 widths.

    Parameters
    ----------
    position
        Relative position in window widths: -1 at a window's first row, near 0 at its last row,
        positive after it.

    Returns
    -------
    float
        A value in [-1, 1].

    Examples
    --------
    >>> round(scaled_sigmoid(-1.0), 5)
    0.98661
    >>> scaled_sigmoid(3.5)
    -1.0
    """
    if position > 3.0:
        return -1.0
    return 2 * _sigmoid(-5 * position) - 1.0


@dataclass(frozen=True)
class SweepPoints:
    """The scorable rows (past the probationary period) of one file or of a whole corpus."""

    scores: FloatArray  # the detector's anomaly score
    sweep: FloatArray  # what the row adds to the total if it alarms (NAB's ``sweepScore``)
    window: IntArray  # window id of the row, -1 outside every window
    n_windows: int  # ids in use are 0 .. n_windows - 1


def sweep_points(
    scores: FloatArray,
    window_rows: Sequence[tuple[int, int]],
    probation: int,
    tp_weight: float,
    fp_weight: float,
) -> SweepPoints:
    """Weight every row as NAB's ``calcSweepScore`` does and drop the probationary rows.

    Parameters
    ----------
    scores
        Anomaly score of every row of one file.
    window_rows
        ``(first_row, last_row)`` of each window, inclusive, in chronological order.
    probation
        Number of leading rows that are never scored.
    tp_weight, fp_weight
        The profile's weights.

    Returns
    -------
    SweepPoints
        Rows ``probation ..`` with their score, weight and window id.

    Examples
    --------
    >>> pts = sweep_points(np.zeros(4), [(1, 2)], 0, 1.0, 0.11)
    >>> [round(x, 3) for x in pts.sweep.tolist()], pts.window.tolist()
    ([-0.11, 1.0, 0.86, -0.109], [-1, 0, 0, -1])
    """
    max_tp = scaled_sigmoid(-1.0)
    sweep = np.empty(len(scores))
    window = np.full(len(scores), -1, dtype=np.int64)
    nxt, cur, cur_right, cur_width = 0, -1, 0, 1.0
    prev_right: int | None = None
    prev_width = 1.0
    for i in range(len(scores)):
        if nxt < len(window_rows) and i == window_rows[nxt][0]:
            cur, (left, cur_right) = nxt, window_rows[nxt]
            cur_width = float(cur_right - left + 1)
            nxt += 1
        if cur >= 0:
            position = -(cur_right - i + 1) / cur_width
            sweep[i] = scaled_sigmoid(position) * tp_weight / max_tp
            window[i] = cur
        else:
            unweighted = -1.0 if prev_right is None else scaled_sigmoid(_past(prev_right, i, prev_width))
            sweep[i] = unweighted * fp_weight
        if cur >= 0 and i == cur_right:
            prev_right, prev_width, cur = i, cur_width, -1
    keep = slice(probation, None)
    return SweepPoints(scores[keep], sweep[keep], window[keep], len(window_rows))


def _past(prev_right: int, i: int, prev_width: float) -> float:
    # NAB divides by zero after a one-row window; the limit (a far-away false positive) is used instead.
    denominator = float(prev_width - 1)
    return abs(prev_right - i) / denominator if denominator else math.inf


def concat(points: Sequence[SweepPoints]) -> SweepPoints:
    """Join several files' points into one corpus, renumbering windows so that ids stay distinct."""
    offsets = np.cumsum([0] + [p.n_windows for p in points])
    windows = [np.where(p.window >= 0, p.window + off, -1) for p, off in zip(points, offsets, strict=False)]
    return SweepPoints(
        np.concatenate([p.scores for p in points] or [np.empty(0)]),
        np.concatenate([p.sweep for p in points] or [np.empty(0)]),
        np.concatenate(windows or [np.empty(0, dtype=np.int64)]).astype(np.int64),
        int(offsets[-1]),
    )


@dataclass(frozen=True)
class ThresholdTable:
    """NAB's ``ThresholdScore`` rows, highest threshold first; row 0 raises no alarm at all."""

    thresholds: FloatArray
    totals: FloatArray  # raw NAB score with alarms on every row scoring >= threshold
    tp: IntArray  # NAB's counts are rows, not windows
    tn: IntArray
    fp: IntArray
    fn: IntArray
    windows_detected: IntArray
    windows_scored: int  # windows with at least one scorable row (each costs fn when missed)

    def row(self, threshold: float) -> int:
        """The row NAB's ``scoreDataSet`` uses: the lowest listed threshold still >= ``threshold``."""
        if math.isnan(threshold):
            raise ValueError("threshold must not be NaN")
        return max(int(np.count_nonzero(self.thresholds >= threshold)) - 1, 0)

    def best(self) -> int:
        """The row with the highest total; on a tie, the highest threshold (NAB's stable sort)."""
        return int(np.argmax(self.totals))


def threshold_table(points: SweepPoints, fn_weight: float) -> ThresholdTable:
    """Sweep the threshold down through every distinct score, as NAB's ``calcScoreByThreshold``.

    Examples
    --------
    >>> pts = sweep_points(np.array([0.2, 0.9, 0.1, 0.4]), [(1, 2)], 0, 1.0, 0.11)
    >>> table = threshold_table(pts, 1.0)
    >>> table.thresholds.tolist(), [round(t, 3) for t in table.totals.tolist()]
    ([1.1, 0.9, 0.4, 0.2, 0.1], [-1.0, 1.0, 0.891, 0.781, 0.781])
    """
    order = np.argsort(-points.scores, kind="stable")  # == Python's stable sorted(reverse=True)
    scores = points.scores[order].tolist()
    sweep = points.sweep[order].tolist()
    window = points.window[order].tolist()
    # NAB keeps one part for all false positives, then one per window in order of first appearance.
    slot = {w: k + 1 for k, w in enumerate(dict.fromkeys(w for w in window if w >= 0))}
    parts = [0.0] + [-fn_weight] * len(slot)
    hit = [False] * len(parts)
    tp, fp, detected = 0, 0, 0
    fn = len(window) - window.count(-1)
    tn = len(window) - fn
    # With scores >= 1.1 (outside NAB's [0, 1]) NAB's 1.1 row would be mislabelled: use inf instead.
    current = NO_ALARM_THRESHOLD if not scores or scores[0] < NO_ALARM_THRESHOLD else math.inf
    rows: list[tuple[float, float, int, int, int, int, int]] = []
    for score, weight, w in zip(scores, sweep, window, strict=True):
        if score != current:
            rows.append((current, sum(parts), tp, tn, fp, fn, detected))
            current = score
        if w < 0:
            fp, tn = fp + 1, tn - 1
            parts[0] += weight
        else:
            tp, fn, k = tp + 1, fn - 1, slot[w]
            detected += not hit[k]
            parts[k], hit[k] = max(parts[k], weight), True
    rows.append((current, sum(parts), tp, tn, fp, fn, detected))
    cols = list(zip(*rows, strict=True))
    tp_, tn_, fp_, fn_, hits = (np.asarray(c, dtype=np.int64) for c in cols[2:])
    return ThresholdTable(np.asarray(cols[0]), np.asarray(cols[1]), tp_, tn_, fp_, fn_, hits, len(slot))
