"""Runs N worker processes of one consumer group (``anomstream run --workers N``) and stops them together.

Each child is an ordinary ``anomstream run`` with its own metrics port; signals are forwarded.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence


class Supervisor:
    """Start, watch and stop worker child processes.

    Parameters
    ----------
    argv
        Arguments of each child after ``python -m anomstream`` (without ``--workers``).
    count
        How many children.
    base_port
        Metrics port of child 0; child ``i`` gets ``base_port + i`` (0 keeps every child on port 0).
    """

    def __init__(self, argv: Sequence[str], count: int, base_port: int) -> None:
        self.argv = list(argv)
        self.count = count
        self.base_port = base_port
        self.children: list[subprocess.Popen[bytes]] = []
        self._stopping = False

    def start(self) -> None:
        """Spawn the children."""
        for i in range(self.count):
            port = self.base_port + i if self.base_port else 0
            cmd = [sys.executable, "-m", "anomstream", *self.argv, "--metrics-port", str(port)]
            self.children.append(subprocess.Popen(cmd))

    def stop(self) -> None:
        """Forward SIGTERM to every child (they finish their batch and commit)."""
        self._stopping = True
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        """Block until all children exit; a child failing stops the rest. Returns the worst exit code."""
        while any(c.poll() is None for c in self.children):
            if not self._stopping and any(c.returncode not in (None, 0) for c in self.children):
                self.stop()
            time.sleep(0.2)
        codes = [c.returncode for c in self.children]
        return max(codes, key=abs) if codes else 0

    def kill_stragglers(self) -> None:
        """SIGKILL children that ignored SIGTERM (called after the grace period)."""
        for child in self.children:
            if child.poll() is None:
                child.kill()
                child.wait(5)
