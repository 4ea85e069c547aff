"""The Grafana dashboard is well-formed and queries only metrics the worker exposes or rules we record."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from anomstream.ops.metrics import Metrics
from prometheus_fixtures import (
    DASHBOARD,
    RECORDING_RULES,
    ROOT,
    dashboard_panels,
    dashboard_queries,
    require_binary,
    to_promql,
)

DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDER = ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "anomstream.yml"

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "atan2",
}


def exposed_metric_names() -> set[str]:
    """Sample names a worker can expose, from a fresh ``Metrics`` registry (labelled or not)."""
    names: set[str] = set()
    for family in Metrics(CollectorRegistry()).registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def recording_rule_names() -> set[str]:
    """Names recorded by ``rules/recording.yml``."""
    return set(re.findall(r"^\s*- record:\s*(\S+)\s*$", RECORDING_RULES.read_text(), re.MULTILINE))


def metric_names(expr: str) -> set[str]:
    """Metric (and recording-rule) names a PromQL expression selects.

    Strings, label matchers, ranges and grouping clauses are removed first; what remains and is not
    called like a function nor a keyword is a series name.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = re.findall(r"(?<![\w.:$])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", text)
    return {name for name in names if name.lower() not in _KEYWORDS}


def _provisioned_datasource_uids() -> list[str]:
    return re.findall(r"^\s*uid:\s*(\S+)\s*$", DATASOURCES.read_text(), re.MULTILINE)


def test_metric_name_extraction() -> None:
    """The PromQL name extractor finds selectors and skips functions, labels, ranges and keywords."""
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{le!="1", x=~"b.*"}[$__rate_interval])))'
        " / on (job) group_left b:rec:rate1m > bool 1e3 and time() - c_seconds offset 5m or vector(1)"
    )
    assert metric_names(expr) == {"a_bucket", "b:rec:rate1m", "c_seconds"}


def test_dashboard_is_valid_json() -> None:
    """The dashboard file is a JSON object with a stable uid, a title and panels with unique ids."""
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] == "anomstream"
    assert doc["title"]
    ids = [panel["id"] for panel in doc["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    assert len(dashboard_panels()) >= 20


def test_every_panel_has_a_title_and_a_query() -> None:
    """Every panel has a title and at least one target, and every target a non-empty expr."""
    for panel in dashboard_panels():
        assert panel.get("title", "").strip(), panel
        targets = panel.get("targets", [])
        assert targets, f"panel {panel['title']!r} has no query"
        for target in targets:
            assert target.get("expr", "").strip(), f"panel {panel['title']!r} has an empty query"


def test_panel_titles_and_query_ids_are_unique() -> None:
    """Panel titles are unique and refIds unique per panel, so failures name one query unambiguously."""
    titles = [panel["title"] for panel in dashboard_panels()]
    assert len(titles) == len(set(titles)), "duplicate panel titles"
    names = [query.name for query in dashboard_queries()]
    assert len(names) == len(set(names)), "duplicate refIds in a panel"


def test_panels_do_not_overlap() -> None:
    """No two panels (rows included) claim the same grid cell."""
    taken: dict[tuple[int, int], str] = {}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


def test_datasources_are_the_provisioned_prometheus() -> None:
    """Every panel and target names the provisioned Prometheus datasource by its uid."""
    uids = _provisioned_datasource_uids()
    assert len(uids) == 1, uids
    expected = {"type": "prometheus", "uid": uids[0]}
    for panel in dashboard_panels():
        assert panel.get("datasource") == expected, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource") == expected, f"{panel['title']}/{target['refId']}"


def test_dashboard_provider_points_at_the_mounted_dashboards() -> None:
    """The dashboard provider loads from the folder docker-compose.yml mounts the dashboards into."""
    text = DASHBOARD_PROVIDER.read_text()
    assert re.search(r"^\s*path:\s*/var/lib/grafana/dashboards\s*$", text, re.MULTILINE)
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards" in compose


def test_every_metric_queried_exists() -> None:
    """Each series name in a panel query is a worker metric or a recording rule of rules/recording.yml."""
    known = exposed_metric_names() | recording_rule_names()
    unknown = {
        query.name: sorted(metric_names(query.expr) - known)
        for query in dashboard_queries()
        if metric_names(query.expr) - known
    }
    assert not unknown, f"queries select series nobody produces: {unknown}"
    assert all(metric_names(query.expr) for query in dashboard_queries()), "a query selects no series"


def test_every_recording_rule_is_used_by_the_dashboard() -> None:
    """No recording rule is dead weight: each feeds at least one panel."""
    used = set().union(*(metric_names(query.expr) for query in dashboard_queries()))
    assert recording_rule_names(), "no recording rules found"
    assert not recording_rule_names() - used, sorted(recording_rule_names() - used)


def test_grafana_variables_are_all_known() -> None:
    """Only Grafana built-ins the tests can substitute appear in queries ($__rate_interval etc.)."""
    for query in dashboard_queries():
        assert "$" not in to_promql(query.expr), query.name


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    """`promtool check rules` parses every dashboard query (written as recording rules) without error."""
    promtool = require_binary("promtool")
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, query in enumerate(dashboard_queries()):
        lines += [
            f"      - record: dashboard:query_{i}",
            f"        expr: {json.dumps(to_promql(query.expr))}",
        ]
    rules = tmp_path / "dashboard_rules.yml"
    rules.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(dashboard_queries())} rules found" in result.stdout


@pytest.mark.parametrize("bad", ["sum(rate(x[5m])", "rate(x)", "x{"])
def test_promql_check_rejects_broken_queries(tmp_path: Path, bad: str) -> None:
    """The parse check above fails on broken PromQL (it is not vacuous)."""
    promtool = require_binary("promtool")
    rules = tmp_path / "bad.yml"
    rules.write_text(
        f"groups:\n  - name: d\n    rules:\n      - record: d:q\n        expr: {json.dumps(bad)}\n"
    )
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode != 0


def test_detection_quality_panels_query_the_feedback_metrics() -> None:
    """Precision, alert volume, labelled share and re-ranker suppressions each have a panel on its metric."""
    wanted = {
        "Precision from feedback": "anomstream_feedback_total",
        "Alert volume by stream": "anomstream_alerts_opened_total",
        "Share of alerts labelled": "anomstream_alerts_opened_total",
        "Re-ranker suppressions (1h)": "anomstream_rerank_suppressed_total",
    }
    panels = {panel["title"]: panel for panel in dashboard_panels()}
    for title, metric in wanted.items():
        assert title in panels, f"no {title!r} panel"
        assert any(metric in metric_names(t["expr"]) for t in panels[title]["targets"]), title
