"""Point metrics: confusion counts, precision/recall/F1, ROC AUC, average precision, window helpers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from anomstream.offline.pointscore import (
    confusion,
    labels_from_windows,
    pr_auc,
    precision_recall_f1,
    roc_auc,
    window_recall,
)


def test_confusion_counts_each_cell() -> None:
    """Confusion counts come back as (tp, fp, fn, tn), in that order."""
    labels = [1, 1, 1, 0, 0, 0, 0]
    preds = [1, 1, 0, 1, 0, 0, 0]
    assert confusion(labels, preds) == (2, 1, 1, 3)


def test_confusion_rejects_length_mismatch() -> None:
    """Labels and predictions of different lengths are an error."""
    with pytest.raises(ValueError, match="same length"):
        confusion([1, 0], [1])


def test_precision_recall_f1_values() -> None:
    """Precision 2/3, recall 2/4 and F1 their harmonic mean, 4/7."""
    # tp = 2, fp = 1, fn = 2: P = 2/3, R = 1/2, F1 = 2 * (1/3) / (7/6) = 4/7.
    p, r, f1 = precision_recall_f1([1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 1, 0])
    assert (p, r) == pytest.approx((2 / 3, 1 / 2))
    assert f1 == pytest.approx(4 / 7)


def test_precision_recall_f1_zero_division_gives_zero() -> None:
    """With no positive prediction and no positive label every ratio is 0.0, not an error."""
    assert precision_recall_f1([0, 0, 0], [0, 0, 0]) == (0.0, 0.0, 0.0)


def test_roc_auc_extremes_and_ties() -> None:
    """Perfect ranking gives 1, reversed gives 0, all-tied gives 0.5."""
    labels = [0, 0, 1, 1]
    assert roc_auc(labels, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc(labels, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc(labels, [0.5, 0.5, 0.5, 0.5]) == 0.5


def test_roc_auc_is_nan_with_one_class() -> None:
    """ROC AUC is undefined (NaN) when only one class is present."""
    assert math.isnan(roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(roc_auc([0, 0], [0.1, 0.2]))


def test_roc_auc_matches_brute_force_pair_count() -> None:
    """ROC AUC equals P(score_pos > score_neg) + 0.5 P(tie), counted over all pairs."""
    rng = np.random.default_rng(3)
    labels = rng.random(300) < 0.3
    scores = np.round(rng.random(300), 1)  # coarse rounding forces many ties
    pos, neg = scores[labels], scores[~labels]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    assert roc_auc(labels, scores) == pytest.approx(wins / (len(pos) * len(neg)), rel=1e-12)


def test_pr_auc_hand_example() -> None:
    """Average precision of a small ranking, step by step."""
    # Ranked: 0.8 (pos) P=1 R=.5; 0.4 (neg) P=.5 R=.5; 0.35 (pos) P=2/3 R=1; 0.1 (neg).
    # AP = 0.5 * 1 + 0 * 0.5 + 0.5 * 2/3 + 0 = 5/6.
    assert pr_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(5 / 6)


def test_pr_auc_perfect_ties_and_no_positive() -> None:
    """Perfect ranking gives 1; all-tied gives the positive rate; no positive gives NaN."""
    assert pr_auc([0, 1, 1], [0.1, 0.7, 0.9]) == 1.0
    # One threshold: everything fires, P = 2/5 at R = 1.
    assert pr_auc([1, 1, 0, 0, 0], [0.3] * 5) == pytest.approx(0.4)
    assert math.isnan(pr_auc([0, 0], [0.1, 0.2]))


def test_window_recall_counts_windows_with_an_alarm() -> None:
    """Window recall is the share of inclusive row ranges holding at least one positive."""
    preds = [0, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    # (0, 2) holds row 2, (4, 6) holds nothing, (9, 9) holds row 9 (end is inclusive).
    assert window_recall([(0, 2), (4, 6), (9, 9)], preds) == pytest.approx(2 / 3)
    assert math.isnan(window_recall([], preds))
    with pytest.raises(ValueError, match="row range"):
        window_recall([(8, 10)], preds)


def test_labels_from_windows_is_inclusive() -> None:
    """Rows at a window's start and end timestamps are labelled, rows outside are not."""
    ts = np.datetime64("2024-01-01T00:00") + np.arange(8) * np.timedelta64(5, "m")
    labels = labels_from_windows(ts, [(ts[1], ts[2]), (ts[5], ts[5])])
    assert labels.tolist() == [False, True, True, False, False, True, False, False]
