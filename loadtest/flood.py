"""Key flood benchmark: 1M distinct keys through the worker's decode → score → evict → snapshot path.

The end-to-end flood (tests/integration/test_hostile_input.py) runs the live worker; this one runs the same
per-record path in one process without Kafka, so only the worker's own memory is measured: every
``commit_every`` records it evicts over ``max_keys`` and seals the dirty keys' snapshots, as
``Checkpoint.commit`` does. A new key costs a model build (~0.6 ms of CPU), so 1M keys take ~10
CPU-minutes. It samples RSS as keys arrive; memory is bounded when RSS stops growing once the key bound
is reached. ``python -m loadtest.flood`` writes
``results/flood-<time>.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import orjson

from anomstream.detect.scorer import Scorer
from anomstream.detect.spec import DetectorSpecs
from anomstream.detect.store import Registry
from anomstream.stream.snapshot import seal
from anomstream.wire.codec import Rejection, decode_event
from anomstream.wire.records import Source
from loadtest import ROOT
from loadtest.process import proc_status_kib

SECRET = b"flood-benchmark"


def _commit(registry: Registry) -> int:
    """Evict over-limit keys and seal the dirty ones (steps 1-2 of the commit); returns snapshot bytes."""
    registry.evict()
    written = 0
    for key in sorted(registry.dirty):
        state = registry.peek(key)
        if state is not None:
            written += len(seal(state, SECRET))
    registry.dirty.clear()
    return written


def flood(keys: int, max_keys: int, commit_every: int, samples: int = 20) -> dict[str, Any]:
    """Send ``keys`` distinct entities once each; RSS sampled ``samples`` times along the way."""
    registry = Registry(max_keys, ttl_s=3600)
    scorer = Scorer(DetectorSpecs(), registry)
    start_kib = proc_status_kib("self", "VmRSS")
    began = time.perf_counter()
    trace = []
    max_live = 0
    for i in range(keys):
        raw = b'{"entity_id":"k%d","timestamp":%d,"values":{"x":%d}}' % (i, 1_700_000_000_000 + i, i % 7)
        event = decode_event(raw, 1_000_000)
        if isinstance(event, Rejection):
            raise RuntimeError(f"flood record {i} rejected: {event.reason}")
        scorer.process(event, Source.model_construct(topic="flood", partition=i % 3, offset=i // 3))
        if (i + 1) % commit_every == 0 or i + 1 == keys:
            max_live = max(max_live, len(registry))  # the peak: just before eviction
            _commit(registry)
        if (i + 1) % max(1, keys // samples) == 0:
            trace.append({"keys_in": i + 1, "live_keys": len(registry), "rss_mib": _mib("VmRSS")})
    took = time.perf_counter() - began
    settled = [t["rss_mib"] for t in trace if t["keys_in"] >= 2 * max_keys + commit_every]
    return {
        "keys": keys,
        "max_keys": max_keys,
        "commit_every": commit_every,
        "seconds": round(took, 1),
        "keys_per_s": round(keys / took),
        "max_live_keys": max_live,
        "rss_start_mib": start_kib // 1024,
        "rss_peak_mib": _mib("VmHWM"),
        # Growth of RSS after the bound is reached (first to last sample): ~0 when memory is bounded.
        "rss_growth_after_bound_mib": round(settled[-1] - settled[0], 1) if settled else None,
        "trace": trace,
    }


def _mib(field: str) -> float:
    return round(proc_status_kib("self", field) / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    """Run the flood and write its JSON result."""
    parser = argparse.ArgumentParser(prog="python -m loadtest.flood", description=__doc__)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--max-keys", type=int, default=10_000, help="the worker's MAX_KEYS")
    parser.add_argument("--commit-every", type=int, default=10_000, help="records between commits")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = flood(args.keys, args.max_keys, args.commit_every)
    out = args.out or ROOT / "loadtest" / "results" / f"flood-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    summary = {k: v for k, v in result.items() if k != "trace"}
    print(orjson.dumps(summary).decode())
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
