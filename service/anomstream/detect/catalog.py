"""The catalog: detector names → classes, and building a detector from a stream spec."""

from __future__ import annotations

import inspect

from anomstream.detect.detector import Detector
from anomstream.detect.hst import HST
from anomstream.detect.multiview import MultiView
from anomstream.detect.spec import DetectorSpecs, StreamSpec
from anomstream.detect.statistical import EWMA, Robust, ZScore
from anomstream.errors import ConfigError

CATALOG: dict[str, type[Detector]] = {cls.name: cls for cls in (MultiView, ZScore, Robust, EWMA, HST)}


def build(spec: StreamSpec) -> Detector:
    """A fresh detector for ``spec``; unknown parameters are a ``ConfigError``.

    Examples
    --------
    >>> build(StreamSpec(detector="ewma", params={"fading_factor": 0.1})).fading_factor
    0.1
    """
    cls = CATALOG.get(spec.detector)
    if cls is None:
        raise ConfigError(f"detector: unknown {spec.detector!r}; the catalog has {sorted(CATALOG)}")
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = set(spec.params) - allowed
    if unknown:
        raise ConfigError(
            f"detector {spec.detector!r}: unknown params {sorted(unknown)}; allowed: {sorted(allowed)}"
        )
    try:
        return cls(**spec.params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"detector {spec.detector!r}: bad params {spec.params}: {exc}") from None


def validate(specs: DetectorSpecs) -> None:
    """Build every stream's detector once so a bad spec fails at start-up, not on the first event."""
    for stream, spec in specs.streams.items():
        try:
            build(spec)
        except ConfigError as exc:
            # "detector: unknown ..." names the field itself; other messages name the detector.
            sep = "." if str(exc).startswith("detector:") else ": "
            raise ConfigError(f"streams.{stream}{sep}{exc}") from None
