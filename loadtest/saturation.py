"""Kafka phases of one detector (or of the detection-off ceiling) in one worker process.

1. create the run's topics and pre-produce the backlog (``warm_steps + measure_steps`` per entity);
2. start the worker subprocess; it drains the backlog and reports the timed part (saturation);
3. for each load level, produce at that share of the measured rate and time the score records;
4. read the worker's peak RSS (VmHWM), stop it, delete the topics.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from anomstream.config import TopicSettings
from anomstream.detect.spec import StreamSpec
from loadtest import cluster, latency, stats
from loadtest.generator import Generator
from loadtest.process import WorkerProcess, commit_stats
from loadtest.scenario import Scenario

DRAIN_TIMEOUT_S = 900.0


@dataclasses.dataclass
class Backlog:
    """The pre-produced events (same for every run of a scenario) and the generator to continue from."""

    records: list[tuple[bytes, bytes]]
    warm: int
    measure: int
    after: Generator


def backlog(scenario: Scenario) -> Backlog:
    """Generate the saturation backlog once; runs differ only in the detector that consumes it."""
    assert scenario.throughput is not None
    tp = scenario.throughput
    gen = Generator(scenario.data)
    records: list[tuple[bytes, bytes]] = []
    for _ in range(tp.warm_steps + tp.measure_steps):
        records.extend((e.entity.encode(), e.encode()) for e in gen.step())
    return Backlog(records, tp.warm_steps * gen.n, tp.measure_steps * gen.n, gen)


@dataclasses.dataclass
class RunPlan:
    """What one worker run needs besides the backlog."""

    name: str
    spec: StreamSpec | None  # None = detection off (ceiling)
    workdir: Path
    profile: Path | None = None
    latency: bool = True


@dataclasses.dataclass(frozen=True)
class _Run:
    """Everything one worker run refers to."""

    clu: cluster.Cluster
    scenario: Scenario
    data: Backlog
    plan: RunPlan
    topics: TopicSettings


def run(clu: cluster.Cluster, scenario: Scenario, data: Backlog, plan: RunPlan) -> dict[str, Any]:
    """Saturation, latency levels and peak RSS of one worker process (see the module docstring)."""
    assert scenario.throughput is not None
    tp = scenario.throughput
    prefix = f"lt-{plan.name}-{uuid.uuid4().hex[:8]}"
    topics = cluster.topics_for(prefix, tp.partitions, tp.scores_topic or scenario.latency is not None)
    worker = {"max_keys": max(100_000, 2 * scenario.data.entities), **tp.worker}
    state = {"enabled": tp.snapshots, "hmac_key": cluster.BENCH_HMAC_KEY if tp.snapshots else None}
    settings = cluster.worker_settings(
        clu.bootstrap, topics, f"{prefix}-grp", worker, state=state, processing_guarantee=tp.guarantee
    )
    cluster.create_topics(settings)
    try:
        produced, produce_s = cluster.produce_all(clu.bootstrap, topics.events, data.records)
        config = {
            "settings": settings,
            "spec": plan.spec.model_dump(mode="json") if plan.spec is not None else None,
            "warm": data.warm,
            "measure": data.measure,
            "profile": str(plan.profile) if plan.profile else None,
        }
        config_path = plan.workdir / f"{plan.name}.json"
        config_path.write_bytes(orjson.dumps(config))
        result = _drive(_Run(clu, scenario, data, plan, topics), config_path)
        result["backlog"] = {"produced": produced, "produce_s": round(produce_s, 3)}
        return result
    finally:
        cluster.delete_topics(clu.bootstrap, topics)


def _drive(ctx: _Run, config_path: Path) -> dict[str, Any]:
    proc = WorkerProcess(config_path, ctx.plan.workdir / f"{ctx.plan.name}.log")
    began = time.monotonic()
    try:
        drained = proc.wait_for("drained", DRAIN_TIMEOUT_S)
        eps = stats.rate(int(drained["measured"]), float(drained["measure_s"]))
        cpu_eps = stats.rate(int(drained["measured"]), float(drained["measure_cpu_s"]))
        levels = _latency_levels(ctx, eps) if ctx.plan.latency else []
        peak_kib = proc.peak_rss_kib()
        done = proc.stop()
    finally:
        proc.close()
    warm_eps = stats.rate(int(drained["warm"]), float(drained["warm_s"]))
    return {
        "throughput_eps": round(eps, 1),
        "cpu_eps": round(cpu_eps, 1),
        "cold_eps": round(warm_eps, 1),
        "drain": drained,
        "latency_levels": levels,
        "peak_rss_kib": peak_kib,
        "samples": done.get("samples", []),
        "commit": commit_stats(proc.log_path),
        "wall_s": round(time.monotonic() - began, 2),
    }


def _latency_levels(ctx: _Run, saturation_eps: float) -> list[dict[str, Any]]:
    lat = ctx.scenario.latency
    if lat is None:
        return []
    gen = copy.deepcopy(ctx.data.after)  # every run continues the same stream from the same point
    levels = []
    for fraction in lat.load_fractions:
        rate = max(1.0, fraction * saturation_eps)
        events = latency.pre_generate(gen, max(1, int(rate * lat.duration_s)))
        measured = latency.measure(ctx.clu.bootstrap, ctx.topics.events, ctx.topics.scores, events, rate)
        summary = latency.summarize(measured, lat.settle_s)
        levels.append({"load_fraction": fraction, **summary, "points": measured.points})
    return levels
