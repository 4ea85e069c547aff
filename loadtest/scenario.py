"""Scenario files (``loadtest/scenarios/*.toml``): data shape, detector specs and which phases to run.

A phase whose table is missing is skipped; detector tables are plain anomstream ``StreamSpec`` fields.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from anomstream.detect.spec import StreamSpec
from loadtest import SCENARIOS

KINDS = ("spike", "contextual", "collective")
STREAM_KINDS = ("population", "silent")  # injected per stream / per gap, not per event: see generator.py


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Table):
    """Shape of the generated stream (entities, features, time step, injected anomalies)."""

    entities: int = Field(default=10_000, ge=1, le=10_000_000)
    features: tuple[str, ...] = Field(default=("cpu", "latency_ms", "error_rate"), min_length=1)
    step_s: float = Field(default=60.0, gt=0)
    anomaly_fraction: float = Field(default=0.01, ge=0, lt=0.5)
    kinds: dict[str, float] = Field(default_factory=lambda: dict.fromkeys(KINDS, 1.0))
    collective_length: int = Field(default=20, ge=2)
    arm_after: int = Field(default=0, ge=0, description="steps per entity before any injection")
    # Stream-wide cases, off by default (the throughput phases count events and want every one of them):
    population_every: int = Field(default=0, ge=0, description="steps between population episodes (0: none)")
    population_share: float = Field(default=0.3, gt=0, le=1, description="share of entities that shift")
    population_length: int = Field(default=5, ge=1, description="steps a population episode lasts")
    population_shift: float = Field(default=3.0, gt=0, description="shift, in the entity's overall std")
    silence_prob: float = Field(default=0.0, ge=0, lt=1, description="per step: an entity stops sending")
    silence_length: int = Field(default=20, ge=1, description="steps a silence lasts")
    seed: int = 7

    @model_validator(mode="after")
    def _known_kinds(self) -> DataSpec:
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown anomaly kinds {sorted(unknown)}; known: {list(KINDS)}")
        if any(w < 0 for w in self.kinds.values()):
            raise ValueError("anomaly kind weights must be >= 0")
        return self


class ThroughputSpec(_Table):
    """Saturation run: pre-produce ``warm_steps + measure_steps`` events per entity, time the last ones."""

    warm_steps: int = Field(default=7, ge=0)
    measure_steps: int = Field(default=4, ge=1)
    partitions: int = Field(default=6, ge=1)
    scores_topic: bool = True
    paired_ceiling: bool = Field(
        default=True, description="re-measure the ceiling right before each detector (noisy machines)"
    )
    snapshots: bool = Field(default=True, description="checkpoint model state, as a keyed deployment does")
    guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    worker: dict[str, Any] = Field(
        default_factory=dict, description="anomstream WorkerSettings overrides, e.g. poll_timeout_s"
    )


class LatencySpec(_Table):
    """Paced run after the drain: produce at ``fraction`` of the measured saturation rate."""

    load_fractions: tuple[float, ...] = Field(default=(0.5,), min_length=1)
    duration_s: float = Field(default=8.0, gt=0)
    settle_s: float = Field(default=1.0, ge=0, description="first seconds of each level not counted")


class QualitySpec(_Table):
    """In-process backtest through the real ``Scorer`` on a long, labelled stream."""

    entities: int = Field(default=40, ge=1)
    steps: int = Field(default=1000, ge=10)
    collective_slack: int = Field(default=5, ge=0, description="steps after a run still counted as hits")
    data: dict[str, Any] = Field(
        default_factory=dict, description="DataSpec overrides for the backtest (population/silence cases)"
    )


class RiverSpec(_Table):
    """Raw detector cost: ``score_one`` + ``learn_one`` on one model, no Kafka, no scorer."""

    records: int = Field(default=20_000, ge=100)


class MemorySpec(_Table):
    """Model state per entity, in a fresh process per (detector, entity count)."""

    entities: tuple[int, ...] = Field(default=(10_000,), min_length=1)
    events_per_entity: int = Field(default=6, ge=1)
    sample: int = Field(default=500, ge=1)
    max_share_of_available: float = Field(default=0.5, gt=0, le=1)


class PeerSpec(_Table):
    """The peers on the saturation backlog: the bare consume → decode → produce loop, Quix Streams + River."""

    detectors: tuple[str, ...] = Field(
        default=(), description="detector tables given to the Quix + River pipeline; empty: all of them"
    )
    quix: bool = True
    bare: bool = True


class Scenario(_Table):
    """One benchmark profile: ``run --profile <name>`` reads ``scenarios/<name>.toml``."""

    name: str
    description: str = ""
    data: DataSpec = DataSpec()
    detectors: dict[str, StreamSpec] = Field(min_length=1)
    throughput: ThroughputSpec | None = None
    latency: LatencySpec | None = None
    quality: QualitySpec | None = None
    river: RiverSpec | None = None
    memory: MemorySpec | None = None
    peers: PeerSpec | None = None

    @model_validator(mode="after")
    def _latency_needs_throughput(self) -> Scenario:
        if self.latency is not None and self.throughput is None:
            raise ValueError("[latency] needs [throughput]: its rate is a share of the measured saturation")
        if self.peers is not None and self.throughput is None:
            raise ValueError("[peers] needs [throughput]: the peers drain the same backlog")
        unknown = set(self.peers.detectors if self.peers else ()) - set(self.detectors)
        if unknown:
            raise ValueError(f"[peers] names unknown detector tables {sorted(unknown)}")
        return self

    @property
    def needs_kafka(self) -> bool:
        """True when a phase talks to a broker."""
        return self.throughput is not None


def parse(text: str, name: str = "scenario") -> Scenario:
    r"""Parse scenario TOML text; errors name the offending field.

    Examples
    --------
    >>> s = parse('name = "x"\n[detectors.z]\ndetector = "zscore"\n[throughput]\n')
    >>> s.detectors["z"].detector, s.throughput.measure_steps, s.latency is None
    ('zscore', 4, True)
    """
    try:
        return Scenario.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{name}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{name}: {problems}") from None


def load(profile: str) -> Scenario:
    """Read ``scenarios/<profile>.toml`` (or a path to any TOML file)."""
    path = Path(profile)
    if not path.suffix:
        path = SCENARIOS / f"{profile}.toml"
    return parse(path.read_text(), str(path))
