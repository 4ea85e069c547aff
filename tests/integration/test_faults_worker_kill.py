"""kill -9 of workers on a real broker: nothing lost, anomalies still alerted, models restored exactly."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from integration.faults import kill_loop, produce_paced, read_outputs, reference_scores, stream
from integration.harness import env_for, settings_for

TOTAL = 24_000
KILLS = 5
SCORE_TOLERANCE = 1e-9  # restored state is the pickled state: scores must match to float precision


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_repeated_kill_9_loses_nothing(kafka_bootstrap: str, tmp_path: Path, guarantee: str) -> None:
    """Five SIGKILLs mid-stream: every offset scored, every spike alerted, scores = uninterrupted run."""
    # A short session timeout: each kill otherwise waits out the dead member's session before rebalancing.
    settings = settings_for(
        kafka_bootstrap,
        partitions=3,
        worker={"commit_interval_s": 0.5, "batch_size": 200},
        kafka={"session_timeout_ms": 3000},
    )
    events = stream(TOTAL)
    producer = produce_paced(kafka_bootstrap, settings.topics.events, events, rate=TOTAL / 20)
    env = env_for(settings, ANOMSTREAM_PROCESSING_GUARANTEE=guarantee)
    log = tmp_path / "worker.log"

    landed = kill_loop(
        env, log, bootstrap=kafka_bootstrap, scores_topic=settings.topics.scores, total=TOTAL, kills=KILLS
    )
    producer.join(timeout=60)
    assert landed == KILLS, "every kill must hit a live worker"
    out = read_outputs(kafka_bootstrap, settings.topics.scores, settings.topics.alerts, TOTAL)

    assert len(out.covered()) == TOTAL, "some input offsets were never processed"
    assert log.read_text().count('"restored"') >= KILLS, "restarts must restore state"
    partition_of = {s.entity_id: s.source.partition for s in out.scores}
    expected = reference_scores(events, partition_of)
    got = out.first_scores_by_entity()
    for entity, ref in expected.items():
        assert len(got[entity]) == len(ref)
        worst = max(abs(a - b) for a, b in zip(got[entity], ref, strict=True))
        assert worst <= SCORE_TOLERANCE, f"{entity}: restored scores drift by {worst}"

    spikes = {(x.event.entity_id, x.event.timestamp) for x in events if x.label == "spike"}
    opened = {(a.entity_id, a.timestamp) for a in out.alerts if a.status == "open"}
    assert spikes <= opened, f"unalerted spikes: {sorted(spikes - opened)[:5]}"
    ids_per_position = Counter({(a.source.partition, a.source.offset, a.alert_id) for a in out.alerts})
    assert len({p[:2] for p in ids_per_position}) == len(ids_per_position), "a duplicate got a new id"

    if guarantee == "exactly_once":
        assert out.duplicates() == 0
        assert len(out.alerts) == len({a.alert_id for a in out.alerts}), "duplicate alerts under EOS"
    else:
        # Duplicates come only from the uncommitted tail at each kill: what was consumed since the last
        # acknowledged barrier, i.e. at most two commit intervals (the open one and the one settling).
        per_interval = max(line["consumed"] for line in _commit_lines(log))
        assert out.duplicates() <= KILLS * 2 * per_interval, (out.duplicates(), per_interval)
    assert not math.isnan(sum(s.score for s in out.scores))


def _commit_lines(log: Path) -> list[dict[str, int]]:
    lines = [json.loads(raw) for raw in log.read_text().splitlines() if raw.startswith("{")]
    return [line for line in lines if line.get("event") == "commit"]
