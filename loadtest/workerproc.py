"""One anomstream ``Worker`` in its own process, with timing around the real consume loop.

``python -m loadtest.workerproc <config.json>`` builds the real worker (real consumer, producer, metrics,
codec) with either the real ``Scorer`` or ``NullScorer`` (detection off, the Kafka ceiling). A thin
consumer proxy times the drain of the pre-produced backlog and reports on stdout, one JSON object per
line: ``{"event": "drained", ...}`` once the backlog is processed, ``{"event": "done", ...}`` after
SIGTERM made the worker commit and stop.
"""

from __future__ import annotations

import gc
import pickle
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from anomstream.app import build_worker
from anomstream.config import Settings
from anomstream.detect.scorer import Decision, Outcome, Scorer
from anomstream.detect.spec import DetectorSpecs, StreamSpec
from anomstream.detect.store import Registry
from anomstream.ops import logs
from anomstream.ops.metrics import Metrics
from anomstream.stream.worker import Worker
from anomstream.wire.records import Event, Source
from loadtest.process import proc_status_kib

_NOTHING = Outcome(score=0.0, threshold=1.0, decision=Decision.NORMAL)


class NullScorer(Scorer):
    """Detection switched off: the same interface (``process``, ``specs``, ``registry``), no model."""

    def process(self, event: Event, source: Source) -> Outcome:
        """Every event is normal; nothing is learned or kept."""
        return _NOTHING


def emit(event: str, **fields: Any) -> None:
    """One protocol line on stdout for the parent process."""
    sys.stdout.write(orjson.dumps({"event": event, **fields}).decode() + "\n")
    sys.stdout.flush()


class GcClock:
    """Time spent in Python's cyclic garbage collector, per generation (via ``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._began = 0.0
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        """The ``gc.callbacks`` hook: called at the start and the stop of every collection."""
        if phase == "start":
            self._began = time.perf_counter()
            return
        generation = int(info["generation"])
        self.seconds[generation] += time.perf_counter() - self._began
        self.collections[generation] += 1

    def snapshot(self) -> tuple[float, list[int]]:
        """Total GC seconds so far and collections per generation."""
        return sum(self.seconds), list(self.collections)


class TimedConsumer:
    """Wraps the worker's consumer: counts records per batch and times the measured part of the drain.

    The first ``warm`` records are untimed (state creation, warm-up); the clock runs from the batch
    after them until ``warm + measure`` records are processed and the producer has flushed.
    """

    def __init__(self, inner: Any, producer: Any, warm: int, measure: int, profile: Path | None) -> None:
        self.inner, self.producer = inner, producer
        self.warm, self.measure, self.profile_path = warm, measure, profile
        self.total = 0
        self.t_first: float | None = None
        self.t_measure: float | None = None
        self.cpu_first = self.cpu_measure = 0.0  # process CPU seconds (all threads) at the marks
        self.c_measure = 0
        self.drained = False
        self.samples: list[tuple[float, int]] = []
        self.profiler: Any = None
        self.extra: Callable[[], dict[str, Any]] = dict
        self.gc = GcClock()
        self.gc_measure: tuple[float, list[int]] = (0.0, [0, 0, 0])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        """The real ``consume`` plus the phase bookkeeping (done before the next batch is fetched)."""
        if self.t_first is not None and not self.drained:
            self._phase()
        messages: list[Any] = self.inner.consume(num_messages, timeout)
        got = sum(1 for m in messages if m.error() is None)
        now = time.perf_counter()
        if got and self.t_first is None:
            self.t_first, self.cpu_first = now, time.process_time()
            if self.warm == 0:
                self._start_measure(now)
        self.total += got
        if self.t_first is not None:
            self.samples.append((round(now - self.t_first, 6), self.total))
        return messages

    def _phase(self) -> None:
        if self.t_measure is None and self.total >= self.warm:
            self._start_measure(time.perf_counter())
        elif self.t_measure is not None and self.total >= self.warm + self.measure:
            self._finish()

    def _start_measure(self, now: float) -> None:
        self.t_measure, self.c_measure = now, (self.total if self.warm else 0)
        self.cpu_measure = time.process_time()
        self.gc_measure = self.gc.snapshot()
        if self.profile_path is not None:
            from pyinstrument import Profiler

            self.profiler = Profiler(interval=0.001)
            self.profiler.start()

    def _finish(self) -> None:
        self.producer.flush(60)
        end, cpu_end = time.perf_counter(), time.process_time()
        self.drained = True
        if self.profiler is not None:
            self.profiler.stop()
            assert self.profile_path is not None
            self.profile_path.write_text(profile_text(self.profiler, self.total - self.c_measure))
        assert self.t_first is not None
        assert self.t_measure is not None
        measured = self.total - self.c_measure
        gc_s, gc_n = self.gc.snapshot()
        emit(
            "drained",
            warm=self.c_measure,
            warm_s=self.t_measure - self.t_first,
            warm_cpu_s=self.cpu_measure - self.cpu_first,
            measured=measured,
            measure_s=end - self.t_measure,
            measure_cpu_s=cpu_end - self.cpu_measure,
            measure_gc_s=gc_s - self.gc_measure[0],
            measure_gc_collections=[a - b for a, b in zip(gc_n, self.gc_measure[1], strict=True)],
            at_s=end - self.t_first,
            **self.extra(),
        )


def self_times(root: Any) -> dict[str, float]:
    """Seconds of self time per function (``name  file:line``) in a pyinstrument frame tree."""
    totals: dict[str, float] = {}
    stack = [root]
    while stack:
        frame = stack.pop()
        children = [c for c in frame.children if not c.is_synthetic]
        own = frame.time - sum(c.time for c in children)  # synthetic "[self]" children included
        if not frame.is_synthetic and own > 0:
            key = f"{frame.function}  {frame.file_path_short}:{frame.line_no}"
            totals[key] = totals.get(key, 0.0) + own
        stack.extend(children)
    return totals


def profile_text(profiler: Any, events: int, top: int = 40) -> str:
    """Top functions by self time (% of the profiled drain), then pyinstrument's call tree."""
    root = profiler.last_session.root_frame()
    ranked = sorted(self_times(root).items(), key=lambda kv: -kv[1])[:top]
    flat = [f"{100 * t / root.time:5.1f}%  {name}" for name, t in ranked]
    tree = profiler.output_text(time="percent_of_total")
    return "\n".join(
        [
            f"# pyinstrument: {events} events drained by one worker (main thread; librdkafka's own "
            "threads are not sampled); wall time includes waits inside C calls",
            f"# top {top} functions by self time, % of the drain",
            *flat,
            "",
            "# call tree",
            tree,
        ]
    )


def state_sample(registry: Registry, size: int) -> dict[str, Any]:
    """Live keys, RSS now, and the mean pickled size of up to ``size`` random key states."""
    keys = list(registry.keys())
    picked = random.Random(1).sample(keys, min(size, len(keys)))
    sizes = [len(pickle.dumps(registry.peek(key))) for key in picked]
    return {
        "keys": len(keys),
        "rss_kib": proc_status_kib("self", "VmRSS"),
        "pickle_bytes_per_entity": round(sum(sizes) / len(sizes), 1) if sizes else None,
    }


def build(config: dict[str, Any]) -> tuple[Worker, TimedConsumer]:
    """The real worker, wired by ``anomstream.app.build_worker`` exactly as ``anomstream run`` does.

    Only two parts are swapped: the consumer is wrapped for timing, and with no ``spec`` the scorer is
    a ``NullScorer`` (the ceiling run).
    """
    settings = Settings.model_validate(config["settings"])
    logs.configure(settings.log_format, settings.log_level)
    spec = config.get("spec")
    specs = DetectorSpecs(streams={"default": StreamSpec.model_validate(spec or {})})
    worker = build_worker(settings, specs, Metrics(CollectorRegistry()), logs.get("loadtest-worker"))
    if spec is None:
        worker.scorer = NullScorer(specs, worker.scorer.registry)
    profile = Path(config["profile"]) if config.get("profile") else None
    timed = TimedConsumer(
        worker.consumer, worker.sink.producer, int(config["warm"]), int(config["measure"]), profile
    )
    worker.consumer = timed
    registry = worker.scorer.registry
    timed.extra = lambda: state_sample(registry, int(config.get("state_sample", 500)))
    return worker, timed


def main(argv: list[str]) -> int:
    """Run until SIGTERM/SIGINT, then report the per-batch samples and exit."""
    config = orjson.loads(Path(argv[0]).read_bytes())
    worker, timed = build(config)

    def stop(_signum: int, _frame: Any) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    emit("started")
    worker.run()
    emit("done", processed=timed.total, samples=timed.samples, keys=len(worker.scorer.registry))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
