"""Results on disk: ``results/<run-id>.json`` (everything) and ``results/<run-id>.md`` (the tables)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson

from loadtest.scenario import KINDS, STREAM_KINDS

CEILING = "ceiling"
SLOPE_LIMIT_MS_PER_S = 50.0  # latency growing faster than this: the load was not sustained


def write_json(doc: dict[str, Any], path: Path) -> Path:
    """The full results document (latency points reduced to per-second buckets by the caller)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return path


def _fmt(value: Any, digits: int = 0, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}{suffix}"
    return str(value)


def _level(row: dict[str, Any], fraction: float = 0.5) -> dict[str, Any]:
    levels = row.get("latency") or []
    match = [lv for lv in levels if abs(lv["load_fraction"] - fraction) < 1e-9]
    return match[0] if match else (levels[0] if levels else {})


def _bytes(row: dict[str, Any]) -> str:
    per = row.get("bytes_per_entity") or {}
    parts = []
    for n, m in sorted(per.items(), key=lambda kv: int(kv[0])):
        pickled = m.get("worker_pickle_bytes_per_entity") or m.get("pickle_bytes_per_entity")
        rss = m.get("worker_rss_bytes_per_entity") or m.get("rss_bytes_per_entity")
        if pickled is None and rss is None:
            continue
        parts.append(f"{int(n):,}: {_fmt(pickled)} / {_fmt(rss)}")
    return "<br>".join(parts) or "–"


def _quality(row: dict[str, Any]) -> str:
    q = row.get("quality")
    if not q:
        return "–"
    recalls = " / ".join(_fmt(q[k]["recall"], 2) for k in KINDS)
    return f"R {recalls}; P {_fmt(q['overall']['precision'], 2)}"


def main_table(doc: dict[str, Any]) -> list[str]:
    """The headline table: one row per detector plus the detection-off ceiling."""
    head = (
        "| detector | events/s (1 worker) | ceiling ratio (cpu) | River events/s | River ratio (cpu) "
        "| latency p50 / p99 / max ms @ load | peak RSS MiB | bytes/entity pickled / RSS | "
        "quality: recall spike / ctx / coll; precision |"
    )
    lines = [head, "|" + "---|" * 9]
    rows: dict[str, dict[str, Any]] = doc["detectors"]
    for name in [CEILING, *[n for n in rows if n != CEILING]]:
        row = rows.get(name)
        if row is None:
            continue
        lv = _level(row)
        latency = "–"
        if lv:
            latency = f"{_fmt(lv.get('p50_ms'))} / {_fmt(lv.get('p99_ms'))} / {_fmt(lv.get('max_ms'))}"
            latency += f" @ {_fmt(lv.get('achieved_eps'))}/s"
        rss = row.get("peak_rss_kib")
        lines.append(
            f"| {name} ({row.get('detector', '')}) | {_fmt(row.get('throughput_eps'))} "
            f"| {_fmt(row.get('ceiling_ratio'), 3)} ({_fmt(row.get('ceiling_cpu_ratio'), 3)}) "
            f"| {_fmt(row.get('river_eps'))} | {_fmt(row.get('river_ratio'), 3)} "
            f"({_fmt(row.get('river_cpu_ratio'), 3)}) | {latency} "
            f"| {_fmt(rss / 1024 if rss else None)} | {_bytes(row)} | {_quality(row)} |"
        )
    return lines


def latency_table(doc: dict[str, Any]) -> list[str]:
    """Every latency level of every run (the latency profile sweeps several loads)."""
    lines = [
        "| run | load | target/s | achieved/s | p50 ms | p95 ms | p99 ms | max ms | output p50 / p99 ms "
        "| growth ms/s | observer CPU | missing |",
        "|" + "---|" * 12,
    ]
    for name, row in doc["detectors"].items():
        for lv in row.get("latency") or []:
            growth = lv.get("slope_ms_per_s")
            flag = " ⚠" if growth is not None and growth > SLOPE_LIMIT_MS_PER_S else ""
            lines.append(
                f"| {name} | {lv['load_fraction']:.0%} | {_fmt(lv['target_eps'])} "
                f"| {_fmt(lv['achieved_eps'])} | {_fmt(lv['p50_ms'], 1)} | {_fmt(lv['p95_ms'], 1)} "
                f"| {_fmt(lv['p99_ms'], 1)} | {_fmt(lv['max_ms'], 1)} "
                f"| {_fmt(lv.get('output_p50_ms'), 1)} / {_fmt(lv.get('output_p99_ms'), 1)} "
                f"| {_fmt(growth, 1)}{flag} | {_fmt(lv.get('observer_cpu_share'), 2)} | {lv['missing']} |"
            )
    return lines if len(lines) > 2 else []


def internals_table(doc: dict[str, Any]) -> list[str]:
    """Where a worker's time goes besides scoring: state creation and the blocking commit."""
    lines = [
        "| run | cold events/s (first records, state creation) | warm events/s | CPU events/s "
        "| commits | commit p50 / max ms | commit time s | snapshot MiB | snapshot B/event |",
        "|" + "---|" * 9,
    ]
    for name, row in doc["detectors"].items():
        c = row.get("commit")
        if not c:
            continue
        lines.append(
            f"| {name} | {_fmt(row.get('cold_eps'))} | {_fmt(row.get('throughput_eps'))} "
            f"| {_fmt(row.get('cpu_eps'))} | {c['commits']} "
            f"| {_fmt(c['p50_ms'], 1)} / {_fmt(c['max_ms'], 1)} | {_fmt(c['total_s'], 2)} "
            f"| {_fmt(c['snapshot_mib'], 1)} | {_fmt(c['snapshot_bytes_per_event'])} |"
        )
    return lines if len(lines) > 2 else []


def peers_table(doc: dict[str, Any]) -> list[str]:
    """The worker against its peers on the same backlog: Quix Streams + River, and the bare loop."""
    peer, ceiling = doc.get("peers") or {}, doc.get("ceiling") or {}
    if not peer:
        return []
    lines = [
        f"Bare consume → decode → produce loop: {_fmt((peer.get('bare') or {}).get('throughput_eps'))} "
        f"events/s; the detection-off worker is {_fmt(ceiling.get('bare_ratio'), 3)} of it."
        + (f" Quix skipped: {peer['quix_skipped']}." if peer.get("quix_skipped") else ""),
        "",
        "| detector | events/s | Quix + River events/s | quix ratio (cpu) | bare ratio | p99 ÷ ceiling p99 |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in doc["detectors"].items():
        if name == CEILING or "bare_ratio" not in row:
            continue
        lines.append(
            f"| {name} | {_fmt(row.get('throughput_eps'))} | {_fmt(row.get('quix_eps'))} "
            f"| {_fmt(row.get('quix_ratio'), 2)} ({_fmt(row.get('quix_cpu_ratio'), 2)}) "
            f"| {_fmt(row.get('bare_ratio'), 3)} | {_fmt(row.get('p99_vs_ceiling'), 2)} |"
        )
    return lines


def memory_table(doc: dict[str, Any]) -> list[str]:
    """Bytes per entity by entity count (fresh-process measurement and in-worker sample)."""
    lines = ["| detector | entities | pickled B/entity | RSS B/entity | source |", "|---|---|---|---|---|"]
    for name, row in doc["detectors"].items():
        for n, m in sorted((row.get("bytes_per_entity") or {}).items(), key=lambda kv: int(kv[0])):
            if "skipped" in m:
                lines.append(f"| {name} | {int(n):,} | – | – | skipped: {m['skipped']} |")
                continue
            if "pickle_bytes_per_entity" in m:
                lines.append(
                    f"| {name} | {int(n):,} | {_fmt(m['pickle_bytes_per_entity'])} "
                    f"| {_fmt(m['rss_bytes_per_entity'])} | fresh process |"
                )
            if "worker_pickle_bytes_per_entity" in m:
                lines.append(
                    f"| {name} | {int(n):,} | {_fmt(m['worker_pickle_bytes_per_entity'])} "
                    f"| {_fmt(m['worker_rss_bytes_per_entity'])} | worker (RSS vs ceiling worker) |"
                )
    return lines if len(lines) > 2 else []


def quality_table(doc: dict[str, Any]) -> list[str]:
    """Precision/recall per anomaly kind (see loadtest/quality.py: per point, or per episode and alert)."""
    lines = [
        "| detector | kind | n | precision | recall | F1 | point-wise run recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in doc["detectors"].items():
        q = row.get("quality")
        if not q:
            continue
        for kind in (*KINDS, *STREAM_KINDS, "overall"):
            m = q.get(kind)
            if m is None:  # results written before the stream-wide kinds existed
                continue
            lines.append(
                f"| {name} | {kind} | {m.get('n', q['labelled'])} | {_fmt(m['precision'], 3)} "
                f"| {_fmt(m['recall'], 3)} | {_fmt(m.get('f1'), 3)} | {_fmt(m.get('event_recall'), 3)} |"
            )
    return lines if len(lines) > 2 else []


_NOTES = """\
**How to read this.** *events/s* is one worker process draining a pre-produced backlog (warm models,
scores topic on, snapshots as configured). *ceiling ratio* = events/s ÷ the same worker with detection
switched off (`NullScorer`): the share of the Kafka + codec path's speed left after detection (1.0 =
detection is free). *River ratio* = events/s ÷ raw River `score_one`+`learn_one` on one model with no
Kafka: how close the worker gets to the model's own cost. Values in parentheses use process CPU seconds
instead of wall time, which is steadier on a busy machine. Latency is produce → score record consumed at
the given share of that run's saturation rate ("output" = until the worker produced the record; ⚠ marks
latency growing > 50 ms per second, i.e. the machine did not sustain that load). Bytes/entity:
pickled `KeyState` (snapshot payload) / RSS growth per key."""


def _ceiling_note(doc: dict[str, Any]) -> list[str]:
    """The spread of the ceiling measured before each detector: the noise floor of every ratio."""
    paired = {
        n: r["paired_ceiling"]["throughput_eps"]
        for n, r in doc["detectors"].items()
        if r.get("paired_ceiling")
    }
    if not paired:
        return []
    first = doc["detectors"].get(CEILING, {}).get("throughput_eps")
    listed = ", ".join(f"before {n}: {_fmt(v)}" for n, v in paired.items())
    return [
        f"Ceiling re-measured right before each detector (its ratio uses that one): first {_fmt(first)}, "
        f"{listed} events/s. Their spread is the noise level of this run.",
        "",
    ]


def write_markdown(doc: dict[str, Any], path: Path, images: list[Path]) -> Path:
    """The Markdown summary next to the JSON."""
    host = doc["host"]
    out = [
        f"# anomstream load test `{doc['run_id']}` (profile `{doc['profile']}`)",
        "",
        f"{doc['scenario'].get('description', '')}",
        "",
        f"Python {host['python']}, {host['cpus']} CPUs (load average at start {host['load_avg_start']:.1f}), "
        f"River {host['river']}, confluent-kafka {host['confluent_kafka']}, "
        f"Kafka {host.get('kafka', {}).get('origin', 'not used')}. Phases (s): "
        + ", ".join(f"{k} {v}" for k, v in doc["phases"].items()),
    ]
    if any("throughput_eps" in row or "river_eps" in row for row in doc["detectors"].values()):
        out += ["", *main_table(doc), "", *_ceiling_note(doc), _NOTES]
    for title, table in (
        ("Peers", peers_table(doc)),
        ("Latency", latency_table(doc)),
        ("Worker internals", internals_table(doc)),
        ("Memory", memory_table(doc)),
        ("Detection quality", quality_table(doc)),
    ):
        if table:
            out += ["", f"## {title}", "", *table]
    out += ["", *[f"![{img.stem}]({img.name})" for img in images]]
    path.write_text("\n".join(out) + "\n")
    return path
