"""Detector specs: per ``stream``, which values, which detector, threshold policy and alert lifecycle.

Read from a TOML file (``ANOMSTREAM_DETECTORS_FILE``); with no file, the built-in default spec applies.
"""

from __future__ import annotations

import functools
import hashlib
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from anomstream.errors import ConfigError


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThresholdSpec(_Spec):
    """When a score is anomalous.

    ``risk`` (the default): the detector's views are calibrated against the key's own history and a point
    is anomalous when its tail probability is below ``risk`` (``calibrator``: Numenta's anomaly
    ``likelihood``, EVT ``spot``, or ``auto``: the one the detector's deviations need, see
    ``Detector.calibrator``). The same ``risk`` means the same false-alarm rate for every detector.
    ``quantile``: above the running ``quantile`` of this key's normal (uncalibrated) scores, never below
    ``floor``. ``fixed``: above ``value``.
    """

    kind: Literal["risk", "quantile", "fixed"] = "risk"
    risk: float = Field(default=1e-4, gt=0, lt=0.5)
    calibrator: Literal["auto", "likelihood", "spot"] = "auto"
    quantile: float = Field(default=0.999, gt=0.5, lt=1)
    floor: float = Field(default=0.7, ge=0, le=1)
    value: float = Field(default=0.9, gt=0, lt=1)


class LifecycleSpec(_Spec):
    """Alert lifecycle and the protect-vs-adapt policy.

    ``protect``: anomalous points are not learned, so an outlier cannot drag the model towards itself.
    ``adapt_after``: a run of this many consecutive anomalous points is a level shift, accepted as the new
    normal (the model is re-baselined on the run) instead of alerting forever.
    ``realert``: ``peak`` (the default) opens an episode's one alert when a score beats the decaying
    envelope (half-life ``halflife`` points) of what this key alerted on recently, then stays quiet until
    it resolves: one incident, one alert; ``cooldown`` opens at once and emits ``ongoing`` at most once per
    ``cooldown_s`` of event time while the episode lasts.
    """

    cooldown_s: float = Field(default=300.0, ge=0)
    resolve_after: int = Field(default=3, ge=1)
    protect: bool = False
    adapt_after: int = Field(default=30, ge=2)
    realert: Literal["peak", "cooldown"] = "peak"
    halflife: float = Field(default=1000.0, gt=0)


class FeedbackSpec(_Spec):
    """How people's verdicts move this stream's keys (``detect.feedback``, ``detect.reranker``).

    A ``false_positive`` on an alert of score ``s`` lifts the key's floor to ``s + margin``: similar scores
    stop alerting, clearly worse ones still do. A ``missed`` range whose worst score was ``m`` lowers the
    key's ceiling to ``m - margin`` (never below ``lowest``; by ``missed_step`` when ``m`` is unknown).
    The re-ranker suppresses an alert only with ``rerank`` on, once it has ``min_labels`` labels with at
    least ``min_each`` of either verdict, and only when it gives the alert a probability of being false of
    ``confidence`` or more.
    """

    margin: float = Field(default=0.02, ge=0, le=0.5)
    lowest: float = Field(default=0.1, ge=0, le=1)
    missed_step: float = Field(default=0.05, gt=0, le=0.5)
    rerank: bool = True
    confidence: float = Field(default=0.9, gt=0.5, lt=1)
    min_labels: int = Field(default=10, ge=2)
    min_each: int = Field(default=3, ge=1)


class SilenceSpec(_Spec):
    """Silence watching (``detect.silence``): off unless ``enabled``.

    A key is watched once it has sent ``min_gaps`` gaps; it is overdue when the partition's event-time
    watermark passes its last event + ``factor`` × its mean gap + ``band`` × the gaps' mean deviation
    (exponentially weighted, ``alpha``).
    """

    enabled: bool = False
    factor: float = Field(default=3.0, ge=1)
    band: float = Field(default=3.0, ge=0)
    min_gaps: int = Field(default=10, ge=2)
    alpha: float = Field(default=0.05, gt=0, le=1)


class PopulationSpec(_Spec):
    """Population monitoring (``detect.population``): off unless ``enabled``.

    Event time is cut into windows of ``window_s``; in each, per partition, a key counts as deviating when
    its tail probability is below ``key_risk`` (or it is anomalous, for uncalibrated thresholds). One
    ``population`` alert opens when the number of deviating keys is improbable (below ``risk``) under the
    share seen in past windows; it names the ``top`` keys. Fewer than ``min_keys`` active keys: no verdict.
    """

    enabled: bool = False
    window_s: float = Field(default=300.0, gt=0)
    key_risk: float = Field(default=0.01, gt=0, lt=1)
    risk: float = Field(default=1e-4, gt=0, lt=0.5)
    min_keys: int = Field(default=10, ge=2)
    warmup: int = Field(default=5, ge=1, description="windows learned before the first verdict")
    top: int = Field(default=5, ge=1)


class StreamSpec(_Spec):
    """Everything that decides how one ``stream``'s events are scored."""

    # A catalog name; checked against the catalog (``catalog.validate``) at start-up, which names the choices.
    detector: str = Field(default="multiview", min_length=1)
    features: tuple[str, ...] = ()
    warmup: int = Field(default=100, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)
    threshold: ThresholdSpec = ThresholdSpec()
    lifecycle: LifecycleSpec = LifecycleSpec()
    feedback: FeedbackSpec = FeedbackSpec()
    silence: SilenceSpec = SilenceSpec()
    population: PopulationSpec = PopulationSpec()

    def digest(self) -> str:
        """Short stable hash; a snapshot taken under another spec is not restored."""
        return self._digest

    @functools.cached_property
    def _digest(self) -> str:
        # Computed once per (frozen) spec: the registry asks for it on every event. Silence and population
        # settings judge the stream, not the key's model: changing them keeps every key's state.
        dumped = self.model_dump_json(exclude={"silence", "population"})
        return hashlib.sha256(dumped.encode()).hexdigest()[:16]


class DetectorSpecs(_Spec):
    """Specs by stream name; a stream without its own spec uses ``default``.

    Examples
    --------
    >>> specs = DetectorSpecs.model_validate({"streams": {"payments": {"detector": "zscore"}}})
    >>> specs.for_stream("payments").detector, specs.for_stream("other").detector
    ('zscore', 'multiview')
    """

    streams: dict[str, StreamSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_default(self) -> DetectorSpecs:
        if "default" not in self.streams:
            self.streams["default"] = StreamSpec()
        return self

    def for_stream(self, stream: str) -> StreamSpec:
        """The spec of ``stream``, falling back to ``default``."""
        return self.streams.get(stream) or self.streams["default"]


def load_specs(path: Path | None) -> DetectorSpecs:
    """Parse the TOML spec file; a missing file or bad field is a ``ConfigError`` naming it."""
    if path is None:
        return DetectorSpecs()
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"detectors_file ({path}): cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"detectors_file ({path}): not valid TOML: {exc}") from None
    try:
        return DetectorSpecs.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} [got {e.get('input')!r}]" for e in exc.errors()
        ]
        raise ConfigError(f"invalid detector spec {path}:\n  " + "\n  ".join(problems)) from None
