"""A real Prometheus for the test suite: own process, free port, temporary storage, 1 s scrapes.

``deploy/prometheus/ensure-prometheus.sh`` installs ``prometheus`` and ``promtool``. Without them the tests
that need them skip, except with ``CI=true``, where a missing binary fails the run.

Use the session fixture ``prometheus_server`` (make it visible with
``from prometheus_fixtures import prometheus_server_fixture``, in a conftest or a test module) and point
it at targets with ``scrape([...])``; or drive ``PrometheusServer`` yourself.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from kafka_local import free_port

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RECORDING_RULES = PROMETHEUS_DIR / "rules" / "recording.yml"
ALERTING_RULES = PROMETHEUS_DIR / "rules" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "anomstream.json"
JOB = "anomstream"  # the scrape job of deploy/prometheus/prometheus.yml; the rules select on it

# What Grafana substitutes for its built-in variables when the dashboard runs its queries; the tests run
# the same queries straight against Prometheus (1 s scrapes), so fixed windows stand in.
GRAFANA_VARIABLES = {"__rate_interval": "30s", "__interval": "5s", "__range": "5m"}


class PrometheusError(RuntimeError):
    """Prometheus refused a request (bad PromQL, failed reload) or did not start."""


def require_binary(name: str) -> str:
    """Path of ``name`` (``prometheus`` / ``promtool``); skip without it, or fail under ``CI=true``."""
    path = shutil.which(name)
    if path is None:
        reason = f"`{name}` is not on PATH (deploy/prometheus/ensure-prometheus.sh installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI requires {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def render_config(targets: Sequence[str], rule_files: Sequence[Path], scrape_interval: str = "1s") -> str:
    """A Prometheus config scraping ``targets`` as job ``anomstream`` (JSON, which is valid YAML)."""
    doc = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": scrape_interval,
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": list(targets)}]}],
    }
    return json.dumps(doc, indent=2) + "\n"


def has_data(result: list[dict[str, Any]]) -> bool:
    """True when an instant-query result holds at least one sample that is a number (not NaN).

    ``histogram_quantile`` over buckets that saw no observation yields NaN, which Grafana draws as
    nothing: that is no data.
    """
    return any(not math.isnan(float(series["value"][1])) for series in result)


@dataclasses.dataclass(frozen=True)
class PanelQuery:
    """One query of one dashboard panel."""

    panel: str
    ref_id: str
    expr: str

    @property
    def name(self) -> str:
        """``<panel title>/<refId>``, unique within the dashboard (used as a test id)."""
        return f"{self.panel}/{self.ref_id}"


def dashboard_panels(path: Path = DASHBOARD) -> list[dict[str, Any]]:
    """Every non-row panel of a dashboard, including those nested in collapsed rows."""
    doc = json.loads(path.read_text())
    panels: list[dict[str, Any]] = []
    for panel in doc["panels"]:
        if panel.get("type") == "row":
            panels.extend(panel.get("panels", []))
        else:
            panels.append(panel)
    return panels


def dashboard_queries(path: Path = DASHBOARD) -> list[PanelQuery]:
    """Every PromQL target of every panel, Grafana variables still in place."""
    return [
        PanelQuery(panel["title"], target["refId"], target["expr"])
        for panel in dashboard_panels(path)
        for target in panel.get("targets", [])
    ]


def to_promql(expr: str, variables: dict[str, str] | None = None) -> str:
    """Replace ``$var`` / ``${var}`` Grafana variables as Grafana would; unknown ones stay as they are."""
    values = GRAFANA_VARIABLES if variables is None else variables

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, expr)


class PrometheusServer:
    """One ``prometheus`` process owned by the tests; stopped by its pid.

    Parameters
    ----------
    binary
        The ``prometheus`` executable.
    workdir
        Holds the generated config, the TSDB directory and the log.
    rule_files
        Rule files to load (absolute paths).
    scrape_interval
        Also the rule evaluation interval.
    """

    def __init__(
        self,
        binary: str,
        workdir: Path,
        rule_files: Sequence[Path] = (),
        scrape_interval: str = "1s",
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.rule_files = list(rule_files)
        self.scrape_interval = scrape_interval
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self, targets: Sequence[str] = (), timeout: float = 30.0) -> PrometheusServer:
        """Write the config, start the process and wait for ``/-/ready``."""
        self.config_path.write_text(render_config(targets, self.rule_files, self.scrape_interval))
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",  # POST /-/reload after scrape()
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self.process.returncode}: {self.log_tail()}")
            if self._status("/-/ready") == 200:
                return self
            time.sleep(0.2)
        self.stop()
        raise PrometheusError(f"prometheus not ready after {timeout}s: {self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM by pid, SIGKILL after ``timeout``; idempotent."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the process log (for failure messages)."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    # -- configuration -----------------------------------------------------------------------------
    def scrape(self, targets: Sequence[str]) -> None:
        """Scrape exactly ``targets`` (``host:port``) from now on: rewrite the config and reload."""
        self.config_path.write_text(render_config(targets, self.rule_files, self.scrape_interval))
        status, body = self._request("/-/reload", method="POST")
        if status != 200:
            raise PrometheusError(f"reload failed ({status}): {body.decode(errors='replace')}")

    # -- HTTP API ----------------------------------------------------------------------------------
    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``; a PromQL or API error raises."""
        query = urllib.parse.urlencode(params)
        status, body = self._request(f"/api/v1/{path}?{query}")
        doc = json.loads(body)
        if status != 200 or doc.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {doc.get('errorType')}: {doc.get('error')}")
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query at the current time: the result vector (``[]`` when nothing matches)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(self, condition: Callable[[], bool], timeout: float, interval: float = 1.0) -> bool:
        """Poll ``condition`` until it holds (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if condition():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def _status(self, path: str) -> int:
        try:
            return self._request(path)[0]
        except OSError:
            return 0

    def _request(self, path: str, method: str = "GET") -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())


@pytest.fixture(scope="session", name="prometheus_server")
def prometheus_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """The session's Prometheus, with our recording and alerting rules, scraping nothing until told."""
    binary = require_binary("prometheus")
    server = PrometheusServer(
        binary, tmp_path_factory.mktemp("prometheus"), rule_files=[RECORDING_RULES, ALERTING_RULES]
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
