"""Decoding input records: every dead-letter reason, timestamp forms, fuzzing, and the encode round trip."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomstream.wire import codec
from anomstream.wire.codec import Rejection, decode_event, encode_event
from anomstream.wire.records import Event, Source

MAX = 10_000
SOURCE = Source(topic="events", partition=3, offset=42)


def _reject(raw: bytes | None, max_bytes: int = MAX) -> Rejection:
    result = decode_event(raw, max_bytes)
    assert isinstance(result, Rejection), result
    assert result.reason in codec.REASONS
    return result


def _accept(raw: bytes) -> Event:
    result = decode_event(raw, MAX)
    assert isinstance(result, Event), result
    return result


def _event_json(**fields: Any) -> bytes:
    base: dict[str, Any] = {"entity_id": "pump-1", "timestamp": 1_700_000_000_000, "values": {"x": 1.5}}
    base.update(fields)
    return json.dumps(base, separators=(",", ":")).encode()


# -- one example per reason ----------------------------------------------------------------------------

REASON_EXAMPLES: list[tuple[str, bytes | None, str]] = [
    ("empty", b"", "empty bytes"),
    ("empty", None, "tombstone (no value)"),
    ("oversize", b"{" + b" " * MAX + b"}", "one byte past the limit"),
    ("invalid_json", b'{"entity_id":', "truncated"),
    ("invalid_json", b"\xff\xfe", "not UTF-8"),
    ("invalid_json", b"{'entity_id': 'a'}", "single quotes"),
    ("invalid_json", b'{"entity_id":"a",}', "trailing comma"),
    ("not_an_object", b"[1, 2]", "array"),
    ("not_an_object", b'"text"', "string"),
    ("not_an_object", b"3.5", "number"),
    ("not_an_object", b"null", "null"),
    ("not_an_object", b"true", "boolean"),
    ("non_finite", b'{"entity_id":"a","timestamp":0,"values":{"x":1e999}}', "1e999 overflows to inf"),
    ("non_finite", b'{"entity_id":"a","timestamp":0,"values":{"x":NaN}}', "NaN literal"),
    ("non_finite", b'{"entity_id":"a","timestamp":0,"values":{"x":-Infinity}}', "-Infinity literal"),
    ("non_finite", b'{"entity_id":"a","timestamp":0,"values":{"ok":1,"x":Infinity}}', "one bad of two"),
    ("schema_violation", _event_json(values={"x": True}), "boolean value"),
    ("schema_violation", _event_json(values={"x": "1.5"}), "numeric string value"),
    ("schema_violation", _event_json(values={"x": None}), "null value"),
    ("schema_violation", _event_json(values={}), "no values"),
    ("schema_violation", _event_json(values={"": 1.0}), "empty feature name"),
    ("schema_violation", _event_json(values={str(i): 0 for i in range(1001)}), "too many values"),
    ("schema_violation", b'{"timestamp":0,"values":{"x":1}}', "missing entity_id"),
    ("schema_violation", _event_json(entity_id=""), "empty entity_id"),
    ("schema_violation", _event_json(entity_id=7), "numeric entity_id"),
    ("schema_violation", _event_json(entity_id="e" * 257), "entity_id too long"),
    ("schema_violation", b'{"entity_id":"a","values":{"x":1}}', "missing timestamp"),
    ("schema_violation", _event_json(timestamp="yesterday"), "unparseable timestamp"),
    ("schema_violation", _event_json(timestamp=True), "boolean timestamp"),
    ("schema_violation", _event_json(timestamp=-1), "negative epoch ms"),
    ("schema_violation", _event_json(timestamp=253_402_300_800_000), "epoch ms past year 9999"),
    ("schema_violation", _event_json(timestamp=None), "null timestamp"),
    ("schema_violation", _event_json(stream=""), "empty stream"),
    ("schema_violation", _event_json(attributes={"k": 5}), "non-string attribute"),
    ("schema_violation", _event_json(attributes={f"k{i}": "v" for i in range(65)}), "too many attributes"),
]


@pytest.mark.parametrize(("reason", "raw", "why"), REASON_EXAMPLES, ids=[w for _, _, w in REASON_EXAMPLES])
def test_rejection_reason(reason: str, raw: bytes | None, why: str) -> None:
    """Each kind of bad record is rejected with its dead-letter reason and a non-empty detail."""
    rejection = _reject(raw)
    assert rejection.reason == reason, (why, rejection)
    assert rejection.detail


def test_every_reason_has_an_example() -> None:
    """The example table covers every reason the codec can give."""
    assert {r for r, _, _ in REASON_EXAMPLES} == set(codec.REASONS)


def test_size_limit_is_inclusive() -> None:
    """A record of exactly ``max_bytes`` is decoded; one byte more is oversize."""
    raw = _event_json()
    assert isinstance(decode_event(raw, len(raw)), Event)
    assert _reject(raw, len(raw) - 1).reason == "oversize"


def test_schema_violation_names_the_field() -> None:
    """The detail of a schema violation names the offending field."""
    assert "entity_id" in _reject(b'{"timestamp":0,"values":{"x":1}}').detail
    assert "values.x" in _reject(_event_json(values={"x": True})).detail


# -- timestamps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1_700_000_000_000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (1_700_000_000_000.5, datetime(2023, 11, 14, 22, 13, 20, 500, tzinfo=UTC)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T02:00:00+02:00", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2025-12-31T19:00:00.250-05:00", datetime(2026, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC)),
        ("2026-01-01T00:00:00", datetime(2026, 1, 1, tzinfo=UTC)),  # naive text is taken as UTC
    ],
)
def test_timestamp_forms(timestamp: float | str, expected: datetime) -> None:
    """Epoch milliseconds and RFC 3339 text decode to the same aware instant."""
    event = _accept(_event_json(timestamp=timestamp))
    assert event.timestamp == expected
    assert event.timestamp.tzinfo is not None
    assert event.timestamp.utcoffset() is not None


def test_defaults_and_extra_fields() -> None:
    """``stream`` defaults to ``default``, attributes to empty; unknown fields are ignored; ints → floats."""
    event = _accept(_event_json(values={"x": 3}, producer_version="1.2"))
    assert (event.stream, event.attributes, event.values) == ("default", {}, {"x": 3.0})
    assert isinstance(event.values["x"], float)


def test_dead_letter_keeps_the_original_bytes() -> None:
    """A dead letter records reason, detail and source, and returns the exact original bytes."""
    raw = b'{"entity_id": \xff'
    rejection = _reject(raw)
    letter = codec.dead_letter(raw, rejection, SOURCE)
    assert (letter.reason, letter.source) == (rejection.reason, SOURCE)
    assert codec.original_bytes(letter) == raw
    assert codec.original_bytes(codec.dead_letter(None, _reject(None), SOURCE)) == b""
    parsed = codec.loads(codec.encode(letter))
    assert isinstance(parsed, dict)
    assert parsed["reason"] == "invalid_json"


# -- fuzzing ---------------------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
any_json = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)


def _check(raw: bytes) -> None:
    """``decode_event`` returns an Event or a Rejection with a known reason; an Event re-encodes to itself."""
    result = decode_event(raw, MAX)
    if isinstance(result, Rejection):
        assert result.reason in codec.REASONS
        assert isinstance(result.detail, str)
        assert codec.original_bytes(codec.dead_letter(raw, result, SOURCE)) == raw
        return
    assert isinstance(result, Event)
    assert result.timestamp.tzinfo is not None
    assert all(type(v) is float for v in result.values.values())
    assert decode_event(encode_event(result), MAX * 4) == result


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2 * MAX))
def test_fuzz_arbitrary_bytes(raw: bytes) -> None:
    """Arbitrary bytes never make ``decode_event`` raise."""
    _check(raw)


@settings(max_examples=300, deadline=None)
@given(any_json)
def test_fuzz_arbitrary_json(value: object) -> None:
    """Arbitrary JSON (incl. NaN, Infinity, huge integers) never makes ``decode_event`` raise."""
    _check(json.dumps(value).encode())


timestamps = (
    st.integers()
    | st.floats()
    | st.booleans()
    | st.text(max_size=30)
    | st.datetimes(timezones=st.none() | st.just(UTC)).map(datetime.isoformat)
    | any_json
)
feature_values = st.floats() | st.integers() | st.booleans() | st.none() | st.text(max_size=5) | any_json
event_like = st.fixed_dictionaries(
    {},
    optional={
        "entity_id": st.text(max_size=300) | any_json,
        "timestamp": timestamps,
        "values": st.dictionaries(st.text(max_size=130), feature_values, max_size=5) | any_json,
        "stream": st.text(max_size=130) | any_json,
        "attributes": st.dictionaries(st.text(max_size=10), st.text(max_size=10) | any_json, max_size=3)
        | any_json,
        "extra": any_json,
    },
)


@settings(max_examples=300, deadline=None)
@given(event_like)
def test_fuzz_event_shaped_dicts(value: dict[str, object]) -> None:
    """Event-shaped objects with random field types are decoded or rejected, never raise."""
    _check(json.dumps(value).encode())


# -- round trip ------------------------------------------------------------------------------------------

offsets = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=2)),
        timezone(timedelta(hours=-5, minutes=-30)),
        timezone(timedelta(hours=14)),
    ]
)
valid_events = st.builds(
    Event,
    entity_id=st.text(min_size=1, max_size=256),
    timestamp=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
    ),
    values=st.dictionaries(
        st.text(min_size=1, max_size=128),
        st.floats(allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=8,
    ),
    stream=st.text(min_size=1, max_size=128),
    attributes=st.dictionaries(st.text(max_size=20), st.text(max_size=100), max_size=5),
)


@settings(max_examples=300, deadline=None)
@given(valid_events)
def test_encode_decode_round_trip(event: Event) -> None:
    """``decode_event(encode_event(e)) == e`` for every valid event."""
    raw = encode_event(event)
    decoded = decode_event(raw, len(raw))
    assert decoded == event
    assert isinstance(decoded, Event)
    assert decoded.timestamp.utcoffset() == event.timestamp.utcoffset()


def test_a_huge_rejected_record_travels_as_a_flagged_prefix() -> None:
    """A dead letter stays under a broker's 1 MB limit: past 700 kB the original is a prefix, flagged."""
    raw = b"{" + b"x" * 2_000_000
    letter = codec.dead_letter(raw, codec.Rejection("oversize", "too big"), SOURCE)
    assert len(codec.encode(letter)) < 1_000_000
    assert letter.truncated
    assert letter.original_size == len(raw)
    assert codec.original_bytes(letter) == raw[: codec.MAX_DEAD_LETTER_ORIGINAL]
    assert letter.original_sha256 == hashlib.sha256(raw).hexdigest()
    small = codec.dead_letter(b"oops", codec.Rejection("invalid_json", "d"), SOURCE)
    assert not small.truncated
    assert codec.original_bytes(small) == b"oops"
