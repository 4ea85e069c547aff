"""The detector contract, checked for every entry of the catalog (a new detector is covered automatically).

Pickle round trips and clones are exact, scores stay finite and in [0, 1] whatever the input, and
explanations are proper shares over the point's own features with ordered bands.
"""

from __future__ import annotations

import math
import pickle
import random

import pytest

from anomstream.detect.catalog import CATALOG, available
from anomstream.detect.detector import Detector, Features, score_to_z, z_to_score

# A detector whose optional extra is missing cannot be built; ``make test`` installs every extra.
NAMES = [
    pytest.param(n, marks=pytest.mark.skipif(not available(n), reason="optional extra not installed"))
    for n in sorted(CATALOG)
]
KINDS = {"point", "contextual", "collective", "population", "silent", "shift"}
N_LEARN = 300

# Detectors whose explanation is a perturbation heuristic rather than per-feature deviations: for them the
# spike test only asserts the spike outscores a normal point.
WEAK_EXPLAINERS = frozenset({"hst"})

# Statistical detectors square |z| in ``z_to_score``; a finite but huge deviation overflows to inf/inf = NaN.


def _stream(seed: int, n: int = N_LEARN) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [{"a": rng.gauss(0.0, 1.0), "b": rng.gauss(5.0, 2.0), "c": rng.gauss(-3.0, 0.5)} for _ in range(n)]


def _trained(name: str, seed: int = 7) -> Detector:
    det = CATALOG[name]()
    for x in _stream(seed):
        det.learn_one(x)
    return det


def _assert_score(score: float) -> None:
    assert math.isfinite(score), score
    assert 0.0 <= score <= 1.0, score


@pytest.mark.parametrize("name", NAMES)
def test_pickle_round_trip_is_exact(name: str) -> None:
    """A pickled and restored detector gives bit-identical scores and explanations, now and later."""
    det = _trained(name)
    restored = pickle.loads(pickle.dumps(det))
    assert isinstance(restored, CATALOG[name])
    follow_up = _stream(seed=99, n=25)
    nxt = follow_up[0]
    assert restored.score_one(nxt) == det.score_one(nxt)
    assert restored.explain_one(nxt) == det.explain_one(nxt)
    for x in follow_up:  # the restored state also keeps learning identically
        det.learn_one(x)
        restored.learn_one(x)
        assert restored.score_one(x) == det.score_one(x)


@pytest.mark.parametrize("name", NAMES)
def test_clones_are_deterministic(name: str) -> None:
    """Two clones fed the same seeded stream produce identical score sequences."""
    proto = CATALOG[name]()
    first, second = proto.clone(), proto.clone()
    scores: list[list[float]] = [[], []]
    for x in _stream(seed=3):
        for det, out in ((first, scores[0]), (second, scores[1])):
            out.append(det.score_one(x))
            det.learn_one(x)
    assert scores[0] == scores[1]


@pytest.mark.parametrize("name", NAMES)
def test_clone_starts_fresh(name: str) -> None:
    """``clone()`` of a trained detector carries the parameters, not the learned state."""
    fresh = CATALOG[name]()
    clone = _trained(name).clone()
    probe = {"a": 4.0, "b": 5.0, "c": -3.0}
    assert clone.score_one(probe) == fresh.score_one(probe)


# (case id, learn first?, point)
_ODD_INPUTS: list[tuple[str, bool, dict[str, float]]] = [
    ("extreme_high", True, {"a": 1e300, "b": 5.0, "c": -3.0}),
    ("extreme_low", True, {"a": -1e300, "b": 5.0, "c": -3.0}),
    ("all_extreme", True, {"a": 1e300, "b": -1e300, "c": 1e300}),
    ("missing_feature", True, {"a": 0.0, "b": 5.0}),
    ("new_feature", True, {"a": 0.0, "b": 5.0, "c": -3.0, "brand_new": 7.0}),
    ("only_new_feature", True, {"brand_new": 7.0}),
    ("one_feature_only", True, {"b": 5.0}),
    ("before_learning", False, {"a": 0.0, "b": 5.0}),
    ("before_learning_extreme", False, {"a": 1e300, "b": -1e300}),
    ("before_learning_one_feature", False, {"z": -2.5}),
]


def _odd_params() -> list[object]:
    params: list[object] = []
    for name in sorted(CATALOG):
        skip = pytest.mark.skipif(not available(name), reason="optional extra not installed")
        for case, learn, x in _ODD_INPUTS:
            params.append(pytest.param(name, learn, x, id=f"{name}-{case}", marks=skip))
    return params


@pytest.mark.parametrize(("name", "learn", "x"), _odd_params())
def test_score_is_finite_and_bounded(name: str, learn: bool, x: Features) -> None:
    """Scores are finite and in [0, 1] for extreme, missing, new and lone features, and before learning."""
    det = _trained(name) if learn else CATALOG[name]()
    _assert_score(det.score_one(x))


@pytest.mark.parametrize("name", NAMES)
def test_empty_point_scores_in_range(name: str) -> None:
    """An empty feature dict (the scorer never sends one, but the API allows it) scores in [0, 1]."""
    _assert_score(CATALOG[name]().score_one({}))
    _assert_score(_trained(name).score_one({}))


@pytest.mark.parametrize("name", NAMES)
def test_score_does_not_learn(name: str) -> None:
    """``score_one`` reads the model without changing it (scoring twice gives the same result)."""
    det = _trained(name)
    probe = {"a": 3.0, "b": 1.0, "c": -3.0}
    first = det.score_one(probe)
    for _ in range(5):
        det.score_one({"a": 50.0, "b": -40.0, "c": 9.0})
    assert det.score_one(probe) == first


_EXPLAIN_POINTS: list[tuple[str, dict[str, float]]] = [
    ("normal", {"a": 0.2, "b": 5.5, "c": -2.9}),
    ("spike", {"a": 25.0, "b": 5.0, "c": -3.0}),
    ("extreme", {"a": 1e300, "b": 5.0, "c": -3.0}),
    ("missing_feature", {"a": 0.0, "c": -3.0}),
    ("new_feature", {"a": 0.0, "b": 5.0, "brand_new": 1.0}),
    ("only_new_feature", {"brand_new": 1.0}),
    ("one_feature_only", {"c": -10.0}),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("case", "x"), _EXPLAIN_POINTS, ids=[c for c, _ in _EXPLAIN_POINTS])
def test_explanation_is_proper(name: str, case: str, x: Features) -> None:
    """Contributions are non-negative shares summing to 1 over x's own features; bands are ordered."""
    why = _trained(name).explain_one(x)
    assert set(why.contributions) <= set(x), case
    assert all(math.isfinite(v) and v >= 0.0 for v in why.contributions.values()), why.contributions
    assert math.fsum(why.contributions.values()) == pytest.approx(1.0, abs=1e-9)
    assert set(why.expected) <= set(x), case
    for feature, band in why.expected.items():
        assert band.low <= band.mean <= band.high, (feature, band)


@pytest.mark.parametrize("name", NAMES)
def test_explanation_before_learning(name: str) -> None:
    """Before any learning, the explanation is still proper shares and claims no expectation."""
    why = CATALOG[name]().explain_one({"a": 1.0, "b": 2.0})
    assert set(why.contributions) <= {"a", "b"}
    assert math.fsum(why.contributions.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(v >= 0.0 for v in why.contributions.values())
    assert why.expected == {}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("feature", ["a", "b"])
def test_single_feature_spike_is_attributed(name: str, feature: str) -> None:
    """A +20σ spike on one of two features outscores a normal point and gets the top contribution."""
    sigma = {"a": 1.0, "b": 2.0}
    det = CATALOG[name]()
    rng = random.Random(11)
    for _ in range(N_LEARN):
        det.learn_one({"a": rng.gauss(0.0, sigma["a"]), "b": rng.gauss(5.0, sigma["b"])})
    normal = {"a": 0.1, "b": 5.2}
    spike = {**normal, feature: normal[feature] + 20 * sigma[feature]}
    assert det.score_one(spike) > det.score_one(normal)
    if name in WEAK_EXPLAINERS:
        return
    contributions = det.explain_one(spike).contributions
    assert max(contributions, key=contributions.__getitem__) == feature, contributions


@pytest.mark.parametrize(("name", "learn", "x"), _odd_params())
def test_deviations_are_non_negative_and_finite(name: str, learn: bool, x: Features) -> None:
    """``deviations`` are finite and non-negative for every odd input (NaN only before learning)."""
    det = _trained(name) if learn else CATALOG[name]()
    devs = det.deviations(x)
    assert devs, "at least one view"
    # NaN = "this view cannot say yet" (the calibrators skip it): only an untrained model may say so.
    assert all((not learn and math.isnan(v)) or (math.isfinite(v) and v >= 0.0) for v in devs.values()), devs


@pytest.mark.parametrize("name", NAMES)
def test_scoring_and_explaining_leave_the_state_untouched(name: str) -> None:
    """``score_one``, ``deviations`` and ``explain_one`` leave the pickled state byte-identical."""
    det = _trained(name)
    before = pickle.dumps(det)
    for x in ({"a": 3.0, "b": 1.0, "c": -3.0}, {"a": 1e300, "b": 5.0}, {"new": 1.0}):
        det.score_one(x)
        det.deviations(x)
        det.explain_one(x)
    assert pickle.dumps(det) == before


@pytest.mark.parametrize("name", NAMES)
def test_spike_raises_the_deviation(name: str) -> None:
    """A +20σ spike on one feature has a larger top deviation than a normal point."""
    det = _trained(name)
    normal, spike = {"a": 0.1, "b": 5.2, "c": -3.0}, {"a": 20.0, "b": 5.2, "c": -3.0}
    assert max(det.deviations(spike).values()) > max(det.deviations(normal).values())


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_catalog_entry_describes_itself(name: str) -> None:
    """Every detector names a wire ``kind`` and a one-line summary for ``anomstream detectors``."""
    cls = CATALOG[name]
    assert cls.kind in KINDS
    assert cls.summary
    assert "\n" not in cls.summary


def test_z_to_score_saturates_for_huge_deviations() -> None:
    """The squash maps a huge but finite deviation close to 1 (the root of the extreme-value NaN)."""
    assert z_to_score(1e200) == pytest.approx(1.0)


def test_z_to_score_landmarks() -> None:
    """3σ → 0.5, 6σ → 0.8, 0 → 0, inf → 1, and ``score_to_z`` inverts the squash."""
    assert (z_to_score(0.0), z_to_score(3.0), z_to_score(6.0), z_to_score(math.inf)) == (0.0, 0.5, 0.8, 1.0)
    assert score_to_z(z_to_score(4.2)) == pytest.approx(4.2)
    assert score_to_z(1.0) == math.inf
