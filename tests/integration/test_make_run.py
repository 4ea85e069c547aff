"""`make run` on the real broker: worker and explorer up, URL printed, log in a file, SIGTERM stops all.

It starts the worker and the explorer, prints the explorer's URL, keeps the full log in a file, and a
SIGTERM to make stops everything it started, the broker included.

The broker step is a recording stand-in for ``kafka_local.py`` (``KAFKA=...``) whose port is the session
broker's, so the test sees the script call ``up`` and ``down`` without starting a second broker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from integration.harness import ROOT, env_for, settings_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the test starts make as a session leader)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except OSError:
        return 0


def _logged(log: Path, event: str) -> bool:
    try:
        return event in log.read_text()
    except OSError:
        return False


def test_make_run_serves_the_explorer_and_sigterm_stops_everything(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The explorer answers at the printed URL; SIGTERM to make ends worker, explorer and broker."""
    settings = settings_for(kafka_bootstrap)
    port, ui_port = kafka_bootstrap.rsplit(":", 1)[1], _free_port()
    calls = tmp_path / "kafka-calls"
    fake = f"{sys.executable} -c \"import sys; open('{calls}', 'a').write(sys.argv[1] + chr(10))\""
    env = env_for(settings, ANOMSTREAM_METRICS__PORT="0", ANOMSTREAM_UI__HOST="127.0.0.1")
    env.pop("ANOMSTREAM_KAFKA__BOOTSTRAP_SERVERS")  # the script must export the broker it "started"
    out = tmp_path / "terminal.txt"
    with out.open("wb") as terminal:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "-o", ".venv/.installed", "run", f"KAFKA={fake}",
             f"KAFKA_DATA={tmp_path / 'data'}", f"KAFKA_PORT={port}", f"UI_PORT={ui_port}"],
            cwd=ROOT, env=env, stdout=terminal, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        log_file = tmp_path / "data" / "anomstream.log"
        # The worker imports its models after the explorer is up: wait for both before the SIGTERM.
        while _get(f"http://127.0.0.1:{ui_port}/healthz") != 200 or not _logged(log_file, "worker_started"):
            assert make.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.5)
        assert len(_session_members(make.pid)) >= 3, "make, the worker and the explorer"
        make.send_signal(signal.SIGTERM)
        make.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _session_members(make.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _session_members(make.pid) == [], "a process make started outlived its SIGTERM"
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
    terminal_text = out.read_text()
    assert calls.read_text().split() == ["up", "down"], terminal_text
    assert f"http://127.0.0.1:{ui_port}/" in terminal_text
    assert _logged(log_file, "worker_started"), "the worker's log goes to the file"
    assert "worker_started" not in terminal_text, "not to the terminal"
