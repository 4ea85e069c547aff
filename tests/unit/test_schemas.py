"""The committed JSON Schemas match the models, and real records validate against them.

``jsonschema`` is not a dependency, so records are checked by a small validator for exactly the keywords
pydantic emits here; an unknown keyword fails the test rather than being silently ignored.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import pytest

from anomstream.detect.scorer import Scorer
from anomstream.detect.spec import DetectorSpecs, LifecycleSpec, StreamSpec, ThresholdSpec
from anomstream.detect.store import Registry
from anomstream.ops import demo
from anomstream.wire import codec, schemas
from anomstream.wire.records import WIRE_MODELS, Alert, Event, Feedback, Source

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "schemas"


@pytest.mark.parametrize("name", sorted(WIRE_MODELS))
def test_committed_schema_matches_model(name: str) -> None:
    """``schemas/<name>.schema.json`` is exactly what the model renders (else run ``make schemas``)."""
    path = SCHEMA_DIR / f"{name}.schema.json"
    expected = schemas.dumps(schemas.render(name))
    assert path.exists(), f"{path.relative_to(ROOT)} is missing: run `make schemas` and commit the result"
    assert path.read_bytes() == expected, (
        f"{path.relative_to(ROOT)} is out of date with the wire records: run `make schemas` and commit it"
    )


def test_no_stale_schema_files() -> None:
    """Every committed schema file belongs to a current wire model."""
    committed = {p.name.removesuffix(".schema.json") for p in SCHEMA_DIR.glob("*.schema.json")}
    assert committed == set(WIRE_MODELS), "stale or missing schema files: run `make schemas`"


def test_export_writes_identical_files(tmp_path: Path) -> None:
    """``schemas.export`` writes the same bytes as are committed."""
    for path in schemas.export(tmp_path):
        assert path.read_bytes() == (SCHEMA_DIR / path.name).read_bytes()


# -- a minimal validator for the keywords these schemas use ----------------------------------------------

_ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "default", "format", "examples"}
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _errors(value: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "$") -> list[str]:
    unknown = set(schema) - _ANNOTATIONS - _KEYWORDS
    assert not unknown, f"validator does not support {sorted(unknown)} at {path}"
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), ref
        return _errors(value, root["$defs"][ref.removeprefix("#/$defs/")], root, path)
    if "anyOf" in schema:
        options = [_errors(value, option, root, path) for option in schema["anyOf"]]
        return [] if any(not o for o in options) else [f"{path}: matches no anyOf option: {options}"]
    errs: list[str] = []
    if "type" in schema:
        kinds = _TYPES[schema["type"]]
        if not isinstance(value, kinds) or (isinstance(value, bool) and schema["type"] != "boolean"):
            return [f"{path}: {value!r} is not of type {schema['type']}"]
    if "enum" in schema and value not in schema["enum"]:
        errs.append(f"{path}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        errs.append(f"{path}: {value!r} != {schema['const']!r}")
    if "minimum" in schema and value < schema["minimum"]:
        errs.append(f"{path}: {value} < {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errs.append(f"{path}: {value} > {schema['maximum']}")
    if "minLength" in schema and len(value) < schema["minLength"]:
        errs.append(f"{path}: shorter than {schema['minLength']}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errs.append(f"{path}: longer than {schema['maxLength']}")
    if isinstance(value, dict):
        errs += _object_errors(value, schema, root, path)
    return errs


def _object_errors(
    value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], path: str
) -> list[str]:
    errs = [f"{path}: missing required {k!r}" for k in schema.get("required", []) if k not in value]
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        errs.append(f"{path}: fewer than {schema['minProperties']} properties")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errs.append(f"{path}: more than {schema['maxProperties']} properties")
    properties: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if "propertyNames" in schema:
            errs += _errors(key, schema["propertyNames"], root, f"{path}[name {key!r}]")
        if key in properties:
            errs += _errors(item, properties[key], root, f"{path}.{key}")
        elif extra is False:
            errs.append(f"{path}: unexpected property {key!r}")
        elif isinstance(extra, dict):
            errs += _errors(item, extra, root, f"{path}.{key}")
    return errs


_KEYWORDS = {
    "$ref",
    "anyOf",
    "type",
    "enum",
    "const",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "required",
    "properties",
    "additionalProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
}


def _validate(name: str, record: object) -> list[str]:
    schema = orjson.loads((SCHEMA_DIR / f"{name}.schema.json").read_bytes())
    assert isinstance(schema, dict)
    return _errors(record, schema, schema)


def test_validator_rejects_bad_records() -> None:
    """The test validator does catch missing, extra, mistyped and out-of-range fields."""
    assert _validate("event", {"entity_id": "a", "timestamp": 0}) != []
    assert _validate("event", {"entity_id": "a", "timestamp": -1, "values": {"x": 1.0}}) != []
    assert _validate("event", {"entity_id": "a", "timestamp": 0, "values": {"x": True}}) != []
    assert _validate("event", {"entity_id": "", "timestamp": 0, "values": {"x": 1.0}}) != []
    assert _validate("feedback", {"alert_id": "a", "entity_id": "e", "verdict": "maybe"}) != []
    letter = orjson.loads(codec.encode(codec.dead_letter(b"x", codec.Rejection("empty", "d"), _src(0))))
    assert _validate("dead_letter", {**letter, "surprise": 1}) != []


# -- real records ----------------------------------------------------------------------------------------


def _src(offset: int) -> Source:
    return Source(topic="events", partition=0, offset=offset)


def test_demo_events_validate() -> None:
    """Demo events, as produced on the wire, validate against the event schema."""
    for item in islice(demo.generate(demo.DemoConfig(entities=4, spike_prob=0.2, warmup=2)), 60):
        assert _validate("event", orjson.loads(codec.encode_event(item.event))) == []


def test_epoch_millisecond_event_validates() -> None:
    """The epoch-milliseconds form producers may send validates too."""
    record = {"entity_id": "pump-1", "timestamp": 1_700_000_000_000, "values": {"t": 71.5}, "extra": [1]}
    assert _validate("event", record) == []


def _alerts() -> list[Alert]:
    spec = StreamSpec(
        detector="zscore",
        threshold=ThresholdSpec(kind="quantile"),
        lifecycle=LifecycleSpec(cooldown_s=0, adapt_after=5, protect=True, realert="cooldown"),
    )
    scorer = Scorer(DetectorSpecs(streams={"default": spec}), Registry(10, 1e9, clock=lambda: 0.0))
    rng = random.Random(2)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    values = [{"a": rng.gauss(0, 1), "b": rng.gauss(9, 1)} for _ in range(100)]
    values += [{"a": 40.0, "b": 9.0}] * 6  # open, ongoing ×3, then adopted as a shift: resolved
    alerts = []
    for i, x in enumerate(values):
        event = Event(entity_id="e", timestamp=t0 + timedelta(seconds=i), values=x, attributes={"k": "v"})
        outcome = scorer.process(event, _src(i))
        if outcome.alert is not None:
            alerts.append(outcome.alert)
    return alerts


def test_scorer_alerts_validate() -> None:
    """Open, ongoing and resolved alerts from the scorer validate against the alert schema."""
    alerts = _alerts()
    assert {a.status for a in alerts} == {"open", "ongoing", "resolved"}
    for alert in alerts:
        assert _validate("alert", orjson.loads(codec.encode(alert))) == []


def test_dead_letter_and_feedback_validate() -> None:
    """A dead letter from the codec and a feedback record validate against their schemas."""
    raw = b"[1, 2]"
    rejection = codec.decode_event(raw, 100)
    assert isinstance(rejection, codec.Rejection)
    letter = codec.dead_letter(raw, rejection, _src(9))
    assert _validate("dead_letter", orjson.loads(codec.encode(letter))) == []
    feedback = Feedback(
        alert_id="x", entity_id="e", verdict="false_positive", submitted_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert _validate("feedback", orjson.loads(codec.encode(feedback))) == []
