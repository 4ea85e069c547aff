"""Hostile input for the end-to-end fuzz test: hypothesis-generated records and mutated real events.

Deterministic (seeded): the same 100k records every run, so a failure can be replayed.
"""

from __future__ import annotations

import json
import random
import unicodedata
from collections.abc import Callable, Iterator

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from anomstream.wire.codec import encode_event
from integration.faults import stream

Record = tuple[bytes | None, bytes | None]
BIG = 1_000_000  # "1 MB strings"

_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.text(max_size=20),
)
_json = st.recursive(
    _scalar, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4)
)
_event = st.fixed_dictionaries(
    {
        "entity_id": st.one_of(st.text(max_size=12), _scalar),
        "timestamp": st.one_of(
            st.integers(min_value=-(10**20), max_value=10**20), st.text(max_size=30), _scalar
        ),
        "values": st.one_of(st.dictionaries(st.text(max_size=6), _scalar, max_size=6), _json),
    },
    optional={"stream": _json, "attributes": st.dictionaries(st.text(max_size=6), _json, max_size=3)},
)


def hypothesis_records(n: int) -> list[bytes]:
    """``n`` event-shaped (and shapeless) JSON documents drawn by hypothesis."""
    drawn: list[bytes] = []

    @settings(
        max_examples=n,
        database=None,
        phases=[Phase.generate],
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(st.one_of(_event, _json))
    def collect(doc: object) -> None:
        drawn.append(json.dumps(doc, allow_nan=True).encode())

    collect()
    return drawn


def _deep(raw: dict[str, object], rng: random.Random) -> bytes:
    depth = rng.choice([100, 1000, 5000, 50_000])
    return (
        json.dumps({**raw, "values": {"x": 1}}).encode()[:-1] + b',"n":' + b"[" * depth + b"]" * depth + b"}"
    )


def _mutators(rng: random.Random, big: int) -> list[Callable[[dict[str, object], bytes], bytes]]:
    nfc, nfd = unicodedata.normalize("NFC", "caf\u00e9"), unicodedata.normalize("NFD", "caf\u00e9")
    return [
        lambda d, b: json.dumps({**d, "values": {"x": 1e308 * 10}}, allow_nan=True).encode(),  # inf
        lambda d, b: b.replace(b'"values": {', b'"values": {"huge": 1' + b"0" * 400 + b", ", 1),
        lambda d, b: json.dumps({**d, "values": {"x": -1.7976931348623157e308, "y": 5e-324}}).encode(),
        lambda d, b: _deep(d, rng),
        lambda d, b: json.dumps({**d, "values": {f"f{i}": float(i) for i in range(10_000)}}).encode(),
        lambda d, b: json.dumps({**d, "attributes": {"blob": "x" * (big - 2000)}}).encode(),
        lambda d, b: json.dumps({**d, "entity_id": "e" * (big + 10)}).encode(),
        lambda d, b: b[:10] + b"\xff\xfe\xc3\x28" + b[10:],  # invalid UTF-8
        lambda d, b: b.replace(b'"entity_id": "', b'"entity_id": "dup-", "entity_id": "', 1),
        lambda d, b: b.replace(b'"values": {', b'"values": {"x": 1, "x": 2, ', 1),
        lambda d, b: json.dumps({**d, "values": {nfc: 1.0, nfd: 2.0}}).encode(),
        lambda d, b: json.dumps({**d, "entity_id": rng.choice([nfc, nfd])}).encode(),
        lambda d, b: b[: rng.randrange(1, max(2, len(b)))],  # truncated
        lambda d, b: bytes(c ^ 0xFF if rng.random() < 0.05 else c for c in b),  # bit flips
        lambda d, b: b"",
        lambda d, b: b'"just a string"',
    ]


def hostile(total: int, seed: int = 16, drawn: int = 2000, *, oversize: bool = True) -> Iterator[Record]:
    """``total`` records: hypothesis documents, mutated real events, and real events (keyed).

    ``oversize=False`` keeps the big strings at 700 kB: a dead letter carries its original base64
    (4/3 the size), and one past the producer's 1 MB limit stops the worker (the test's xfail).
    """
    rng = random.Random(seed)
    generated = hypothesis_records(drawn)
    real = stream(5000, entities=50, seed=seed)
    mutators = _mutators(rng, BIG if oversize else 700_000)
    big = 0
    for i in range(total):
        item = real[i % len(real)]
        key = item.event.entity_id.encode()
        roll = rng.random()
        if roll < 0.3:
            yield key, generated[i % len(generated)]
        elif roll < 0.6:
            mutate = mutators[rng.randrange(len(mutators))]
            if mutate in (mutators[4], mutators[5], mutators[6]):
                big += 1
                if big > 60:  # bound the megabyte records: 60 of them is ~50 MB through the broker
                    mutate = mutators[0]
            base = encode_event(item.event)
            yield key, mutate(json.loads(base), base)
        else:
            yield key, encode_event(item.event)
