"""Replay outputs: row writers (CSV or JSONL, by suffix) and a carriage-return progress line."""

from __future__ import annotations

import contextlib
import csv
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

Writer = Callable[[dict[str, Any]], None]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


@contextlib.contextmanager
def open_writer(path: Path | None, stdout: IO[str] | None = None) -> Iterator[Writer]:
    """A writer of dict rows: JSONL for ``.jsonl``/``.ndjson``, else CSV; ``None`` writes CSV to stdout.

    CSV columns are the first row's keys; ``None`` is an empty cell, booleans are ``true``/``false``
    and nested objects and lists are compact JSON.

    Examples
    --------
    >>> import io
    >>> buf = io.StringIO()
    >>> with open_writer(None, buf) as write:
    ...     write({"a": 1, "b": None, "c": True})
    >>> buf.getvalue().splitlines()
    ['a,b,c', '1,,true']
    """
    jsonl = path is not None and path.suffix.lower() in (".jsonl", ".ndjson")
    with contextlib.ExitStack() as stack:
        if path is None:
            handle = stdout or sys.stdout
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = stack.enter_context(path.open("w", newline="", encoding="utf-8"))
        yield _jsonl_writer(handle) if jsonl else _csv_writer(handle)


def _jsonl_writer(handle: IO[str]) -> Writer:
    def write(row: dict[str, Any]) -> None:
        handle.write(orjson.dumps(row).decode() + "\n")

    return write


def _csv_writer(handle: IO[str]) -> Writer:
    state: dict[str, Any] = {}

    def write(row: dict[str, Any]) -> None:
        writer = state.get("writer")
        if writer is None:
            writer = state["writer"] = csv.DictWriter(handle, fieldnames=list(row), lineterminator="\n")
            writer.writeheader()
        writer.writerow({k: _cell(v) for k, v in row.items()})

    return write


class Progress:
    """``label  done/total  pct`` on one stderr line, rewritten in place; silent unless stderr is a TTY.

    Parameters
    ----------
    label
        What is being processed (e.g. the file name).
    total
        Expected number of steps, or ``None`` when unknown.
    stream
        Where to draw; defaults to ``sys.stderr``.
    """

    def __init__(self, label: str, total: int | None, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.active = self.stream.isatty()
        self.label, self.total, self.done = label, total, 0
        self._last = 0.0

    def step(self, n: int = 1) -> None:
        """Count ``n`` steps; redraws at most ten times a second."""
        self.done += n
        if self.active and (now := time.monotonic()) - self._last >= 0.1:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if self.total:
            pct = 100 * self.done / self.total
            width = 30
            filled = int(width * min(self.done, self.total) / self.total)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {pct:5.1f}%")
        else:
            self.stream.write(f"\r{self.label} {self.done} rows")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.active:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
