"""Bytes ⇄ wire models: decode and validate events, classify every failure as a dead-letter reason.

``decode_event`` never raises for bad input; it returns an ``Event`` or a ``Rejection``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from datetime import UTC, datetime
from typing import Final, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from anomstream.wire.records import DeadLetter, Event, Feedback, Source

_M = TypeVar("_M", bound=BaseModel)

REASONS: Final = (
    "empty",
    "oversize",
    "invalid_json",
    "not_an_object",
    "non_finite",
    "schema_violation",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input record cannot be processed: ``reason`` is one of ``REASONS``."""

    reason: str
    detail: str


def describe(exc: ValidationError, limit: int) -> str:
    """``field.path: message`` for the first ``limit`` errors, for dead letters and rejected rows."""
    errors = exc.errors(include_url=False, include_input=False)[:limit]
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in errors)


def _classify(exc: ValidationError) -> Rejection:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return Rejection("invalid_json", first["msg"])
    if not first["loc"] and first["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return Rejection("not_an_object", "top-level JSON value must be an object")
    detail = describe(exc, limit=5)
    if any(e["type"] == "finite_number" for e in errors):
        return Rejection("non_finite", detail)
    return Rejection("schema_violation", detail)


def decode_event(raw: bytes | None, max_bytes: int) -> Event | Rejection:
    """Decode one input record; every failure becomes a ``Rejection``, nothing raises.

    Examples
    --------
    >>> decode_event(b'{"entity_id":"a","timestamp":0,"values":{"x":1}}', 1000).values
    {'x': 1.0}
    >>> decode_event(b'{"entity_id":', 1000).reason
    'invalid_json'
    """
    return _decode(Event, raw, max_bytes)


def decode_feedback(raw: bytes | None, max_bytes: int) -> Feedback | Rejection:
    """Decode one feedback record; like ``decode_event``, every failure is a ``Rejection``.

    Examples
    --------
    >>> decode_feedback(b'{"entity_id":"a","verdict":"missed","submitted_at":0}', 1000).reason
    'schema_violation'
    """
    return _decode(Feedback, raw, max_bytes)


def _decode(model: type[_M], raw: bytes | None, max_bytes: int) -> _M | Rejection:
    if not raw:
        return Rejection("empty", "record has no value")
    if len(raw) > max_bytes:
        return Rejection("oversize", f"{len(raw)} bytes > limit {max_bytes}")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        return _classify(exc)
    except (ValueError, OverflowError, RecursionError) as exc:  # pathological input past pydantic
        return Rejection("schema_violation", f"{type(exc).__name__}: {exc}"[:500])


def encode(model: BaseModel) -> bytes:
    """JSON bytes of a wire model (UTF-8, compact)."""
    return model.__pydantic_serializer__.to_json(model)


def encode_event(event: Event) -> bytes:
    """JSON bytes of an event as producers would send it (timestamp as RFC 3339)."""
    return encode(event)


# Base64 grows a record by 4/3: past this many original bytes a dead letter would exceed what a broker
# accepts by default (1 MB), the produce would fail and stop the worker. Larger originals travel as a
# prefix, flagged ``truncated``, with their size and SHA-256; the source coordinates say where the whole
# record still is.
MAX_DEAD_LETTER_ORIGINAL = 700_000


def dead_letter(raw: bytes | None, rejection: Rejection, source: Source) -> DeadLetter:
    """The dead-letter record for a rejected input, carrying the original bytes (a prefix if huge)."""
    data = raw or b""
    kept = data[:MAX_DEAD_LETTER_ORIGINAL]
    return DeadLetter(
        reason=rejection.reason,
        detail=rejection.detail[:2000],
        source=source,
        original=base64.b64encode(kept).decode("ascii"),
        failed_at=datetime.now(UTC),
        original_size=len(data),
        truncated=len(kept) < len(data),
        original_sha256=hashlib.sha256(data).hexdigest(),
    )


def original_bytes(letter: DeadLetter) -> bytes:
    """The exact bytes that were dead-lettered (for re-drive after a fix)."""
    return base64.b64decode(letter.original)


def loads(raw: bytes) -> object:
    """Parse JSON bytes (orjson), for consumers of our own topics."""
    return orjson.loads(raw)
