"""`make run`: alert lines name the feature that fired, a periodic summary, the demo's own labeller."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from anomstream.ops.demo import label_alerts
from anomstream.ops.printer import Summary, format_alert
from anomstream.wire.records import Alert, Expected, Source

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _alert(status: str, view: str, contributions: dict[str, float]) -> Alert:
    return Alert.model_validate(
        {
            "alert_id": "x", "entity_id": "pump-1", "stream": "default", "timestamp": T0, "detected_at": T0,
            "status": status, "severity": "high", "score": 0.5, "threshold": 0.4, "detector": "zscore",
            "values": {"cpu": 41.0, "disk": 97.0}, "contributions": contributions, "view": view,
            "expected": {
                "cpu": Expected(mean=40, low=35, high=45), "disk": Expected(mean=50, low=45, high=55)
            },
            "source": Source(topic="t", partition=0, offset=1),
        }
    )  # fmt: skip


def test_resolved_line_names_the_feature_that_opened_the_episode() -> None:
    """A resolved alert whose calm point leads with `disk` prints `cpu`, the view that opened it."""
    line = format_alert(_alert("resolved", "cpu.level", {"cpu": 0.1, "disk": 0.9}))
    assert "pump-1 cpu=41" in line
    assert "disk=" not in line
    fallback = format_alert(_alert("open", "", {"cpu": 0.1, "disk": 0.9}))
    assert "disk=97" in fallback, "without a view the largest contribution is named"


def test_summary_prints_once_per_interval_with_the_difference() -> None:
    """Nothing before the interval; then one line with what happened since the last one."""
    now = [0.0]
    totals = {"events": 0.0, "alerts": 0.0, "dead_letters": 0.0, "keys": 0.0}
    summary = Summary(lambda: totals, every_s=30, clock=lambda: now[0])
    out = io.StringIO()
    totals.update(events=600, alerts=2, keys=8)
    now[0] = 29.0
    summary.maybe_print(out)
    assert out.getvalue() == ""
    now[0] = 30.0
    summary.maybe_print(out)
    summary.maybe_print(out)
    assert out.getvalue().splitlines() == [
        "-- 600 events scored (20/s), 2 alerts, 0 dead letters, 8 keys (2 alerts, 600 events in all)"
    ]


class _Msg:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value


def test_demo_labeller_judges_opened_alerts_by_the_injected_label() -> None:
    """Opened alerts on injected events are true positives, other opened ones false; others are skipped."""
    injected = _alert("open", "cpu.level", {"cpu": 1.0}).model_copy(
        update={"attributes": {"injected": "spike"}}
    )
    queue = [
        _Msg(injected.model_dump_json().encode()),
        _Msg(_alert("open", "cpu.level", {"cpu": 1.0}).model_dump_json().encode()),
        _Msg(_alert("resolved", "cpu.level", {"cpu": 1.0}).model_dump_json().encode()),
        _Msg(b"not json"),
    ]
    consumer = type(
        "C", (), {"poll": lambda self, _t: queue.pop(0) if queue else None, "close": lambda self: None}
    )()
    given: list[str] = []
    n = label_alerts(consumer, lambda _a, v: given.append(v), share=1.0, stopped=lambda: not queue)
    assert (n, given) == (2, ["true_positive", "false_positive"])
