"""The Prometheus config and rules are valid, and every alert is unit-tested firing and staying quiet.

``promtool`` comes from ``deploy/prometheus/ensure-prometheus.sh``; without it these tests skip, except
under ``CI=true``, where they fail.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from prometheus_fixtures import ALERTING_RULES, PROMETHEUS_DIR, RECORDING_RULES, require_binary

CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=PROMETHEUS_DIR,
    )


def _alert_names() -> list[str]:
    return re.findall(r"^\s*- alert:\s*(\S+)\s*$", ALERTING_RULES.read_text(), re.MULTILINE)


def test_rule_files_are_the_expected_ones() -> None:
    """Both rule files exist, and unit tests exist for them (the globs below are not vacuous)."""
    assert sorted([ALERTING_RULES, RECORDING_RULES]) == RULE_FILES
    assert RULE_TESTS, "no promtool rule tests in deploy/prometheus/tests"


def test_config_is_valid() -> None:
    """`promtool check config` accepts prometheus.yml and finds both rule files it references."""
    result = _promtool("check", "config", CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout + result.stderr


def test_rules_are_valid() -> None:
    """`promtool check rules` accepts the alerting and recording rules (PromQL parses, names are legal)."""
    result = _promtool("check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    """`promtool test rules` passes: each alert fires when it should, and only then."""
    result = _promtool("test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules_reports_a_wrong_expectation(tmp_path: Path) -> None:
    """A rule test expecting a healthy worker to be reported down fails (the harness can fail)."""
    wrong = tmp_path / "wrong_test.yml"
    wrong.write_text(
        f"rule_files: [{ALERTING_RULES}]\n"
        "evaluation_interval: 1m\n"
        "tests:\n"
        "  - interval: 1m\n"
        "    input_series:\n"
        '      - series: \'up{job="anomstream", instance="w1:9108"}\'\n'
        "        values: '1x10'\n"
        "    alert_rule_test:\n"
        "      - eval_time: 5m\n"
        "        alertname: AnomstreamWorkerDown\n"
        "        exp_alerts:\n"
        "          - exp_labels: {severity: warning, job: anomstream, instance: 'w1:9108'}\n"
    )
    result = _promtool("test", "rules", wrong)
    assert result.returncode != 0
    assert "AnomstreamWorkerDown" in result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """Each alerting rule has at least one firing case and one quiet case in the promtool tests."""
    names = _alert_names()
    assert len(names) >= 6, names
    text = "\n".join(path.read_text() for path in RULE_TESTS)
    # alert_rule_test entries are written as `alertname: X` followed by `exp_alerts: []` (quiet) or by
    # an `exp_alerts:` list (firing)
    cases = re.findall(r"alertname:\s*(\S+)\s*\n\s*exp_alerts:[ \t]*(\[\])?", text)
    firing = {name for name, empty in cases if not empty}
    quiet = {name for name, empty in cases if empty}
    assert not set(names) - firing, f"alerts never tested firing: {sorted(set(names) - firing)}"
    assert not set(names) - quiet, f"alerts never tested quiet: {sorted(set(names) - quiet)}"


def test_every_alert_has_severity_and_annotations() -> None:
    """Each alerting rule carries a warning/critical severity and summary + description annotations."""
    blocks = re.split(r"^\s*- alert:\s*", ALERTING_RULES.read_text(), flags=re.MULTILINE)[1:]
    assert len(blocks) == len(_alert_names())
    for block in blocks:
        name = block.split()[0]
        assert re.search(r"^\s+severity:\s*(warning|critical)\s*$", block, re.MULTILINE), name
        assert re.search(r"^\s+summary:\s*\S", block, re.MULTILINE), name
        assert re.search(r"^\s+description:\s*\S", block, re.MULTILINE), name
