"""Replay of a file and the worker consuming the same events from Kafka give identical verdicts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from confluent_kafka import Message

from anomstream import cli
from anomstream.detect.catalog import available
from anomstream.detect.specfiles import load_spec, with_detector
from anomstream.offline import replay
from anomstream.offline.replay import Replayer
from anomstream.offline.sources import ColumnMap, rows
from anomstream.wire.codec import encode_event
from anomstream.wire.records import ScoreRecord
from integration.harness import drain, produce, settings_for, worker_thread

N = 1500
SPIKES = (400, 900, 1300)
SHIFT_FROM = 1100


def metric_file(path: Path) -> Path:
    """A NAB-shaped metric: daily-ish cycle, noise, three spikes and a level shift."""
    rng = random.Random(21)
    lines = ["timestamp,value"]
    for i in range(N):
        value = 50 + 10 * ((i % 288) > 144) + rng.gauss(0, 1.5)
        value += 40 * (i in SPIKES) + 25 * (i >= SHIFT_FROM)
        lines.append(f"2024-03-{1 + i // 288:02d} {i % 288 // 12:02d}:{i % 12 * 5:02d}:00,{value:.3f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _record(msg: Message) -> ScoreRecord:
    return ScoreRecord.model_validate_json(bytes(msg.value() or b""))


# One detector per catalog family (statistical, isolation, clustering, hypothesis test, forecast, deep).
FAMILIES = [
    "univariate",
    "iforest",
    "kmeans",
    "esd",
    "holtwinters",
    pytest.param("autoencoder", marks=pytest.mark.skipif(not available("autoencoder"), reason="no [deep]")),
]


@pytest.mark.parametrize("family", FAMILIES)
def test_replay_gives_the_workers_scores_thresholds_and_decisions(
    kafka_bootstrap: str, tmp_path: Path, family: str
) -> None:
    """Per row, replay's score, threshold, anomalous, warming and alert id equal the worker's score stream."""
    settings = settings_for(kafka_bootstrap, partitions=1)
    specs = load_spec("univariate")
    if family != "univariate":
        specs = with_detector(specs, "default", family)
    path = metric_file(tmp_path / "metric.csv")
    # The file's rows as the worker will see them: same source topic, partition 0, offset = row index.
    file_rows = list(rows(path, ColumnMap(), topic=settings.topics.events))
    assert all(r.event is not None for r in file_rows)
    produce(
        kafka_bootstrap,
        settings.topics.events,
        ((r.event.entity_id.encode(), encode_event(r.event)) for r in file_rows if r.event is not None),
    )
    with worker_thread(settings, specs) as w:
        messages = drain(kafka_bootstrap, settings.topics.scores, lambda got: len(got) >= N, 120)
        assert not w.error, w.error
    live = sorted(map(_record, messages), key=lambda r: r.source.offset)
    assert [r.source.offset for r in live] == list(range(N))

    replayer = Replayer(specs)
    verdicts = [replayer.feed(row) for row in file_rows]
    for record, verdict in zip(live, verdicts, strict=True):
        out = verdict.outcome
        assert out is not None
        assert (record.score, record.threshold) == (out.score, out.threshold), record.source.offset
        assert (record.anomalous, record.warming) == (out.anomalous, out.warming), record.source.offset
        assert record.alert_id == (out.alert.alert_id if out.alert else None), record.source.offset
    # The comparison must cover alerting rows and warm-up rows, not just quiet ones.
    opened = [v.row.source.offset for v in verdicts if v.status == "open"]
    if family == "univariate":  # the tuned spec is known to open on the spikes; others just must agree
        assert {SPIKES[0], SPIKES[-1]} <= set(opened), opened
    assert any(r.warming for r in live)
    assert not all(r.warming for r in live)


def test_replay_from_kafka_matches_file_replay(kafka_bootstrap: str, tmp_path: Path) -> None:
    """`replay --from-kafka TOPIC --offset N` reads from N to the end and scores as a file replay does."""
    settings = settings_for(kafka_bootstrap, partitions=1)
    path = metric_file(tmp_path / "metric.csv")
    file_rows = list(rows(path, ColumnMap(), topic=settings.topics.events))
    produce(
        kafka_bootstrap,
        settings.topics.events,
        ((r.event.entity_id.encode(), encode_event(r.event)) for r in file_rows if r.event is not None),
    )
    specs = load_spec("univariate")
    for offset in (0, 1000):
        out = tmp_path / f"from-{offset}.jsonl"
        argv = ["replay", "--from-kafka", settings.topics.events, "--offset", str(offset), "--out", str(out)]
        assert replay.run(cli.replay_options(cli.build_parser().parse_args(argv)), specs, settings) == 0
        got = [json.loads(line) for line in out.read_text().splitlines()]
        replayer = Replayer(specs)
        expected = [replayer.feed(r).as_dict() for r in file_rows[offset:]]
        assert [g["offset"] for g in got] == list(range(offset, N))
        assert [(g["score"], g["alert_id"]) for g in got] == [(e["score"], e["alert_id"]) for e in expected]
