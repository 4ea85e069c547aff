"""What the cluster fault test checks: per-entity alert positions against an uninterrupted run.

Positions are compared per entity by rank (the k-th event of an entity), since the reference run has no
broker offsets; ranks come from the score records' offsets, which keep per-partition (= per-entity) order.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from anomstream.detect.scorer import Scorer
from anomstream.detect.store import Registry
from anomstream.ops.demo import Labelled
from anomstream.wire.records import Source
from integration.faults import Outputs
from integration.harness import SPIKE_SPECS

Rank = tuple[str, int]  # (entity, k-th event of that entity)


@dataclass(frozen=True)
class Reference:
    """The uninterrupted run: which ranks alert, and which ranks are injected anomalies."""

    alerted: set[Rank]
    injected: set[Rank]


def reference(events: list[Labelled]) -> Reference:
    """Score ``events`` in one process, in order, as an uninterrupted worker would."""
    scorer = Scorer(SPIKE_SPECS, Registry(10**6, 1e12))
    seen: dict[str, int] = defaultdict(int)
    alerted, injected = set(), set()
    for i, item in enumerate(events):
        entity = item.event.entity_id
        rank = (entity, seen[entity])
        seen[entity] += 1
        if scorer.process(item.event, Source(topic="ref", partition=0, offset=i)).alert is not None:
            alerted.add(rank)
        if item.label is not None:
            injected.add(rank)
    return Reference(alerted, injected)


def ranks(out: Outputs) -> dict[tuple[int, int], Rank]:
    """Input position → (entity, rank) from the score records."""
    per_entity: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for pos in sorted({(s.source.partition, s.source.offset): s.entity_id for s in out.scores}.items()):
        per_entity[pos[1]].append(pos[0])
    return {pos: (entity, k) for entity, positions in per_entity.items() for k, pos in enumerate(positions)}


def alerted(out: Outputs) -> set[Rank]:
    """Ranks with at least one alert read back from the alert topic."""
    rank_of = ranks(out)
    return {rank_of[(a.source.partition, a.source.offset)] for a in out.alerts}


def conflicting_ids(out: Outputs) -> list[str]:
    """Alert ids seen with two different bodies (``detected_at`` is wall-clock and excluded)."""
    bodies: dict[str, set[str]] = defaultdict(set)
    for alert in out.alerts:
        bodies[alert.alert_id].add(alert.model_copy(update={"detected_at": None}).model_dump_json())
    return [alert_id for alert_id, seen in bodies.items() if len(seen) > 1]


def duplicate_alerts(out: Outputs) -> int:
    """Alert records beyond the first per alert id."""
    return len(out.alerts) - len({a.alert_id for a in out.alerts})
