"""Wire contract as pydantic v2 models: Event in, Alert and DeadLetter out, Feedback from users.

``schemas/*.schema.json`` are generated from these models (``anomstream export-schemas``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

# 2: alerts carry kind, probability and view; score records carry probability.
SCHEMA_VERSION = 2

EntityId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
# A number, not a boolean or a numeric string, and finite: checked inside pydantic-core (no Python
# validator per event; that loop was a fifth of decoding).
FiniteNumber = Annotated[float, Strict(), AllowInfNan(False)]
Status = Literal["open", "ongoing", "resolved"]
Severity = Literal["low", "medium", "high", "critical"]
# point: one value is unusual; contextual: unusual for its time (season); collective: a sequence is;
# population: many keys of a stream at once; silent: a key stopped sending; shift: a lasting change.
Kind = Literal["point", "contextual", "collective", "population", "silent", "shift"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_datetime(value: object) -> object:
    """Epoch milliseconds (int/float) become an aware UTC datetime; strings go to pydantic (RFC 3339)."""
    if isinstance(value, bool):
        raise ValueError("timestamp must be RFC 3339 text or epoch milliseconds, not a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value < 253_402_300_800_000:
            raise ValueError("epoch milliseconds out of range")
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    return value


class Event(_Wire):
    """One observation of one entity (input topic; message key = ``entity_id``).

    Examples
    --------
    >>> e = Event.model_validate({"entity_id": "pump-1", "timestamp": 1700000000000,
    ...                           "values": {"temp": 71.5}})
    >>> e.stream, e.timestamp.isoformat()
    ('default', '2023-11-14T22:13:20+00:00')
    """

    model_config = ConfigDict(
        extra="ignore",  # producers may add fields we don't use
        frozen=True,
        json_schema_extra={"description": "One observation of one entity; message key = entity_id."},
    )

    entity_id: EntityId
    timestamp: Annotated[
        datetime,
        WithJsonSchema(
            {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number", "minimum": 0}]}
        ),
    ] = Field(description="RFC 3339 text or epoch milliseconds")
    values: dict[FeatureName, FiniteNumber] = Field(min_length=1, max_length=1000)
    stream: Annotated[str, StringConstraints(min_length=1, max_length=128)] = "default"
    attributes: dict[str, Annotated[str, StringConstraints(max_length=1024)]] = Field(
        default_factory=dict, max_length=64
    )

    _coerce_ts = field_validator("timestamp", mode="before")(_as_datetime)

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Source(_Wire):
    """Where a record came from; with the detector it makes ``alert_id`` deterministic."""

    topic: str
    partition: int
    offset: int


class Expected(_Wire):
    """What the model expected of one feature: centre and the band counted as normal."""

    mean: float
    low: float
    high: float


class Alert(_Wire):
    """An anomaly finding about one entity (alert topic; message key = ``entity_id``)."""

    schema_version: int = SCHEMA_VERSION
    alert_id: str
    entity_id: str
    stream: str
    timestamp: datetime
    detected_at: datetime
    status: Status
    severity: Severity
    score: float = Field(ge=0, le=1)
    threshold: float = Field(ge=0, le=1)
    detector: str
    values: dict[str, float]
    expected: dict[str, Expected]
    contributions: dict[str, float] = Field(description="share of the score per feature, sums to 1")
    source: Source
    attributes: dict[str, str] = Field(default_factory=dict)
    kind: Kind = "point"
    probability: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="tail probability of the point under the key's own history (None: uncalibrated score)",
    )
    view: str = Field(default="", description="what fired: the winning feature and view, e.g. cpu.level")


class DeadLetter(_Wire):
    """An input record that could not be processed, with why and from where."""

    schema_version: int = SCHEMA_VERSION
    reason: str = Field(description="machine-readable category, e.g. invalid_json")
    detail: str
    source: Source
    original: str = Field(description="the original bytes, base64 (a prefix when truncated)")
    failed_at: datetime
    original_size: int = Field(default=0, ge=0, description="length of the original record in bytes")
    truncated: bool = Field(
        default=False, description="the original was too large for a dead letter: re-read it at source"
    )
    original_sha256: str = Field(default="", description="hex SHA-256 of the whole original record")


class ScoreRecord(_Wire):
    """Every event's verdict (optional score topic): a per-record score stream, like RCF services emit."""

    schema_version: int = SCHEMA_VERSION
    entity_id: str
    stream: str
    timestamp: datetime
    detector: str
    score: float = Field(ge=0, le=1)
    threshold: float = Field(ge=0, le=1)
    anomalous: bool
    warming: bool
    alert_id: str | None = None
    source: Source
    probability: float | None = Field(default=None, ge=0, le=1, description="tail probability, if calibrated")
    values: dict[str, float] = Field(default_factory=dict, description="the event's scored values")
    expected: dict[str, Expected] = Field(
        default_factory=dict, description="the band per feature (only with worker.score_bands)"
    )
    suppressed_alert_id: str | None = Field(
        default=None, description="an alert the feedback re-ranker held back as a confident false positive"
    )


Verdict = Literal["true_positive", "false_positive", "missed"]


class Feedback(_Wire):
    """A person's verdict (feedback topic; key = ``entity_id``, partition = the key's input partition).

    ``true_positive`` / ``false_positive`` judge one alert (``alert_id``); ``missed`` says the key was
    anomalous from ``start`` to ``end`` and nothing alerted. ``score`` and ``features`` copy what the
    alert (or the worst point of a missed range) looked like, so applying a verdict depends only on the
    feedback stream, never on what the worker still remembers: replaying events and feedback gives the
    same thresholds.

    Examples
    --------
    >>> fb = Feedback.model_validate({"entity_id": "pump-1", "verdict": "false_positive",
    ...                               "alert_id": "a1", "score": 0.45, "submitted_at": 0})
    >>> fb.stream, fb.score
    ('default', 0.45)
    """

    schema_version: int = SCHEMA_VERSION
    entity_id: EntityId
    stream: Annotated[str, StringConstraints(min_length=1, max_length=128)] = "default"
    verdict: Verdict
    alert_id: str | None = Field(
        default=None, max_length=128, description="required for a verdict on an alert"
    )
    start: datetime | None = Field(default=None, description="missed: first event time of the range")
    end: datetime | None = Field(default=None, description="missed: last event time of the range")
    score: float | None = Field(
        default=None, ge=0, le=1, description="the alert's score (missed: the range's highest score)"
    )
    features: dict[FeatureName, float] = Field(
        default_factory=dict,
        max_length=256,
        description="re-ranker features of the alert (reranker.features)",
    )
    detector: str = Field(default="", max_length=128, description="the alert's detector (precision metrics)")
    comment: str = Field(default="", max_length=2000)
    submitted_by: str = Field(default="", max_length=128)
    submitted_at: datetime

    _coerce_ts = field_validator("submitted_at", "start", "end", mode="before")(_as_datetime)

    @field_validator("features")
    @classmethod
    def _finite(cls, value: dict[str, float]) -> dict[str, float]:
        if not all(math.isfinite(v) for v in value.values()):
            raise ValueError("features must be finite numbers")
        return value

    @model_validator(mode="after")
    def _complete(self) -> Feedback:
        if self.verdict == "missed":
            if self.start is None or self.end is None:
                raise ValueError("a missed verdict needs start and end")
            if self.end < self.start:
                raise ValueError("end is before start")
        elif not self.alert_id:
            raise ValueError(f"a {self.verdict} verdict needs alert_id")
        return self


WIRE_MODELS: dict[str, type[BaseModel]] = {
    "event": Event,
    "alert": Alert,
    "dead_letter": DeadLetter,
    "score": ScoreRecord,
    "feedback": Feedback,
}
