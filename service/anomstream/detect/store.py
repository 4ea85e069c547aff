"""Per-key model state: created lazily from the spec, bounded by idle TTL, LRU max-keys and max-bytes.

A key is ``(stream, entity_id)``; its state lives with the input partition it was consumed from.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from anomstream.detect.catalog import build
from anomstream.detect.detector import Detector
from anomstream.detect.feedback import FeedbackState
from anomstream.detect.judge import Judge
from anomstream.detect.silence import Cadence
from anomstream.detect.spec import StreamSpec
from anomstream.detect.thresholds import Lifecycle, Threshold

Key = tuple[str, str]


class Evicted(NamedTuple):
    """A key dropped from the store: where its state lived and the last input offset it reflected."""

    key: Key
    partition: int
    offset: int


Clock = Callable[[], float]
BeforeChange = Callable[[Key, "KeyState"], None]


def calibrator_of(spec: StreamSpec, detector: Detector) -> str:
    """The calibrator a key judges with: the spec's, or with ``auto`` the one the detector asks for."""
    chosen = spec.threshold.calibrator
    return detector.calibrator if chosen == "auto" else chosen


def halflife_of(spec: StreamSpec, detector: Detector) -> float:
    """The key's repeat-alarm half-life: the spec's, or the detector's own when that is shorter."""
    own = detector.alarm_halflife
    return spec.lifecycle.halflife if own is None else min(own, spec.lifecycle.halflife)


class KeyState:
    """Everything anomstream knows about one key: model, threshold, lifecycle, feedback and bookkeeping."""

    __slots__ = (
        "cadence",
        "detector",
        "digest",
        "feedback",
        "judge",
        "last_access",
        "lifecycle",
        "n_seen",
        "offset",
        "partition",
        "recent",
        "threshold",
    )

    def __init__(self, spec: StreamSpec, partition: int, now: float) -> None:
        self.detector: Detector = build(spec)
        # Calibrated thresholds (``risk``) judge through the key's own calibrators and alarm envelope.
        self.judge = (
            Judge(
                calibrator_of(spec, self.detector),
                halflife_of(spec, self.detector),
                windows=self.detector.likelihood_windows,
                cap=self.detector.likelihood_cap,
            )
            if spec.threshold.kind == "risk"
            else None
        )
        self.threshold = Threshold(spec.threshold)
        self.lifecycle = Lifecycle()
        self.feedback = FeedbackState()  # what people's verdicts changed: floor, ceiling, re-ranker
        self.digest = spec.digest()
        self.n_seen = 0
        self.recent: collections.deque[tuple[dict[str, float], float]] = collections.deque(
            maxlen=spec.lifecycle.adapt_after
        )
        self.partition = partition
        self.offset = -1  # input offset of the last event applied (snapshots record what they reflect)
        self.last_access = now
        self.cadence: Cadence | None = None  # silence watching's rhythm of this key (``detect.silence``)

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.cadence = None  # snapshots taken before silence watching existed carry none
        for name, value in state.items():
            setattr(self, name, value)


class Registry:
    """Keys → ``KeyState`` in least-recently-used order, with eviction and dirty tracking.

    Parameters
    ----------
    max_keys
        Upper bound on live keys; the least recently used key is evicted beyond it.
    ttl_s
        A key idle for longer than this (processing time) is evicted by ``evict``.
    clock
        Monotonic seconds; injected so tests can move time.
    max_bytes
        Upper bound on ``state_bytes``; least recently used keys are evicted beyond it (``None``: no bound).

    Notes
    -----
    ``state_bytes`` is exact, not extrapolated: the sum, over live keys, of the size in bytes of the
    state each key last had *encoded* (its sealed snapshot on the state topic, reported through
    ``record_size``). A key never encoded yet counts 0 until its first snapshot (at most one commit
    interval). ``owed`` holds keys whose snapshot a pending commit still needs: before such a key is
    changed, ``get`` hands its current state to ``before_change`` (copy-on-write for the snapshot).

    Examples
    --------
    >>> from anomstream.detect.spec import StreamSpec
    >>> reg = Registry(max_keys=2, ttl_s=60, clock=lambda: 0.0)
    >>> for entity in ("a", "b", "c"):
    ...     _ = reg.get(("default", entity), StreamSpec(), partition=0)
    >>> sorted(k[1] for k in reg.keys()), [gone.key[1] for gone in reg.evict()]
    (['a', 'b', 'c'], ['a'])
    """

    def __init__(
        self, max_keys: int, ttl_s: float, clock: Clock = time.monotonic, max_bytes: int | None = None
    ) -> None:
        self.max_keys = max_keys
        self.ttl_s = ttl_s
        self.clock = clock
        self.max_bytes = max_bytes
        self._states: collections.OrderedDict[Key, KeyState] = collections.OrderedDict()
        self.dirty: set[Key] = set()
        self.evicted_total = 0
        self._sizes: dict[Key, int] = {}
        self.state_bytes = 0
        self.owed: set[Key] = set()
        self.before_change: BeforeChange | None = None

    def __len__(self) -> int:
        return len(self._states)

    def keys(self) -> Iterator[Key]:
        """Live keys, least recently used first."""
        return iter(list(self._states))

    def recent(self) -> Iterator[tuple[Key, KeyState]]:
        """Keys and states, most recently used first (for sampling; do not mutate while iterating)."""
        return reversed(self._states.items())

    def get(self, key: Key, spec: StreamSpec, partition: int) -> KeyState:
        """The key's state, created fresh when missing or built under another spec."""
        now = self.clock()
        state = self._states.get(key)
        if state is not None and key in self.owed:
            self.owed.discard(key)
            if self.before_change is not None:
                self.before_change(key, state)  # the pending snapshot takes the state as it is now
        if state is None or state.digest != spec.digest():
            state = KeyState(spec, partition, now)
            self._states[key] = state
            self._states.move_to_end(key)  # a rebuilt key is freshly used, not as old as its predecessor
        else:
            self._states.move_to_end(key)
            state.last_access = now
            state.partition = partition
        self.dirty.add(key)
        return state

    def peek(self, key: Key) -> KeyState | None:
        """The key's state without touching its recency."""
        return self._states.get(key)

    def put(self, key: Key, state: KeyState) -> None:
        """Install a restored state (not dirty: it already is what the snapshot says)."""
        state.last_access = self.clock()
        self._states[key] = state
        self._states.move_to_end(key)

    def record_size(self, key: Key, nbytes: int) -> None:
        """Note that ``key``'s state was just encoded into ``nbytes`` (keeps ``state_bytes`` exact)."""
        if key in self._states:
            self.state_bytes += nbytes - self._sizes.get(key, 0)
            self._sizes[key] = nbytes

    def _over(self, now: float, state: KeyState) -> bool:
        return (
            len(self._states) > self.max_keys
            or now - state.last_access > self.ttl_s
            or (self.max_bytes is not None and self.state_bytes > self.max_bytes)
        )

    def _forget(self, key: Key) -> None:
        del self._states[key]
        self.dirty.discard(key)
        self.owed.discard(key)
        self.state_bytes -= self._sizes.pop(key, 0)

    def evict(self) -> list[Evicted]:
        """Drop idle keys and those beyond ``max_keys`` or ``max_bytes``; returns what each one was."""
        now = self.clock()
        evicted = []
        while self._states:
            key, state = next(iter(self._states.items()))
            if not self._over(now, state):
                break
            self._forget(key)
            evicted.append(Evicted(key, state.partition, state.offset))
        self.evicted_total += len(evicted)
        return evicted

    def for_partition(self, partition: int) -> list[Key]:
        """Keys whose state lives with ``partition``."""
        return [k for k, s in self._states.items() if s.partition == partition]

    def drop_partition(self, partition: int) -> int:
        """Release every key of a partition we no longer own; returns how many were dropped."""
        keys = self.for_partition(partition)
        for key in keys:
            self._forget(key)
        return len(keys)

    def warm_fraction(self, warmup_of: Callable[[str], int]) -> float:
        """Share of live keys past their warm-up (``warmup_of(stream)`` gives the spec's warm-up)."""
        if not self._states:
            return 0.0
        warm = sum(1 for (stream, _), s in self._states.items() if s.n_seen >= warmup_of(stream))
        return warm / len(self._states)
