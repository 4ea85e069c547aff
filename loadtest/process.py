"""The parent's handle on a ``workerproc`` subprocess: start it, read its protocol lines, VmHWM, stop."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import orjson

from loadtest import ROOT, stats


def proc_field_kib(path: Path, field: str) -> int:
    """A ``Field:   123 kB`` line of a ``/proc`` file, in KiB (0 when absent)."""
    for line in path.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def proc_status_kib(pid: int | str, field: str) -> int:
    """A ``/proc/<pid>/status`` field (``VmHWM`` = peak RSS, ``VmRSS`` = current); pid may be "self"."""
    return proc_field_kib(Path(f"/proc/{pid}/status"), field)


class WorkerProcess:
    """A running ``python -m loadtest.workerproc`` with its stdout protocol."""

    def __init__(self, config_path: Path, log_path: Path, command: list[str] | None = None) -> None:
        self.log_path = log_path
        command = command or [sys.executable, "-m", "loadtest.workerproc"]  # or a peer (``peerproc``)
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*command, str(config_path)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        assert self.proc.stdout is not None
        self.stdout: IO[bytes] = self.proc.stdout
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.stdout, selectors.EVENT_READ)

    @property
    def pid(self) -> int:
        """OS pid of the worker."""
        return self.proc.pid

    def wait_for(self, event: str, timeout: float) -> dict[str, Any]:
        """Block until the worker reports ``event``; a dead worker or a timeout raises with its log."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"worker did not report {event!r} in {timeout:.0f}s; {self._tail()}")
            if not self.selector.select(timeout=min(left, 1.0)):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"worker exited ({self.proc.returncode}) early; {self._tail()}")
                continue
            line = self.stdout.readline()
            if not line:
                self.proc.wait(timeout=10)
                raise RuntimeError(f"worker closed stdout ({self.proc.returncode}); {self._tail()}")
            doc: dict[str, Any] = orjson.loads(line)
            if doc.get("event") == event:
                return doc

    def peak_rss_kib(self) -> int:
        """Peak resident set (VmHWM) of the worker so far."""
        return proc_status_kib(self.pid, "VmHWM")

    def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        """SIGTERM, wait for the final report and the exit."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait_for("done", timeout)
        finally:
            self.close()

    def close(self) -> None:
        """Make sure the process is gone (SIGKILL after 15 s) and the pipe closed."""
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.selector.close()
        self.stdout.close()

    def _tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"log {self.log_path} ends with:\n{text[-2000:]}"


def commit_stats(log_path: Path) -> dict[str, Any]:
    """Summary of the worker's canonical ``commit`` log lines: how long commits block, snapshot bytes."""
    durations, snapshot, consumed = [], 0, 0
    if log_path.exists():
        for line in log_path.read_bytes().splitlines():
            if b'"commit"' not in line:
                continue
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if doc.get("event") != "commit":
                continue
            durations.append(float(doc.get("duration_ms", 0.0)))
            snapshot += int(doc.get("snapshot_bytes", 0))
            consumed += int(doc.get("consumed", 0))
    return {
        "commits": len(durations),
        "p50_ms": round(stats.percentile(durations, 50), 2) if durations else None,
        "max_ms": round(max(durations), 2) if durations else None,
        "total_s": round(sum(durations) / 1000, 3),
        "snapshot_mib": round(snapshot / 2**20, 2),
        "snapshot_bytes_per_event": round(snapshot / consumed, 1) if consumed else None,
    }
