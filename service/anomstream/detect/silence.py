"""Silence: a key that used to send regularly and stopped gets one ``silent`` alert, ``resolved`` on return.

Event time throughout: each partition's watermark is the largest event timestamp seen on it, and a key is
overdue once the watermark passes its deadline (last event + the gap its own cadence predicts). Deadlines
sit in a heap per partition, so a record costs O(log n) and never a scan of all keys. A partition that goes
fully idle advances its watermark by wall time after ``idle_s`` (the bounded fallback), so a stream that
stops entirely is still noticed; replay, which is never idle, gives the same alerts.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from anomstream.detect.spec import SilenceSpec
from anomstream.detect.thresholds import severity
from anomstream.wire.records import Alert, Expected, Source

_SILENCE_NS = uuid.UUID("0b6f3d0e-6a57-4f43-9d61-3c1d2a7e9b10")
DETECTOR = "silence"


class Cadence:
    """One key's sending rhythm: last event, typical gap (EW mean and deviation), whether it is silent.

    Lives in the key's state (so snapshots carry it); ``deadline`` is when the key becomes overdue.

    Examples
    --------
    >>> c = Cadence()
    >>> for i in range(12):
    ...     c.observe(60.0 * i, Source(topic="t", partition=0, offset=i), SilenceSpec(enabled=True))
    >>> c.watched, round(c.deadline - c.last_t)
    (True, 180)
    """

    __slots__ = ("dev", "gaps", "last_offset", "last_t", "mean", "min_gaps", "predicted", "silent", "topic")

    def __init__(self) -> None:
        self.last_t = math.nan
        self.mean = self.dev = 0.0
        self.gaps = 0
        self.min_gaps = 10
        self.predicted = math.inf
        self.silent = False
        self.topic, self.last_offset = "", -1

    def __getstate__(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    @property
    def watched(self) -> bool:
        """Enough regular gaps seen to predict the next one."""
        return self.gaps >= self.min_gaps

    def predicted_gap(self, spec: SilenceSpec) -> float:
        """The longest gap the cadence explains: ``factor`` × mean gap + ``band`` × its mean deviation."""
        return spec.factor * self.mean + spec.band * self.dev

    @property
    def deadline(self) -> float:
        """Event time after which the key is overdue (``inf`` while unwatched)."""
        return self.last_t + self.predicted if self.watched else math.inf

    def observe(self, t: float, source: Source, spec: SilenceSpec) -> float | None:
        """Learn an event at ``t``; returns the gap it ends when it ends a silence, else None."""
        returned = (t - self.last_t) if self.silent else None
        self.silent = False
        if not math.isnan(self.last_t) and t > self.last_t:
            gap = t - self.last_t
            self.gaps += 1
            if self.gaps == 1:
                self.mean = gap  # the first gap sets the rhythm; there is no deviation yet
            else:
                a = max(spec.alpha, 1.0 / self.gaps)
                self.dev += a * (abs(gap - self.mean) - self.dev)
                self.mean += a * (gap - self.mean)
        if math.isnan(self.last_t) or t >= self.last_t:
            self.last_t = t
            self.topic, self.last_offset = source.topic, source.offset
        self.min_gaps = spec.min_gaps
        self.predicted = self.predicted_gap(spec)
        return returned


@dataclasses.dataclass(order=True, frozen=True, slots=True)
class _Due:
    deadline: float
    seq: int
    stream: str = dataclasses.field(compare=False)
    entity: str = dataclasses.field(compare=False)
    cadence: Cadence = dataclasses.field(compare=False)


Lookup = Callable[[tuple[str, str]], Cadence | None]


class SilenceWatch:
    """Per-partition watermarks and deadline heaps; turns overdue keys into ``silent`` alerts.

    Parameters
    ----------
    lookup
        The key's live ``Cadence`` (None once the key was evicted: evicted keys stop being watched).
    now
        Wall clock for ``detected_at``.
    """

    def __init__(self, lookup: Lookup, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.lookup = lookup
        self.now = now
        self.watermark: dict[int, float] = {}
        self.heaps: dict[int, list[_Due]] = {}
        self.last_wall: dict[int, float] = {}
        self._seq = itertools.count()

    def arm(self, stream: str, entity: str, partition: int, cadence: Cadence) -> None:
        """(Re)schedule a key's deadline (after an event, or after its state was restored)."""
        if cadence.watched and not cadence.silent:
            heapq.heappush(
                self.heaps.setdefault(partition, []),
                _Due(cadence.deadline, next(self._seq), stream, entity, cadence),
            )
        last = cadence.last_t
        if not math.isnan(last) and last > self.watermark.get(partition, -math.inf):
            self.watermark[partition] = last

    def advance(self, partition: int, t: float, wall: float) -> Iterator[Alert]:
        """Move ``partition``'s watermark to ``t`` (if later) and yield the alerts of keys now overdue."""
        self.last_wall[partition] = wall
        if t > self.watermark.get(partition, -math.inf):
            self.watermark[partition] = t
        return self._due(partition)

    def idle(self, wall: float, idle_s: float) -> Iterator[Alert]:
        """The wall-clock fallback: a partition without records for ``idle_s`` moves on by wall time."""
        for partition, last in list(self.last_wall.items()):
            quiet = wall - last
            if quiet >= idle_s and partition in self.watermark:
                self.last_wall[partition] = wall
                self.watermark[partition] += quiet
                yield from self._due(partition)

    def forget(self, partition: int) -> None:
        """Drop a partition we no longer own."""
        for table in (self.watermark, self.heaps, self.last_wall):
            table.pop(partition, None)

    def _due(self, partition: int) -> Iterator[Alert]:
        heap, wm = self.heaps.get(partition), self.watermark.get(partition, -math.inf)
        while heap and heap[0].deadline < wm:
            due = heapq.heappop(heap)
            live = self.lookup((due.stream, due.entity))
            # A stale entry: the key sent again (new deadline), was evicted, or was already alerted.
            if live is not due.cadence or live.silent or live.deadline != due.deadline:
                continue
            live.silent = True
            yield self._alert(due, partition, wm)

    def _alert(self, due: _Due, partition: int, wm: float) -> Alert:
        c = due.cadence
        predicted = c.deadline - c.last_t
        gap = wm - c.last_t
        return silence_alert(
            due.stream,
            due.entity,
            Source(topic=c.topic, partition=partition, offset=c.last_offset),
            status="open",
            when=due.deadline,
            detected=self.now(),
            gap=gap,
            mean=c.mean,
            predicted=predicted,
        )


def silence_alert(
    stream: str,
    entity: str,
    source: Source,
    *,
    status: str,
    when: float,
    detected: datetime,
    gap: float,
    mean: float,
    predicted: float,
) -> Alert:
    """A ``silent`` alert; the id depends on the key's last event before the silence (replays agree)."""
    name = f"{source.topic}/{source.partition}/{source.offset}/{stream}/{entity}/{status}"
    score = gap / (gap + predicted) if gap + predicted > 0 else 1.0
    return Alert(
        alert_id=str(uuid.uuid5(_SILENCE_NS, name)),
        entity_id=entity,
        stream=stream,
        timestamp=datetime.fromtimestamp(when, tz=UTC),
        detected_at=detected,
        status="resolved" if status == "resolved" else "open",
        severity=severity(score, 0.5),
        score=score,
        threshold=0.5,
        detector=DETECTOR,
        values={"gap_s": gap},
        expected={"gap_s": Expected(mean=mean, low=0.0, high=max(predicted, mean))},
        contributions={"gap_s": 1.0},
        source=source,
        kind="silent",
        view="gap",
    )
