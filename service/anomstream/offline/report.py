"""The evaluation report: one self-contained HTML page (PNG figures embedded as base64) plus the PNG files.

Series plots are drawn for the first evaluated detector; tables and curves cover every detector.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from anomstream import __version__
from anomstream.offline.backtest import Evaluation, point_metrics
from anomstream.offline.nab import PROFILES

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1340px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 16px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; font-size: 12px; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; display: block; margin: 6px 0 18px; }
.figs { display: flex; flex-wrap: wrap; gap: 12px; } .figs img { width: 380px; }
.note { color: #555; font-size: 13px; }
"""


_SHORT = {"standard": "standard", "reward_low_FP_rate": "low FP", "reward_low_FN_rate": "low FN"}


def _num(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def detector_table(results: Sequence[Evaluation]) -> str:
    """Per-detector table: NAB scores both ways per profile, then point and window metrics."""
    head = ["detector"]
    head += [f"{_SHORT[p]} {way}" for p in PROFILES for way in ("optimised", "live")]
    head += ["precision", "recall", "F1", "ROC-AUC", "PR-AUC", "window recall", "alarms"]
    rows = []
    for r in results:
        p = r.points
        row = [r.name]
        row += [
            _num(getattr(r.nab[prof], way).score, 1) for prof in PROFILES for way in ("optimised", "live")
        ]
        row += [_num(x) for x in (p.precision, p.recall, p.f1, p.roc_auc, p.pr_auc, p.window_recall)]
        rows.append([*row, str(p.alarms)])
    return _table(head, rows)


def file_table(result: Evaluation) -> str:
    """Per-file table of one detector: windows caught by alarms, false alarms, AUCs, NAB raw score."""
    nab_files = {f.name: f for f in result.nab["standard"].optimised.files}
    head = ["series", "rows", "windows", "alarmed", "alarms", "false alarms", "ROC-AUC", "PR-AUC"]
    head.append("NAB raw (standard, optimised)")
    rows = []
    for run in result.runs:
        p = point_metrics([run])
        raw = nab_files[run.name].score if run.name in nab_files else math.nan
        counts = (len(run.scores), p.windows, p.windows_alarmed, p.alarms, p.false_alarms)
        rows.append([run.name, *map(str, counts), _num(p.roc_auc), _num(p.pr_auc), _num(raw, 2)])
    return _table(head, rows)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "series"


def _figures(results: Sequence[Evaluation]) -> tuple[dict[str, bytes], list[tuple[str, bytes]]]:
    from anomstream.offline import plots

    named = [(r.name, r.runs) for r in results]
    figures = {
        "histogram.png": plots.histogram_png(results[0].runs),
        "roc.png": plots.curves_png(named, "roc"),
        "pr.png": plots.curves_png(named, "pr"),
    }
    runs = results[0].runs
    return figures, [(f"series_{i:02d}_{_slug(r.name)}.png", plots.series_png(r)) for i, r in enumerate(runs)]


def write_report(folder: Path, results: Sequence[Evaluation]) -> Path:
    """Write ``report.html`` and every figure as a PNG into ``folder``; returns the HTML path."""
    folder.mkdir(parents=True, exist_ok=True)
    first = results[0]
    figures, series = _figures(results)
    for name, png in [*figures.items(), *series]:
        (folder / name).write_bytes(png)
    parts = [
        f"<h1>anomstream evaluation report</h1><p class=note>anomstream {__version__}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {len(first.runs)} series; NAB scores are normalised "
        "(0 = no alarm, 100 = perfect) for the profiles standard, low FP (reward_low_FP_rate) and low FN "
        "(reward_low_FN_rate); <i>optimised</i> = raw scores at NAB's best shared threshold, "
        "<i>live</i> = the alerts (open/ongoing) the live thresholds raised.</p>",
        "<h2>Detectors</h2>",
        detector_table(results),
        "<div class=figs>"
        + _img(figures["roc.png"], "ROC curves")
        + _img(figures["pr.png"], "precision-recall curves")
        + _img(figures["histogram.png"], "score histogram")
        + "</div>",
        f"<h2>Files: {html.escape(first.name)}</h2>",
        file_table(first),
        f"<h2>Series: {html.escape(first.name)}</h2><p class=note>Blue band: expected range (centre ± band "
        "σ) the model judged each row against; red shading: labelled windows; grey: NAB probation; "
        "red ▲: open alert; orange ●: ongoing alert; dashed red: live threshold.</p>",
        *(_img(png, name) for name, png in series),
    ]
    page = (
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>anomstream report</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
    target = folder / "report.html"
    target.write_text(page, encoding="utf-8")
    return target
