"""Population anomalies: many keys of a stream deviating in the same window → one ``population`` alert.

Two statistics per window: the share of keys that start deviating (binomial test against past windows)
and, per feature, the move of the window's median across keys (against how much it usually moves).

Computed per (stream, input partition) in the scorer path: a worker sees only its partitions, so the
share is the share of *its* keys (see docs/architecture.md for this limit). Windows are event time; the
window closes when a record of a later window arrives on the partition.
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from anomstream.detect.calibration import log10_upper_tail, score_of_log10p, score_of_risk
from anomstream.detect.spec import PopulationSpec
from anomstream.detect.thresholds import severity
from anomstream.wire.records import Alert, Expected, Source

_POPULATION_NS = uuid.UUID("5d8c2b71-3f0a-4e6b-8c19-7a4e2d9f0c36")
DETECTOR = "population"
ENTITY = "*"  # a population alert is about the stream, not one key; its keys are in ``attributes``


def log10_binomial_tail(k: int, n: int, p: float) -> float:
    """log10 P(X ≥ k) for X ~ Binomial(n, p), summed in log space from k upwards.

    Examples
    --------
    >>> round(10 ** log10_binomial_tail(1, 1, 0.3), 6), log10_binomial_tail(0, 5, 0.1)
    (0.3, 0.0)
    >>> log10_binomial_tail(30, 100, 0.01) < -30
    True
    """
    if k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    lp, lq = math.log(p), math.log1p(-p)
    terms = []
    for i in range(k, n + 1):
        t = math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
        terms.append(t)
        if t < terms[0] - 40:  # the rest is negligible
            break
    top = max(terms)
    return (top + math.log(sum(math.exp(t - top) for t in terms))) / math.log(10)


class _Window:
    """One (stream, partition)'s open window, its baseline share and its episode state."""

    __slots__ = (
        "active",
        "before",
        "deviating",
        "index",
        "is_open",
        "moves",
        "prev",
        "seen",
        "share",
        "sums",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.active: set[str] = set()
        self.deviating: dict[str, float] = {}  # entity → its strongest deviation (score) in the window
        self.before: set[str] = set()  # the keys that deviated in the previous window
        self.share = 0.0  # exponentially weighted share of deviating keys in normal windows
        self.seen = 0
        self.is_open = False
        self.sums: dict[str, dict[str, float]] = {}  # feature → entity → its last value in this window
        self.prev: dict[str, float] = {}  # feature → the previous window's median across keys
        self.moves: dict[str, list[float]] = {}  # feature → EW [mean, var, n] of window-to-window moves


class PopulationWatch:
    """Counts deviating keys per window and raises one alert per stream and partition when too many do.

    Examples
    --------
    >>> from anomstream.wire.records import Source
    >>> watch, spec, src = PopulationWatch(), PopulationSpec(enabled=True, window_s=60), Source(
    ...     topic="t", partition=0, offset=0)
    >>> alerts = []
    >>> for w in range(11):               # window 10 closes window 9
    ...     for e in range(40):
    ...         bad = w == 8 and e < 15          # window 8: 15 of 40 keys deviate together
    ...         alerts += watch.observe("s", f"k{e}", 60.0 * w, source=src, spec=spec,
    ...                             score=0.5 if bad else 0.0, deviating=bad)
    >>> [(a.status, a.values["deviating_keys"]) for a in alerts]
    [('open', 15.0), ('resolved', 0.0)]
    """

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.now = now
        self.windows: dict[tuple[str, int], _Window] = {}

    def observe(
        self,
        stream: str,
        entity: str,
        t: float,
        *,
        source: Source,
        spec: PopulationSpec,
        score: float,
        deviating: bool,
        values: Mapping[str, float] | None = None,
    ) -> list[Alert]:
        """Count one scored event; returns the alert of the window it closed, if any."""
        key = (stream, source.partition)
        index = math.floor(t / spec.window_s)
        win = self.windows.get(key)
        out: list[Alert] = []
        if win is None:
            win = self.windows[key] = _Window(index)
        elif index > win.index:
            alert = self._close(win, stream, source, spec)
            if alert is not None:
                out.append(alert)
            win.before = set(win.deviating) if index == win.index + 1 else set()
            win.index, win.active, win.deviating, win.sums = index, set(), {}, {}
        win.active.add(entity)
        for name, v in (values or {}).items():
            win.sums.setdefault(name, {})[entity] = v
        if deviating:
            win.deviating[entity] = max(score, win.deviating.get(entity, 0.0))
        return out

    def forget(self, partition: int) -> None:
        """Drop the windows of a partition we no longer own."""
        for key in [k for k in self.windows if k[1] == partition]:
            del self.windows[key]

    def _close(self, win: _Window, stream: str, source: Source, spec: PopulationSpec) -> Alert | None:
        # Onsets: keys that deviate in this window and did not in the previous one. A key whose detector
        # keeps it deviating for a while (window statistics do) counts once, when it starts.
        onsets = {e: score for e, score in win.deviating.items() if e not in win.before}
        n, k = len(win.active), len(onsets)
        if n < spec.min_keys:
            return None
        p0 = max(win.share, spec.key_risk)
        log10p = log10_binomial_tail(k, n, p0) if win.seen >= spec.warmup else 0.0
        means = _means(win)  # once per window close: medians are not free
        agg, feature = _aggregate(win, means, spec.warmup)
        # Two statistics, the smaller p wins: times two (Bonferroni) so it stays a probability.
        view = "share" if log10p <= agg else f"aggregate:{feature}"
        log10p = min(0.0, min(log10p, agg) + math.log10(2.0))
        alarm = log10p < math.log10(spec.risk)
        _learn_moves(win, means, learn=not alarm)
        status = "open" if alarm and not win.is_open else ("resolved" if win.is_open and not alarm else None)
        if not alarm:  # protect: a population episode does not teach the baseline that it is normal
            win.seen += 1
            a = max(0.1, 1.0 / win.seen)
            win.share += a * (k / n - win.share)
        win.is_open = alarm
        if status is None:
            return None
        return self._alert(
            win=win,
            stream=stream,
            source=source,
            spec=spec,
            status=status,
            stats=(k, n, p0, log10p),
            top=onsets,
            view=view,
        )

    def _alert(
        self,
        *,
        win: _Window,
        stream: str,
        source: Source,
        spec: PopulationSpec,
        status: str,
        stats: tuple[int, int, float, float],
        top: dict[str, float],
        view: str,
    ) -> Alert:
        k, n, p0, log10p = stats
        keys = sorted(top, key=lambda e: (-top[e], e))[: spec.top]
        score, threshold = score_of_log10p(max(log10p, -300.0)), score_of_risk(spec.risk)
        name = f"{source.topic}/{source.partition}/{stream}/{win.index}/{status}"
        return Alert(
            alert_id=str(uuid.uuid5(_POPULATION_NS, name)),
            entity_id=ENTITY,
            stream=stream,
            timestamp=datetime.fromtimestamp((win.index + 1) * spec.window_s, tz=UTC),
            detected_at=self.now(),
            status="open" if status == "open" else "resolved",
            severity=severity(score, threshold),
            score=score,
            threshold=threshold,
            detector=DETECTOR,
            values={"deviating_keys": float(k), "active_keys": float(n), "share": k / n},
            expected={"share": Expected(mean=p0, low=0.0, high=p0)},
            contributions={"share": 1.0},
            source=source,
            attributes={"top_keys": ",".join(keys), "partition": str(source.partition)},
            kind="population",
            probability=min(1.0, 10.0**log10p),
            view=view,
        )


def _means(win: _Window) -> dict[str, float]:
    # The median across keys: one key's spike must not move the stream's aggregate.
    return {name: statistics.median(by_key.values()) for name, by_key in win.sums.items() if by_key}


def _aggregate(win: _Window, means: dict[str, float], warmup: int) -> tuple[float, str]:
    """log10 p of the most unusual move of a feature's window mean, Bonferroni over features."""
    best, feature, looks = 0.0, "", 0
    for name, mean in means.items():
        prev, mv = win.prev.get(name), win.moves.get(name)
        if prev is None or mv is None or mv[2] < warmup:
            continue
        looks += 1
        z = abs(mean - prev - mv[0]) / max(math.sqrt(mv[1]), 1e-9 * (1.0 + abs(prev)))
        lp = math.log10(2.0) + log10_upper_tail(z)  # two-sided: a move up or down
        if lp < best:
            best, feature = lp, name
    return (min(0.0, best + math.log10(looks)) if looks > 1 else best), feature


def _learn_moves(win: _Window, means: dict[str, float], *, learn: bool) -> None:
    """Remember this window's means; learn their moves unless the window alarmed (protect)."""
    if learn:
        for name, mean in means.items():
            prev = win.prev.get(name)
            if prev is not None:
                mv = win.moves.setdefault(name, [0.0, 0.0, 0.0])
                mv[2] += 1.0
                a = max(0.1, 1.0 / mv[2])
                d = mean - prev - mv[0]
                mv[0] += a * d
                mv[1] = (1.0 - a) * (mv[1] + a * d * d)
    win.prev.update(means)
