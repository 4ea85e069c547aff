"""The per-event decision, shared by the Kafka worker and file replay: score → threshold → learn → alert.

One code path, so a backtest on files gives exactly the scores the live worker gives.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from anomstream.detect.alerting import Point, alert_id, emit
from anomstream.detect.feedback import Applied
from anomstream.detect.judge import Judged
from anomstream.detect.outcome import Decision, Outcome, score_json, score_record
from anomstream.detect.population import PopulationWatch
from anomstream.detect.silence import Cadence, SilenceWatch, silence_alert
from anomstream.detect.spec import DetectorSpecs, StreamSpec
from anomstream.detect.store import KeyState, Registry
from anomstream.wire.records import Alert, Event, Expected, Feedback, Source

__all__ = ["Decision", "Outcome", "Scorer", "alert_id", "features", "score_json", "score_record"]


class Scorer:
    """Applies the stream's spec to each event, keeping per-key state in a ``Registry``.

    Protect-vs-adapt: with ``protect`` on, anomalous points are not learned (an outlier cannot drag the
    model towards itself); but ``adapt_after`` consecutive anomalous points are a level shift, and the
    model is rebuilt from that run so the new level becomes normal instead of alerting forever.
    """

    def __init__(
        self,
        specs: DetectorSpecs,
        registry: Registry,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.specs = specs
        self.registry = registry
        self.now = now  # wall clock of ``detected_at``; injected in tests
        # Stream-wide watches: their alerts are not about the event in hand, so they wait in ``pending``.
        self.silence = SilenceWatch(self._cadence, now)
        self.population = PopulationWatch(now)
        self.pending: list[Alert] = []
        self._silence_on = any(s.silence.enabled for s in specs.streams.values())

    def key_summary(self, limit: int) -> Iterator[tuple[float, bool]]:
        """``(current threshold, past warm-up)`` of up to ``limit`` most recently used keys."""
        for (stream, _), state in itertools.islice(self.registry.recent(), limit):
            bar = state.feedback.bar(state.threshold.current())
            yield bar, state.n_seen >= self.specs.for_stream(stream).warmup

    def apply_feedback(self, feedback: Feedback, partition: int) -> Applied:
        """Apply a person's verdict to its key (the key's state lives with ``partition``)."""
        spec = self.specs.for_stream(feedback.stream)
        state = self.registry.get((feedback.stream, feedback.entity_id), spec, partition)
        return state.feedback.apply(feedback, spec.feedback, state.threshold.current())

    def bands(self, event: Event) -> dict[str, Expected]:
        """The band the key's model would judge ``event`` against now (before scoring it), per feature."""
        spec = self.specs.for_stream(event.stream)
        state = self.registry.peek((event.stream, event.entity_id))
        if state is None or state.n_seen == 0 or state.digest != spec.digest():
            return {}
        x = features(event, spec)
        return dict(state.detector.explain_one(x, event.timestamp.timestamp()).expected) if x else {}

    def threshold_of(self, stream: str, entity: str) -> float | None:
        """The key's current threshold after feedback (None for a key with no state here)."""
        state = self.registry.peek((stream, entity))
        return None if state is None else state.feedback.bar(state.threshold.current())

    def process(self, event: Event, source: Source) -> Outcome:
        """Score one event for its key and return the decision (and the alert to publish, if any).

        Alerts that are not about this event (``silent``, ``population``) are queued: see ``drain``.
        """
        outcome = self._decide(event, source)
        spec = self.specs.for_stream(event.stream)
        if self._silence_on:
            self._watch_silence(event, source, spec)
        if spec.population.enabled and not outcome.warming:
            deviating = outcome.anomalous or (
                outcome.probability is not None and outcome.probability < spec.population.key_risk
            )
            t = event.timestamp.timestamp()
            self.pending += self.population.observe(
                event.stream,
                event.entity_id,
                t,
                source=source,
                spec=spec.population,
                score=outcome.score,
                deviating=deviating,
                values=features(event, spec),
            )
        return outcome

    def drain(self) -> list[Alert]:
        """The queued stream-wide alerts, oldest first (the worker publishes them before committing)."""
        out, self.pending = self.pending, []
        return out

    def tick(self, wall: float, idle_s: float) -> None:
        """The wall-clock fallback of silence watching for partitions without records for ``idle_s``."""
        if self._silence_on:
            self.pending += self.silence.idle(wall, idle_s)

    def rearm(self, partition: int) -> None:
        """Re-schedule the silence deadlines of a partition's restored keys (after a restore)."""
        for key in self.registry.for_partition(partition):
            state = self.registry.peek(key)
            cadence = getattr(state, "cadence", None)  # snapshots from before silence have none
            if cadence is not None and self.specs.for_stream(key[0]).silence.enabled:
                self.silence.arm(key[0], key[1], partition, cadence)

    def forget(self, partition: int) -> None:
        """Drop the stream-wide state of a partition we no longer own."""
        self.silence.forget(partition)
        self.population.forget(partition)

    def _cadence(self, key: tuple[str, str]) -> Cadence | None:
        state = self.registry.peek(key)
        return getattr(state, "cadence", None)

    def _watch_silence(self, event: Event, source: Source, spec: StreamSpec) -> None:
        t = event.timestamp.timestamp()
        state = self.registry.peek((event.stream, event.entity_id))
        if spec.silence.enabled and state is not None:
            if state.cadence is None:
                state.cadence = Cadence()
            c = state.cadence
            gap = c.observe(t, source, spec.silence)
            if gap is not None:  # the key is back: its silence resolves
                key = (event.stream, event.entity_id)
                self.pending.append(
                    silence_alert(
                        *key,
                        source,
                        status="resolved",
                        when=t,
                        detected=self.now(),
                        gap=gap,
                        mean=c.mean,
                        predicted=c.predicted,
                    )
                )
            self.silence.arm(event.stream, event.entity_id, source.partition, c)
        self.pending += self.silence.advance(source.partition, t, self.registry.clock())

    def _decide(self, event: Event, source: Source) -> Outcome:
        spec = self.specs.for_stream(event.stream)
        x = features(event, spec)
        state = self.registry.get((event.stream, event.entity_id), spec, source.partition)
        state.offset = source.offset
        base = state.threshold.current()
        if not x:
            decision = Decision.WARMING if state.n_seen < spec.warmup else Decision.NORMAL
            return Outcome(0.0, state.feedback.bar(base), decision)
        t = event.timestamp.timestamp()
        judged = state.judge.peek(state.detector, x, t) if state.judge is not None else None
        score = judged.score if judged is not None else state.detector.score_one(x, t)
        if not math.isfinite(score):  # a poisoned model (e.g. overflowed statistics) must not crash us
            score = 1.0
        p = Point(event, source, spec, state, x, t, score, state.feedback.bar(base), self.now, judged)
        if state.judge is not None and judged is not None:
            state.judge.settle(judged)  # the alarm envelope moves with every point, learned or not
        if state.n_seen < spec.warmup:
            _learn(state, x, t)  # the calibrators start once the detector itself is warm
            return Outcome(p.score, p.threshold, Decision.WARMING, probability=p.probability)
        if p.score <= p.threshold:
            if p.score <= base:  # a score only feedback's floor held back must not lift the quantile
                state.threshold.observe(p.score)
            state.recent.clear()
            alert, held = emit(p, state.lifecycle.on_normal(spec.lifecycle))
            _learn(state, x, t, judged)
            return Outcome(p.score, p.threshold, Decision.NORMAL, alert, p.probability, held)
        return _anomalous(p)


def _anomalous(p: Point) -> Outcome:
    state, life = p.state, p.spec.lifecycle
    status = state.lifecycle.on_anomaly(p.t, p.score, life)
    alert, held = emit(p, status)
    if not life.protect:
        _learn(state, p.x, p.t, p.judged)
        return Outcome(p.score, p.threshold, Decision.ANOMALOUS, alert, p.probability, held)
    state.recent.append((p.x, p.t))
    if state.lifecycle.anomaly_run < life.adapt_after:
        return Outcome(p.score, p.threshold, Decision.ANOMALOUS, alert, p.probability, held)
    # Sustained shift: 1. rebuild the model from the run, 2. close the alert, 3. warm up again
    # for whatever of the warm-up the run did not cover.
    state.detector = state.detector.clone()
    state.n_seen = 0
    for point, when in state.recent:
        _learn(state, point, when)
    state.recent.clear()
    closed, closed_held = emit(p, state.lifecycle.resolve())
    return Outcome(
        p.score, p.threshold, Decision.ADAPTED, closed or alert, p.probability, closed_held or held
    )


def features(event: Event, spec: StreamSpec) -> dict[str, float]:
    """The values the spec scores: all of the event's when the spec names none."""
    if not spec.features:
        return dict(event.values)
    return {name: event.values[name] for name in spec.features if name in event.values}


def _learn(state: KeyState, x: dict[str, float], t: float, judged: Judged | None = None) -> None:
    """Learn a point: the detector always, the key's calibrators once the detector is warm."""
    state.detector.learn_one(x, t)
    state.n_seen += 1
    if judged is not None and state.judge is not None:
        state.judge.learn(judged)
