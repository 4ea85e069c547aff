"""Pure numbers: percentiles, baseline ratios and time series bucketing (no I/O, unit-tested)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

PERCENTILES = (50.0, 95.0, 99.0)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method); NaN for no values.

    Examples
    --------
    >>> percentile([1, 2, 3, 4], 50), percentile([5.0], 99), percentile(list(range(101)), 99)
    (2.5, 5.0, 99.0)
    """
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError("q must be within [0, 100]")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(latencies_s: Sequence[float]) -> dict[str, float]:
    """Latency summary in milliseconds: p50/p95/p99/max/mean and the sample count."""
    ms = [v * 1000.0 for v in latencies_s]
    out = {f"p{q:g}_ms": _round(percentile(ms, q)) for q in PERCENTILES}
    out["max_ms"] = _round(max(ms)) if ms else math.nan
    out["mean_ms"] = _round(sum(ms) / len(ms)) if ms else math.nan
    out["count"] = float(len(ms))
    return out


def ratio(value: float | None, baseline: float | None) -> float | None:
    """``value / baseline``, or None when either is missing or the baseline is not positive.

    Examples
    --------
    >>> ratio(5000.0, 20000.0), ratio(1.0, 0.0), ratio(None, 3.0)
    (0.25, None, None)
    """
    if value is None or baseline is None or not baseline > 0 or math.isnan(value):
        return None
    return value / baseline


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` against ``xs`` (NaN with fewer than two distinct xs).

    Examples
    --------
    >>> slope([0, 1, 2, 3], [1.0, 3.0, 5.0, 7.0])
    2.0
    """
    n = len(xs)
    if n < 2:
        return math.nan
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return math.nan
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def rate(count: int, seconds: float) -> float:
    """Events per second; 0 for an empty or zero-length interval."""
    return count / seconds if seconds > 0 and count > 0 else 0.0


def bucket_rates(samples: Sequence[tuple[float, int]], width_s: float) -> list[tuple[float, float]]:
    """Cumulative ``(t, count)`` samples → ``(bucket_start, events_per_s)`` per ``width_s``.

    The count is interpolated linearly between samples, so batch-sized steps do not show as
    alternating bursts and gaps.

    Examples
    --------
    >>> bucket_rates([(0.0, 0), (1.0, 100), (2.0, 100)], 0.5)
    [(0.0, 100.0), (0.5, 100.0), (1.0, 0.0), (1.5, 0.0)]
    """
    if len(samples) < 2 or width_s <= 0:
        return []
    times = [t for t, _ in samples]
    t0, t_end = times[0], times[-1]

    def count_at(t: float) -> float:
        i = bisect.bisect_right(times, t)
        if i >= len(samples):
            return float(samples[-1][1])
        (ta, ca), (tb, cb) = samples[max(i - 1, 0)], samples[i]
        return ca + (cb - ca) * (t - ta) / (tb - ta) if tb > ta else float(cb)

    out: list[tuple[float, float]] = []
    k = 0
    while t0 + (k + 1) * width_s <= t_end + 1e-9:
        start = t0 + k * width_s
        out.append((round(k * width_s, 6), round((count_at(start + width_s) - count_at(start)) / width_s, 3)))
        k += 1
    return out


def bucket_latency(
    points: Sequence[tuple[float, float]], width_s: float
) -> list[tuple[float, float, float, int]]:
    """``(t, latency_s)`` points → ``(bucket_start, p50_ms, p99_ms, n)`` per ``width_s`` bucket."""
    buckets: dict[int, list[float]] = {}
    for t, lat in points:
        buckets.setdefault(math.floor(t / width_s), []).append(lat * 1000.0)
    return [
        (key * width_s, _round(percentile(v, 50)), _round(percentile(v, 99)), len(v))
        for key, v in sorted(buckets.items())
    ]


def _round(value: float) -> float:
    return value if math.isnan(value) else round(value, 3)


def log_edges(low: float = 0.5, high: float = 60_000.0, bins: int = 100) -> list[float]:
    """Log-spaced histogram edges (milliseconds by default), ``bins + 1`` of them."""
    step = (math.log(high) - math.log(low)) / bins
    return [round(math.exp(math.log(low) + i * step), 6) for i in range(bins + 1)]


def histogram(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts per ``[edges[i], edges[i+1])``; values outside are clamped into the first/last bin.

    Examples
    --------
    >>> histogram([0.1, 1.5, 2.5, 99.0], [1.0, 2.0, 3.0])
    [2, 2]
    """
    counts = [0] * (len(edges) - 1)
    for v in values:
        i = min(max(bisect.bisect_right(edges, v) - 1, 0), len(counts) - 1)
        counts[i] += 1
    return counts
