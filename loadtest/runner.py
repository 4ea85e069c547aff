"""One benchmark run: every phase a scenario asks for, assembled into one results document.

Order: in-process baselines first (raw River, scorer backtest + quality, memory children), then the
Kafka phases (ceiling, then each detector), so the broker is up only as long as it is needed.
"""

from __future__ import annotations

import contextlib
import platform
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from loadtest import RESULTS, baseline, cluster, memory, peers, quality, saturation
from loadtest.generator import write_labels
from loadtest.scenario import Scenario
from loadtest.stats import ratio

CEILING = "ceiling"


def run_id(profile: str, now: datetime | None = None) -> str:
    """``YYYYmmdd-HHMMSS-<profile>`` in UTC."""
    return f"{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}-{profile}"


@contextlib.contextmanager
def _timed(phases: dict[str, float], name: str) -> Iterator[None]:
    began = time.monotonic()
    try:
        yield
    finally:
        phases[name] = round(time.monotonic() - began, 2)


def run(
    scenario: Scenario,
    rid: str,
    bootstrap: str | None,
    log: Any = print,
    quix_python: Path | None = None,
) -> dict[str, Any]:
    """Every configured phase; returns the results document (see ``report`` for its layout).

    ``quix_python`` is the interpreter of the Quix venv that runs the Quix Streams + River peer.
    """
    doc: dict[str, Any] = {
        "run_id": rid,
        "profile": scenario.name,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": _host(),
        "scenario": scenario.model_dump(mode="json"),
        "detectors": {name: {"detector": spec.detector} for name, spec in scenario.detectors.items()},
        "phases": {},
        "series": {},
    }
    rows: dict[str, dict[str, Any]] = doc["detectors"]
    phases: dict[str, float] = doc["phases"]
    with _timed(phases, "river"):
        _river(scenario, rows, log)
    with _timed(phases, "quality"):
        _quality(scenario, rows, rid, log)
    with _timed(phases, "memory"):
        _memory(scenario, rows, log)
    if scenario.needs_kafka:
        with _timed(phases, "kafka"), cluster.cluster(bootstrap) as clu:
            doc["host"]["kafka"] = {"bootstrap": clu.bootstrap, "origin": clu.origin}
            _kafka(scenario, clu, doc, log, quix_python)
    _ratios(rows, doc.get("peers", {}))
    doc["ceiling"] = _ceiling(rows.get(CEILING, {}), doc.get("peers", {}))
    doc["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return doc


def _host() -> dict[str, Any]:
    import os

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_start": os.getloadavg()[0],
        "river": version("river"),
        "confluent_kafka": version("confluent-kafka"),
        "anomstream": version("anomstream"),
    }


def _river(scenario: Scenario, rows: dict[str, dict[str, Any]], log: Any) -> None:
    if scenario.river is None:
        return
    xs = baseline.series(scenario.data, scenario.river.records)
    for name, spec in scenario.detectors.items():
        rows[name].update(baseline.river_eps(spec, xs))
        log(f"river    {name:<8} {rows[name]['river_eps']:>10.0f} records/s")


def _quality(scenario: Scenario, rows: dict[str, dict[str, Any]], rid: str, log: Any) -> None:
    q = scenario.quality
    if q is None:
        return
    for i, (name, spec) in enumerate(scenario.detectors.items()):
        verdicts, eps = quality.backtest(scenario.data, q, spec)
        rows[name]["scorer_eps"] = round(eps, 1)
        rows[name]["quality"] = quality.score(verdicts, q.collective_slack)
        if i == 0:  # same seed and shape for every detector (warm-up aside): one labels file
            write_labels(RESULTS / f"{rid}-labels.csv", verdicts.labels, verdicts.runs)
        overall = rows[name]["quality"]["overall"]
        log(f"quality  {name:<8} P={overall['precision']:.2f} R={overall['recall']:.2f} scorer {eps:.0f}/s")


def _memory(scenario: Scenario, rows: dict[str, dict[str, Any]], log: Any) -> None:
    mem = scenario.memory
    if mem is None:
        return
    for name, spec in scenario.detectors.items():
        per: dict[str, Any] = rows[name].setdefault("bytes_per_entity", {})
        last: float | None = None
        for n in sorted(mem.entities):
            projected = (last or 0.0) * n * 1.3
            if projected > mem.max_share_of_available * memory.available_bytes():
                per[str(n)] = {"skipped": f"projected {projected / 2**30:.1f} GiB exceeds the memory budget"}
                log(f"memory   {name:<8} {n:>9} entities: skipped ({per[str(n)]['skipped']})")
                continue
            result = memory.measure(spec, scenario.data, n, mem)
            per[str(n)] = {**result, "source": "fresh process"}
            last = max(float(result["rss_bytes_per_entity"]), float(result["pickle_bytes_per_entity"]))
            log(
                f"memory   {name:<8} {n:>9} entities: {result['rss_bytes_per_entity']:>9.0f} B RSS, "
                f"{result['pickle_bytes_per_entity']:>8.0f} B pickled per entity"
            )


def _kafka(
    scenario: Scenario, clu: cluster.Cluster, doc: dict[str, Any], log: Any, quix_python: Path | None
) -> None:
    assert scenario.throughput is not None
    data = saturation.backlog(scenario)
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        workdir = Path(tmp)
        _keep(doc, CEILING, _one(clu, scenario, data, saturation.RunPlan(CEILING, None, workdir), log))
        for name, spec in scenario.detectors.items():
            if scenario.throughput.paired_ceiling:  # the baseline right before, under the same load
                plan = saturation.RunPlan(f"{CEILING}-{name}", None, workdir, latency=False)
                paired = _one(clu, scenario, data, plan, log)
                doc["detectors"][name]["paired_ceiling"] = {
                    k: paired[k] for k in ("throughput_eps", "cpu_eps", "wall_s")
                }
            _keep(doc, name, _one(clu, scenario, data, saturation.RunPlan(name, spec, workdir), log))
        if scenario.peers is not None:
            with _timed(doc["phases"], "peers"):
                doc["peers"] = peers.run(
                    peers.PeerPlan(clu.bootstrap, workdir, quix_python), scenario, data, log
                )


def _one(clu: cluster.Cluster, scenario: Scenario, data: Any, plan: saturation.RunPlan, log: Any) -> Any:
    result = saturation.run(clu, scenario, data, plan)
    levels = "".join(
        f", p99 {lv['p99_ms']:.0f} ms @{lv['load_fraction']:.0%}" for lv in result["latency_levels"]
    )
    log(
        f"kafka    {plan.name:<15} {result['throughput_eps']:>8.0f} events/s "
        f"(cpu {result['cpu_eps']:.0f}/s), peak RSS {result['peak_rss_kib'] / 1024:.0f} MiB{levels}"
    )
    return result


def _keep(doc: dict[str, Any], name: str, result: dict[str, Any]) -> None:
    row: dict[str, Any] = doc["detectors"].setdefault(name, {"detector": "none"})
    levels = result.pop("latency_levels")
    samples = result.pop("samples")
    doc["series"][name] = {"samples": samples, "levels": levels}
    row.update({k: v for k, v in result.items() if k not in ("drain",)})
    row["drain"] = result["drain"]
    row["latency"] = [{k: v for k, v in lv.items() if k != "points"} for lv in levels]


def _ceiling(row: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    """The detection-off worker on its own: speed, its latency levels, and its share of the bare loop."""
    bare = (peer.get("bare") or {}).get("throughput_eps")
    return {
        "throughput_eps": row.get("throughput_eps"),
        "latency": row.get("latency", []),
        "bare_eps": bare,
        "bare_ratio": _r(ratio(row.get("throughput_eps"), bare)),
    }


def _ratios(rows: dict[str, dict[str, Any]], peer: dict[str, Any]) -> None:
    ceiling = rows.get(CEILING, {})
    quix, bare = peer.get("quix", {}), (peer.get("bare") or {}).get("throughput_eps")
    for name, row in rows.items():
        if name == CEILING:
            continue
        eps, cpu = row.get("throughput_eps"), row.get("cpu_eps")
        base = row.get("paired_ceiling") or ceiling  # the adjacent baseline when there is one
        row["ceiling_eps"] = base.get("throughput_eps")
        row["ceiling_ratio"] = _r(ratio(eps, base.get("throughput_eps")))
        row["ceiling_cpu_ratio"] = _r(ratio(cpu, base.get("cpu_eps")))
        row["river_ratio"] = _r(ratio(eps, row.get("river_eps")))
        row["river_cpu_ratio"] = _r(ratio(cpu, row.get("river_cpu_eps")))
        if name in quix:  # the Quix Streams + River pipeline with the same model, same backlog, same run
            row["quix_eps"] = quix[name]["throughput_eps"]
            row["quix_ratio"] = _r(ratio(eps, quix[name]["throughput_eps"]))
            row["quix_cpu_ratio"] = _r(ratio(cpu, quix[name]["cpu_eps"]))
        row["bare_ratio"] = _r(ratio(eps, bare))
        row["p99_vs_ceiling"] = _r(ratio(_p99(row), _p99(ceiling)))
        _worker_bytes(row, ceiling)


def _worker_bytes(row: dict[str, Any], ceiling: dict[str, Any]) -> None:
    drain, base = row.get("drain"), ceiling.get("drain")
    if not drain or not base or not drain.get("keys"):
        return
    keys = int(drain["keys"])
    per: dict[str, Any] = row.setdefault("bytes_per_entity", {})
    per.setdefault(str(keys), {}).update(
        {
            "worker_rss_bytes_per_entity": round((drain["rss_kib"] - base["rss_kib"]) * 1024 / keys, 1),
            "worker_pickle_bytes_per_entity": drain.get("pickle_bytes_per_entity"),
        }
    )


def _p99(row: dict[str, Any], fraction: float = 0.5) -> float | None:
    """p99 latency (ms) at ``fraction`` of saturation, when that level was run."""
    for level in row.get("latency") or []:
        if abs(level["load_fraction"] - fraction) < 1e-9:
            return float(level["p99_ms"])
    return None


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
