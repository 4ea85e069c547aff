"""What the explorer knows, in memory: recent alerts, each entity's recent scores, and verdicts given.

Filled by ``ui.feed`` from the alert, score and feedback topics; read by the pages. No Kafka here.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from datetime import datetime

from anomstream.wire.records import Alert, Feedback, ScoreRecord, Verdict

Key = tuple[str, str]  # (stream, entity)


@dataclasses.dataclass(frozen=True, slots=True)
class Filters:
    """Which alerts the list shows; an empty field matches everything."""

    stream: str = ""
    entity: str = ""
    severity: str = ""
    kind: str = ""
    status: str = ""

    def match(self, alert: Alert) -> bool:
        """True when ``alert`` passes every non-empty filter (entity: a substring match)."""
        return (
            (not self.stream or alert.stream == self.stream)
            and (not self.entity or self.entity in alert.entity_id)
            and (not self.severity or alert.severity == self.severity)
            and (not self.kind or alert.kind == self.kind)
            and (not self.status or alert.status == self.status)
        )


class AlertBook:
    """Thread-safe store of the newest ``max_alerts`` alerts and ``series_points`` scores per entity.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from anomstream.wire.records import Source
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> book = AlertBook(max_alerts=10, series_points=10)
    >>> book.add_alert(Alert(alert_id="a", entity_id="e", stream="s", timestamp=t, detected_at=t,
    ...     status="open", severity="low", score=0.5, threshold=0.4, detector="d", values={}, expected={},
    ...     contributions={}, source=Source(topic="t", partition=0, offset=0)))
    >>> [a.alert_id for a in book.alerts(Filters(stream="s"))], book.alerts(Filters(kind="silent"))
    (['a'], [])
    """

    def __init__(self, max_alerts: int, series_points: int) -> None:
        self.max_alerts, self.series_points = max_alerts, series_points
        self._lock = threading.Lock()
        self._alerts: collections.OrderedDict[str, Alert] = collections.OrderedDict()
        self._series: dict[Key, collections.deque[ScoreRecord]] = {}
        self._verdicts: dict[str, Verdict] = {}
        self.feedback_seen = 0

    def add_alert(self, alert: Alert) -> None:
        """Keep an alert (a redelivered one replaces itself)."""
        with self._lock:
            self._alerts[alert.alert_id] = alert
            self._alerts.move_to_end(alert.alert_id)
            while len(self._alerts) > self.max_alerts:
                self._alerts.popitem(last=False)

    def add_score(self, record: ScoreRecord) -> None:
        """Append one score record to its entity's series."""
        key = (record.stream, record.entity_id)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = collections.deque(maxlen=self.series_points)
            series.append(record)

    def add_feedback(self, feedback: Feedback) -> None:
        """Remember the latest verdict on an alert (the list and the alert page show it)."""
        with self._lock:
            self.feedback_seen += 1
            if feedback.alert_id:
                self._verdicts[feedback.alert_id] = feedback.verdict

    def alerts(self, filters: Filters, limit: int = 200) -> list[Alert]:
        """Matching alerts, newest first."""
        with self._lock:
            newest = list(reversed(self._alerts.values()))
        return [a for a in newest if filters.match(a)][:limit]

    def alert(self, alert_id: str) -> Alert | None:
        """One alert by id (None when unknown or aged out)."""
        with self._lock:
            return self._alerts.get(alert_id)

    def verdict(self, alert_id: str) -> Verdict | None:
        """The latest verdict on an alert, if any."""
        with self._lock:
            return self._verdicts.get(alert_id)

    def series(self, key: Key) -> list[ScoreRecord]:
        """The entity's score records, in event-time order."""
        with self._lock:
            records = list(self._series.get(key, ()))
        records.sort(key=lambda r: (r.timestamp, r.source.offset))
        return records

    def around(self, key: Key, when: datetime, before: int = 120, after: int = 60) -> list[ScoreRecord]:
        """Up to ``before`` score records of the entity up to ``when`` and ``after`` past it."""
        records = self.series(key)
        at = next((i for i, r in enumerate(records) if r.timestamp >= when), len(records))
        return records[max(0, at - before) : at + after]

    def entities(self) -> list[tuple[Key, int]]:
        """Every entity seen (scores or alerts) with its number of alerts, most alerted first."""
        with self._lock:
            counts = collections.Counter((a.stream, a.entity_id) for a in self._alerts.values())
            keys = set(self._series) | set(counts)
        return sorted(((k, counts.get(k, 0)) for k in keys), key=lambda kv: (-kv[1], kv[0]))

    def partition_of(self, key: Key) -> int | None:
        """The input partition the entity's events arrive on (feedback must go to the same number)."""
        with self._lock:
            series = self._series.get(key)
            if series:
                return series[-1].source.partition
            for alert in reversed(self._alerts.values()):
                if (alert.stream, alert.entity_id) == key:
                    return alert.source.partition
        return None
