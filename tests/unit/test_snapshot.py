"""Snapshot envelopes: authenticated before anything is parsed, refused when tampered or foreign."""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import struct
from pathlib import Path

import orjson
import pytest

from anomstream.detect.spec import StreamSpec
from anomstream.detect.store import KeyState
from anomstream.errors import SnapshotError
from anomstream.stream import snapshot

KEY = b"test-secret"


def _trained_state() -> KeyState:
    state = KeyState(StreamSpec(detector="zscore"), partition=2, now=0.0)
    for i in range(50):
        state.detector.learn_one({"x": float(i % 7)})
        state.n_seen += 1
    state.offset = 1234
    return state


def _forge(payload: bytes, header: dict[str, object], secret: bytes) -> bytes:
    head = orjson.dumps(header)
    body = struct.pack(">I", len(head)) + head + payload
    return b"ASN1" + hmac.new(secret, body, hashlib.sha256).digest() + body


def test_round_trip_restores_the_same_model() -> None:
    """A sealed state opens to a state that scores exactly like the original."""
    state = _trained_state()
    header, restored = snapshot.open_envelope(snapshot.seal(state, KEY), KEY)
    assert header["offset"] == 1234
    assert header["spec"] == state.digest
    assert restored.detector.score_one({"x": 20.0}) == state.detector.score_one({"x": 20.0})
    assert (restored.n_seen, restored.partition) == (50, 2)


@pytest.mark.parametrize("position", [10, 40, 80, -1])
def test_flipped_byte_is_refused(position: int) -> None:
    """Any single flipped byte (MAC, header or payload) fails authentication."""
    sealed = bytearray(snapshot.seal(_trained_state(), KEY))
    sealed[position] ^= 0x01
    with pytest.raises(SnapshotError, match=r"bad_hmac|not_a_snapshot"):
        snapshot.open_envelope(bytes(sealed), KEY)


def test_wrong_key_is_refused() -> None:
    """A snapshot sealed with another key is refused."""
    with pytest.raises(SnapshotError, match="bad_hmac"):
        snapshot.open_envelope(snapshot.seal(_trained_state(), b"other"), KEY)


class _Boom:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (Path(self.marker),))


def test_forged_pickle_is_never_executed(tmp_path: Path) -> None:
    """A malicious pickle without the right MAC is refused before unpickling: its code never runs."""
    marker = tmp_path / "pwned"
    evil = _forge(
        pickle.dumps(_Boom(str(marker))),
        {"format": snapshot.FORMAT, "river": snapshot.RIVER_VERSION, "spec": "x", "offset": 0},
        b"attacker-key",
    )
    with pytest.raises(SnapshotError, match="bad_hmac"):
        snapshot.open_envelope(evil, KEY)
    assert not marker.exists()


def test_foreign_river_version_is_refused() -> None:
    """A snapshot written under another River version is not unpickled."""
    forged = _forge(
        pickle.dumps(_trained_state()), {"format": snapshot.FORMAT, "river": "0.0.1", "offset": 0}, KEY
    )
    with pytest.raises(SnapshotError, match="river_version_mismatch"):
        snapshot.open_envelope(forged, KEY)


def test_authentic_non_state_payload_is_refused() -> None:
    """Even an authentic envelope must contain a KeyState, nothing else."""
    forged = _forge(
        pickle.dumps({"not": "a state"}), {"format": snapshot.FORMAT, "river": snapshot.RIVER_VERSION}, KEY
    )
    with pytest.raises(SnapshotError, match="unloadable"):
        snapshot.open_envelope(forged, KEY)


@pytest.mark.parametrize("raw", [b"", b"ASN1", os.urandom(100), b"{}"])
def test_garbage_is_not_a_snapshot(raw: bytes) -> None:
    """Short or foreign bytes are refused as not_a_snapshot or bad_hmac, never parsed."""
    with pytest.raises(SnapshotError, match=r"not_a_snapshot|bad_hmac"):
        snapshot.read_header(raw, KEY)


def test_state_key_round_trip() -> None:
    """Record keys carry stream and entity, even when the entity contains separators of its own."""
    key = ("payments", "acct:42/eu")
    assert snapshot.decode_key(snapshot.encode_key(key)) == key


@pytest.mark.parametrize("enabled", [True, False])
def test_restore_pauses_the_collector_and_leaves_it_as_it_was(enabled: bool) -> None:
    """While a restore unpickles the collector is off; afterwards it is on again only if it was on."""
    import gc

    seen: list[bool] = []

    class Probe(snapshot.Snapshots):
        def _restore_each(self, committed: dict[int, int]) -> None:
            seen.append(gc.isenabled())

    probe = Probe.__new__(Probe)  # only restore_until runs: no broker, registry or sink needed
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        probe.restore_until({0: 10})
        assert seen == [False]
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
