"""Pure parts of the load-test harness: generator labels and rates, statistics, scenario files."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # loadtest/ is a top-level folder, not an installed package
    sys.path.insert(0, str(ROOT))

from loadtest import cost, demoquality, quality, report, runner, scenario, stats  # noqa: E402 - after the path set-up above
from loadtest.generator import (  # noqa: E402
    START_MS,
    Generator,
    Pacer,
    Run,
    kind_probabilities,
    write_labels,
)
from loadtest.scenario import KINDS, DataSpec  # noqa: E402

from anomstream.detect.catalog import CATALOG  # noqa: E402
from anomstream.wire.codec import decode_event  # noqa: E402
from anomstream.wire.records import Alert, Event  # noqa: E402


def _steps(gen: Generator, n: int) -> list[list[object]]:
    return [list(gen.step()) for _ in range(n)]


def test_generator_is_deterministic_for_a_seed() -> None:
    """The same seed gives the same events and the same labels."""
    data = DataSpec(entities=20, anomaly_fraction=0.05, seed=3)
    a, b = Generator(data), Generator(data)
    assert _steps(a, 30) == _steps(b, 30)
    assert a.labels == b.labels


def test_every_labelled_event_is_in_the_label_map_and_only_those() -> None:
    """Labels are keyed by (entity, timestamp ms) and cover exactly the events carrying a kind."""
    gen = Generator(DataSpec(entities=50, anomaly_fraction=0.05, seed=1))
    events = [e for _ in range(200) for e in gen.step()]
    labelled = {(e.entity, e.ts_ms): e.kind for e in events if e.kind is not None}
    assert labelled == gen.labels
    assert set(labelled.values()) == set(KINDS)


def test_labelled_share_is_close_to_the_anomaly_fraction() -> None:
    """Over a long stream the share of labelled events approaches ``anomaly_fraction``."""
    gen = Generator(DataSpec(entities=200, anomaly_fraction=0.02, seed=5))
    total = sum(len(gen.step()) for _ in range(500))
    share = len(gen.labels) / total
    assert 0.012 < share < 0.025


def test_kind_probabilities_split_the_fraction_and_shorten_collective_runs() -> None:
    """Start probabilities follow the weights; a collective run's is divided by its length."""
    data = DataSpec(anomaly_fraction=0.04, kinds={"spike": 3.0, "collective": 1.0}, collective_length=10)
    probs = kind_probabilities(data)
    assert probs["spike"] == pytest.approx(0.03)
    assert probs["contextual"] == 0.0
    assert probs["collective"] == pytest.approx(0.001)


def test_collective_runs_label_consecutive_points_of_one_entity() -> None:
    """A collective run labels ``collective_length`` consecutive steps of its entity."""
    data = DataSpec(entities=30, anomaly_fraction=0.2, kinds={"collective": 1.0}, collective_length=5)
    gen = Generator(data)
    _steps(gen, 100)
    run = gen.runs[0]
    step_ms = round(data.step_s * 1000)
    span = range(run.first_ms, run.last_ms + 1, step_ms)
    assert len(span) == 5
    assert all(gen.labels[(run.entity, ts)] == "collective" for ts in span)


def test_population_episodes_shift_a_share_of_entities_together() -> None:
    """Every ``population_every`` steps a ``population_share`` of entities is labelled for the episode."""
    data = DataSpec(entities=40, anomaly_fraction=0.0, population_every=50, population_length=4, arm_after=10)
    gen = Generator(data)
    for _ in range(120):
        gen.step()
    assert [(r.first_ms - START_MS) // 60_000 for r in gen.episodes] == [10, 60, 110]
    first = gen.episodes[0]
    members = {e for (e, ts), k in gen.labels.items() if k == "population" and ts == first.first_ms}
    assert len(members) == 12
    span = range(first.first_ms, first.last_ms + 1, 60_000)
    assert all(gen.labels[(e, ts)] == "population" for e in members for ts in span)


def test_silent_entities_send_nothing_during_their_gap() -> None:
    """A silence gap lists its entity and steps; the entity emits no event then and resumes after."""
    data = DataSpec(entities=20, anomaly_fraction=0.0, silence_prob=0.01, silence_length=6)
    gen = Generator(data)
    sent = {(g.entity, g.ts_ms) for _ in range(200) for g in gen.step()}
    assert gen.gaps
    for gap in gen.gaps:
        if gap.last_ms + 60_000 > gen.ts_ms(199):
            continue  # still silent when the stream ends
        assert not any((gap.entity, ts) in sent for ts in range(gap.first_ms, gap.last_ms + 1, 60_000))
        assert (gap.entity, gap.last_ms + 60_000) in sent
        assert (gap.last_ms - gap.first_ms) // 60_000 == 5


def test_contextual_values_stay_within_the_entity_daily_range() -> None:
    """A contextual anomaly is an in-range value at the wrong time, not an outlier."""
    gen = Generator(DataSpec(entities=40, anomaly_fraction=0.2, kinds={"contextual": 1.0}, seed=2))
    events = [e for _ in range(300) for e in gen.step() if e.kind == "contextual"]
    assert events
    for e in events:
        i = int(e.entity.split("-")[1])
        for j, value in enumerate(e.values.values()):
            spread = gen.amp[i, j] + 6 * gen.sigma[i, j]
            assert abs(value - gen.level[i, j]) <= spread


def test_encoded_events_are_valid_anomstream_events() -> None:
    """Generated bytes decode with the service codec to the same entity, time and values."""
    item = Generator(DataSpec(entities=1)).step()[0]
    decoded = decode_event(item.encode(), 10_000)
    assert isinstance(decoded, Event)
    assert decoded.entity_id == item.entity
    assert round(decoded.timestamp.timestamp() * 1000) == item.ts_ms == START_MS
    assert decoded.values == pytest.approx(item.values)


def test_labels_file_has_one_row_per_label(tmp_path: Path) -> None:
    """The labels CSV holds a header and one row per labelled (entity, timestamp)."""
    gen = Generator(DataSpec(entities=20, anomaly_fraction=0.1))
    _steps(gen, 100)
    path = tmp_path / "labels.csv"
    assert write_labels(path, gen.labels, gen.runs) == len(gen.labels)
    assert len(path.read_text().splitlines()) == len(gen.labels) + 1


def test_pacer_waits_until_the_send_is_due() -> None:
    """At 100/s the 50th event is due at 0.5 s; behind schedule there is no wait."""
    pacer = Pacer(rate=100.0, started=10.0)
    assert pacer.delay(sent=50, now=10.2) == pytest.approx(0.3)
    assert pacer.delay(sent=50, now=11.0) == 0.0
    assert pacer.expected(2.5) == 250


def test_unthrottled_pacer_never_waits() -> None:
    """Rate 0 means as fast as possible."""
    pacer = Pacer(rate=0.0, started=0.0)
    assert pacer.delay(sent=10**9, now=0.0) == 0.0
    assert pacer.expected(10.0) == -1


def test_percentile_interpolates_linearly() -> None:
    """Percentiles match numpy's default (linear) method; empty input gives NaN."""
    assert stats.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert stats.percentile([float(i) for i in range(101)], 99) == 99.0
    assert math.isnan(stats.percentile([], 50))


def test_summarize_reports_milliseconds() -> None:
    """Latency summaries are in ms with p50/p95/p99/max and the count."""
    summary = stats.summarize([0.001 * i for i in range(1, 101)])
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["max_ms"] == pytest.approx(100.0)
    assert summary["count"] == 100


def test_ratio_refuses_missing_or_zero_baselines() -> None:
    """A ratio needs a value and a positive baseline."""
    assert stats.ratio(5.0, 20.0) == 0.25
    assert stats.ratio(5.0, 0.0) is None
    assert stats.ratio(None, 3.0) is None


def test_bucket_rates_interpolate_batches() -> None:
    """Cumulative batch counts become a smooth events/s series."""
    samples = [(0.0, 0), (1.0, 100), (2.0, 100)]
    assert stats.bucket_rates(samples, 0.5) == [(0.0, 100.0), (0.5, 100.0), (1.0, 0.0), (1.5, 0.0)]


def test_histogram_clamps_out_of_range_values() -> None:
    """Values below the first or above the last edge land in the end bins."""
    assert stats.histogram([0.1, 1.5, 2.5, 99.0], [1.0, 2.0, 3.0]) == [2, 2]


@pytest.mark.parametrize("profile", ["quick", "entities", "latency", "peers"])
def test_shipped_scenarios_parse(profile: str) -> None:
    """Every scenario file in loadtest/scenarios is valid."""
    sc = scenario.load(profile)
    assert sc.name == profile
    assert sc.detectors


def test_quick_covers_the_whole_catalog_on_4k_entities() -> None:
    """The ``make bench`` profile runs every catalog detector on 4k entities."""
    sc = scenario.load("quick")
    assert {s.detector for s in sc.detectors.values()} == set(CATALOG)
    assert sc.data.entities == 4_000
    assert sc.throughput is not None
    assert sc.latency is not None
    assert sc.latency.load_fractions == (0.5,)


def test_scenario_errors_name_the_field() -> None:
    """A bad field is reported with its dotted path."""
    text = 'name = "x"\n[detectors.z]\ndetector = "zscore"\nwarmup = 0\n'
    with pytest.raises(ValueError, match=r"detectors\.z\.warmup"):
        scenario.parse(text)


def test_latency_needs_a_throughput_table() -> None:
    """Latency loads are shares of the saturation rate, so [throughput] must be present."""
    text = 'name = "x"\n[detectors.z]\ndetector = "zscore"\n[latency]\n'
    with pytest.raises(ValueError, match="needs"):
        scenario.parse(text)


def test_unknown_anomaly_kinds_are_rejected() -> None:
    """Only spike, contextual and collective can be injected."""
    text = 'name = "x"\n[data]\nkinds = { drift = 1.0 }\n[detectors.z]\ndetector = "zscore"\n'
    with pytest.raises(ValueError, match="drift"):
        scenario.parse(text)


def test_quality_scores_each_kind_against_normal_events() -> None:
    """Per-kind precision shares the false positives; collective runs count once found."""
    keys = [("a", t) for t in range(0, 10)]
    labels = {("a", 1): "spike", ("a", 4): "collective", ("a", 5): "collective"}
    flagged = [t in (1, 5, 8) for t in range(10)]
    runs = [Run("a", 4, 5, "flat")]
    result = quality.score(quality.Verdicts(keys, flagged, labels, runs, step_ms=1), slack_steps=0)
    assert result["spike"]["recall"] == 1.0
    assert result["spike"]["precision"] == 0.5  # one true flag, one false (t=8)
    assert result["collective"]["point_recall"] == 0.5
    assert result["collective"]["event_recall"] == 1.0
    assert result["collective"]["recall"] == 0.0  # no alert of kind collective opened
    assert result["contextual"]["n"] == 0


def _opened(kind: str, entity: str, ts: int) -> tuple[int, Alert]:
    return ts, Alert.model_construct(kind=kind, entity_id=entity, status="open")


def test_alert_quality_counts_episodes_found_and_alerts_true() -> None:
    """Per episode recall and per alert precision; alerts next to another kind's points count as neither."""
    keys = [(e, t) for t in range(0, 40) for e in ("a", "b")]
    labels = {("a", 3): "collective", ("a", 4): "collective", ("b", 20): "spike"}
    runs = [Run("a", 3, 4, "flat"), Run("b", 30, 31, "oscillation")]
    v = quality.Verdicts([], [], labels, runs, step_ms=1)
    v.keys, v.flagged = keys, [False] * len(keys)
    v.episodes = [Run("*", 10, 14, "population"), Run("*", 25, 29, "population")]
    v.gaps = [Run("b", 5, 9, "silent")]
    v.enabled = frozenset({"silent"})
    v.alerts = [
        _opened("collective", "a", 6),  # within the run + 2 steps of slack: found
        _opened("collective", "b", 21),  # right after b's spike: neither true nor false
        _opened("collective", "b", 36),  # after b's run + slack: false
        _opened("population", "*", 12),
        _opened("silent", "b", 7),
        _opened("silent", "a", 7),  # a never went silent: false
    ]
    result = quality.score(v, slack_steps=2)
    coll = result["collective"]
    assert (coll["n"], coll["recall"], coll["precision"]) == (2, 0.5, 0.5)
    assert (result["silent"]["recall"], result["silent"]["precision"]) == (1.0, 0.5)
    assert result["population"]["n"] == 2
    assert result["population"]["recall"] is None  # not enabled


def test_main_table_has_a_row_per_run() -> None:
    """The Markdown headline lists the ceiling first, then each detector with its ratios."""
    doc = {
        "detectors": {
            "ewma": {"detector": "ewma", "throughput_eps": 5000.0, "ceiling_ratio": 0.25},
            "ceiling": {"detector": "none", "throughput_eps": 20000.0},
        }
    }
    lines = report.main_table(doc)
    assert lines[2].startswith("| ceiling")
    assert "0.250" in lines[3]


def test_latency_growth_is_the_least_squares_slope() -> None:
    """A backlog shows as a positive latency slope; a flat series has none."""
    assert stats.slope([0.0, 1.0, 2.0, 3.0], [1.0, 3.0, 5.0, 7.0]) == 2.0
    assert stats.slope([0.0, 1.0, 2.0], [0.1, 0.1, 0.1]) == 0.0
    assert math.isnan(stats.slope([1.0], [1.0]))


def test_peers_must_name_known_detector_tables() -> None:
    """``[peers] detectors`` may only name detector tables of the scenario, and needs [throughput]."""
    base = 'name = "x"\n[detectors.z]\ndetector = "zscore"\n'
    with pytest.raises(ValueError, match="unknown detector tables"):
        scenario.parse(base + '[throughput]\n[peers]\ndetectors = ["hst"]\n')
    with pytest.raises(ValueError, match="needs"):
        scenario.parse(base + "[peers]\n")
    quick = scenario.load("quick")
    assert quick.peers is not None
    assert {"zscore", "robust", "ewma", "multiview"} <= set(quick.peers.detectors)


def test_peer_ratios_divide_by_the_same_runs_peers() -> None:
    """quix_ratio, bare_ratio and p99 ÷ ceiling p99 come from the peers and ceiling of the same run."""
    level = {"load_fraction": 0.5}
    rows: dict[str, dict[str, Any]] = {
        "ceiling": {"throughput_eps": 50_000.0, "latency": [{**level, "p99_ms": 40.0}]},
        "zscore": {"throughput_eps": 30_000.0, "cpu_eps": 20_000.0, "latency": [{**level, "p99_ms": 60.0}]},
        "hst": {"throughput_eps": 5_000.0, "cpu_eps": 4_000.0},
    }
    peer: dict[str, Any] = {
        "bare": {"throughput_eps": 500_000.0},
        "quix": {"zscore": {"throughput_eps": 10_000.0, "cpu_eps": 5_000.0}},
    }
    runner._ratios(rows, peer)
    z = rows["zscore"]
    assert (z["quix_ratio"], z["quix_cpu_ratio"], z["bare_ratio"], z["p99_vs_ceiling"]) == (
        3.0,
        4.0,
        0.06,
        1.5,
    )
    assert "quix_ratio" not in rows["hst"]
    assert rows["hst"]["p99_vs_ceiling"] is None
    ceiling = runner._ceiling(rows["ceiling"], peer)
    assert ceiling["bare_ratio"] == 0.1
    assert ceiling["latency"][0]["p99_ms"] == 40.0
    doc = {"detectors": rows, "peers": peer, "ceiling": ceiling}
    assert any(line.startswith("| zscore | 30,000 | 10,000 | 3.00") for line in report.peers_table(doc))


def test_demo_tally_counts_every_spike_and_normal_row_once() -> None:
    """The demo benchmark sees each injected spike and each normal row of the stream exactly once."""
    t = demoquality.measure(seed=7, rows_per_entity=400)
    assert t.spikes > 0
    assert t.spikes + t.normal_rows == 8 * 400
    assert t.caught + len(t.missed) == t.spikes


def test_default_spec_catches_the_demo_spikes_with_few_false_opens() -> None:
    """The default spec opens an alert on every injected spike of make run's demo (seed 7) and < 1 % else."""
    t = demoquality.measure(seed=7, rows_per_entity=1500)
    assert t.missed == []
    assert t.caught == t.spikes > 0
    assert t.false_open_rate < 0.01


def test_cost_times_the_scorer_and_seals_a_key_per_detector() -> None:
    """The cost benchmark reports µs per event and a real sealed snapshot's size for each chosen table."""
    chosen = scenario.load("quick")
    doc = cost.run(chosen, ["zscore", "multiview"], entities=20, steps=6, history=300)
    rows = {r["detector"]: r for r in doc["rows"]}
    assert doc["timed_events"] == 20 * 2
    assert rows["zscore"]["vs_zscore"] == 1.0
    assert all(r["us_per_event"] > 0 and r["seal_us"] > 0 for r in rows.values())
    assert rows["multiview"]["sealed_bytes"] > rows["zscore"]["sealed_bytes"] > 500  # slot arrays
