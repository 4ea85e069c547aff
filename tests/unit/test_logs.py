"""Logging: JSON lines off a TTY, librdkafka routed through the same pipeline, secrets never written."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from anomstream.ops import logs


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo logs.configure: later tests must not write to this test's captured (closed) stderr."""
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def test_json_lines_and_secret_redaction(capsys: pytest.CaptureFixture[str]) -> None:
    """A secret-named field is masked in the JSON line; ordinary fields are kept."""
    logs.configure("json", "INFO")
    logs.get("worker").info("commit", consumed=3, sasl_password="hunter2", hmac_key="k3y")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "commit"
    assert line["consumed"] == 3
    assert "hunter2" not in json.dumps(line)
    assert "k3y" not in json.dumps(line)


def test_librdkafka_lines_are_clean_json(capsys: pytest.CaptureFixture[str]) -> None:
    """Librdkafka's stdlib log records come out as JSON with the logger name and no internal fields."""
    logs.configure("json", "INFO")
    logs.kafka_logger().warning("GETPID [producer-1] retrying")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert (line["logger"], line["level"], line["event"]) == (
        "librdkafka",
        "warning",
        "GETPID [producer-1] retrying",
    )
    assert not any(key.startswith("_") for key in line)
