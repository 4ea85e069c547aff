"""Demo stream: sensors and hosts with daily seasonality and noise, plus labelled injected anomalies.

Point spikes perturb one feature of one event; level shifts move one feature of an entity for good.
Labels travel in ``attributes["injected"]`` so a human watching alerts can tell truth from noise.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from anomstream.ops.printer import poll_alert
from anomstream.wire.records import Alert, Event

# (feature, level, daily amplitude, noise σ) per entity kind
PROFILES: dict[str, tuple[tuple[str, float, float, float], ...]] = {
    "sensor": (("temperature", 21.0, 4.0, 0.3), ("humidity", 48.0, 9.0, 1.0)),
    "host": (("cpu", 40.0, 20.0, 2.0), ("latency_ms", 120.0, 35.0, 4.0)),
}


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Shape of the demo stream; every random choice derives from ``seed``."""

    entities: int = 8
    step_s: float = 60.0
    spike_prob: float = 0.004
    shift_prob: float = 0.0
    spike_sigmas: tuple[float, float] = (9.0, 15.0)
    shift_sigmas: float = 8.0
    quiet_after_anomaly: int = 25
    warmup: int = 100
    seed: int = 7
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class Labelled:
    """One demo event with its ground truth (``label`` is None for a normal point)."""

    event: Event
    label: str | None
    feature: str | None


def entity_names(n: int) -> list[str]:
    """Alternate sensors and hosts: sensor-01, host-01, sensor-02, and so on."""
    return [f"{'sensor' if i % 2 == 0 else 'host'}-{i // 2 + 1:02d}" for i in range(n)]


class _Entity:
    def __init__(self, name: str, rng: random.Random) -> None:
        self.name = name
        self.features = PROFILES[name.split("-", maxsplit=1)[0]]
        self.phase = rng.uniform(0, 2 * math.pi)
        self.offsets = {f[0]: 0.0 for f in self.features}
        self.step = 0
        self.quiet = 0


def generate(cfg: DemoConfig) -> Iterator[Labelled]:
    """Endless round-robin stream over the entities, labelled.

    Examples
    --------
    >>> from itertools import islice
    >>> first = list(islice(generate(DemoConfig(entities=2)), 4))
    >>> [x.event.entity_id for x in first]
    ['sensor-01', 'host-01', 'sensor-01', 'host-01']
    """
    rng = random.Random(cfg.seed)
    entities = [_Entity(name, rng) for name in entity_names(cfg.entities)]
    while True:
        for ent in entities:
            yield _next(ent, cfg, rng)


def _next(ent: _Entity, cfg: DemoConfig, rng: random.Random) -> Labelled:
    ts = cfg.start + timedelta(seconds=ent.step * cfg.step_s)
    day = 2 * math.pi * (ent.step * cfg.step_s) / 86_400 + ent.phase
    values = {
        name: level + amp * math.sin(day) + ent.offsets[name] + rng.gauss(0, noise)
        for name, level, amp, noise in ent.features
    }
    label = feature = None
    armed = ent.step >= cfg.warmup and ent.quiet == 0
    if armed and rng.random() < cfg.spike_prob:
        feature, _, _, noise = rng.choice(ent.features)
        values[feature] += rng.choice((-1, 1)) * rng.uniform(*cfg.spike_sigmas) * noise
        label = "spike"
    elif armed and rng.random() < cfg.shift_prob:
        feature, _, _, noise = rng.choice(ent.features)
        ent.offsets[feature] += rng.choice((-1, 1)) * cfg.shift_sigmas * noise
        label = "level_shift"
    ent.quiet = cfg.quiet_after_anomaly if label else max(0, ent.quiet - 1)
    ent.step += 1
    attributes = {"kind": ent.name.split("-")[0]}
    if label:
        attributes["injected"] = f"{label}:{feature}"
    event = Event(entity_id=ent.name, timestamp=ts, values=values, attributes=attributes)
    return Labelled(event, label, feature)


def produce(
    producer: Any,
    topic: str,
    cfg: DemoConfig,
    *,
    rate: float,
    count: int | None,
    stopped: Callable[[], bool],
) -> int:
    """Produce the demo stream keyed by entity at ``rate`` events/s (0 = as fast as possible).

    Returns how many events were produced; stops after ``count`` or when ``stopped()`` turns true.
    """
    sent = 0
    began = time.monotonic()
    for item in generate(cfg):
        if stopped() or (count is not None and sent >= count):
            break
        if rate > 0:
            ahead = sent / rate - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)
        value = item.event.__pydantic_serializer__.to_json(item.event)
        while True:
            try:
                producer.produce(topic, value, item.event.entity_id.encode())
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        sent += 1
    producer.flush(30)
    return sent


def label_alerts(
    consumer: Any,
    verdict: Callable[[Alert, str], object],
    share: float,
    stopped: Callable[[], bool],
    seed: int = 7,
) -> int:
    """The demo's stand-in for a person: judge ``share`` of the opened alerts by the injected labels.

    An alert on an event the demo injected an anomaly into is a true positive, any other a false one;
    ``verdict(alert, "true_positive" | "false_positive")`` publishes it. It makes the feedback loop and
    the dashboard's quality row visible without anyone clicking. Returns how many verdicts it gave.
    """
    rng, given = random.Random(seed), 0
    while not stopped():
        alert = poll_alert(consumer)
        if alert is None or alert.status != "open" or rng.random() >= share:
            continue
        verdict(alert, "true_positive" if "injected" in alert.attributes else "false_positive")
        given += 1
    consumer.close()
    return given
