"""Human-readable alert lines for ``make run`` / ``anomstream run --print-alerts``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from pydantic import ValidationError

from anomstream.wire.records import Alert


def format_alert(alert: Alert) -> str:
    """One line: status, severity, entity, the top feature against its expectation, score vs threshold.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> a = Alert(alert_id="x", entity_id="host-01", stream="default", timestamp=t,
    ...           detected_at=t, status="open", severity="high", score=0.93,
    ...           threshold=0.7, detector="ewma", values={"cpu": 97.0}, contributions={"cpu": 1.0},
    ...           expected={"cpu": {"mean": 40.0, "low": 34.0, "high": 46.0}},
    ...           source={"topic": "t", "partition": 0, "offset": 5})
    >>> print(format_alert(a))  # doctest: +NORMALIZE_WHITESPACE
    2026-01-01T00:00:00Z OPEN high host-01 cpu=97 (expected 40 in [34, 46], 100%)
    score 0.93 > 0.70 ewma
    """
    top = max(alert.contributions, key=alert.contributions.__getitem__, default=None)
    what = ""
    if top is not None:
        value = alert.values.get(top)
        band = alert.expected.get(top)
        what = f"{top}={value:.4g}"
        if band is not None:
            what += f" (expected {band.mean:.4g} in [{band.low:.4g}, {band.high:.4g}]"
            what += f", {alert.contributions[top]:.0%})"
    extra = " ".join(f"{k}={v}" for k, v in alert.attributes.items() if k == "injected")
    ts = alert.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    line = (
        f"{ts} {alert.status.upper():<8} {alert.severity:<8} {alert.entity_id} {what} "
        f"score {alert.score:.2f} {'>' if alert.score > alert.threshold else '<='} {alert.threshold:.2f} "
        f"{alert.detector}"
    )
    return f"{line} {extra}".rstrip()


def print_alerts(consumer: Any, out: TextIO, stopped: Callable[[], bool]) -> None:
    """Print each alert the consumer receives until ``stopped()``; undecodable records are skipped."""
    while not stopped():
        msg = consumer.poll(0.5)
        if msg is None or msg.error() is not None:
            continue
        try:
            alert = Alert.model_validate_json(msg.value())
        except ValidationError:
            continue
        print(format_alert(alert), file=out, flush=True)
    consumer.close()
