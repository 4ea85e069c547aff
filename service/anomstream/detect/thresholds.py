"""Adaptive thresholds and the alert lifecycle (open → ongoing under cooldown → resolved), per key.

The protect-vs-adapt decision itself is taken by the scorer, which owns the model; this module only
counts the runs it is based on.
"""

from __future__ import annotations

from typing import Any

from river import stats

from anomstream.detect.calibration import score_of_risk
from anomstream.detect.spec import LifecycleSpec, ThresholdSpec
from anomstream.wire.records import Severity, Status

# Below this many normal scores a high quantile is mostly noise; the floor alone decides until then.
MIN_QUANTILE_SAMPLES = 50
MAX_THRESHOLD = 0.999999


class Threshold:
    """One key's threshold: the score of ``risk``, fixed, or the running quantile of its normal scores.

    Examples
    --------
    >>> t = Threshold(ThresholdSpec(kind="quantile", quantile=0.99, floor=0.3))
    >>> for i in range(1000):
    ...     t.observe((i % 100) / 200)          # normal scores spread over [0, 0.5)
    >>> 0.45 < t.current() < 0.5
    True
    """

    __slots__ = ("_n", "_q", "spec")

    def __init__(self, spec: ThresholdSpec) -> None:
        self.spec = spec
        self._q: Any = None
        self._n = 0

    def current(self) -> float:
        """The score above which a point is anomalous right now."""
        if self.spec.kind == "risk":
            return score_of_risk(self.spec.risk)
        if self.spec.kind == "fixed":
            return self.spec.value
        value = self.spec.floor
        if self._n >= MIN_QUANTILE_SAMPLES:
            estimate = self._q.get()
            if estimate is not None and estimate > value:
                value = estimate
        return min(value, MAX_THRESHOLD)

    def observe(self, score: float) -> None:
        """Feed a score judged normal (anomalous scores are never fed: they would lift the bar)."""
        if self.spec.kind != "quantile":
            return
        if self._q is None:
            self._q = stats.Quantile(self.spec.quantile)
        self._q.update(score)
        self._n += 1


class Lifecycle:
    """Alert state of one key: which status, if any, an anomalous or normal point emits.

    ``open`` on the first anomalous point, ``ongoing`` at most once per ``cooldown_s`` of event time while
    it lasts, ``resolved`` after ``resolve_after`` consecutive normal points (or when the shift is adopted).

    Examples
    --------
    >>> life, spec = Lifecycle(), LifecycleSpec(cooldown_s=60, resolve_after=2, realert="cooldown")
    >>> [life.on_anomaly(t, 0.9, spec) for t in (0, 30, 61)]
    ['open', None, 'ongoing']
    >>> [life.on_normal(spec) for _ in range(2)]
    [None, 'resolved']

    With ``realert="peak"`` (the default) one incident is one alert, and a weaker one soon after is not
    news:

    >>> life, spec = Lifecycle(), LifecycleSpec(resolve_after=1)
    >>> [life.on_anomaly(t, s, spec) for t, s in enumerate([0.6, 0.5, 0.8, 0.7])]
    ['open', None, None, None]
    >>> life.on_normal(spec), life.on_anomaly(10, 0.7, spec), life.on_normal(spec)
    ('resolved', None, None)
    """

    __slots__ = ("active", "anomaly_run", "cause", "envelope", "last_emit", "normal_run", "opened", "peak")

    def __init__(self) -> None:
        self.active = False
        self.opened = False  # an ``open`` was emitted for the current episode
        self.last_emit = 0.0
        self.anomaly_run = 0
        self.normal_run = 0
        self.peak = 0.0
        self.envelope = 0.0  # decaying maximum of the scores this key alerted on (``peak`` re-alert)
        self.cause = ""  # what opened the current episode (its ``resolved`` names it, not the calm point's)

    def on_anomaly(self, event_time: float, score: float, spec: LifecycleSpec) -> Status | None:
        """Record an anomalous point; returns the status to emit, if any."""
        self.anomaly_run += 1
        self.normal_run = 0
        if spec.realert == "peak":
            return self._peak_rule(score, spec)
        if not self.active:
            self.opened = True
            self.peak = score
            self.active = True
            self.last_emit = event_time
            return "open"
        self.peak = max(self.peak, score)
        if event_time - self.last_emit >= spec.cooldown_s:
            self.last_emit = event_time
            return "ongoing"
        return None

    def _peak_rule(self, score: float, spec: LifecycleSpec) -> Status | None:
        # One incident, one alert: 1. decay the envelope one point, 2. an episode opens its alert only
        # with a score that beats both the envelope of what this key alerted on recently and the episode's
        # own peak so far, 3. an opened episode stays quiet until it resolves.
        self.envelope *= 0.5 ** (1.0 / spec.halflife)
        if not self.active:
            self.active, self.opened, self.peak = True, False, 0.0
        fire = not self.opened and score > max(self.envelope, self.peak)
        self.peak = max(self.peak, score)
        if self.opened or fire:  # the alerted incident, peak included, is what later ones must beat
            self.envelope = max(self.envelope, score)
        if not fire:
            return None
        self.opened = True
        return "open"

    def on_normal(self, spec: LifecycleSpec) -> Status | None:
        """Record a normal point; returns ``resolved`` when an open alert has calmed down."""
        if spec.realert == "peak":
            self.envelope *= 0.5 ** (1.0 / spec.halflife)
        self.anomaly_run = 0
        if not self.active:
            return None
        self.normal_run += 1
        if self.normal_run >= spec.resolve_after:
            return self.resolve()
        return None

    def resolve(self) -> Status | None:
        """Close the current alert now (e.g. a level shift was adopted as the new normal)."""
        was_open = self.active and self.opened
        self.active = self.opened = False
        self.normal_run = self.anomaly_run = 0
        return "resolved" if was_open else None


def severity(score: float, threshold: float) -> Severity:
    """How far past the threshold a score is, as a share of the remaining headroom to 1.

    Examples
    --------
    >>> severity(0.8, 0.75), severity(0.99, 0.75)
    ('low', 'critical')
    """
    headroom = max(1.0 - threshold, 1e-9)
    excess = (score - threshold) / headroom
    if excess < 0.25:
        return "low"
    if excess < 0.5:
        return "medium"
    if excess < 0.8:
        return "high"
    return "critical"
