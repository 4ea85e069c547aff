"""Labelled synthetic stream: many entities, daily seasonality, three kinds of injected anomalies.

* ``spike`` — one feature of one event jumps by 6-10 of the entity's overall standard deviations;
* ``contextual`` — every feature takes the value it normally has 12 hours later (in range, wrong time);
* ``collective`` — a run of individually normal points: a frozen (flat) signal or a slow oscillation
  replacing the noise.

Two stream-wide cases, off unless the data spec asks (``population_every``, ``silence_prob``):

* ``population`` — every ``population_every`` steps, ``population_share`` of the free entities shift all
  their features together (one direction per episode) by ``population_shift`` overall std for
  ``population_length`` steps; the points are labelled, the episode is listed in ``Generator.episodes``;
* ``silent`` — an entity stops sending for ``silence_length`` steps, then resumes; nothing is emitted in the
  gap (so nothing is labelled), the gap is listed in ``Generator.gaps``.

Generation is vectorised per time step (one event per entity per step). Ground truth is kept in
``Generator.labels`` keyed by ``(entity_id, timestamp_ms)``; collective runs are also listed whole.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson

from loadtest.scenario import KINDS, DataSpec

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PRODUCED_HEADER = "lt.produced_ns"
_DAY_S = 86_400.0
_CONTEXT_MIN_SIN = 0.7  # inject contextual points only where the 12-hour-shifted value differs enough
_CONTEXT_SHARE = 1 - 2 / math.pi * math.asin(_CONTEXT_MIN_SIN)  # share of the day that qualifies

Array = npt.NDArray[np.float64]
_LABELS = (None, *KINDS, "population")  # by the generator's kind code (5, silent, emits no event)


@dataclasses.dataclass(frozen=True, slots=True)
class Generated:
    """One event with its label (``kind`` is None for a normal point)."""

    entity: str
    ts_ms: int
    values: dict[str, float]
    kind: str | None

    def encode(self) -> bytes:
        """JSON bytes in the anomstream event format (timestamp as epoch milliseconds)."""
        return orjson.dumps({"entity_id": self.entity, "timestamp": self.ts_ms, "values": self.values})


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """One collective anomaly: ``entity`` from ``first_ms`` to ``last_ms`` inclusive."""

    entity: str
    first_ms: int
    last_ms: int
    variant: str


def entity_id(index: int) -> str:
    """Stable entity name (also the Kafka message key)."""
    return f"ent-{index:07d}"


def kind_probabilities(data: DataSpec) -> dict[str, float]:
    """Per-event probability of starting each kind so that ``anomaly_fraction`` of events are labelled.

    A collective run labels ``collective_length`` events, so its start probability is divided by it.

    Examples
    --------
    >>> from loadtest.scenario import DataSpec
    >>> p = kind_probabilities(DataSpec(anomaly_fraction=0.03, collective_length=10))
    >>> round(p["spike"], 4), round(p["collective"], 4)
    (0.01, 0.001)
    """
    total = sum(data.kinds.values())
    if total <= 0:
        return dict.fromkeys(KINDS, 0.0)
    probs = {k: data.anomaly_fraction * data.kinds.get(k, 0.0) / total for k in KINDS}
    probs["collective"] /= data.collective_length
    return probs


class Generator:
    """Deterministic (seeded) stream over ``entities`` entities; ``step()`` yields one event each."""

    def __init__(self, data: DataSpec, entities: int | None = None) -> None:
        self.data = data
        self.n = entities if entities is not None else data.entities
        self.names = [entity_id(i) for i in range(self.n)]
        rng = np.random.default_rng(data.seed)
        shape = (self.n, len(data.features))
        self.level = rng.uniform(20.0, 200.0, shape)
        self.amp = self.level * rng.uniform(0.1, 0.3, shape)
        self.sigma = self.amp * rng.uniform(0.04, 0.1, shape)
        self.spread = np.sqrt(self.sigma**2 + self.amp**2 / 2)  # overall std of a normal entity
        self.phase = rng.uniform(0.0, 2 * math.pi, (self.n, 1))
        self.rng = rng
        self.probs = kind_probabilities(data)
        self.run_left = np.zeros(self.n, dtype=np.int64)
        self.run_variant = np.zeros(self.n, dtype=np.int64)  # 0 flat, 1 oscillation
        self.frozen = np.zeros(shape)
        self.quiet = np.zeros(self.n, dtype=np.int64)
        self.steps = 0
        self.labels: dict[tuple[str, int], str] = {}
        self.runs: list[Run] = []
        self.silent_left = np.zeros(self.n, dtype=np.int64)
        self.members = np.zeros(self.n, dtype=bool)  # entities of the current population episode
        self.pop_left, self.pop_sign = 0, 1.0
        self.episodes: list[Run] = []  # population episodes (entity ``*``)
        self.gaps: list[Run] = []  # silences: the first and last step with no event

    def ts_ms(self, step: int) -> int:
        """Event time of ``step`` (the same for every entity)."""
        return START_MS + round(step * self.data.step_s * 1000)

    def _seasonal(self, step: int, shift: float = 0.0) -> tuple[Array, Array]:
        angle = 2 * math.pi * (step * self.data.step_s) / _DAY_S + self.phase + shift
        return self.level + self.amp * np.sin(angle), np.sin(angle)

    def step(self) -> list[Generated]:
        """The next time step: one event per entity, anomalies injected and labelled."""
        step = self.steps
        base, sin = self._seasonal(step)
        values = base + self.rng.standard_normal(base.shape) * self.sigma
        kinds = np.zeros(self.n, dtype=np.int64)  # 0 none, 1-3 KINDS, 4 population, 5 silent (no event)
        self._continue_runs(step, base, values, kinds)
        self._population(step, values, kinds)
        self._silence(step, kinds)
        self._start_anomalies(step, base, sin, values, kinds)
        self.steps += 1
        return self._events(step, values, kinds)

    def _continue_runs(self, step: int, base: Array, values: Array, kinds: npt.NDArray[np.int64]) -> None:
        active = self.run_left > 0
        if not active.any():
            return
        flat = active & (self.run_variant == 0)
        values[flat] = self.frozen[flat]
        wavy = active & (self.run_variant == 1)
        wave = np.sin(2 * math.pi * self.run_left[wavy] / 8.0)[:, None] * 2.0 * self.sigma[wavy]
        values[wavy] = base[wavy] + wave
        kinds[active] = 3
        self.run_left[active] -= 1
        self.quiet[active & (self.run_left == 0)] = 2 * self.data.collective_length

    def _free(self, step: int, kinds: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Entities that may start an anomaly now (armed, nothing running, not recovering from one)."""
        if step < self.data.arm_after:
            return np.zeros(self.n, dtype=bool)
        idle: npt.NDArray[np.bool_] = (self.quiet == 0) & (self.run_left == 0) & (self.silent_left == 0)
        free: npt.NDArray[np.bool_] = idle & (kinds == 0)
        return free

    def _population(self, step: int, values: Array, kinds: npt.NDArray[np.int64]) -> None:
        d = self.data
        if d.population_every <= 0:
            return
        if self.pop_left == 0 and step >= d.arm_after and (step - d.arm_after) % d.population_every == 0:
            free = np.flatnonzero(self._free(step, kinds))
            size = min(len(free), max(1, round(d.population_share * self.n)))
            self.members[:] = False
            self.members[self.rng.choice(free, size=size, replace=False)] = True
            self.pop_left, self.pop_sign = d.population_length, 1.0 if self.rng.random() < 0.5 else -1.0
            self.episodes.append(
                Run("*", self.ts_ms(step), self.ts_ms(step + d.population_length - 1), "population")
            )
        if self.pop_left == 0:
            return
        m = self.members
        values[m] += self.pop_sign * d.population_shift * self.spread[m]
        kinds[m] = 4
        self.pop_left -= 1
        if self.pop_left == 0:
            self.quiet[m] = d.collective_length

    def _silence(self, step: int, kinds: npt.NDArray[np.int64]) -> None:
        d = self.data
        if d.silence_prob <= 0:
            return
        back = self.silent_left == 1
        self.quiet[back] = d.collective_length
        self.silent_left[self.silent_left > 0] -= 1
        start = self._free(step, kinds) & (self.rng.random(self.n) < d.silence_prob)
        for idx in np.flatnonzero(start):
            self.gaps.append(
                Run(self.names[idx], self.ts_ms(step), self.ts_ms(step + d.silence_length - 1), "silent")
            )
        self.silent_left[start] = d.silence_length
        kinds[self.silent_left > 0] = 5

    def _start_anomalies(
        self, step: int, base: Array, sin: Array, values: Array, kinds: npt.NDArray[np.int64]
    ) -> None:
        armed = self._free(step, kinds)
        self.quiet[self.quiet > 0] -= 1
        u = self.rng.random(self.n)
        p_spike, p_ctx, p_coll = (self.probs[k] for k in KINDS)
        p_ctx /= _CONTEXT_SHARE  # only part of the day qualifies: keep the labelled share on target
        spike = armed & (u < p_spike)
        ctx = armed & (u >= p_spike) & (u < p_spike + p_ctx) & (np.abs(sin[:, 0]) > _CONTEXT_MIN_SIN)
        coll = armed & (u >= p_spike + p_ctx) & (u < p_spike + p_ctx + p_coll)
        for idx in np.flatnonzero(spike):
            j = self.rng.integers(len(self.data.features))
            sign = 1.0 if self.rng.random() < 0.5 else -1.0
            values[idx, j] = base[idx, j] + sign * self.rng.uniform(6.0, 10.0) * self.spread[idx, j]
        if ctx.any():
            shifted, _ = self._seasonal(step, math.pi)
            values[ctx] = shifted[ctx] + self.rng.standard_normal(shifted[ctx].shape) * self.sigma[ctx]
        self._start_runs(step, coll, base, values)
        kinds[spike], kinds[ctx], kinds[coll] = 1, 2, 3
        self.quiet[spike | ctx] = self.data.collective_length

    def _start_runs(self, step: int, coll: npt.NDArray[np.bool_], base: Array, values: Array) -> None:
        length = self.data.collective_length
        for idx in np.flatnonzero(coll):
            variant = int(self.rng.integers(2))
            self.run_variant[idx] = variant
            self.run_left[idx] = length - 1
            self.frozen[idx] = base[idx]
            values[idx] = base[idx]
            name = self.names[idx]
            first = self.ts_ms(step)
            self.runs.append(
                Run(name, first, self.ts_ms(step + length - 1), ("flat", "oscillation")[variant])
            )

    def _events(self, step: int, values: Array, kinds: npt.NDArray[np.int64]) -> list[Generated]:
        ts = self.ts_ms(step)
        features = self.data.features
        rows = values.tolist()
        out = []
        for name, row, kind in zip(self.names, rows, kinds.tolist(), strict=True):
            if kind == 5:  # silent: the entity sends nothing this step
                continue
            label = _LABELS[kind]
            if label is not None:
                self.labels[(name, ts)] = label
            out.append(Generated(name, ts, dict(zip(features, row, strict=True)), label))
        return out


@dataclasses.dataclass
class Pacer:
    """Rate control: how long to wait before sending event number ``sent`` (0-based) at ``rate``/s.

    ``rate <= 0`` means unthrottled.

    Examples
    --------
    >>> Pacer(rate=100.0, started=0.0).delay(sent=50, now=0.2)
    0.3
    >>> Pacer(rate=0.0, started=0.0).delay(sent=10**6, now=0.0)
    0.0
    """

    rate: float
    started: float = dataclasses.field(default_factory=time.monotonic)

    def delay(self, sent: int, now: float) -> float:
        """Seconds to sleep before the next send (0 when behind schedule)."""
        if self.rate <= 0:
            return 0.0
        return max(0.0, round(sent / self.rate - (now - self.started), 9))

    def expected(self, duration_s: float) -> int:
        """Events a paced run of ``duration_s`` sends (unthrottled has no bound: -1)."""
        return -1 if self.rate <= 0 else math.floor(self.rate * duration_s)


Headers = list[tuple[str, str | bytes | None]]


def produced_header(now_ns: int | None = None) -> Headers:
    """The latency header for an event produced at ``now_ns`` (default: now; wall clock, ns)."""
    return [(PRODUCED_HEADER, str(time.time_ns() if now_ns is None else now_ns).encode())]


def write_labels(path: Path, labels: dict[tuple[str, int], str], runs: list[Run]) -> int:
    """Write ground truth as CSV ``entity_id,timestamp_ms,kind,variant``; returns the row count."""
    by_entity: dict[str, list[Run]] = {}
    for run in runs:
        by_entity.setdefault(run.entity, []).append(run)

    def variant(entity: str, ts: int) -> str:
        return next((r.variant for r in by_entity.get(entity, ()) if r.first_ms <= ts <= r.last_ms), "")

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["entity_id", "timestamp_ms", "kind", "variant"])
        for (entity, ts), kind in sorted(labels.items()):
            writer.writerow([entity, ts, kind, variant(entity, ts) if kind == "collective" else ""])
    return len(labels)
