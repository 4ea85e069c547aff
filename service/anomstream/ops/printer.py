"""Human-readable alert lines for ``make run`` / ``anomstream run --print-alerts``, and a periodic summary.

The worker's own log (one commit line every few seconds) goes to stderr, which ``make run`` sends to a
file: the terminal reads as alerts, with one summary line every ``summary_s`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
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
    top = _feature(alert)
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


def _feature(alert: Alert) -> str | None:
    """The feature the line is about: the one that fired, else the largest contribution.

    ``view`` names what fired; a resolved alert's names what opened its episode (``Lifecycle.cause``).
    """
    head = alert.view.rsplit(".", 1)[0] if alert.view else ""
    if head in alert.values:
        return head
    if alert.view in alert.values:
        return alert.view
    return max(alert.contributions, key=alert.contributions.__getitem__, default=None)


def format_summary(totals: Mapping[str, float], previous: Mapping[str, float], seconds: float) -> str:
    """One line of what happened since the last summary.

    Examples
    --------
    >>> print(format_summary({"events": 1400, "alerts": 3, "dead_letters": 0, "keys": 8},
    ...                      {"events": 200, "alerts": 1}, 30))
    -- 1,200 events scored (40/s), 2 alerts, 0 dead letters, 8 keys (3 alerts, 1,400 events in all)
    """
    events = totals.get("events", 0) - previous.get("events", 0)
    alerts = totals.get("alerts", 0) - previous.get("alerts", 0)
    letters = totals.get("dead_letters", 0) - previous.get("dead_letters", 0)
    rate = events / seconds if seconds > 0 else 0.0
    return (
        f"-- {events:,.0f} events scored ({rate:,.0f}/s), {alerts:,.0f} alerts, {letters:,.0f} dead letters, "
        f"{totals.get('keys', 0):,.0f} keys ({totals.get('alerts', 0):,.0f} alerts, "
        f"{totals.get('events', 0):,.0f} events in all)"
    )


class Summary:
    """Prints ``format_summary`` of ``totals()`` every ``every_s`` seconds (monotonic clock)."""

    def __init__(
        self,
        totals: Callable[[], Mapping[str, float]],
        every_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.totals, self.every_s, self.clock = totals, every_s, clock
        self._last, self._seen = clock(), dict(totals())

    def maybe_print(self, out: TextIO) -> None:
        """Print a line when one is due."""
        now = self.clock()
        if now - self._last < self.every_s:
            return
        current = dict(self.totals())
        print(format_summary(current, self._seen, now - self._last), file=out, flush=True)
        self._last, self._seen = now, current


def poll_alert(consumer: Any, timeout_s: float = 0.5) -> Alert | None:
    """The next alert on an alert-topic consumer, or None (nothing within ``timeout_s``, or undecodable)."""
    msg = consumer.poll(timeout_s)
    if msg is None or msg.error() is not None:
        return None
    try:
        return Alert.model_validate_json(msg.value())
    except ValidationError:
        return None


def print_alerts(
    consumer: Any, out: TextIO, stopped: Callable[[], bool], summary: Summary | None = None
) -> None:
    """Print each alert the consumer receives until ``stopped()``; undecodable records are skipped."""
    while not stopped():
        if summary is not None:
            summary.maybe_print(out)
        alert = poll_alert(consumer)
        if alert is not None:
            print(format_alert(alert), file=out, flush=True)
    consumer.close()
