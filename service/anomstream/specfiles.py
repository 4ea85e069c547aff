"""Choosing what to replay or evaluate: a spec file, a shipped spec, or a catalog detector at defaults."""

from __future__ import annotations

import argparse
import importlib.resources
from pathlib import Path

from anomstream.detectors.catalog import CATALOG, validate
from anomstream.errors import ConfigError
from anomstream.spec import DetectorSpecs, StreamSpec, load_specs


def shipped() -> list[str]:
    """Names of the spec files shipped in ``anomstream/specs`` (e.g. ``univariate``).

    Examples
    --------
    >>> "univariate" in shipped()
    True
    """
    folder = importlib.resources.files("anomstream") / "specs"
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
        resource = importlib.resources.files("anomstream") / "specs" / f"{ref}.toml"
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


def add_spec_options(parser: argparse.ArgumentParser, *, all_detectors: bool = False) -> None:
    """``--spec`` and ``--detector`` (and ``--all-detectors`` for evaluate)."""
    parser.add_argument(
        "--spec", help=f"TOML detector spec file, or a shipped spec name ({', '.join(shipped())})"
    )
    parser.add_argument(
        "--detector", choices=sorted(CATALOG), help="score with this catalog detector at default params"
    )
    if all_detectors:
        parser.add_argument(
            "--all-detectors", action="store_true", help="evaluate every catalog detector in turn"
        )


def chosen_specs(args: argparse.Namespace, specs: DetectorSpecs) -> list[tuple[str, DetectorSpecs]]:
    """The named spec sets the options select, in order (several only with ``--all-detectors``).

    ``specs`` (the service's configured specs) apply unless ``--spec`` replaces them.
    """
    stream = getattr(args, "stream", None) or "default"
    base = load_spec(args.spec) if args.spec else specs
    base_name = Path(args.spec).stem if args.spec else "configured"
    if getattr(args, "all_detectors", False):
        chosen = [(name, with_detector(base, stream, name)) for name in CATALOG]
        return [(base_name, base), *chosen] if args.spec else chosen
    if args.detector:
        return [(args.detector, with_detector(base, stream, args.detector))]
    return [(f"{base_name} ({base.for_stream(stream).detector})", base)]
