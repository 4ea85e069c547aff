"""Plotly figures of an entity's series: value against its expected band, score against threshold.

Figures are returned as JSON for ``Plotly.newPlot`` in the page; plotly.js itself is served from the
plotly wheel (``/static/plotly.min.js``), so nothing is fetched from the internet.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from anomstream.wire.records import Alert, ScoreRecord

BAND = "rgba(31, 119, 180, 0.18)"


def plotly_js() -> bytes:
    """The plotly.js bundle shipped inside the plotly wheel."""
    return (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()


def series_figure(
    records: list[ScoreRecord], feature: str, alerts: list[Alert], marker: datetime | None = None
) -> str:
    """Two rows sharing time: ``feature``'s value and expected band; score and threshold. JSON text."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.6, 0.4])
    ts = [r.timestamp for r in records]
    for trace in _band(records, feature):
        fig.add_trace(trace, 1, 1)
    fig.add_trace(_line(ts, [r.values.get(feature) for r in records], f"{feature} value"), 1, 1)
    fig.add_trace(_line(ts, [r.score for r in records], "score"), 2, 1)
    fig.add_trace(_line(ts, [r.threshold for r in records], "threshold", dash="dash"), 2, 1)
    # only the alerts inside the plotted window: one far away would stretch the time axis
    opened = [a for a in alerts if a.status == "open" and ts and ts[0] <= a.timestamp <= ts[-1]]
    if opened:
        dots = go.Scatter(
            x=[a.timestamp for a in opened],
            y=[a.values.get(feature) for a in opened],
            mode="markers",
            name="alerts",
            marker={"color": "crimson", "size": 10, "symbol": "x"},
        )
        fig.add_trace(dots, 1, 1)
    if marker is not None:
        fig.add_vline(x=marker.timestamp() * 1000, line={"color": "crimson", "dash": "dot"})
    fig.update_layout(
        height=460,
        margin={"l": 50, "r": 20, "t": 20, "b": 30},
        legend={"orientation": "h", "y": -0.12},
        template="plotly_white",
    )
    fig.update_yaxes(title_text=feature, row=1, col=1)
    fig.update_yaxes(title_text="score", range=[0, 1.02], row=2, col=1)
    return str(fig.to_json())


def _band(records: list[ScoreRecord], feature: str) -> list[go.Scatter]:
    """The expected band (filled between high and low) and its centre, where records carry one."""
    banded = [r for r in records if feature in r.expected]
    if not banded:
        return []
    ts = [r.timestamp for r in banded]
    high = _line(ts, [r.expected[feature].high for r in banded], "band high", width=0)
    high.update(showlegend=False)
    low = _line(ts, [r.expected[feature].low for r in banded], "expected band", width=0)
    low.update(fill="tonexty", fillcolor=BAND)  # fills down from the trace before it: high
    return [high, low, _line(ts, [r.expected[feature].mean for r in banded], "expected", dash="dot")]


def _line(
    x: list[datetime], y: list[float | None], name: str, *, dash: str = "solid", width: float = 1.6
) -> go.Scatter:
    return go.Scatter(x=x, y=y, name=name, mode="lines", line={"dash": dash, "width": width})
