"""The per-event decision through ``Scorer`` + ``Registry``: warm-up, alerts, protect-vs-adapt, specs."""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from anomstream.detect.catalog import CATALOG
from anomstream.detect.scorer import Outcome, Scorer, alert_id
from anomstream.detect.spec import DetectorSpecs, LifecycleSpec, StreamSpec
from anomstream.detect.store import KeyState, Registry
from anomstream.wire.records import Event, Source

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STATISTICAL = ["zscore", "robust", "ewma"]


# The per-detector quantile threshold with protect-vs-adapt and cooldown re-alerts: what these tests pin.
# The calibrated default (risk + peak re-alert) has its own tests in test_calibration.py.
CLASSIC: dict[str, dict[str, Any]] = {
    "threshold": {"kind": "quantile"},
    "lifecycle": {"protect": True, "realert": "cooldown"},
}


def _spec(detector: str = "zscore", **kw: Any) -> StreamSpec:
    merged: dict[str, Any] = {"detector": detector, **CLASSIC, **kw}
    for section in ("threshold", "lifecycle"):
        merged[section] = {**CLASSIC[section], **kw.get(section, {})}
    return StreamSpec.model_validate(merged)


def _scorer(*specs: tuple[str, StreamSpec]) -> tuple[Scorer, Registry]:
    registry = Registry(max_keys=1000, ttl_s=1e9, clock=lambda: 0.0)
    return Scorer(DetectorSpecs(streams=dict(specs)), registry), registry


def _event(i: int, values: dict[str, float], stream: str = "default", entity: str = "e") -> Event:
    return Event(entity_id=entity, timestamp=T0 + timedelta(seconds=i), values=values, stream=stream)


def _source(offset: int, topic: str = "events", partition: int = 0) -> Source:
    return Source(topic=topic, partition=partition, offset=offset)


def _normal(seed: int, n: int) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [{"a": rng.gauss(10.0, 1.0), "b": rng.gauss(0.0, 1.0)} for _ in range(n)]


def _feed(scorer: Scorer, points: Iterable[dict[str, float]], start: int = 0) -> list[Outcome]:
    return [scorer.process(_event(start + i, x), _source(start + i)) for i, x in enumerate(points)]


def _state(registry: Registry, stream: str = "default", entity: str = "e") -> KeyState:
    state = registry.peek((stream, entity))
    assert state is not None
    return state


# -- warm-up and alerts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("detector", sorted(CATALOG))
def test_no_alert_during_warmup(detector: str) -> None:
    """During warm-up every point is learned and nothing alerts, even a value a million times off."""
    scorer, registry = _scorer(("default", _spec(detector, warmup=30)))
    points = _normal(1, 29)
    points.insert(10, {"a": 1e6, "b": -1e6})
    outcomes = _feed(scorer, points)
    assert all(o.warming and not o.anomalous and o.alert is None for o in outcomes)
    assert _state(registry).n_seen == 30
    (after,) = _feed(scorer, _normal(2, 1), start=30)
    assert not after.warming


@pytest.mark.parametrize("detector", STATISTICAL)
@pytest.mark.parametrize("feature", ["a", "b"])
def test_spike_after_warmup_opens_alert(detector: str, feature: str) -> None:
    """A spike after warm-up opens an alert naming the spiked feature as the top contributor."""
    scorer, _ = _scorer(("default", _spec(detector)))
    outcomes = _feed(scorer, _normal(3, 200))
    assert not any(o.anomalous for o in outcomes)
    spike = {"a": 10.0, "b": 0.0}
    spike[feature] += 25.0
    out = scorer.process(_event(200, spike), _source(200))
    assert out.anomalous
    assert out.alert is not None
    alert = out.alert
    assert (alert.status, alert.entity_id, alert.stream, alert.detector) == ("open", "e", "default", detector)
    assert max(alert.contributions, key=alert.contributions.__getitem__) == feature
    assert alert.values == spike
    assert alert.score == out.score > alert.threshold == out.threshold
    assert alert.source == _source(200)
    assert alert.timestamp == T0 + timedelta(seconds=200)
    assert alert.alert_id == alert_id(_source(200), "default", detector)


def test_alert_id_is_deterministic() -> None:
    """Same source record → same alert id across runs; any change of record or detector → another id."""
    ids = []
    for _ in range(2):
        scorer, _ = _scorer(("default", _spec("zscore")))
        _feed(scorer, _normal(4, 100))
        out = scorer.process(_event(100, {"a": 60.0, "b": 0.0}), _source(100))
        assert out.alert is not None
        ids.append(out.alert.alert_id)
    assert ids[0] == ids[1]
    src = _source(100)
    variants = {
        alert_id(src, "default", "zscore"),
        alert_id(_source(101), "default", "zscore"),
        alert_id(_source(100, partition=1), "default", "zscore"),
        alert_id(_source(100, topic="other"), "default", "zscore"),
        alert_id(src, "payments", "zscore"),
        alert_id(src, "default", "ewma"),
    }
    assert len(variants) == 6
    assert ids[0] in variants


def test_different_offset_gives_different_alert_id() -> None:
    """Two spikes of the same key at different offsets carry different alert ids."""
    scorer, _ = _scorer(("default", _spec("zscore", lifecycle={"cooldown_s": 0})))
    _feed(scorer, _normal(4, 100))
    first = scorer.process(_event(100, {"a": 60.0, "b": 0.0}), _source(100))
    second = scorer.process(_event(101, {"a": 60.0, "b": 0.0}), _source(101))
    assert first.alert is not None
    assert second.alert is not None
    assert (first.alert.status, second.alert.status) == ("open", "ongoing")
    assert first.alert.alert_id != second.alert.alert_id


# -- protect vs adapt (River issue #948) ---------------------------------------------------------------

SHIFT = 15.0
ADAPT_AFTER = 20


def _shift_run(
    detector: str, protect: bool, adapt_after: int = ADAPT_AFTER
) -> tuple[list[Outcome], Registry]:
    spec = _spec(detector, lifecycle={"protect": protect, "adapt_after": adapt_after, "resolve_after": 3})
    scorer, registry = _scorer(("default", spec))
    before = _normal(5, 300)
    after = [{"a": x["a"] + SHIFT, "b": x["b"]} for x in _normal(6, 150)]
    return _feed(scorer, before + after), registry


@pytest.mark.parametrize("detector", STATISTICAL)
def test_level_shift_is_adopted_when_protected(detector: str) -> None:
    """With protect on, a permanent shift alerts, is adopted after ``adapt_after`` points, then is normal."""
    outcomes, _ = _shift_run(detector, protect=True)
    assert not any(o.anomalous for o in outcomes[:300])
    shifted = outcomes[300:]
    assert shifted[0].alert is not None
    assert shifted[0].alert.status == "open"
    adapted = [i for i, o in enumerate(shifted) if o.adapted]
    assert adapted, "the shift was never adopted"
    k = adapted[0]
    assert k <= ADAPT_AFTER + 3
    resolved = shifted[k].alert
    assert resolved is not None
    assert resolved.status == "resolved"
    assert resolved.severity in ("high", "critical")  # the episode's peak, not the adopting point's
    assert adapted == [k]
    tail = shifted[k + 1 :]
    assert len(tail) > 100
    assert not any(o.anomalous for o in tail), [i for i, o in enumerate(tail) if o.anomalous]
    assert all(o.alert is None for o in tail)


@pytest.mark.parametrize("detector", STATISTICAL)
def test_protection_without_adaptation_alerts_forever(detector: str) -> None:
    """The failure adapt_after prevents: protecting a model from a shift it never learns keeps alerting."""
    outcomes, _ = _shift_run(detector, protect=True, adapt_after=10_000)
    assert all(o.anomalous for o in outcomes[300:])
    assert not any(o.adapted for o in outcomes)


@pytest.mark.parametrize("detector", STATISTICAL)
def test_unprotected_model_learns_anomalies(detector: str) -> None:
    """With protect off every point is learned, anomalous or not, and nothing is ever 'adapted'."""
    outcomes, registry = _shift_run(detector, protect=False)
    assert any(o.anomalous for o in outcomes[300:])
    assert not any(o.adapted for o in outcomes)
    assert _state(registry).n_seen == len(outcomes)
    assert not any(o.anomalous for o in outcomes[-50:])  # the model has drifted to the new level


def _after_spike(detector: str, protect: bool, spike: bool) -> tuple[float, int, bytes]:
    """Next normal point's score, points learned, and the pickled model, after an optional spike."""
    scorer, registry = _scorer(("default", _spec(detector, lifecycle={"protect": protect})))
    _feed(scorer, _normal(8, 200))
    if spike:
        out = scorer.process(_event(200, {"a": 80.0, "b": 0.0}), _source(200))
        assert out.anomalous
    model = pickle.dumps(_state(registry).detector)
    nxt = scorer.process(_event(201, {"a": 10.5, "b": 0.3}), _source(201))
    return nxt.score, _state(registry).n_seen, model


# hst is left out: min-max scaling puts any far outlier on the unit cube's face, among ordinary edge
# points, so one spiked feature is not reliably anomalous for half-space trees (see HST's docstring).
@pytest.mark.parametrize("detector", STATISTICAL)
def test_isolated_spike_does_not_move_protected_model(detector: str) -> None:
    """With protect on, a spike is not learned: the next normal point scores as if it never happened."""
    with_spike, seen_with, model_with = _after_spike(detector, protect=True, spike=True)
    without, seen_without, model_without = _after_spike(detector, protect=True, spike=False)
    assert with_spike == pytest.approx(without, abs=1e-12)
    assert seen_with == seen_without
    assert model_with == model_without


@pytest.mark.parametrize("detector", STATISTICAL)
def test_isolated_spike_moves_unprotected_model(detector: str) -> None:
    """With protect off, the spike is learned into the model."""
    _, seen_with, model_with = _after_spike(detector, protect=False, spike=True)
    _, seen_without, model_without = _after_spike(detector, protect=False, spike=False)
    assert seen_with == seen_without + 1
    assert model_with != model_without


@pytest.mark.parametrize("detector", ["zscore", "ewma"])
def test_learned_spike_changes_next_score_for_non_robust_models(detector: str) -> None:
    """Mean/variance models that learned a spike score the next normal point differently (robust does not)."""
    with_spike, _, _ = _after_spike(detector, protect=False, spike=True)
    without, _, _ = _after_spike(detector, protect=False, spike=False)
    assert with_spike != pytest.approx(without, abs=1e-6)


# Half-space trees judge against a 50-point reference window, so a jointly rare but ordinary point
# (seed 3, point 486: a = +3.15σ with b = -1.26σ) lands in a cell no reference point visited.
_HST_STATIONARY = pytest.param(
    "hst", marks=pytest.mark.xfail(strict=True, reason="a 50-point window cannot grade a 3σ tail point")
)


@pytest.mark.parametrize("detector", [_HST_STATIONARY if n == "hst" else n for n in sorted(CATALOG)])
def test_stationary_data_raises_no_alerts_with_default_spec(detector: str) -> None:
    """Stationary Gaussian data with a catalog detector and otherwise default spec raises no alert."""
    scorer, _ = _scorer(("default", _spec(detector)))
    outcomes = _feed(scorer, _normal(3, 600))
    assert [i for i, o in enumerate(outcomes) if o.anomalous] == []
    assert all(o.alert is None for o in outcomes)


@pytest.mark.parametrize("detector", STATISTICAL)
def test_huge_finite_value_alerts_instead_of_crashing(detector: str) -> None:
    """A valid event with a huge finite value (1e300) after warm-up yields an alert, not an exception."""
    scorer, _ = _scorer(("default", _spec(detector)))
    _feed(scorer, _normal(3, 100))
    out = scorer.process(_event(100, {"a": 1e300, "b": 0.0}), _source(100))
    assert out.anomalous
    assert out.alert is not None
    assert 0.0 <= out.alert.score <= 1.0


# -- specs ------------------------------------------------------------------------------------------


def test_spec_features_select_the_values_used() -> None:
    """Only the spec's ``features`` are scored and learned; other values are ignored."""
    scorer, registry = _scorer(("default", _spec("zscore", features=["a"])))
    _feed(scorer, _normal(9, 100))
    ignored = scorer.process(_event(100, {"a": 10.0, "b": 500.0}), _source(100))
    assert not ignored.anomalous
    hit = scorer.process(_event(101, {"a": 60.0, "b": 0.0}), _source(101))
    assert hit.anomalous
    assert hit.alert is not None
    assert set(hit.alert.contributions) == {"a"}
    assert set(hit.alert.expected) == {"a"}
    assert hit.alert.values == {"a": 60.0, "b": 0.0}  # the alert still reports what was received
    state = _state(registry)
    assert state.detector.score_one({"b": 1e6}) == 0.0  # "b" was never learned


def test_event_without_selected_features_is_skipped() -> None:
    """An event carrying none of the spec's features scores 0 and is not learned."""
    scorer, registry = _scorer(("default", _spec("zscore", features=["a"], warmup=5)))
    _feed(scorer, _normal(9, 10))
    seen = _state(registry).n_seen
    out = scorer.process(_event(10, {"other": 1e6}), _source(10))
    assert (out.score, out.anomalous, out.warming, out.alert) == (0.0, False, False, None)
    assert _state(registry).n_seen == seen
    assert _state(registry).offset == 10  # the offset still advances: the record was applied


def test_stream_without_spec_uses_default() -> None:
    """Events of a stream with no spec of its own are scored with the ``default`` spec."""
    default, payments = _spec("robust", warmup=12), _spec("hst")
    scorer, registry = _scorer(("default", default), ("payments", payments))
    scorer.process(_event(0, {"a": 1.0}, stream="other"), _source(0))
    scorer.process(_event(1, {"a": 1.0}, stream="payments"), _source(1))
    other, pay = _state(registry, "other"), _state(registry, "payments")
    assert other.detector.name == "robust"
    assert other.digest == default.digest()
    assert pay.detector.name == "hst"
    assert pay.digest == payments.digest()


def test_changed_spec_rebuilds_state() -> None:
    """When a key's spec changes (new digest) its state is rebuilt; an equal spec keeps it."""
    registry = Registry(max_keys=10, ttl_s=1e9, clock=lambda: 0.0)
    old = Scorer(DetectorSpecs(streams={"default": _spec("zscore")}), registry)
    _feed(old, _normal(10, 50))
    state = _state(registry)
    assert state.n_seen == 50
    same = Scorer(DetectorSpecs(streams={"default": _spec("zscore")}), registry)
    _feed(same, _normal(11, 1), start=50)
    assert _state(registry) is state
    assert state.n_seen == 51
    new_spec = _spec("zscore", warmup=10)
    new = Scorer(DetectorSpecs(streams={"default": new_spec}), registry)
    _feed(new, _normal(12, 1), start=51)
    rebuilt = _state(registry)
    assert rebuilt is not state
    assert (rebuilt.n_seen, rebuilt.digest, rebuilt.offset) == (1, new_spec.digest(), 51)


def test_state_tracks_partition_and_offset() -> None:
    """The key's state records the partition it lives with and the last offset applied."""
    scorer, registry = _scorer(("default", _spec("ewma")))
    scorer.process(_event(0, {"a": 1.0}), _source(7, partition=2))
    scorer.process(_event(1, {"a": 1.0}), _source(8, partition=3))
    state = _state(registry)
    assert (state.partition, state.offset) == (3, 8)
    assert registry.for_partition(3) == [("default", "e")]


def test_lifecycle_spec_defaults_match_tests() -> None:
    """The defaults these tests rely on (cooldown 300 s, adapt after 30) are those of ``LifecycleSpec``."""
    spec = _spec().lifecycle
    assert (spec.cooldown_s, spec.protect, spec.resolve_after, spec.adapt_after) == (300.0, True, 3, 30)
    default = LifecycleSpec()
    assert (default.cooldown_s, default.resolve_after, default.adapt_after) == (300.0, 3, 30)
