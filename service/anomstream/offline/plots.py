"""Report figures as PNG bytes (matplotlib, Agg backend): series with bands and alerts, histogram, ROC, PR.

matplotlib is an optional extra (``pip install 'anomstream[report]'``); it is imported only here.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from anomstream.errors import ConfigError
from anomstream.offline.backtest import SeriesRun

FloatArray = npt.NDArray[np.float64]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--report needs matplotlib (pip install 'anomstream[report]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def series_png(run: SeriesRun) -> bytes:
    """Values with the expected band, alarms and label windows above; score and live threshold below."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(13, 4.2), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]}
    )
    x = run.ts
    top.plot(x, run.values, lw=0.6, color="#1f77b4", label="value")
    low, high = run.band[:, 1], run.band[:, 2]
    if np.isfinite(low).any():
        top.fill_between(x, low, high, color="#1f77b4", alpha=0.12, lw=0, label="expected band")
    for ax in (top, bottom):
        for first, last in run.window_rows:
            ax.axvspan(x[first], x[last], color="#d62728", alpha=0.12, lw=0)
        if run.probation:
            ax.axvspan(x[0], x[min(run.probation, len(x) - 1)], color="0.5", alpha=0.12, lw=0)
    opened = np.asarray([s == "open" for s in run.status])
    ongoing = run.alarms & ~opened
    top.scatter(x[opened], run.values[opened], marker="^", s=42, color="#d62728", zorder=3, label="open")
    top.scatter(x[ongoing], run.values[ongoing], marker="o", s=18, color="#ff7f0e", zorder=3, label="ongoing")
    top.set_title(run.name, fontsize=10, loc="left")
    top.legend(loc="upper right", fontsize=7, ncol=4)
    bottom.plot(x, run.scores, lw=0.6, color="0.25", label="score")
    bottom.plot(x, run.thresholds, lw=0.9, ls="--", color="#d62728", label="live threshold")
    bottom.set_ylim(0, 1.02)
    bottom.legend(loc="upper right", fontsize=7, ncol=2)
    fig.autofmt_xdate()
    return _png(fig)


def histogram_png(runs: Sequence[SeriesRun]) -> bytes:
    """Scores past the probationary period, inside vs outside the labelled windows (log counts)."""
    plt = _pyplot()
    scores = np.concatenate([r.scores[r.probation :] for r in runs])
    labels = np.concatenate([r.labels[r.probation :] for r in runs])
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    bins = np.linspace(0, 1, 51)
    ax.hist(scores[~labels], bins=bins, alpha=0.6, label="outside windows", color="#1f77b4")
    ax.hist(scores[labels], bins=bins, alpha=0.6, label="inside windows", color="#d62728")
    ax.set_yscale("log")
    ax.set_xlabel("score")
    ax.set_ylabel("rows")
    ax.legend(fontsize=8)
    return _png(fig)


def curves(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """False-positive rate, recall and precision at every distinct score, highest first.

    Examples
    --------
    >>> fpr, tpr, precision = curves([0, 1, 1, 0], [0.1, 0.9, 0.8, 0.3])
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 1.0], [0.5, 1.0, 1.0, 1.0])
    """
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    ordered, hits = s[order], y[order]
    last = np.flatnonzero(np.r_[ordered[1:] != ordered[:-1], True])
    tp = np.cumsum(hits)[last].astype(np.float64)
    fp = (last + 1 - tp).astype(np.float64)
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return fp / n_neg, tp / n_pos, tp / (last + 1)


def curves_png(named: Sequence[tuple[str, Sequence[SeriesRun]]], kind: str) -> bytes:
    """ROC (``kind="roc"``) or precision-recall (``kind="pr"``) curves, one line per detector."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    for name, runs in named:
        labels = np.concatenate([r.labels[r.probation :] for r in runs])
        scores = np.concatenate([r.scores[r.probation :] for r in runs])
        fpr, tpr, precision = curves(labels, scores)
        if kind == "roc":
            ax.plot(np.r_[0.0, fpr], np.r_[0.0, tpr], lw=1.2, label=name)
        else:
            ax.plot(tpr, precision, lw=1.2, label=name)
    if kind == "roc":
        ax.plot([0, 1], [0, 1], ls=":", color="0.5")
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("recall (true-positive rate)")
    else:
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("ROC" if kind == "roc" else "Precision-recall", fontsize=10)
    ax.legend(fontsize=7)
    return _png(fig)
