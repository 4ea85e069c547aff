"""The worker's direct score-record encoding writes the same JSON as encoding the pydantic model."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from anomstream.detect.scorer import Decision, Outcome, Scorer, score_json, score_record
from anomstream.detect.spec import DetectorSpecs, StreamSpec
from anomstream.detect.store import Registry
from anomstream.wire.codec import encode
from anomstream.wire.records import Event, Expected, ScoreRecord, Source

SPECS = DetectorSpecs(streams={"default": StreamSpec(detector="zscore"), "m": StreamSpec(detector="hst")})
finite = st.floats(allow_nan=False, allow_infinity=False)
unit = st.floats(min_value=0.0, max_value=1.0)
names = st.text(min_size=1, max_size=8)
moments = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)


def _expected(mean: float) -> Expected:
    return Expected(mean=mean, low=mean - 1, high=mean + 1)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[Event, Source, Outcome, dict[str, Expected] | None]:
    event = Event(
        entity_id=draw(names),
        timestamp=draw(moments),
        values=draw(st.dictionaries(names, finite, min_size=1, max_size=4)),
        stream=draw(st.sampled_from(["default", "m", "unknown"])),
    )
    source = Source(topic="events", partition=3, offset=draw(st.integers(min_value=0, max_value=2**62)))
    decision = draw(st.sampled_from(list(Decision)))
    outcome = Outcome(draw(unit), draw(unit), decision, probability=draw(st.none() | unit))
    bands = draw(st.none() | st.dictionaries(names, finite.filter(lambda v: abs(v) < 1e300), max_size=3))
    expected = None if bands is None else {k: _expected(v) for k, v in bands.items()}
    return event, source, outcome, expected


@settings(max_examples=300, deadline=None)
@given(case=_cases())
def test_score_json_equals_the_encoded_model(
    case: tuple[Event, Source, Outcome, dict[str, Expected] | None],
) -> None:
    """For any event and outcome, ``score_json`` is byte-identical to ``encode(score_record(...))``."""
    event, source, outcome, expected = case
    fast = score_json(event, source, outcome, SPECS, expected)
    assert fast == encode(score_record(event, source, outcome, SPECS, expected))
    assert ScoreRecord.model_validate_json(fast).source == source


def test_score_json_of_real_outcomes_with_alerts_and_numpy_scores() -> None:
    """Outcomes from the real scorer, alerts and numpy floats included, encode like the model."""
    scorer = Scorer(SPECS, Registry(max_keys=100, ttl_s=1e9, clock=lambda: 0.0))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    alerted = 0
    for i in range(300):
        x = 50.0 if i == 250 else math.sin(i / 5)
        event = Event(entity_id="k", timestamp=t0 + timedelta(minutes=i), values={"x": x})
        source = Source(topic="events", partition=0, offset=i)
        outcome = scorer.process(event, source)
        bands = scorer.bands(event)
        alerted += outcome.alert is not None
        assert score_json(event, source, outcome, SPECS, bands) == encode(
            score_record(event, source, outcome, SPECS, bands)
        )
    assert alerted >= 1
    numpy_score = Outcome(
        np.float64(0.25), np.float64(0.5), Decision.NORMAL
    )  # detectors may return numpy floats
    event = Event(entity_id="k", timestamp=t0, values={"x": 1.0})
    record = ScoreRecord.model_validate_json(
        score_json(event, Source(topic="e", partition=0, offset=0), numpy_score, SPECS)
    )
    assert (record.score, record.threshold) == (0.25, 0.5)
