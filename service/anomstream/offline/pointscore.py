"""Point metrics on binary labels: confusion counts, precision/recall/F1, ROC AUC and average precision.

Also turns NAB-style time windows into per-row labels and measures recall per window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


def _flags(values: npt.ArrayLike, what: str) -> BoolArray:
    flags = np.asarray(values, dtype=bool)
    if flags.ndim != 1:
        raise ValueError(f"{what} must be 1-D")
    return flags


def _labels_and_scores(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[BoolArray, FloatArray]:
    y = _flags(labels, "labels")
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != y.shape:
        raise ValueError("labels and scores must have the same length")
    if np.isnan(s).any():
        raise ValueError("scores must not contain NaN")
    return y, s


def confusion(labels: npt.ArrayLike, predictions: npt.ArrayLike) -> tuple[int, int, int, int]:
    """Counts ``(tp, fp, fn, tn)`` of binary predictions against binary labels.

    Examples
    --------
    >>> confusion([1, 1, 0, 0], [1, 0, 1, 0])
    (1, 1, 1, 1)
    """
    y, p = _flags(labels, "labels"), _flags(predictions, "predictions")
    if y.shape != p.shape:
        raise ValueError("labels and predictions must have the same length")
    tp = int(np.count_nonzero(y & p))
    fp = int(np.count_nonzero(~y & p))
    fn = int(np.count_nonzero(y & ~p))
    return tp, fp, fn, len(y) - tp - fp - fn


def precision_recall_f1(labels: npt.ArrayLike, predictions: npt.ArrayLike) -> tuple[float, float, float]:
    """Precision, recall and F1; a ratio with a zero denominator is 0.0 (scikit-learn's default).

    Examples
    --------
    >>> precision_recall_f1([1, 1, 1, 0], [1, 1, 0, 1])
    (0.6666666666666666, 0.6666666666666666, 0.6666666666666666)
    """
    tp, fp, fn, _ = confusion(labels, predictions)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _average_ranks(values: FloatArray) -> FloatArray:
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    # Tied values share the mean of the 1-based ranks they occupy.
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + 1 + ends) / 2, ends - starts)
    return ranks


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic; ties count one half.

    Returns NaN when labels hold only one class.

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    y, s = _labels_and_scores(labels, scores)
    n_pos = int(np.count_nonzero(y))
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    rank_sum = float(_average_ranks(s)[y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def pr_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Average precision: precision summed over recall steps, one step per distinct score.

    Same definition as scikit-learn's ``average_precision_score``. NaN when there is no positive.

    Examples
    --------
    >>> round(pr_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 4)
    0.8333
    """
    y, s = _labels_and_scores(labels, scores)
    n_pos = int(np.count_nonzero(y))
    if n_pos == 0:
        return math.nan
    order = np.argsort(-s, kind="stable")
    ordered, hits = s[order], y[order]
    # Tied scores cross the threshold together, so only the last row of each tie group is a point.
    last = np.flatnonzero(np.r_[ordered[1:] != ordered[:-1], True])
    tp = np.cumsum(hits)[last]
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def window_recall(windows: Sequence[tuple[int, int]], predictions: npt.ArrayLike) -> float:
    """Fraction of windows (inclusive row ranges) holding at least one positive; NaN with no window.

    Examples
    --------
    >>> window_recall([(0, 2), (5, 6)], [0, 0, 1, 0, 0, 0, 0])
    0.5
    """
    p = _flags(predictions, "predictions")
    if not windows:
        return math.nan
    hits = 0
    for first, last in windows:
        if not 0 <= first <= last < len(p):
            raise ValueError(f"window ({first}, {last}) is not a row range of {len(p)} rows")
        hits += bool(p[first : last + 1].any())
    return hits / len(windows)


def labels_from_windows(
    timestamps: npt.ArrayLike, windows: Sequence[tuple[datetime | np.datetime64, datetime | np.datetime64]]
) -> BoolArray:
    """Per-row labels: True where ``start <= timestamp <= end`` for some window (NAB's rule).

    Examples
    --------
    >>> ts = np.datetime64("2024-01-01") + np.arange(5) * np.timedelta64(1, "D")
    >>> labels_from_windows(ts, [(ts[1], ts[2])]).tolist()
    [False, True, True, False, False]
    """
    ts = np.asarray(timestamps, dtype="datetime64[us]")
    labels = np.zeros(ts.shape, dtype=bool)
    for start, end in windows:
        first, last = (np.asarray(t, dtype="datetime64[us]") for t in (start, end))
        labels |= (ts >= first) & (ts <= last)
    return labels
