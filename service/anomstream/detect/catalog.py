"""The catalog: detector names → classes, and building a detector from a stream spec."""

from __future__ import annotations

import functools
import inspect

from anomstream.detect import deep
from anomstream.detect.clustering import KMeansDistance
from anomstream.detect.collective import Collective
from anomstream.detect.detector import Detector
from anomstream.detect.forecast import ARIMA, HoltWinters
from anomstream.detect.forest import IsolationForest
from anomstream.detect.hst import HST
from anomstream.detect.hypothesis import ESD, ChangePoint
from anomstream.detect.kernel import OneClassSVM
from anomstream.detect.multiview import MultiView
from anomstream.detect.neighbours import LocalOutlierFactor
from anomstream.detect.spec import DetectorSpecs, StreamSpec
from anomstream.detect.statistical import EWMA, Robust, ZScore
from anomstream.errors import ConfigError

CATALOG: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (
        MultiView,
        ZScore,
        Robust,
        EWMA,
        HST,
        IsolationForest,
        OneClassSVM,
        LocalOutlierFactor,
        KMeansDistance,
        ESD,
        ChangePoint,
        ARIMA,
        HoltWinters,
        deep.Autoencoder,
        deep.LSTM,
        Collective,
    )
}
#: Detectors that need an optional extra, by extra name.
EXTRAS: dict[str, str] = {deep.Autoencoder.name: deep.EXTRA, deep.LSTM.name: deep.EXTRA}


def available(name: str) -> bool:
    """Whether ``name``'s optional extra (if any) is installed."""
    return name not in EXTRAS or deep.available()


@functools.cache  # a class's signature does not change, and every new key's detector asked for it
def parameters(cls: type[Detector]) -> dict[str, object]:
    """Constructor parameters and their defaults (what a spec's ``params`` may set)."""
    sig = inspect.signature(cls.__init__)
    return {n: p.default for n, p in sig.parameters.items() if n != "self"}


def build(spec: StreamSpec) -> Detector:
    """A fresh detector for ``spec``; unknown parameters or a missing extra are a ``ConfigError``.

    Examples
    --------
    >>> build(StreamSpec(detector="ewma", params={"fading_factor": 0.1})).fading_factor
    0.1
    """
    cls = CATALOG.get(spec.detector)
    if cls is None:
        raise ConfigError(f"detector: unknown {spec.detector!r}; the catalog has {sorted(CATALOG)}")
    if not available(spec.detector):
        extra = EXTRAS[spec.detector]
        raise ConfigError(
            f"detector {spec.detector!r} needs the optional extra [{extra}]: "
            f"pip install 'anomstream[{extra}]' (JAX + optax, CPU wheels)"
        )
    allowed = set(parameters(cls))
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
