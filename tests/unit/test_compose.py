"""docker-compose.yml stays a valid compose file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose_client() -> list[str] | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        if subprocess.run([*cmd, "version"], capture_output=True, check=False).returncode == 0:
            return cmd
    return None


def test_compose_file_is_valid() -> None:
    """`docker compose config -q` accepts the stack definition (where a compose client exists)."""
    cmd = _compose_client()
    if cmd is None:
        pytest.skip("no docker compose client on this machine")
    result = subprocess.run([*cmd, "config", "-q"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_compose_runs_the_explorer_beside_the_workers() -> None:
    """An `explorer` service runs `ui` on 8080 with a token; workers publish the scores it plots."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    explorer, worker = services["explorer"], services["worker"]
    assert explorer["command"] == ["ui"]
    assert "8080:8080" in explorer["ports"]
    assert explorer["environment"]["ANOMSTREAM_UI__HOST"] == "0.0.0.0"
    assert explorer["environment"]["ANOMSTREAM_UI__FEEDBACK_TOKEN"]
    topic = worker["environment"]["ANOMSTREAM_TOPICS__SCORES"]
    assert topic == explorer["environment"]["ANOMSTREAM_TOPICS__SCORES"] != ""
    assert worker["environment"]["ANOMSTREAM_WORKER__SCORE_BANDS"] == "true"
