"""Logging: structlog with JSON lines in containers and a readable console on a TTY.

librdkafka's own logs are routed through the stdlib logger returned by ``kafka_logger``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_SECRET_HINTS = ("password", "secret", "hmac", "token", "key_password")


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    # Defence in depth: a secret that slips into a log call is masked, never written.
    for name in list(event):
        if any(hint in name.lower() for hint in _SECRET_HINTS):
            event[name] = "**********"
    return event


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was configured.

    A stream bound at configure time outlives its owner when ``sys.stderr`` is swapped (pytest's capture,
    a re-configured CLI run in-process); writing to it then fails with "I/O operation on closed file".
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(fmt: str = "auto", level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger once, at start-up (called by the CLI)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(_Stderr()),  # type: ignore[arg-type]  # duck-typed file
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(_Stderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def get(name: str) -> Any:
    """A structlog logger bound to a component name."""
    return structlog.get_logger(component=name)


def kafka_logger() -> logging.Logger:
    """The stdlib logger librdkafka writes through (set as the client's ``logger``)."""
    return logging.getLogger("librdkafka")
