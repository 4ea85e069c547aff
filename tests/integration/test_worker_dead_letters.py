"""Bad input on a real broker: every malformed record is dead-lettered with a reason; nothing else stops."""

from __future__ import annotations

import base64
import random
from collections import Counter
from collections.abc import Callable

import orjson

from anomstream.wire.codec import REASONS
from anomstream.wire.records import DeadLetter, ScoreRecord
from integration.harness import drain, produce, settings_for, worker_thread

MAX_BYTES = 4096


def _valid(i: int) -> bytes:
    return orjson.dumps(
        {
            "entity_id": f"e{i % 10}",
            "timestamp": 1_700_000_000_000 + i * 1000,
            "values": {"x": random.Random(i).gauss(0, 1)},
        }
    )


_MALFORMED: list[Callable[[int], bytes]] = [
    lambda i: b"",
    lambda i: b"{not json" + str(i).encode(),
    lambda i: b"[1, 2, 3]",
    lambda i: b'{"entity_id": "e1", "timestamp": 1, "values": {"x": NaN}}',
    lambda i: b'{"entity_id": "e1", "timestamp": 1, "values": {"x": 1e999}}',
    lambda i: b'{"entity_id": "e1", "timestamp": 1, "values": {"x": "high"}}',
    lambda i: b'{"timestamp": 1, "values": {"x": 1}}',
    lambda i: b'{"entity_id": "e1", "timestamp": "yesterday", "values": {"x": 1}}',
    lambda i: b'{"entity_id": "e1", "timestamp": 1, "values": {"x": 1}, "pad": "' + b"a" * MAX_BYTES + b'"}',
    lambda i: bytes(random.Random(i).randbytes(64)),
]


def test_malformed_records_are_dead_lettered_and_valid_ones_processed(kafka_bootstrap: str) -> None:
    """1,000 malformed among 2,000 valid: all malformed in the DLQ with a reason, all valid scored."""
    settings = settings_for(kafka_bootstrap, partitions=2, worker={"max_message_bytes": MAX_BYTES})
    rng = random.Random(5)
    kinds = ["bad"] * 1000 + ["good"] * 2000
    rng.shuffle(kinds)
    records = [
        (f"k{i % 10}".encode(), _MALFORMED[i % len(_MALFORMED)](i) if kind == "bad" else _valid(i))
        for i, kind in enumerate(kinds)
    ]
    produce(kafka_bootstrap, settings.topics.events, records)

    with worker_thread(settings) as w:
        letters_raw = drain(kafka_bootstrap, settings.topics.dlq, lambda got: len(got) >= 1000, 90)
        scores = drain(kafka_bootstrap, settings.topics.scores, lambda got: len(got) >= 2000, 90)
        assert w.thread.is_alive(), f"worker exited: {w.error}"
    # Read the counters once the worker has stopped (the worker thread owns the loop until then).
    assert not w.error, w.error
    consumed = w.sample("anomstream_events_consumed_total")
    dead = sum(w.sample("anomstream_events_dead_lettered_total", {"reason": r}) for r in REASONS)
    processed = w.sample("anomstream_events_processed_total", {"stream": "default"})

    letters = [DeadLetter.model_validate_json(bytes(m.value() or b"")) for m in letters_raw]
    assert len(letters) == 1000
    assert len(scores) == 2000
    assert all(letter.reason in REASONS and letter.detail for letter in letters)
    sent = {(r[1]) for r in records}
    assert all(base64.b64decode(letter.original) in sent for letter in letters)
    dl_sources = {(x.source.partition, x.source.offset) for x in letters}
    sc_sources = {
        (s.source.partition, s.source.offset)
        for s in (ScoreRecord.model_validate_json(bytes(m.value() or b"")) for m in scores)
    }
    assert not dl_sources & sc_sources, "a record was both dead-lettered and processed"
    assert (consumed, processed, dead) == (3000, 2000, 1000)
    reasons = Counter(x.reason for x in letters)
    assert set(reasons) == set(REASONS), reasons
