"""Detection quality: backtest the real ``Scorer`` on a long labelled stream, precision/recall per kind.

``spike`` and ``contextual`` are scored per point: precision as if only that kind were injected (the
events considered are the normal ones plus those labelled with that kind, so false positives — flags on
normal events — are shared by every kind), recall per labelled point.

``collective``, ``population`` and ``silent`` are scored per *alert* (an alert opens once per episode, so
counting flagged points would reward the same alert many times):

* ``collective`` — recall per injected run: found when an alert of kind ``collective`` opens on the run's
  entity between its first point and ``collective_slack`` steps after its last; precision per opened
  ``collective`` alert: true when it opens within such a span, false when it opens on an unlabelled
  stretch. Alerts that open on a point of another kind, or within the slack after one (a spike, a
  population shift, the return from a silence), count as neither (as if only collective runs were
  injected). The point-wise figures stay as ``point_precision``/``point_recall``/``event_recall``.
* ``population`` — recall per injected population episode: found when a ``population`` alert opens
  between the episode's first step and ``collective_slack`` steps after its last; precision per opened
  ``population`` alert.
* ``silent`` — recall per silence gap: found when a ``silent`` alert for that entity opens between the
  gap's first missing step and the entity's return (before the data comes back); precision per opened
  ``silent`` alert.

"Opens at" is the event time of the record whose processing released the alert: point alerts come with
their event, stream-wide alerts from ``Scorer.drain()`` after the record that moved the watermark or
closed the window — the same drain ``anomstream replay`` and the worker use. ``recall``/``precision`` are
None for a kind the spec does not switch on (silence/population) or that had nothing to count.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from anomstream.detect.scorer import Scorer
from anomstream.detect.spec import DetectorSpecs, StreamSpec
from anomstream.detect.store import Registry
from anomstream.offline.pointscore import precision_recall_f1
from anomstream.wire.codec import decode_event
from anomstream.wire.records import Alert, Event, Source
from loadtest.generator import Generator, Run
from loadtest.scenario import KINDS, DataSpec, QualitySpec

Key = tuple[str, int]


@dataclasses.dataclass
class Verdicts:
    """What the scorer said about every scored (non-warming) event, and the ground truth."""

    keys: list[Key]
    flagged: list[bool]
    labels: dict[Key, str]
    runs: list[Run]
    step_ms: int
    alerts: list[tuple[int, Alert]] = dataclasses.field(default_factory=list)  # (opened at ms, alert)
    episodes: list[Run] = dataclasses.field(default_factory=list)
    gaps: list[Run] = dataclasses.field(default_factory=list)
    enabled: frozenset[str] = frozenset()  # the stream-wide kinds the spec switches on


def quality_data(data: DataSpec, q: QualitySpec, spec: StreamSpec) -> DataSpec:
    """The quality stream: fewer entities, injections only after warm-up and the threshold's history."""
    arm = max(data.arm_after, spec.warmup + 60)
    fields = {**data.model_dump(), **q.data, "entities": q.entities}
    return DataSpec.model_validate({**fields, "arm_after": max(arm, fields.get("arm_after", 0))})


def backtest(data: DataSpec, q: QualitySpec, spec: StreamSpec) -> tuple[Verdicts, float]:
    """Score ``q.steps`` steps of ``q.entities`` entities; returns verdicts and scorer events/s."""
    gen = Generator(quality_data(data, q, spec))
    events: list[Event] = []
    for _ in range(q.steps):
        for item in gen.step():
            decoded = decode_event(item.encode(), 1_000_000)
            assert isinstance(decoded, Event)
            events.append(decoded)
    scorer = Scorer(DetectorSpecs(streams={"default": spec}), Registry(10 * q.entities, 1e12))
    keys: list[Key] = []
    flagged: list[bool] = []
    alerts: list[tuple[int, Alert]] = []
    began = time.perf_counter()
    for offset, event in enumerate(events):
        outcome = scorer.process(event, Source(topic="quality", partition=0, offset=offset))
        ts = round(event.timestamp.timestamp() * 1000)
        # As replay does: the event's own alert, then the stream-wide alerts its processing released.
        released = [outcome.alert] if outcome.alert is not None else []
        alerts += [(ts, a) for a in (*released, *scorer.drain()) if a.status == "open"]
        if not outcome.warming:
            keys.append((event.entity_id, ts))
            flagged.append(outcome.anomalous)
    eps = len(events) / (time.perf_counter() - began)
    step_ms = round(data.step_s * 1000)
    on = {"population"} if spec.population.enabled else set()
    on |= {"silent"} if spec.silence.enabled else set()
    verdicts = Verdicts(keys, flagged, dict(gen.labels), list(gen.runs), step_ms)
    verdicts.alerts, verdicts.episodes, verdicts.gaps = alerts, gen.episodes, gen.gaps
    verdicts.enabled = frozenset(on)
    return verdicts, eps


def score(v: Verdicts, slack_steps: int) -> dict[str, Any]:
    """Overall and per-kind precision/recall/F1 (see the module docstring for the definitions)."""
    kinds = np.array([v.labels.get(k, "") for k in v.keys])
    flags = np.array(v.flagged, dtype=bool)
    truth = kinds != ""
    p, r, f1 = precision_recall_f1(truth, flags)
    out: dict[str, Any] = {
        "events": len(v.keys),
        "labelled": int(truth.sum()),
        "flagged": int(flags.sum()),
        "overall": {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4)},
    }
    for kind in KINDS:
        mask = (kinds == "") | (kinds == kind)
        p, r, f1 = precision_recall_f1(truth[mask], flags[mask])
        n = int((kinds == kind).sum())
        out[kind] = {"n": n, "precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4)}
    coll = out["collective"]
    coll["point_precision"], coll["point_recall"], coll["point_f1"] = (
        coll["precision"],
        coll["recall"],
        coll["f1"],
    )
    coll["event_recall"] = _run_recall(v, slack_steps)
    coll["points"] = coll.pop("n")
    kinds_found = alert_quality(v, slack_steps)
    coll.update(kinds_found.pop("collective"))
    out.update(kinds_found)
    return out


Span = tuple[str, int, int]  # (entity, or "*" for the stream; first ms; last ms) inclusive


def alert_quality(v: Verdicts, slack_steps: int) -> dict[str, dict[str, Any]]:
    """Per-episode recall and per-alert precision of collective, population and silent alerts."""
    end = max((ts for _, ts in v.keys), default=0)
    slack = slack_steps * v.step_ms

    def spans(episodes: list[Run], extra: int) -> tuple[list[Span], list[Span]]:
        # (every episode, those complete within the stream): recall counts the complete ones only, but
        # an alert on an episode the stream's end cut short is still a true one
        every = [(r.entity, r.first_ms, r.last_ms + extra) for r in episodes]
        return every, [s for s, r in zip(every, episodes, strict=True) if r.last_ms <= end]

    def opened(kind: str) -> list[tuple[str, int]]:
        return [(a.entity_id, ts) for ts, a in v.alerts if a.kind == kind]

    returns = {(g.entity, g.last_ms + v.step_ms) for g in v.gaps}

    def other_kind(entity: str, ts: int) -> bool:
        # a point of another kind, or the slack after one, explains a collective alert as well as normal data
        back = range(ts - slack, ts + 1, v.step_ms)
        return any(v.labels.get((entity, t), "collective") != "collective" for t in back) or any(
            (entity, t) in returns for t in back
        )

    out = {"collective": _episodes(spans(v.runs, slack), opened("collective"), other_kind)}
    for kind, episodes, extra in (("population", v.episodes, slack), ("silent", v.gaps, 0)):
        out[kind] = _episodes(spans(episodes, extra), opened(kind), lambda e, t: False)
        if kind not in v.enabled:
            out[kind].update(recall=None, precision=None, f1=None, enabled=False)
    return out


def _episodes(
    both: tuple[list[Span], list[Span]], opened: list[tuple[str, int]], excluded: Callable[[str, int], bool]
) -> dict[str, Any]:
    """Recall: share of complete spans in which an alert of the span's entity opened; precision per alert."""
    every, spans = both
    by_entity: dict[str, list[Span]] = {}
    for span in every:
        by_entity.setdefault(span[0], []).append(span)

    def hit(entity: str, ts: int, span: Span) -> bool:
        return span[0] == entity and span[1] <= ts <= span[2]

    found = sum(any(hit(e, ts, sp) for e, ts in opened) for sp in spans)
    tp = sum(any(hit(e, ts, sp) for sp in by_entity.get(e, ())) for e, ts in opened)
    fp = sum(
        not any(hit(e, ts, sp) for sp in by_entity.get(e, ())) and not excluded(e, ts) for e, ts in opened
    )
    recall = found / len(spans) if spans else None
    precision = tp / (tp + fp) if tp + fp else None
    f1 = 2 * precision * recall / (precision + recall) if recall and precision else None
    return {
        "n": len(spans),
        "recall": None if recall is None else round(recall, 4),
        "precision": None if precision is None else round(precision, 4),
        "f1": None if f1 is None else round(f1, 4),
        "alerts": len(opened),
        "true_alerts": tp,
        "false_alerts": fp,
    }


def _run_recall(v: Verdicts, slack_steps: int) -> float | None:
    hits = {k for k, flag in zip(v.keys, v.flagged, strict=True) if flag}
    scored = set(v.keys)
    found = total = 0
    for run in v.runs:
        span = range(run.first_ms, run.last_ms + slack_steps * v.step_ms + 1, v.step_ms)
        if not any((run.entity, ts) in scored for ts in span):
            continue  # the run fell outside the scored part of the stream
        total += 1
        found += any((run.entity, ts) in hits for ts in span)
    return round(found / total, 4) if total else None
