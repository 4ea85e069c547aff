"""JSON Schemas of the wire contract, generated from the pydantic models (never written by hand)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from anomstream.wire.records import WIRE_MODELS

BASE_URI = "https://anomstream.dev/schemas/"


def render(name: str) -> dict[str, Any]:
    """The JSON Schema of one wire model, with ``$schema`` and ``$id`` set."""
    schema = WIRE_MODELS[name].model_json_schema(mode="serialization" if name != "event" else "validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{BASE_URI}{name}.json",
        **schema,
    }


def dumps(schema: dict[str, Any]) -> bytes:
    """Stable, diff-friendly JSON (sorted keys, two-space indent, trailing newline)."""
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def export(out: Path) -> list[Path]:
    """Write ``<name>.schema.json`` for every wire model into ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in WIRE_MODELS:
        path = out / f"{name}.schema.json"
        path.write_bytes(dumps(render(name)))
        paths.append(path)
    return paths
