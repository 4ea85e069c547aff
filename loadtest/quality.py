"""Detection quality: backtest the real ``Scorer`` on a long labelled stream, precision/recall per kind.

Per kind, precision is computed as if only that kind were injected: the events considered are the
normal ones plus those labelled with that kind, so false positives (flags on normal events) are shared
by every kind. Collective runs also get an event-wise recall: a run counts as found when any of its
points, or of the ``collective_slack`` steps after it, is flagged.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from anomstream.detect.scorer import Scorer
from anomstream.detect.spec import DetectorSpecs, StreamSpec
from anomstream.detect.store import Registry
from anomstream.offline.pointscore import precision_recall_f1
from anomstream.wire.codec import decode_event
from anomstream.wire.records import Event, Source
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


def quality_data(data: DataSpec, q: QualitySpec, spec: StreamSpec) -> DataSpec:
    """The quality stream: fewer entities, injections only after warm-up and the threshold's history."""
    arm = max(data.arm_after, spec.warmup + 60)
    return data.model_copy(update={"entities": q.entities, "arm_after": arm})


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
    began = time.perf_counter()
    for offset, event in enumerate(events):
        outcome = scorer.process(event, Source(topic="quality", partition=0, offset=offset))
        if not outcome.warming:
            keys.append((event.entity_id, round(event.timestamp.timestamp() * 1000)))
            flagged.append(outcome.anomalous)
    eps = len(events) / (time.perf_counter() - began)
    step_ms = round(data.step_s * 1000)
    return Verdicts(keys, flagged, dict(gen.labels), list(gen.runs), step_ms), eps


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
    out["collective"]["event_recall"] = _run_recall(v, slack_steps)
    return out


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
