"""The peers of one run, on one pre-produced copy of the saturation backlog.

1. create a peer topic set and produce the same backlog the worker runs drain;
2. run the bare consume → decode → produce loop (``peerproc bare``, this interpreter);
3. run the Quix Streams + River pipeline per detector (``peerproc quix``, the Quix venv's interpreter:
   Quix pins its own confluent-kafka and pydantic, so it never shares the runtime's environment);
4. delete the topics. Each run has its own consumer group, so each reads the whole backlog.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from loadtest import cluster, stats
from loadtest.process import WorkerProcess
from loadtest.saturation import DRAIN_TIMEOUT_S, Backlog
from loadtest.scenario import Scenario


@dataclasses.dataclass(frozen=True)
class PeerPlan:
    """Where the peers run: the broker, a scratch directory, and the Quix venv's interpreter."""

    bootstrap: str
    workdir: Path
    quix_python: Path | None


def run(plan: PeerPlan, scenario: Scenario, data: Backlog, log: Any = print) -> dict[str, Any]:
    """``{"bare": {...}, "quix": {detector: {...}}}`` with ``throughput_eps`` and ``cpu_eps`` each."""
    assert scenario.throughput is not None
    assert scenario.peers is not None
    peers, prefix = scenario.peers, f"lt-peers-{uuid.uuid4().hex[:8]}"
    topics = cluster.topics_for(prefix, scenario.throughput.partitions, scores=True)
    cluster.create_topics(cluster.worker_settings(plan.bootstrap, topics, f"{prefix}-grp", {}))
    base: dict[str, Any] = {"bootstrap": plan.bootstrap, "events": topics.events, "output": topics.scores}
    base |= {"warm": data.warm, "measure": data.measure}
    out: dict[str, Any] = {"quix": {}}
    try:
        cluster.produce_all(plan.bootstrap, topics.events, data.records)
        if peers.bare:
            out["bare"] = _child(plan, [sys.executable], "bare", {**base, "group": f"{prefix}-bare"})
            log(f"peer     bare loop        {out['bare']['throughput_eps']:>8.0f} events/s")
        if peers.quix and plan.quix_python is None:
            out["quix_skipped"] = "no Quix venv (make bench builds .venv-quix; or pass --quix-python)"
            log(f"peer     quix skipped: {out['quix_skipped']}")
        elif peers.quix:
            for name in peers.detectors or tuple(scenario.detectors):
                cfg = {**base, "group": f"{prefix}-quix-{name}", "state_dir": str(plan.workdir / "quix")}
                cfg["spec"] = scenario.detectors[name].model_dump(mode="json")
                out["quix"][name] = _child(plan, [str(plan.quix_python)], "quix", cfg, name)
                log(f"peer     quix+river {name:<8} {out['quix'][name]['throughput_eps']:>8.0f} events/s")
    finally:
        cluster.delete_topics(plan.bootstrap, topics)
    return out


def _child(
    plan: PeerPlan, python: list[str], kind: str, cfg: dict[str, Any], name: str = ""
) -> dict[str, Any]:
    label = f"peer-{kind}{'-' + name if name else ''}"
    config_path = plan.workdir / f"{label}.json"
    config_path.write_bytes(orjson.dumps(cfg))
    command = [*python, "-m", "loadtest.peerproc", kind]
    proc = WorkerProcess(config_path, plan.workdir / f"{label}.log", command=command)
    began = time.monotonic()
    try:
        drained = proc.wait_for("drained", DRAIN_TIMEOUT_S)
    finally:
        proc.close()
    return {
        "throughput_eps": round(stats.rate(int(drained["measured"]), float(drained["measure_s"])), 1),
        "cpu_eps": round(stats.rate(int(drained["measured"]), float(drained["measure_cpu_s"])), 1),
        "measured": drained["measured"],
        "wall_s": round(time.monotonic() - began, 2),
    }
