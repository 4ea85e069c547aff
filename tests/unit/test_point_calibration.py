"""Point detectors' calibration declarations: one-point likelihood, short alarm envelope, capped learning."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from anomstream.detect.calibration import Bank, score_of_risk
from anomstream.detect.catalog import build
from anomstream.detect.clustering import KMeansDistance
from anomstream.detect.detector import Detector, Explanation, Features
from anomstream.detect.judge import Judge
from anomstream.detect.scorer import Outcome, Scorer
from anomstream.detect.spec import DetectorSpecs, LifecycleSpec, StreamSpec
from anomstream.detect.store import KeyState, Registry
from anomstream.errors import ConfigError
from anomstream.wire.records import Event, Source

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _normal(rng: random.Random) -> dict[str, float]:
    return {"a": rng.gauss(0.0, 1.0), "b": rng.gauss(50.0, 5.0), "c": rng.gauss(-3.0, 0.5)}


class _Key:
    """One key fed through the real ``Scorer``, one event a minute."""

    def __init__(self, spec: StreamSpec) -> None:
        self.scorer = Scorer(DetectorSpecs(streams={"default": spec}), Registry(10, 1e12))
        self.i = 0

    def send(self, values: dict[str, float]) -> Outcome:
        event = Event(
            stream="default", entity_id="k", timestamp=T0 + timedelta(minutes=self.i), values=values
        )
        self.i += 1
        return self.scorer.process(event, Source(topic="t", partition=0, offset=self.i))


class _Given(Detector):
    """A detector whose one deviation is the point's ``v``: the judge's behaviour on known deviations."""

    def score_one(self, x: Features, t: float | None = None) -> float:
        return 0.0

    def learn_one(self, x: Features, t: float | None = None) -> None:
        return None

    def explain_one(self, x: Features, t: float | None = None) -> Explanation:
        return Explanation({}, {})

    def deviations(self, x: Features, t: float | None = None) -> dict[str, float]:
        return {"model": x["v"]}


def _flags_after_incident(windows: tuple[int, ...]) -> list[bool]:
    """Rows flagged (score above the 1e-4 bar) among the 4 normal rows after a 5-row incident."""
    rng, det, judge = random.Random(3), _Given(), Judge(halflife=10.0, windows=windows)
    bar = score_of_risk(1e-4)
    rows = [abs(rng.gauss(0.0, 1.0)) for _ in range(500)] + [50.0] * 5
    rows += [abs(rng.gauss(0.0, 1.0)) for _ in range(4)]
    flags = []
    for v in rows:
        judged = judge.peek(det, {"v": v}, None)
        judge.settle(judged)
        judge.learn(judged)
        flags.append(judged.score > bar)
    assert all(flags[500:505])  # the incident itself alarms either way
    return flags[505:]


def test_a_point_detectors_alarm_does_not_spill_onto_the_next_rows() -> None:
    """One-point likelihood: the normal rows after an incident are judged on their own values."""
    assert _flags_after_incident((1,)) == [False] * 4


def test_a_five_point_average_holds_the_rows_after_an_incident_above_the_bar() -> None:
    """The counter-case (the default windows): the incident's average keeps the next two rows alarming."""
    assert _flags_after_incident((5, 1))[:2] == [True, True]


@pytest.mark.parametrize("name", ["kmeans", "hst", "iforest"])
def test_a_point_detector_is_quiet_right_after_a_spike(name: str) -> None:
    """Through the real scorer: a spike is anomalous and the normal rows right after it are not."""
    rng, key = random.Random(3), _Key(StreamSpec(detector=name, warmup=5))
    for _ in range(400):
        key.send(_normal(rng))
    assert key.send({"a": 12.0, "b": 50.0, "c": -3.0}).anomalous
    assert not any(key.send(_normal(rng)).anomalous for _ in range(3))


@pytest.mark.parametrize(("halflife", "flagged"), [(None, True), (1000.0, False)])
def test_a_later_lower_spike_on_the_same_key_still_alarms(
    monkeypatch: pytest.MonkeyPatch, halflife: float | None, flagged: bool
) -> None:
    """A 10σ spike 100 rows after a 30σ one alarms under kmeans' 10-point envelope, not under 1000."""
    if halflife is not None:
        monkeypatch.setattr(KMeansDistance, "alarm_halflife", halflife)
    rng, key = random.Random(4), _Key(StreamSpec(detector="kmeans", warmup=5))
    for _ in range(400):
        key.send(_normal(rng))
    assert key.send({"a": 30.0, "b": 50.0, "c": -3.0}).anomalous
    for _ in range(100):
        key.send(_normal(rng))
    assert key.send({"a": 10.0, "b": 50.0, "c": -3.0}).anomalous is flagged


def test_ocsvm_deficit_scores_a_far_point_above_every_normal_point() -> None:
    """On Gaussian data the SVM's standardised decision deficit of a 6σ point beats 1000 normal ones."""
    spec = StreamSpec(detector="ocsvm", params={"score": "deficit", "gamma": 0.05})
    rng, det = random.Random(5), build(spec)
    for _ in range(500):
        det.learn_one(_normal(rng))
    normal = [det.deviations(_normal(rng))["model"] for _ in range(1000)]
    far = det.deviations({"a": 6.0, "b": 50.0, "c": -3.0})["model"]
    assert far > max(normal)


def test_kmeans_distance_is_in_the_keys_mean_cluster_spread() -> None:
    """A cluster that absorbed almost nothing does not shrink its points' unit: distance / mean spread."""
    rng, det = random.Random(6), KMeansDistance(seed=1)
    for _ in range(300):
        det.learn_one(_normal(rng))
    model = det._model()
    spreads = list(model.spread.values())
    v = det._vector({"a": 2.0, "b": 50.0, "c": -3.0}, model)
    _, d = det._nearest(model, v)
    assert det._model_raw(model, v) == pytest.approx(d / max(sum(spreads) / len(spreads), 0.1))


def test_calibration_declarations_reach_the_key_and_leave_the_default_detector_alone() -> None:
    """The default detector keeps the spec's envelope and (5, 1) likelihood; kmeans' own, the shorter wins."""
    default = KeyState(StreamSpec(), 0, 0.0).judge
    assert default is not None
    assert default.suppressor.decay == 0.5 ** (1 / 1000)
    assert (default.bank.windows, default.bank.cap) == ((5, 1), None)
    kmeans = KeyState(StreamSpec(detector="kmeans"), 0, 0.0).judge
    assert kmeans is not None
    assert kmeans.suppressor.decay == 0.5 ** (1 / 10)
    assert (kmeans.bank.windows, kmeans.bank.cap) == ((1,), 3.5)
    short = KeyState(StreamSpec(detector="kmeans", lifecycle=LifecycleSpec(halflife=4.0)), 0, 0.0).judge
    assert short is not None
    assert short.suppressor.decay == 0.5 ** (1 / 4)


def test_capped_likelihood_keeps_a_milder_incident_improbable() -> None:
    """Incidents of 30 every 30 points: a capped bank still gives a later 8 p < 1e-4, uncapped p > 1e-3."""
    rng, capped, plain = random.Random(7), Bank(windows=(1,), cap=3.0), Bank(windows=(1,))
    for i in range(3000):
        d = {"x": 30.0 if i % 30 == 29 else abs(rng.gauss(0.0, 1.0))}
        capped.commit(d)
        plain.commit(d)
    assert capped.peek({"x": 8.0})[0] < -4
    assert plain.peek({"x": 8.0})[0] > -3


def test_ocsvm_score_is_validated() -> None:
    """An unknown ocsvm score is a configuration error naming the choices."""
    with pytest.raises(ConfigError, match="deficit"):
        build(StreamSpec(detector="ocsvm", params={"score": "nope"}))
