"""Feedback effects: the per-key floor and ceiling, the re-ranker, idempotence, snapshots and replay."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from anomstream.detect import reranker
from anomstream.detect.feedback import FeedbackState
from anomstream.detect.reranker import Reranker
from anomstream.detect.scorer import Outcome, Scorer, score_record
from anomstream.detect.spec import DetectorSpecs, FeedbackSpec, StreamSpec
from anomstream.detect.store import KeyState, Registry
from anomstream.stream import snapshot
from anomstream.wire import codec
from anomstream.wire.records import Alert, Event, Feedback, Source

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = StreamSpec.model_validate(
    {
        "detector": "zscore",
        "threshold": {"kind": "quantile"},
        "lifecycle": {"protect": True, "realert": "cooldown", "resolve_after": 1, "cooldown_s": 0},
    }
)


def _fb(verdict: str, **kw: Any) -> Feedback:
    return Feedback.model_validate({"entity_id": "e", "verdict": verdict, "submitted_at": T0, **kw})


class _Key:
    """One key scored through the live decision path, with its own event clock."""

    def __init__(self, spec: StreamSpec = SPEC) -> None:
        self.scorer = Scorer(DetectorSpecs(streams={"default": spec}), Registry(1000, 1e9, clock=lambda: 0.0))
        self.i = 0

    def feed(self, value: float) -> Outcome:
        self.i += 1
        event = Event(entity_id="e", timestamp=T0 + timedelta(seconds=self.i), values={"a": value})
        return self.scorer.process(event, Source(topic="t", partition=0, offset=self.i))

    def warm(self, n: int = 400, seed: int = 1) -> None:
        rng = random.Random(seed)
        for _ in range(n):
            self.feed(rng.gauss(10, 1))

    def spike(self, value: float) -> Outcome:
        out = self.feed(value)
        self.feed(10.0)  # resolves the episode (resolve_after = 1)
        return out


def test_false_positive_raises_the_floor_for_similar_scores_only() -> None:
    """After a false positive, the same spike no longer alerts; a clearly worse one still does."""
    key = _Key()
    key.warm()
    first = key.spike(16.0)
    assert first.alert is not None
    assert first.alert.status == "open"
    applied = key.scorer.apply_feedback(
        _fb("false_positive", alert_id=first.alert.alert_id, score=first.alert.score), partition=0
    )
    assert applied.bar_after == pytest.approx(first.alert.score + 0.02)
    assert key.scorer.threshold_of("default", "e") == pytest.approx(first.alert.score + 0.02)
    again = key.spike(16.0)
    assert again.alert is None
    assert again.threshold > again.score
    worse = key.spike(40.0)
    assert worse.alert is not None
    assert worse.alert.status == "open"


def test_missed_lowers_the_bar_below_the_range_worst_score() -> None:
    """A missed range whose worst score stayed under the bar lowers the key's bar below that score."""
    key = _Key()
    key.warm()
    quiet = key.spike(14.0)
    assert quiet.alert is None
    assert quiet.score < quiet.threshold
    key.scorer.apply_feedback(
        _fb("missed", start=T0, end=T0 + timedelta(hours=1), score=quiet.score), partition=0
    )
    assert key.scorer.threshold_of("default", "e") == pytest.approx(quiet.score - 0.02)
    assert key.spike(14.0).alert is not None


def test_floor_and_ceiling_newest_verdict_wins() -> None:
    """A miss under an older floor clears it; a false positive over an older ceiling lifts it; TP lowers."""
    fs, spec = FeedbackState(), FeedbackSpec(margin=0.02, lowest=0.1)
    fs.apply(_fb("false_positive", alert_id="a", score=0.6), spec, base=0.4)
    assert fs.bar(0.4) == pytest.approx(0.62)
    fs.apply(_fb("missed", start=T0, end=T0, score=0.3), spec, base=0.4)
    assert fs.floor == 0.0
    assert fs.bar(0.4) == pytest.approx(0.28)
    fs.apply(_fb("false_positive", alert_id="b", score=0.5), spec, base=0.4)
    assert fs.ceiling == 1.0
    assert fs.bar(0.4) == pytest.approx(0.52)
    fs.apply(_fb("true_positive", alert_id="c", score=0.45), spec, base=0.4)
    assert fs.bar(0.4) == pytest.approx(0.43)
    fs.apply(_fb("missed", start=T0, end=T0 + timedelta(hours=1), score=0.01), spec, base=0.4)
    assert fs.bar(0.4) == pytest.approx(0.1), "a miss never lowers the bar below `lowest`"


def test_redelivered_verdict_changes_nothing() -> None:
    """The same verdict on the same alert applied twice (at-least-once redelivery) counts once."""
    fs, spec = FeedbackState(), FeedbackSpec()
    fb = _fb("false_positive", alert_id="a", score=0.5, features={"view=x": 1.0})
    first, second = fs.apply(fb, spec, 0.4), fs.apply(fb, spec, 0.4)
    assert not first.duplicate
    assert second.duplicate
    assert fs.reranker.labels == 1
    assert second.bar_after == first.bar_after


def _labelled(n: int, seed: int = 3) -> list[tuple[dict[str, float], bool]]:
    """Alerts on disk are false, alerts on cpu are true (the pattern the re-ranker should learn)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        false = rng.random() < 0.5
        view = "disk.level" if false else "cpu.level"
        out.append(({f"view={view}": 1.0, "score": rng.uniform(0.4, 0.7)}, false))
    return out


def test_reranker_learns_a_labelled_pattern() -> None:
    """Trained on labelled alerts, it holds back the false pattern and lets the true one through."""
    model, spec = Reranker(), FeedbackSpec()
    for x, false in _labelled(60):
        model.learn(x, false_positive=false)
    assert model.suppress({"view=disk.level": 1.0, "score": 0.55}, spec) is not None
    assert model.suppress({"view=cpu.level": 1.0, "score": 0.55}, spec) is None
    p_disk = model.p_false({"view=disk.level": 1.0, "score": 0.55})
    p_cpu = model.p_false({"view=cpu.level": 1.0, "score": 0.55})
    assert p_disk is not None
    assert p_cpu is not None
    assert p_disk > 0.9
    assert p_cpu < 0.1


def test_reranker_never_suppresses_without_confidence() -> None:
    """Too few labels, one verdict only, ambiguous labels or re-ranking off: nothing is held back."""
    spec = FeedbackSpec(min_labels=10, min_each=3, confidence=0.9)
    x = {"view=disk.level": 1.0}
    few = Reranker()
    for _ in range(9):
        few.learn(x, false_positive=True)
    assert few.suppress(x, spec) is None, "9 labels < min_labels"
    one_sided = Reranker()
    for _ in range(50):
        one_sided.learn(x, false_positive=True)
    assert one_sided.suppress(x, spec) is None, "never saw a true alert"
    ambiguous = Reranker()
    for i in range(60):
        ambiguous.learn(x, false_positive=i % 2 == 0)
    p = ambiguous.p_false(x)
    assert p is not None
    assert p < 0.9
    assert ambiguous.suppress(x, spec) is None
    trained = Reranker()
    for feats, false in _labelled(60):
        trained.learn(feats, false_positive=false)
    assert trained.suppress(x, spec) is not None
    assert trained.suppress(x, spec.model_copy(update={"rerank": False})) is None


def test_feedback_state_round_trips_through_a_snapshot() -> None:
    """Floor, ceiling, seen verdicts and the trained re-ranker survive seal → open_envelope."""
    state = KeyState(SPEC, partition=0, now=0.0)
    for i, (x, false) in enumerate(_labelled(40)):
        verdict = "false_positive" if false else "true_positive"
        state.feedback.apply(_fb(verdict, alert_id=f"a{i}", score=0.5, features=x), SPEC.feedback, 0.4)
    _, restored = snapshot.open_envelope(snapshot.seal(state, b"k"), b"k")
    probe = {"view=disk.level": 1.0, "score": 0.5}
    assert restored.feedback.bar(0.4) == state.feedback.bar(0.4)
    assert restored.feedback.reranker.p_false(probe) == state.feedback.reranker.p_false(probe)
    assert restored.feedback.seen == state.feedback.seen


def test_confident_reranker_holds_the_alert_back_visibly() -> None:
    """A suppressed alert is not published but is on the outcome and in the score record."""
    key = _Key()
    key.warm()
    model = key.scorer.registry.peek(("default", "e"))
    assert model is not None
    probe = key.spike(16.0).alert
    assert probe is not None
    for i in range(30):  # this key's alerts on `a` are false; a made-up other view is true
        false = i % 2 == 0
        feats = reranker.features(probe) if false else {"view=b.level": 1.0, "score": 0.9}
        verdict = "false_positive" if false else "true_positive"
        key.scorer.apply_feedback(_fb(verdict, alert_id=f"x{i}", features=feats, score=0.99), 0)
    model.feedback.floor = 0.0  # isolate the re-ranker from the floor those verdicts moved
    held = key.feed(16.0)
    assert held.alert is None
    assert held.suppressed is not None
    assert held.suppressed.status == "open"
    event = Event(entity_id="e", timestamp=T0, values={"a": 16.0})
    record = score_record(event, Source(topic="t", partition=0, offset=0), held, key.scorer.specs)
    assert record.suppressed_alert_id == held.suppressed.alert_id
    resolved = key.feed(10.0)
    assert resolved.alert is None, "a held episode stays held"
    assert resolved.suppressed is not None


def test_resolved_alert_names_the_view_that_opened_it() -> None:
    """The `resolved` alert of an episode opened by feature `a` names `a`, whatever the calm point shows."""
    spec = SPEC.model_copy(update={"detector": "zscore"})
    scorer = Scorer(DetectorSpecs(streams={"default": spec}), Registry(1000, 1e9, clock=lambda: 0.0))
    rng = random.Random(2)

    def feed(i: int, a: float, b: float) -> Alert | None:
        event = Event(entity_id="e", timestamp=T0 + timedelta(seconds=i), values={"a": a, "b": b})
        return scorer.process(event, Source(topic="t", partition=0, offset=i)).alert

    for i in range(400):
        feed(i, rng.gauss(10, 1), rng.gauss(10, 1))
    opened = feed(400, 30.0, 10.0)
    resolved = feed(401, 10.0, 12.8)  # calm, but `b` leads the calm point's contributions
    assert opened is not None
    assert resolved is not None
    assert resolved.status == "resolved"
    assert opened.view.startswith("a")
    assert resolved.view == opened.view


def _log(seed: int) -> list[Event | Feedback]:
    """Events of two keys with spikes, and verdicts on some of the alerts, as one event-sourced log."""
    rng = random.Random(seed)
    log: list[Event | Feedback] = []
    for i in range(600):
        for entity in ("p", "q"):
            value = rng.gauss(10, 1) + (8.0 if i % 97 == 50 else 0.0)
            log.append(Event(entity_id=entity, timestamp=T0 + timedelta(seconds=i), values={"a": value}))
        if i % 97 == 60:
            verdict = "false_positive" if i % 2 else "true_positive"
            log.append(_fb(verdict, entity_id="p", alert_id=f"a{i}", score=0.75 + i / 10_000))
        if i == 400:
            log.append(_fb("missed", entity_id="q", start=T0, end=T0 + timedelta(seconds=400), score=0.6))
    return log


def _run(log: list[Event | Feedback]) -> tuple[list[tuple[float, bool]], dict[str, float | None]]:
    scorer = Scorer(DetectorSpecs(streams={"default": SPEC}), Registry(1000, 1e9, clock=lambda: 0.0))
    decisions = []
    for offset, record in enumerate(log):
        if isinstance(record, Feedback):
            scorer.apply_feedback(record, partition=0)
            continue
        out = scorer.process(record, Source(topic="t", partition=0, offset=offset))
        decisions.append((out.threshold, out.alert is not None))
    return decisions, {e: scorer.threshold_of("default", e) for e in ("p", "q")}


def test_replaying_events_and_feedback_gives_the_same_thresholds() -> None:
    """Feedback is event-sourced: the same events and verdicts give the same thresholds and alerts."""
    log = _log(5)
    first, second = _run(log), _run(list(log))
    assert first == second
    without = _run([r for r in log if isinstance(r, Event)])
    assert first[1] != without[1], "the verdicts must have changed the thresholds for this to mean anything"


def test_invalid_feedback_is_a_rejection() -> None:
    """Bad feedback (no alert id, missed without a range, bad JSON) decodes to a rejection, never raises."""
    ok = orjson.dumps({"entity_id": "e", "verdict": "true_positive", "alert_id": "a", "submitted_at": 0})
    assert isinstance(codec.decode_feedback(ok, 10_000), Feedback)
    for raw, reason in [
        (b'{"entity_id":"e","verdict":"false_positive","submitted_at":0}', "schema_violation"),
        (b'{"entity_id":"e","verdict":"missed","start":5,"end":1,"submitted_at":0}', "schema_violation"),
        (b'{"entity_id":"e","verdict":"maybe","alert_id":"a","submitted_at":0}', "schema_violation"),
        (b"{", "invalid_json"),
        (None, "empty"),
    ]:
        rejected = codec.decode_feedback(raw, 10_000)
        assert isinstance(rejected, codec.Rejection), raw
        assert rejected.reason == reason, raw
