"""Server-rendered HTML of the explorer: the alert list, an alert's page and an entity's page.

Every value from a record is escaped; the only script is the package's own ``/static/explorer.js``.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from anomstream.ui.book import AlertBook, Filters
from anomstream.ui.plots import series_figure
from anomstream.wire.records import Alert

SEVERITIES = ("low", "medium", "high", "critical")
KINDS = ("point", "contextual", "collective", "population", "silent", "shift")
STATUSES = ("open", "ongoing", "resolved")


def _page(title: str, body: str, *, plot: bool = False) -> str:
    plotly = '<script src="/static/plotly.min.js"></script>' if plot else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · anomstream</title>
<link rel="stylesheet" href="/static/explorer.css">{plotly}
<script src="/static/explorer.js"></script></head>
<body><header><h1><a href="/">anomstream explorer</a></h1><a href="/">alerts</a>
<a href="/entities">entities</a></header><main>{body}</main></body></html>"""


def _alert_href(alert: Alert) -> str:
    return f"/alerts/{quote(alert.alert_id)}"


def _entity_href(stream: str, entity: str) -> str:
    return f"/entities/{quote(stream, safe='')}/{quote(entity, safe='')}"


def alert_rows(book: AlertBook, alerts: list[Alert]) -> str:
    """The ``<tr>`` rows of an alert table (the list's are also served alone for the live refresh)."""
    rows = []
    for a in alerts:
        verdict = book.verdict(a.alert_id) or ""
        rows.append(
            f'<tr data-alert="{escape(a.alert_id)}"><td>{a.timestamp:%Y-%m-%d %H:%M:%S}</td>'
            f"<td>{escape(a.stream)}</td>"
            f'<td><a href="{_entity_href(a.stream, a.entity_id)}">{escape(a.entity_id)}</a></td>'
            f'<td><a href="{_alert_href(a)}">{escape(a.status)}</a></td>'
            f'<td class="sev-{a.severity}">{a.severity}</td><td>{escape(a.kind)}</td>'
            f"<td>{escape(a.view)}</td><td class='num'>{a.score:.3f}</td>"
            f"<td class='num'>{a.threshold:.3f}</td><td>{escape(verdict)}</td></tr>"
        )
    return "\n".join(rows) or '<tr><td colspan="10" class="muted">no alerts yet</td></tr>'


def _select(name: str, options: tuple[str, ...], chosen: str) -> str:
    opts = "".join(
        f'<option value="{o}"{" selected" if o == chosen else ""}>{o or "any"}</option>'
        for o in ("", *options)
    )
    return f'<label>{name} <select name="{name}">{opts}</select></label>'


def alert_list(book: AlertBook, filters: Filters) -> str:
    """The home page: filters and the live alert table."""
    form = (
        '<form class="filters" method="get">'
        f'<label>stream <input name="stream" value="{escape(filters.stream)}" size="10"></label>'
        f'<label>entity <input name="entity" value="{escape(filters.entity)}" size="12"></label>'
        f"{_select('severity', SEVERITIES, filters.severity)}{_select('kind', KINDS, filters.kind)}"
        f"{_select('status', STATUSES, filters.status)}<button>filter</button></form>"
    )
    table = (
        '<table id="alerts"><thead><tr><th>event time</th><th>stream</th><th>entity</th><th>status</th>'
        "<th>severity</th><th>kind</th><th>what fired</th><th>score</th><th>threshold</th><th>verdict</th>"
        f"</tr></thead><tbody>{alert_rows(book, book.alerts(filters))}</tbody></table>"
    )
    return _page("alerts", form + table)


def _explanation(alert: Alert) -> str:
    rows = []
    for feature, share in sorted(alert.contributions.items(), key=lambda kv: -kv[1]):
        band = alert.expected.get(feature)
        expected = f"{band.mean:.4g} in [{band.low:.4g}, {band.high:.4g}]" if band else "—"
        value = alert.values.get(feature)
        rows.append(
            f"<tr><td>{escape(feature)}</td><td class='num'>{'' if value is None else f'{value:.4g}'}</td>"
            f"<td>{expected}</td><td class='num'>{share:.0%}</td></tr>"
        )
    return (
        "<table><thead><tr><th>feature</th><th>value</th><th>expected</th><th>share of score</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _feature(alert: Alert) -> str:
    """The feature to plot: the one in the alert's view, else the largest contribution."""
    head = alert.view.rsplit(".", 1)[0] if alert.view else ""
    if head in alert.values:
        return head
    top = max(alert.contributions, key=alert.contributions.__getitem__, default="")
    return top or next(iter(alert.values), "")


def _plot(figure: str) -> str:
    # JSON inside a script element: only "</" could end it early, so that is the one thing escaped.
    safe = figure.replace("</", "<\\/")
    return f'<div id="plot"></div><script type="application/json" id="figure">{safe}</script>'


def _token_field(writable: bool) -> str:
    if not writable:
        return '<p class="muted">read-only explorer: feedback is off (no token configured)</p>'
    return '<label>token <input id="token" type="password" size="24" autocomplete="off"></label> '


def alert_page(book: AlertBook, alert: Alert, *, writable: bool) -> str:
    """One alert: facts, explanation, the entity's series around it, and the feedback buttons."""
    key = (alert.stream, alert.entity_id)
    series = book.around(key, alert.timestamp)
    feature = _feature(alert)
    nearby = [a for a in book.alerts(Filters(stream=alert.stream)) if a.entity_id == alert.entity_id]
    facts = {
        "entity": f'<a href="{_entity_href(*key)}">{escape(alert.entity_id)}</a>',
        "stream": escape(alert.stream),
        "status / severity / kind": f"{alert.status} / {alert.severity} / {escape(alert.kind)}",
        "what fired": escape(alert.view or feature),
        "score / threshold": f"{alert.score:.3f} / {alert.threshold:.3f}",
        "tail probability": "—" if alert.probability is None else f"{alert.probability:.2e}",
        "detector": escape(alert.detector),
        "event time / detected": f"{alert.timestamp:%Y-%m-%d %H:%M:%S} / {alert.detected_at:%H:%M:%S}",
        "source": f"{escape(alert.source.topic)} [{alert.source.partition}] @ {alert.source.offset}",
        "verdict": f'<span id="verdict">{escape(book.verdict(alert.alert_id) or "none yet")}</span>',
    }
    facts_html = "".join(f"<div>{k}</div><div>{v}</div>" for k, v in facts.items())
    buttons = "".join(
        f'<button data-verdict="{v}" data-alert="{escape(alert.alert_id)}"{"" if writable else " disabled"}>'
        f"{v.replace('_', ' ')}</button>"
        for v in ("true_positive", "false_positive")
    )
    body = (
        f'<div class="panel"><div class="facts">{facts_html}</div></div>'
        f'<div class="panel"><h3>{escape(feature)} around the alert ({len(series)} points)</h3>'
        f"{_plot(series_figure(series, feature, nearby, alert.timestamp))}</div>"
        f'<div class="panel"><h3>why it fired</h3>{_explanation(alert)}</div>'
        f'<div class="panel"><h3>feedback</h3>{_token_field(writable)}{buttons}'
        '<span id="feedback-status"></span></div>'
    )
    return _page(f"alert {alert.entity_id}", body, plot=True)


def entity_page(book: AlertBook, stream: str, entity: str, *, writable: bool) -> str:
    """One entity: its whole recent series, its alerts, and a form to report a missed anomaly."""
    series = book.series((stream, entity))
    alerts = [a for a in book.alerts(Filters(stream=stream)) if a.entity_id == entity]
    features = sorted({f for r in series[-50:] for f in r.values})
    feature = _feature(alerts[0]) if alerts else (features[0] if features else "")
    start = series[0].timestamp.strftime("%Y-%m-%dT%H:%M:%S") if series else ""
    end = series[-1].timestamp.strftime("%Y-%m-%dT%H:%M:%S") if series else ""
    missed = (
        f'<form id="missed-form"><input type="hidden" name="stream" value="{escape(stream)}">'
        f'<input type="hidden" name="entity_id" value="{escape(entity)}">{_token_field(writable)}'
        f'<label>from <input type="datetime-local" step="1" name="start" value="{start}"></label> '
        f'<label>to <input type="datetime-local" step="1" name="end" value="{end}"></label> '
        f"<button{'' if writable else ' disabled'}>report missed anomaly</button>"
        '<span id="feedback-status"></span></form>'
    )
    rows = alert_rows(book, alerts)
    body = (
        f"<h2>{escape(entity)} <span class='muted'>stream {escape(stream)}</span></h2>"
        f'<div class="panel"><h3>{escape(feature)} ({len(series)} points)</h3>'
        f"{_plot(series_figure(series, feature, alerts))}</div>"
        f'<div class="panel"><h3>alerts</h3><table id="entity-alerts"><tbody>{rows}</tbody></table></div>'
        f'<div class="panel"><h3>missed an anomaly?</h3>{missed}</div>'
    )
    return _page(f"entity {entity}", body, plot=True)


def entity_list(book: AlertBook) -> str:
    """Every entity the explorer has seen, most alerted first."""
    rows = "".join(
        f'<tr><td>{escape(s)}</td><td><a href="{_entity_href(s, e)}">{escape(e)}</a></td>'
        f"<td class='num'>{n}</td></tr>"
        for (s, e), n in book.entities()
    )
    head = "<thead><tr><th>stream</th><th>entity</th><th>alerts</th></tr></thead>"
    table = f"<table>{head}<tbody>{rows}</tbody></table>"
    return _page("entities", table)
