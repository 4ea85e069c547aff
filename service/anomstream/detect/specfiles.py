"""Choosing what to replay or evaluate: a spec file, a shipped spec, or a catalog detector at defaults."""

from __future__ import annotations

import dataclasses
import importlib.resources
from pathlib import Path

from anomstream.detect.catalog import CATALOG, available, validate
from anomstream.detect.spec import DetectorSpecs, StreamSpec, load_specs
from anomstream.errors import ConfigError


def shipped() -> list[str]:
    """Names of the spec files shipped in ``anomstream/detect/specs`` (e.g. ``univariate``).

    Examples
    --------
    >>> "univariate" in shipped()
    True
    """
    folder = importlib.resources.files("anomstream.detect") / "specs"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_spec(ref: str) -> DetectorSpecs:
    """Load a TOML spec by path, or by the name of a shipped spec; every detector is built once to check it.

    Examples
    --------
    >>> load_spec("univariate").for_stream("default").detector in CATALOG
    True
    """
    path = Path(ref)
    if path.is_file():
        specs = load_specs(path)
    elif ref in shipped():
        resource = importlib.resources.files("anomstream.detect") / "specs" / f"{ref}.toml"
        with importlib.resources.as_file(resource) as found:
            specs = load_specs(found)
    else:
        raise ConfigError(f"--spec {ref}: no such file and no shipped spec of that name ({shipped()})")
    validate(specs)
    return specs


def with_detector(specs: DetectorSpecs, stream: str, detector: str) -> DetectorSpecs:
    """``specs`` with ``stream`` scored by ``detector`` at its default params (warm-up, threshold kept)."""
    base = specs.for_stream(stream).model_dump()
    streams = dict(specs.streams)
    streams[stream] = StreamSpec.model_validate({**base, "detector": detector, "params": {}})
    return DetectorSpecs(streams=streams)


@dataclasses.dataclass(frozen=True, slots=True)
class SpecChoice:
    """Which spec set(s) to score with: a spec file or shipped name, one detector, or every detector."""

    spec: str | None = None
    detector: str | None = None
    all_detectors: bool = False
    stream: str | None = None


def chosen_specs(choice: SpecChoice, specs: DetectorSpecs) -> list[tuple[str, DetectorSpecs]]:
    """The named spec sets ``choice`` selects, in order (several only with ``all_detectors``).

    ``specs`` (the service's configured specs) apply unless ``choice.spec`` replaces them.
    """
    stream = choice.stream or "default"
    base = load_spec(choice.spec) if choice.spec else specs
    base_name = Path(choice.spec).stem if choice.spec else "configured"
    if choice.all_detectors:
        # a detector whose optional extra is not installed is left out, not an error
        chosen = [(name, with_detector(base, stream, name)) for name in CATALOG if available(name)]
        return [(base_name, base), *chosen] if choice.spec else chosen
    if choice.detector:
        return [(choice.detector, with_detector(base, stream, choice.detector))]
    return [(f"{base_name} ({base.for_stream(stream).detector})", base)]
