"""Thresholds (fixed, quantile with floor, capped), the alert lifecycle and severity bands."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from anomstream.detect.scorer import Scorer
from anomstream.detect.spec import DetectorSpecs, LifecycleSpec, StreamSpec, ThresholdSpec
from anomstream.detect.store import Registry
from anomstream.detect.thresholds import MAX_THRESHOLD, MIN_QUANTILE_SAMPLES, Lifecycle, Threshold, severity
from anomstream.wire.records import Event, Source

# -- Threshold ----------------------------------------------------------------------------------------


def test_fixed_threshold_ignores_observations() -> None:
    """A fixed threshold is its ``value`` and observing scores never moves it."""
    t = Threshold(ThresholdSpec(kind="fixed", value=0.8))
    assert t.current() == 0.8
    for score in (0.0, 0.5, 0.99, 1.0) * 100:
        t.observe(score)
    assert t.current() == 0.8


def test_quantile_threshold_is_floor_before_enough_samples() -> None:
    """Below MIN_QUANTILE_SAMPLES observations only the floor decides, however high the scores."""
    t = Threshold(ThresholdSpec(kind="quantile", quantile=0.9, floor=0.3))
    assert t.current() == 0.3
    for _ in range(MIN_QUANTILE_SAMPLES - 1):
        t.observe(0.95)
    assert t.current() == 0.3
    t.observe(0.95)
    assert t.current() == pytest.approx(0.95)


def test_quantile_threshold_tracks_normal_scores() -> None:
    """With enough samples the threshold is the running quantile of the observed scores."""
    t = Threshold(ThresholdSpec(kind="quantile", quantile=0.9, floor=0.0))
    rng = random.Random(5)
    for _ in range(5000):
        t.observe(rng.random())
    assert t.current() == pytest.approx(0.9, abs=0.03)


def test_quantile_threshold_never_below_floor() -> None:
    """A quantile below the floor is replaced by the floor."""
    t = Threshold(ThresholdSpec(kind="quantile", quantile=0.99, floor=0.6))
    for i in range(1000):
        t.observe((i % 10) / 100)  # all normal scores are < 0.1
    assert t.current() == 0.6


@pytest.mark.parametrize(("floor", "score"), [(1.0, 0.0), (0.5, 1.0), (1.0, 1.0)])
def test_threshold_never_above_cap(floor: float, score: float) -> None:
    """Neither the floor nor the quantile can lift the threshold above MAX_THRESHOLD (< 1)."""
    t = Threshold(ThresholdSpec(kind="quantile", quantile=0.999, floor=floor))
    for _ in range(200):
        t.observe(score)
    assert t.current() == MAX_THRESHOLD
    assert MAX_THRESHOLD == 0.999999


def _event(i: int, value: float) -> tuple[Event, Source]:
    ts = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i)
    return Event(entity_id="e", timestamp=ts, values={"x": value}), Source(topic="t", partition=0, offset=i)


def test_scorer_feeds_only_normal_scores_to_the_threshold() -> None:
    """The scorer observes normal scores only: a run of anomalies leaves the threshold untouched."""
    spec = StreamSpec(
        detector="zscore",
        warmup=30,
        threshold=ThresholdSpec(kind="quantile", quantile=0.99, floor=0.5),
        lifecycle=LifecycleSpec(adapt_after=1000),
    )
    registry = Registry(max_keys=10, ttl_s=1e9, clock=lambda: 0.0)
    scorer = Scorer(DetectorSpecs(streams={"default": spec}), registry)
    rng = random.Random(1)
    i, normal = 0, 0
    for i in range(300):
        outcome = scorer.process(*_event(i, rng.gauss(10.0, 1.0)))
        normal += not (outcome.warming or outcome.anomalous)
    state = registry.peek(("default", "e"))
    assert state is not None
    before = (state.threshold.current(), state.threshold._n)
    assert before[1] == normal  # exactly the post-warm-up normal scores were observed
    for j in range(1, 20):
        outcome = scorer.process(*_event(i + j, 1000.0 * j))
        assert outcome.anomalous
    assert (state.threshold.current(), state.threshold._n) == before
    outcome = scorer.process(*_event(i + 20, 10.0))
    assert not outcome.anomalous
    assert state.threshold._n == before[1] + 1


# -- Lifecycle ----------------------------------------------------------------------------------------


def test_lifecycle_opens_then_ongoing_under_event_time_cooldown() -> None:
    """First anomaly opens; later ones emit ``ongoing`` at most once per cooldown of event time."""
    life, spec = Lifecycle(), LifecycleSpec(cooldown_s=60, resolve_after=3, realert="cooldown")
    emitted = [life.on_anomaly(t, 0.9, spec) for t in (0, 30, 59, 60, 100, 119, 120, 120, 500)]
    assert emitted == ["open", None, None, "ongoing", None, None, "ongoing", None, "ongoing"]
    assert life.active
    assert life.anomaly_run == 9


def test_lifecycle_cooldown_counts_event_time_not_points() -> None:
    """Many anomalous points with the same timestamp produce a single ``open`` and no ``ongoing``."""
    life, spec = Lifecycle(), LifecycleSpec(cooldown_s=1, resolve_after=3, realert="cooldown")
    assert [life.on_anomaly(1000.0, 0.9, spec) for _ in range(50)] == ["open"] + [None] * 49


def test_lifecycle_resolves_after_consecutive_normal_points() -> None:
    """``resolved`` needs ``resolve_after`` consecutive normal points; an anomaly restarts the count."""
    life, spec = Lifecycle(), LifecycleSpec(cooldown_s=300, resolve_after=3, realert="cooldown")
    assert life.on_anomaly(0, 0.8, spec) == "open"
    assert [life.on_normal(spec) for _ in range(2)] == [None, None]
    assert life.on_anomaly(1, 0.95, spec) is None  # still open, inside the cooldown
    assert [life.on_normal(spec) for _ in range(3)] == [None, None, "resolved"]
    assert not life.active
    assert life.peak == 0.95  # the episode's worst score is kept for the resolved alert
    assert life.on_normal(spec) is None


def test_lifecycle_reopens_after_resolution() -> None:
    """After ``resolved`` the next anomaly opens a new episode with its own peak."""
    life, spec = Lifecycle(), LifecycleSpec(cooldown_s=300, resolve_after=1, realert="cooldown")
    life.on_anomaly(0, 0.99, spec)
    assert life.on_normal(spec) == "resolved"
    assert life.on_anomaly(10, 0.75, spec) == "open"
    assert life.peak == 0.75


def test_lifecycle_normal_points_without_alert_emit_nothing() -> None:
    """Normal points on a quiet key never emit and leave it inactive."""
    life, spec = Lifecycle(), LifecycleSpec(resolve_after=1)
    assert [life.on_normal(spec) for _ in range(10)] == [None] * 10
    assert not life.active


def test_resolve_when_not_active_returns_none() -> None:
    """``resolve()`` closes an active alert once; on an inactive key it returns None."""
    life, spec = Lifecycle(), LifecycleSpec()
    assert life.resolve() is None
    life.on_anomaly(0, 0.9, spec)
    life.on_anomaly(1, 0.9, spec)
    assert life.resolve() == "resolved"
    assert (life.active, life.anomaly_run, life.normal_run) == (False, 0, 0)
    assert life.resolve() is None


# -- severity -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.0, "low"),
        (0.2499, "low"),
        (0.25, "medium"),
        (0.4999, "medium"),
        (0.5, "high"),
        (0.7999, "high"),
        (0.8, "critical"),
        (1.0, "critical"),
    ],
)
def test_severity_bands_with_zero_threshold(score: float, expected: str) -> None:
    """Bands split the headroom above the threshold at 25 %, 50 % and 80 %."""
    assert severity(score, 0.0) == expected


@pytest.mark.parametrize(
    ("score", "expected"), [(0.76, "low"), (0.85, "medium"), (0.9, "high"), (0.99, "critical")]
)
def test_severity_is_relative_to_headroom(score: float, expected: str) -> None:
    """With threshold 0.75 the bands are shares of the remaining 0.25 of headroom."""
    assert severity(score, 0.75) == expected


def test_severity_at_capped_threshold_is_defined() -> None:
    """At the maximum threshold the headroom is tiny but positive: a score of 1 is critical."""
    assert severity(1.0, MAX_THRESHOLD) == "critical"
