"""PNG plots of a run (matplotlib, Agg backend): throughput and latency over time, latency distribution.

Both plots are drawn from the compact ``series`` of the results JSON, so ``python -m loadtest render
results/<run-id>.json`` can redraw them later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtest import stats

BUCKET_S = 0.5


def compact(series: dict[str, Any]) -> dict[str, Any]:
    """Raw per-batch samples and latency points → per-bucket rates, percentiles and a histogram."""
    edges = stats.log_edges()
    out: dict[str, Any] = {"bucket_s": BUCKET_S, "hist_edges_ms": edges, "runs": {}}
    for name, raw in series.items():
        levels = []
        for lv in raw.get("levels", []):
            points = lv.get("points", [])
            levels.append(
                {
                    "load_fraction": lv["load_fraction"],
                    "buckets": stats.bucket_latency(points, BUCKET_S),
                    "hist": stats.histogram([lat * 1000.0 for _, lat in points], edges),
                    "p50_ms": lv.get("p50_ms"),
                    "p99_ms": lv.get("p99_ms"),
                }
            )
        out["runs"][name] = {
            "throughput": stats.bucket_rates(raw.get("samples", []), BUCKET_S),
            "levels": levels,
        }
    return out


def timeline(compacted: dict[str, Any], path: Path) -> Path:
    """Throughput (events/s per 0.5 s, whole run) over latency p50/p99 (paced phases) against time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8), constrained_layout=True)
    for name, run in compacted["runs"].items():
        if run["throughput"]:
            top.plot(*zip(*run["throughput"], strict=True), label=name, linewidth=1.2)
        offset = 0.0
        for lv in run["levels"]:
            if not lv["buckets"]:
                continue
            xs = [b[0] + offset for b in lv["buckets"]]
            (line,) = bottom.plot(
                xs, [b[1] for b in lv["buckets"]], label=f"{name} p50 @{lv['load_fraction']:.0%}"
            )
            bottom.plot(
                xs, [b[2] for b in lv["buckets"]], linestyle="--", color=line.get_color(), label=f"{name} p99"
            )
            offset = xs[-1] + compacted["bucket_s"]
    top.set(
        title="Worker throughput (backlog drain, then paced load)",
        xlabel="s since first record",
        ylabel="events/s",
    )
    bottom.set(
        title="End-to-end latency, produce → score record", xlabel="s since paced phase start", ylabel="ms"
    )
    bottom.set_yscale("log")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def distribution(compacted: dict[str, Any], path: Path) -> Path:
    """Cumulative latency distribution per run and load level (log-scaled milliseconds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = compacted["hist_edges_ms"]
    fig, ax = plt.subplots(figsize=(10, 6), constrained_layout=True)
    used = [
        i for run in compacted["runs"].values() for lv in run["levels"] for i, c in enumerate(lv["hist"]) if c
    ]
    for name, run in compacted["runs"].items():
        for lv in run["levels"]:
            total = sum(lv["hist"])
            if not total:
                continue
            cumulative, acc = [], 0
            for count in lv["hist"]:
                acc += count
                cumulative.append(acc / total)
            label = f"{name} @{lv['load_fraction']:.0%} (p50 {lv['p50_ms']:.0f}, p99 {lv['p99_ms']:.0f} ms)"
            ax.step(edges[1:], cumulative, where="post", label=label)
    for q in (0.5, 0.99):
        ax.axhline(q, color="grey", linewidth=0.6, linestyle=":")
    if used:
        ax.set_xlim(edges[max(0, min(used) - 1)], edges[min(len(edges) - 1, max(used) + 2)])
    ax.set(
        xscale="log", xlabel="latency ms (log)", ylabel="share of records", title="Latency distribution (CDF)"
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
