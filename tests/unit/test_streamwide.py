"""Collective, silence and population detection through the real ``Scorer``: calibrated and explained."""

from __future__ import annotations

import math
import pickle
import random
from datetime import UTC, datetime

from anomstream.detect.collective import Collective
from anomstream.detect.population import PopulationWatch, log10_binomial_tail
from anomstream.detect.scorer import Scorer
from anomstream.detect.silence import Cadence
from anomstream.detect.spec import DetectorSpecs, PopulationSpec, SilenceSpec, StreamSpec
from anomstream.detect.store import Registry
from anomstream.wire.records import Alert, Event, Source

T0 = 1_767_225_600.0


class Clock:
    """A manual monotonic clock."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _event(entity: str, t: float, value: float) -> Event:
    return Event(entity_id=entity, timestamp=datetime.fromtimestamp(t, tz=UTC), values={"bytes": value})


def _run(scorer: Scorer, events: list[Event]) -> list[Alert]:
    """Every alert (point and stream-wide) the scorer emits over ``events``."""
    out: list[Alert] = []
    for offset, event in enumerate(events):
        outcome = scorer.process(event, Source(topic="t", partition=0, offset=offset))
        if outcome.alert is not None:
            out.append(outcome.alert)
        out += scorer.drain()
    return out


def _traffic(rng: random.Random, n: int, start: float, gap: float) -> list[Event]:
    return [_event("host", start + gap * i, rng.gauss(1000.0, 100.0)) for i in range(n)]


COLLECTIVE = DetectorSpecs(streams={"default": StreamSpec(detector="collective", warmup=200)})


def test_collective_stays_quiet_on_normal_traffic() -> None:
    """Over 1800 scored normal events (risk 1e-4 per view) at most one collective alert opens."""
    alerts = _run(Scorer(COLLECTIVE, Registry(10, 1e12)), _traffic(random.Random(1), 2000, T0, 60.0))
    assert len([a for a in alerts if a.status == "open"]) <= 1


def test_burst_of_normal_looking_events_opens_a_collective_alert() -> None:
    """40 individually normal events within 40 s (the DDoS shape) open a collective alert on ``rate``."""
    rng = random.Random(2)
    history = _traffic(rng, 600, T0, 60.0)
    burst_values = [rng.gauss(1000.0, 100.0) for _ in range(40)]
    end = T0 + 60.0 * 600
    burst = [_event("host", end + 1.0 * i, v) for i, v in enumerate(burst_values)]
    alerts = _run(Scorer(COLLECTIVE, Registry(10, 1e12)), history + burst)
    opened = [a for a in alerts if a.status == "open"]
    assert opened, "the burst was not noticed"
    assert opened[0].kind == "collective"
    assert opened[0].view == "rate"
    assert opened[0].timestamp.timestamp() >= end


def test_same_events_at_the_normal_rate_open_nothing() -> None:
    """The burst's very values, spread at the usual one-a-minute rate, open no alert."""
    rng = random.Random(2)
    history = _traffic(rng, 600, T0, 60.0)
    burst_values = [rng.gauss(1000.0, 100.0) for _ in range(40)]
    end = T0 + 60.0 * 600
    spread = [_event("host", end + 60.0 * i, v) for i, v in enumerate(burst_values)]
    alerts = _run(Scorer(COLLECTIVE, Registry(10, 1e12)), history + spread)
    assert [a for a in alerts if a.status == "open"] == []


def test_frozen_signal_raises_the_relative_entropy_view() -> None:
    """A signal frozen for 16 points (each value normal) lifts ``kl`` far above its normal range."""
    rng, det = random.Random(5), Collective()
    normal = []
    for i in range(500):
        x = {"v": 50.0 + rng.gauss(0.0, 1.0)}
        if i > 100:
            normal.append(det.deviations(x)["v.kl"])
        det.learn_one(x)
    for _ in range(16):
        det.learn_one({"v": 50.0})
    assert det.deviations({"v": 50.0})["v.kl"] > max(normal)


def test_oscillation_raises_the_serial_correlation_view() -> None:
    """A smooth oscillation replacing white noise lifts ``acf`` above its normal range."""
    import math

    rng, det = random.Random(6), Collective()
    normal = []
    for i in range(500):
        x = {"v": 50.0 + rng.gauss(0.0, 1.0)}
        if i > 100:
            normal.append(det.deviations(x)["v.acf"])
        det.learn_one(x)
    for i in range(16):
        det.learn_one({"v": 50.0 + 2.0 * math.sin(2 * math.pi * i / 8)})
    assert det.deviations({"v": 50.0 + 2.0 * math.sin(2 * math.pi * 16 / 8)})["v.acf"] > max(normal)


SILENT = DetectorSpecs(streams={"default": StreamSpec(detector="zscore", silence=SilenceSpec(enabled=True))})


def test_silence_alerts_once_then_resolves_in_event_time() -> None:
    """Key a stops while b goes on: one ``silent`` open at a's deadline, one ``resolved`` when a returns."""
    events = []
    for step in range(60):
        for entity in ("a", "b"):
            if entity == "a" and 20 <= step < 50:
                continue
            events.append(_event(entity, T0 + 10.0 * step, 1.0))
    alerts = [a for a in _run(Scorer(SILENT, Registry(10, 1e12)), events) if a.kind == "silent"]
    assert [(a.entity_id, a.status) for a in alerts] == [("a", "open"), ("a", "resolved")]
    assert alerts[0].timestamp.timestamp() == T0 + 10.0 * 19 + 30.0
    assert alerts[0].expected["gap_s"].high == 30.0


def test_irregular_or_young_keys_are_not_watched() -> None:
    """A key with fewer than ``min_gaps`` gaps is never declared silent."""
    events = [_event("a", T0 + 10.0 * i, 1.0) for i in range(5)]
    events += [_event("b", T0 + 10.0 * i, 1.0) for i in range(5, 100)]
    alerts = _run(Scorer(SILENT, Registry(10, 1e12)), events)
    assert [a for a in alerts if a.kind == "silent"] == []


def test_idle_partition_falls_back_to_wall_time() -> None:
    """With no records at all, the watermark moves by wall time after ``idle_s`` and the key goes silent."""
    clock = Clock()
    scorer = Scorer(SILENT, Registry(10, 1e12, clock=clock))
    _run(scorer, [_event("a", T0 + 10.0 * i, 1.0) for i in range(20)])
    clock.t = 5.0
    scorer.tick(clock(), idle_s=60.0)
    assert scorer.drain() == []  # idle, but not for long enough
    clock.t = 100.0
    scorer.tick(clock(), idle_s=60.0)
    assert [(a.entity_id, a.kind) for a in scorer.drain()] == [("a", "silent")]


def test_evicted_keys_stop_being_watched() -> None:
    """A key dropped by the registry (TTL) raises no silent alert later."""
    clock = Clock()
    registry = Registry(10, ttl_s=5.0, clock=clock)
    scorer = Scorer(SILENT, registry)
    _run(scorer, [_event("a", T0 + 10.0 * i, 1.0) for i in range(20)])
    clock.t = 10.0
    assert [e.key for e in registry.evict()] == [("default", "a")]
    alerts = _run(scorer, [_event("b", T0 + 200.0 + 10.0 * i, 1.0) for i in range(20)])
    assert [a for a in alerts if a.entity_id == "a"] == []


def test_cadence_survives_a_pickle_and_rearms() -> None:
    """A restored key state carries its cadence, and ``rearm`` schedules its deadline again."""
    scorer = Scorer(SILENT, Registry(10, 1e12))
    _run(scorer, [_event("a", T0 + 10.0 * i, 1.0) for i in range(20)])
    state = scorer.registry.peek(("default", "a"))
    assert state is not None
    fresh = Scorer(SILENT, Registry(10, 1e12))
    fresh.registry.put(("default", "a"), pickle.loads(pickle.dumps(state)))
    fresh.rearm(0)
    alerts = _run(fresh, [_event("b", T0 + 300.0 + 10.0 * i, 1.0) for i in range(15)])
    assert [(a.entity_id, a.status) for a in alerts if a.kind == "silent"] == [("a", "open")]


def test_cadence_pickles() -> None:
    """A cadence round-trips through pickle unchanged."""
    c = Cadence()
    for i in range(12):
        c.observe(5.0 * i, Source(topic="t", partition=0, offset=i), SilenceSpec(enabled=True))
    d = pickle.loads(pickle.dumps(c))
    assert (d.deadline, d.mean, d.gaps, d.last_offset) == (c.deadline, c.mean, c.gaps, c.last_offset)


def test_binomial_tail_matches_small_cases() -> None:
    """P(X ≥ 2) for Binomial(3, 0.5) is 0.5; P(X ≥ 3) is 0.125."""
    assert 10 ** log10_binomial_tail(2, 3, 0.5) == __import__("pytest").approx(0.5)
    assert 10 ** log10_binomial_tail(3, 3, 0.5) == __import__("pytest").approx(0.125)


def test_population_stays_quiet_when_keys_deviate_at_their_usual_rate() -> None:
    """Keys deviating independently at 1 % give no population alert over 200 windows."""
    rng, watch, spec = random.Random(3), PopulationWatch(), PopulationSpec(enabled=True, window_s=60.0)
    src = Source(topic="t", partition=0, offset=0)
    alerts = []
    for w in range(200):
        for e in range(50):
            bad = rng.random() < 0.01
            alerts += watch.observe("s", f"k{e}", 60.0 * w, source=src, spec=spec, score=0.3, deviating=bad)
    assert alerts == []


def test_population_names_the_top_keys_in_one_alert() -> None:
    """A window where 20 of 50 keys deviate gives one open alert naming the strongest keys."""
    watch, spec = PopulationWatch(), PopulationSpec(enabled=True, window_s=60.0, top=3)
    src = Source(topic="t", partition=0, offset=0)
    alerts = []
    for w in range(12):
        for e in range(50):
            bad = w == 10 and e < 20
            score = e / 100 if bad else 0.0
            alerts += watch.observe(
                "s", f"k{e:02d}", 60.0 * w, source=src, spec=spec, score=score, deviating=bad
            )
    opened = [a for a in alerts if a.status == "open"]
    assert len(opened) == 1
    assert opened[0].kind == "population"
    assert opened[0].attributes["top_keys"] == "k19,k18,k17"


def _aggregate_run(shift: float) -> list[Alert]:
    rng, watch = random.Random(5), PopulationWatch()
    spec, src = PopulationSpec(enabled=True, window_s=60.0), Source(topic="t", partition=0, offset=0)
    alerts: list[Alert] = []
    for w in range(60):
        for e in range(50):
            for step in range(5):
                t = 60.0 * w + 12.0 * step
                v = 100 + 10 * math.sin(w / 20) + rng.gauss(0, 5) + (shift if w == 50 else 0.0)
                alerts += watch.observe(
                    "s", f"k{e}", t, source=src, spec=spec, score=0.0, deviating=False, values={"cpu": v}
                )
    return alerts


def test_population_sees_a_feature_moving_across_keys_that_no_key_shows() -> None:
    """Every key +8 units (1.6 sd of its own noise) for one window: one population alert on the aggregate."""
    opened = [a for a in _aggregate_run(8.0) if a.status == "open"]
    assert [a.view for a in opened] == ["aggregate:cpu"]
    assert [a.timestamp.timestamp() for a in opened] == [60.0 * 51]


def test_population_aggregate_stays_quiet_on_a_slow_common_cycle() -> None:
    """A shared slow cycle in the keys' level moves the window mean smoothly: no population alert."""
    assert _aggregate_run(0.0) == []
