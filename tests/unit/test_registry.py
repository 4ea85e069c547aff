"""Per-key state registry with a manual clock: TTL and LRU eviction, partitions, dirty tracking, warm-up."""

from __future__ import annotations

import pickle

import pytest

from anomstream.detect.spec import StreamSpec
from anomstream.detect.store import Key, KeyState, Registry

SPEC = StreamSpec(detector="zscore", warmup=5)


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock starting at 0."""
    return ManualClock()


def _key(entity: str, stream: str = "s") -> Key:
    return (stream, entity)


def test_get_creates_once_and_returns_same_state(clock: ManualClock) -> None:
    """``get`` builds the state lazily once, then returns the same object for the same spec."""
    reg = Registry(max_keys=10, ttl_s=60, clock=clock)
    first = reg.get(_key("a"), SPEC, partition=0)
    assert reg.get(_key("a"), StreamSpec(detector="zscore", warmup=5), partition=0) is first
    assert len(reg) == 1
    assert (first.n_seen, first.offset, first.digest) == (0, -1, SPEC.digest())


def test_idle_ttl_eviction(clock: ManualClock) -> None:
    """A key idle for longer than ``ttl_s`` is evicted; one idle for exactly ``ttl_s`` stays."""
    reg = Registry(max_keys=10, ttl_s=60, clock=clock)
    reg.get(_key("old"), SPEC, partition=1)
    clock.advance(30)
    reg.get(_key("young"), SPEC, partition=2)
    clock.advance(30)  # old is idle exactly 60 s
    assert reg.evict() == []
    clock.advance(0.5)
    assert [e[:2] for e in reg.evict()] == [(_key("old"), 1)]
    assert list(reg.keys()) == [_key("young")]
    clock.advance(100)
    assert [e[:2] for e in reg.evict()] == [(_key("young"), 2)]
    assert len(reg) == 0
    assert reg.evicted_total == 2


def test_access_refreshes_ttl(clock: ManualClock) -> None:
    """Using a key resets its idle time."""
    reg = Registry(max_keys=10, ttl_s=60, clock=clock)
    reg.get(_key("a"), SPEC, partition=0)
    for _ in range(5):
        clock.advance(50)
        reg.get(_key("a"), SPEC, partition=0)
        assert reg.evict() == []


def test_lru_evicts_least_recently_used_not_inserted(clock: ManualClock) -> None:
    """Beyond ``max_keys`` the least recently *used* key goes, even if it was not inserted first."""
    reg = Registry(max_keys=2, ttl_s=1e9, clock=clock)
    for entity in ("a", "b"):
        reg.get(_key(entity), SPEC, partition=0)
        clock.advance(1)
    reg.get(_key("a"), SPEC, partition=0)  # a is now more recent than b
    clock.advance(1)
    reg.get(_key("c"), SPEC, partition=0)
    assert list(reg.keys()) == [_key("b"), _key("a"), _key("c")]
    assert [e[:2] for e in reg.evict()] == [(_key("b"), 0)]
    assert sorted(reg.keys()) == [_key("a"), _key("c")]


def test_lru_evicts_down_to_max_keys(clock: ManualClock) -> None:
    """Eviction removes as many least-recently-used keys as needed to get back to ``max_keys``."""
    reg = Registry(max_keys=3, ttl_s=1e9, clock=clock)
    for i in range(7):
        reg.get(_key(f"e{i}"), SPEC, partition=i % 2)
    evicted = reg.evict()
    assert [e[:2] for e in evicted] == [(_key("e0"), 0), (_key("e1"), 1), (_key("e2"), 0), (_key("e3"), 1)]
    assert len(reg) == 3


def test_peek_does_not_touch_recency(clock: ManualClock) -> None:
    """``peek`` reads a state without making it recently used (or dirty)."""
    reg = Registry(max_keys=1, ttl_s=1e9, clock=clock)
    reg.get(_key("a"), SPEC, partition=0)
    reg.get(_key("b"), SPEC, partition=0)
    reg.dirty.clear()
    assert reg.peek(_key("a")) is not None
    assert reg.peek(_key("missing")) is None
    assert reg.dirty == set()
    assert [e[:2] for e in reg.evict()] == [(_key("a"), 0)]


def test_put_installs_restored_state_not_dirty(clock: ManualClock) -> None:
    """A restored state is installed as most recent, with a fresh access time, and is not dirty."""
    reg = Registry(max_keys=10, ttl_s=60, clock=clock)
    reg.get(_key("live"), SPEC, partition=0)
    restored = pickle.loads(pickle.dumps(KeyState(SPEC, partition=4, now=-1000.0)))
    clock.advance(10)
    reg.put(_key("restored"), restored)
    assert list(reg.keys()) == [_key("live"), _key("restored")]
    assert restored.last_access == 10
    assert reg.dirty == {_key("live")}
    assert reg.get(_key("restored"), SPEC, partition=4) is restored


def test_for_partition_and_drop_partition(clock: ManualClock) -> None:
    """Keys are grouped by the partition they were last seen on; dropping one releases only its keys."""
    reg = Registry(max_keys=100, ttl_s=1e9, clock=clock)
    for i in range(6):
        reg.get(_key(f"e{i}"), SPEC, partition=i % 3)
    reg.get(_key("e0"), SPEC, partition=2)  # e0 moved from partition 0 to 2
    assert reg.for_partition(0) == [_key("e3")]
    assert sorted(reg.for_partition(2)) == [_key("e0"), _key("e2"), _key("e5")]
    assert reg.for_partition(9) == []
    assert reg.drop_partition(2) == 3
    assert reg.for_partition(2) == []
    assert sorted(reg.keys()) == [_key("e1"), _key("e3"), _key("e4")]
    assert reg.dirty == {_key("e1"), _key("e3"), _key("e4")}
    assert reg.drop_partition(2) == 0


def test_dirty_tracking(clock: ManualClock) -> None:
    """``get`` marks a key dirty; evicted keys are no longer dirty; a cleared key is dirty again on use."""
    reg = Registry(max_keys=2, ttl_s=60, clock=clock)
    reg.get(_key("a"), SPEC, partition=0)
    reg.get(_key("b"), SPEC, partition=0)
    assert reg.dirty == {_key("a"), _key("b")}
    reg.dirty.clear()  # what a snapshot does after writing them
    reg.get(_key("b"), SPEC, partition=0)
    assert reg.dirty == {_key("b")}
    reg.get(_key("c"), SPEC, partition=0)
    assert reg.dirty == {_key("b"), _key("c")}
    clock.advance(61)
    reg.get(_key("c"), SPEC, partition=0)
    evicted = reg.evict()
    assert [gone.key for gone in evicted] == [_key("a"), _key("b")]
    assert reg.dirty == {_key("c")}


def test_warm_fraction(clock: ManualClock) -> None:
    """Share of live keys whose ``n_seen`` reached their stream's warm-up; 0 with no keys."""
    reg = Registry(max_keys=100, ttl_s=1e9, clock=clock)
    warmups = {"fast": 2, "slow": 10}
    assert reg.warm_fraction(warmups.__getitem__) == 0.0
    for i, stream in enumerate(["fast", "fast", "slow", "slow"]):
        reg.get(_key(f"e{i}", stream), SPEC, partition=0)
    assert reg.warm_fraction(warmups.__getitem__) == 0.0
    n_seen = {("fast", "e0"): 2, ("fast", "e1"): 1, ("slow", "e2"): 10, ("slow", "e3"): 9}
    for key, n in n_seen.items():
        state = reg.peek(key)
        assert state is not None
        state.n_seen = n
    assert reg.warm_fraction(warmups.__getitem__) == 0.5


def test_spec_change_rebuilds_in_place(clock: ManualClock) -> None:
    """A different spec for a live key gives a fresh state built under the new spec."""
    reg = Registry(max_keys=10, ttl_s=60, clock=clock)
    old = reg.get(_key("a"), SPEC, partition=0)
    old.n_seen = 42
    new_spec = StreamSpec(detector="ewma")
    new = reg.get(_key("a"), new_spec, partition=1)
    assert new is not old
    assert (new.n_seen, new.digest, new.partition, new.detector.name) == (0, new_spec.digest(), 1, "ewma")
    assert len(reg) == 1


def test_spec_change_counts_as_recent_use(clock: ManualClock) -> None:
    """A key rebuilt under a new spec is most recently used: idle keys behind it are still evicted."""
    reg = Registry(max_keys=10, ttl_s=60, clock=clock)
    reg.get(_key("a"), SPEC, partition=0)
    reg.get(_key("b"), SPEC, partition=0)
    clock.advance(100)
    reg.get(_key("a"), StreamSpec(detector="ewma"), partition=0)  # spec changed: rebuilt, used now
    assert list(reg.keys()) == [_key("b"), _key("a")]
    assert [e[:2] for e in reg.evict()] == [(_key("b"), 0)]
