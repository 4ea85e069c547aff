"""Snapshots without a stall (the cut is encoded in slices) and the byte bound on state, on a fake broker."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from anomstream import cli, config
from anomstream.detect.spec import StreamSpec
from anomstream.detect.store import Key, KeyState, Registry
from anomstream.errors import ConfigError
from anomstream.ops import logs
from anomstream.ops.metrics import Metrics
from anomstream.stream.checkpoint import Checkpoint, CommitPolicy
from anomstream.stream.producer import Sink
from anomstream.stream.snapshot import Snapshots, decode_key, encoded_size, open_envelope
from unit.fakes import FakeConsumer, FakeProducer

SECRET = b"k"
SPEC = StreamSpec(detector="zscore")


def _checkpoint(
    producer: FakeProducer,
    *,
    slice_: int = 2,
    registry: Registry | None = None,
    store: bool = True,
    budget_s: float = 60.0,
) -> Checkpoint:
    ticks = itertools.count()
    registry = registry if registry is not None else Registry(100, 3600, clock=lambda: 0.0)
    sink = Sink(producer, exactly_once=False, flush_timeout_s=1)
    metrics = Metrics(CollectorRegistry())
    snapshots = Snapshots(
        sink=sink,
        consumer_factory=lambda: None,  # type: ignore[arg-type,return-value]  # restore is not exercised
        registry=registry,
        events_topic="in",
        state_topic="state",
        secret=SECRET,
        spec_digest=lambda _stream: SPEC.digest(),
        metrics=metrics,
        log=logs.get("test"),
    )
    return Checkpoint(
        consumer=FakeConsumer("in", []),
        sink=sink,
        registry=registry,
        snapshots=snapshots if store else None,
        policy=CommitPolicy(
            interval_s=1e9, max_pending=10**9, snapshot_slice=slice_, snapshot_budget_s=budget_s
        ),
        metrics=metrics,
        log=logs.get("test"),
        clock=lambda: float(next(ticks)),
        sleep=lambda _s: None,
    )


def _touch(registry: Registry, entity: str, offset: int, partition: int = 0) -> KeyState:
    """What the scorer does for one event: get the key's state and change it."""
    state = registry.get(("default", entity), SPEC, partition)
    state.offset, state.n_seen = offset, state.n_seen + 1
    return state


def _snapshots(producer: FakeProducer) -> dict[Key, list[KeyState]]:
    seen: dict[Key, list[KeyState]] = {}
    for topic, key, value in producer.records:
        if topic == "state" and key is not None and value is not None:
            seen.setdefault(decode_key(key), []).append(open_envelope(value, SECRET)[1])
    return seen


def test_non_blocking_commit_encodes_nothing_and_commits_after_the_last_slice_is_acked() -> None:
    """The commit point produces no snapshot; slices encode the owed keys; offsets wait for all acks."""
    producer = FakeProducer()
    cp = _checkpoint(producer, slice_=2)
    for i, entity in enumerate("abcde"):
        _touch(cp.registry, entity, i)
        cp.track("in", 0, i)
    cp.commit(blocking=False)
    assert _snapshots(producer) == {}  # no stall: the commit point only took the cut
    assert cp.registry.owed == {("default", e) for e in "abcde"}
    assert cp.registry.dirty == set()
    cp.advance()
    assert len(_snapshots(producer)) == 2
    assert cp.cut is not None
    cp.advance()
    cp.advance()
    assert len(_snapshots(producer)) == 5
    assert cp.cut is None
    assert cp.consumer.commits == []  # the barrier closes after the last snapshot, then waits for acks
    producer.poll()
    cp.settle()
    assert cp.consumer.commits == [[("in", 0, 5)]]


def test_a_spent_time_budget_ends_the_slice_after_one_key() -> None:
    """Large states: once ``snapshot_budget_s`` is spent the slice stops, but every iteration progresses."""
    producer = FakeProducer()
    cp = _checkpoint(producer, slice_=100, budget_s=1e-12)
    for i, entity in enumerate("abc"):
        _touch(cp.registry, entity, i)
    cp.commit(blocking=False)
    for expected in (1, 2, 3):
        cp.advance()
        assert len(_snapshots(producer)) == expected
    assert cp.cut is None


def test_a_cut_behind_its_pace_encodes_more_than_the_budget_allows() -> None:
    """Past half a commit interval the whole cut is due: a spent budget no longer shortens the slice."""
    producer = FakeProducer()
    cp = _checkpoint(producer, slice_=1, budget_s=1e-12)
    cp.policy = CommitPolicy(interval_s=4.0, max_pending=10**9, snapshot_slice=1, snapshot_budget_s=1e-12)
    now = [0.0]
    cp.clock = lambda: now[0]
    for i, entity in enumerate("abcdef"):
        _touch(cp.registry, entity, i)
    cp.commit(blocking=False)
    cp.advance()  # on pace at the start: one key (the budget is spent at once)
    assert len(_snapshots(producer)) == 1
    now[0] = 1.0  # half of the 2 s pace window: half the cut (3 keys) is due
    cp.advance()
    assert len(_snapshots(producer)) == 3
    now[0] = 2.5  # past the window: everything is due
    cp.advance()
    assert len(_snapshots(producer)) == 6
    assert cp.cut is None


def test_a_key_changed_while_owed_is_snapshotted_as_it_was_at_the_cut() -> None:
    """Copy-on-write: a key touched before its slice is encoded first, with the cut's offset and counts."""
    producer = FakeProducer()
    cp = _checkpoint(producer, slice_=1)
    _touch(cp.registry, "a", 0)
    _touch(cp.registry, "a", 1)
    cp.track("in", 0, 1)
    cp.commit(blocking=False)
    _touch(cp.registry, "a", 2)  # a newer event for the owed key
    (snap,) = _snapshots(producer)[("default", "a")]
    assert (snap.offset, snap.n_seen) == (1, 2)
    assert cp.registry.dirty == {("default", "a")}  # its new state belongs to the next commit
    cp.advance()
    assert cp.cut is None
    assert len(_snapshots(producer)[("default", "a")]) == 1


def test_idle_loop_and_next_commit_finish_the_open_cut() -> None:
    """An idle poll encodes all the cut owes; a due commit first finishes whatever is left."""
    producer = FakeProducer()
    cp = _checkpoint(producer, slice_=1)
    for i, entity in enumerate("abc"):
        _touch(cp.registry, entity, i)
    cp.commit(blocking=False)
    cp.maybe_commit(idle=True)
    assert cp.cut is None
    assert len(_snapshots(producer)) == 3
    for i, entity in enumerate("def"):
        _touch(cp.registry, entity, 10 + i)
        cp.track("in", 0, 10 + i)
    cp.commit(blocking=False)
    cp.commit()  # blocking (revoke, shutdown): everything owed is produced and flushed first
    assert len(_snapshots(producer)) == 6
    assert not cp.registry.owed
    assert cp.consumer.commits[-1] == [("in", 0, 13)]


def test_release_takes_the_partition_out_of_the_open_cut() -> None:
    """A partition revoked while its snapshots are owed is neither snapshotted nor committed."""
    producer = FakeProducer()
    cp = _checkpoint(producer, slice_=10)
    _touch(cp.registry, "a", 3, partition=0)
    _touch(cp.registry, "b", 4, partition=1)
    cp.track("in", 0, 3)
    cp.track("in", 1, 4)
    cp.commit(blocking=False)
    cp.registry.drop_partition(1)
    cp.release({1}, "in")
    cp.advance()
    producer.poll()
    cp.settle()
    assert set(_snapshots(producer)) == {("default", "a")}
    assert cp.consumer.commits == [[("in", 0, 4)]]


def test_state_bytes_is_the_exact_size_of_what_the_state_topic_holds() -> None:
    """``anomstream_state_bytes`` equals the summed length of every live key's latest envelope."""
    producer = FakeProducer()
    cp = _checkpoint(producer, slice_=100)
    for i, entity in enumerate("abc"):
        _touch(cp.registry, entity, i)
    cp.commit()
    for i in range(5):  # "a" learns more: its envelope changes size
        _touch(cp.registry, "a", 10 + i)
    cp.commit()
    latest: dict[bytes, int] = {}
    for topic, key, value in producer.records:
        if topic == "state" and key is not None and value is not None:
            latest[key] = len(value)
    assert cp.registry.state_bytes == sum(latest.values())
    gauge = cp.metrics.registry.get_sample_value("anomstream_state_bytes")
    assert gauge == sum(latest.values())


def test_byte_bound_evicts_least_recently_used_keys_with_tombstones() -> None:
    """Beyond ``max_bytes`` the least recently used keys go, tombstoned with the offset they reflect."""
    one = encoded_size(KeyState(SPEC, 0, 0.0))
    registry = Registry(100, 3600, clock=lambda: 0.0, max_bytes=int(2.5 * one))
    producer = FakeProducer()
    cp = _checkpoint(producer, registry=registry)
    for i, entity in enumerate("abcd"):
        _touch(registry, entity, i)
    cp.commit()  # all four encoded: now over the bound
    _touch(registry, "a", 7)  # "a" is the most recently used now; "b" and "c" are the oldest
    done = cp.commit()
    assert done.evicted == 2
    assert sorted(entity for _, entity in registry.keys())  # noqa: SIM118 - a Registry, not a dict == ["a", "d"]
    assert registry.state_bytes <= registry.max_bytes  # type: ignore[operator]  # set above
    tombstones = [(decode_key(k), v) for t, k, v in producer.records if t == "state" and v is None and k]
    assert [key[1] for key, _ in tombstones] == ["b", "c"]


def test_byte_bound_holds_without_a_state_topic() -> None:
    """With snapshots off, the bound still applies: each dirty key is measured as its envelope would be."""
    one = encoded_size(KeyState(SPEC, 0, 0.0))
    registry = Registry(100, 3600, clock=lambda: 0.0, max_bytes=int(1.5 * one))
    cp = _checkpoint(FakeProducer(), registry=registry, store=False)
    for i, entity in enumerate("abc"):
        _touch(registry, entity, i)
    cp.commit()
    assert [entity for _, entity in registry.keys()]  # noqa: SIM118 - a Registry, not a dict == ["c"]
    kept = registry.peek(("default", "c"))
    assert kept is not None
    assert registry.state_bytes == encoded_size(kept)


def test_dropping_a_partition_returns_its_bytes() -> None:
    """Released keys no longer count in ``state_bytes``."""
    registry = Registry(100, 3600, clock=lambda: 0.0)
    _touch(registry, "a", 0, partition=0)
    _touch(registry, "b", 0, partition=1)
    registry.record_size(("default", "a"), 300)
    registry.record_size(("default", "b"), 500)
    registry.record_size(("default", "gone"), 999)  # not live: ignored
    assert registry.state_bytes == 800
    registry.drop_partition(1)
    assert registry.state_bytes == 300


@pytest.mark.parametrize(("text", "value"), [("4096", 4096), ("512MB", 512 * 10**6), ("2GiB", 2 * 2**30)])
def test_max_state_bytes_accepts_units(monkeypatch: pytest.MonkeyPatch, text: str, value: int) -> None:
    """ANOMSTREAM_WORKER__MAX_STATE_BYTES takes plain bytes or a decimal/binary unit."""
    monkeypatch.setenv("ANOMSTREAM_WORKER__MAX_STATE_BYTES", text)
    assert config.load()[0].worker.max_state_bytes == value


@pytest.mark.parametrize("text", ["lots", "12", "-5GB", "1.5 parsecs", "nanMB"])
def test_nonsense_max_state_bytes_is_refused(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    """A size that is not one, or too small to hold a key, is a configuration error naming the variable."""
    monkeypatch.setenv("ANOMSTREAM_WORKER__MAX_STATE_BYTES", text)
    with pytest.raises(ConfigError, match="ANOMSTREAM_WORKER__MAX_STATE_BYTES"):
        config.load()


def test_cli_exits_2_on_a_bad_state_bound(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """The CLI refuses a nonsense byte bound with exit code 2 before any Kafka client starts."""
    monkeypatch.setenv("ANOMSTREAM_WORKER__MAX_STATE_BYTES", "a lot")
    monkeypatch.setenv("ANOMSTREAM_KAFKA__BOOTSTRAP_SERVERS", "unreachable.invalid:1")
    assert cli.main(["run"]) == 2
    assert "worker.max_state_bytes" in capsys.readouterr().err
