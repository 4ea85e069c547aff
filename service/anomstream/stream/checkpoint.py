"""The commit protocol, in one place: which input offsets may be committed, and when.

A ``Checkpoint`` holds the pending offsets, the open cut and the barriers awaiting acknowledgement, decides
when a commit is due (``CommitPolicy``), and runs its numbered steps; the producer only writes, the worker
only asks.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from anomstream.detect.store import Key, KeyState, Registry
from anomstream.errors import BrokerError, CommitRejectedError, DeliveryError, TransactionAbortedError
from anomstream.ops.metrics import Metrics
from anomstream.stream.producer import Sink
from anomstream.stream.snapshot import Snapshots, encoded_size

# The coordinator or the whole cluster is briefly unreachable (restart, failover): try again.
_BROKER_AWAY = frozenset(
    {
        KafkaError._WAIT_COORD,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
    }
)

# The group has moved to a new generation: this member's commit can never succeed as sent.
_GROUP_MOVED_ON = frozenset(
    {
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.FENCED_MEMBER_EPOCH,
        KafkaError.STALE_MEMBER_EPOCH,
        KafkaError._ASSIGNMENT_LOST,
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class CommitPolicy:
    """When a commit is due: every ``interval_s`` seconds, or once ``max_pending`` records await one.

    ``interval_s`` bounds the duplicates after a crash; ``max_pending`` bounds them under heavy load.
    """

    interval_s: float = 5.0
    max_pending: int = 500_000
    outage_timeout_s: float = 300.0
    snapshot_slice: int = 200  # snapshots encoded per loop iteration while a cut is open
    snapshot_budget_s: float = 0.005  # ... or fewer, once encoding took this long (large states)


@dataclasses.dataclass(frozen=True, slots=True)
class Committed:
    """What one commit did (for the worker's canonical commit log line)."""

    partitions: int
    snapshot_bytes: int
    evicted: int
    seconds: float


class Checkpoint:
    """Owner of the commit protocol: pending offsets, barriers, evictions and snapshots.

    Parameters
    ----------
    consumer
        The group consumer whose offsets are committed.
    sink
        The producer wrapper every output went through.
    registry
        The key store: its dirty keys are snapshotted and its evicted keys tombstoned.
    snapshots
        Writes snapshots and tombstones (``None`` when state is not persisted).
    """

    def __init__(
        self,
        *,
        consumer: Any,
        sink: Sink,
        registry: Registry,
        snapshots: Snapshots | None,
        policy: CommitPolicy,
        metrics: Metrics,
        log: Any,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.consumer, self.sink, self.registry, self.snapshots = consumer, sink, registry, snapshots
        self.policy, self.metrics, self.log, self.clock, self.sleep = policy, metrics, log, clock, sleep
        self.pending: dict[tuple[str, int], int] = {}
        self.first: dict[tuple[str, int], int] = {}  # first offset processed since the last commit
        self.queued: list[tuple[int, list[TopicPartition]]] = []  # barriers awaiting their acks
        self.cut: list[TopicPartition] | None = None  # offsets whose snapshots are still being encoded
        self._since = 0
        self._last = clock()
        self._written = 0  # snapshot bytes produced since the last commit (for its log line)
        self._cut_size, self._cut_at = 0, 0.0  # keys the open cut owed when taken, and when
        if snapshots is not None:
            registry.before_change = self._encode

    def track(self, topic: str, partition: int, offset: int) -> None:
        """Record that the record at ``offset`` is processed (its outputs are produced)."""
        self.pending[(topic, partition)] = offset + 1
        self.first.setdefault((topic, partition), offset)
        self._since += 1

    def due(self) -> bool:
        """True when the policy asks for a commit now."""
        return self._since >= self.policy.max_pending or self.clock() - self._last >= self.policy.interval_s

    def maybe_commit(self, idle: bool = False) -> Committed | None:
        """Settle acknowledged barriers, encode a slice of the open cut, then commit when one is due.

        ``idle`` (the last poll returned nothing) encodes all the cut owes: no record waits on it.
        """
        self.settle()
        self.advance(idle)
        return self.commit(blocking=False) if self.due() else None

    def advance(self, everything: bool = False) -> None:
        """Encode the next slice of snapshots the open cut owes; close the cut once none is left.

        A slice is ``snapshot_slice`` keys, cut short once ``snapshot_budget_s`` is spent, but never
        shorter than what keeps the cut on pace to finish within half a commit interval (so the next
        commit does not stall on it); ``everything`` encodes all that is owed.
        """
        if self.cut is None or self.snapshots is None:
            return
        owed = self.registry.owed
        # Keep pace: a cut should be done within half a commit interval, or the next commit stalls on it.
        share = min(1.0, (self.clock() - self._cut_at) / (self.policy.interval_s / 2))
        behind = int(self._cut_size * share) - (self._cut_size - len(owed))
        # Wall time, not the injected policy clock: this bounds the work done between two polls.
        until = time.perf_counter() + self.policy.snapshot_budget_s
        quota = len(owed) if everything else max(self.policy.snapshot_slice, behind)
        for done in range(1, min(quota, len(owed)) + 1):
            key = owed.pop()
            state = self.registry.peek(key)
            if state is not None:
                self._encode(key, state)
            if not everything and done >= behind and time.perf_counter() > until:
                break
        if not owed:
            self.queued.append((self.sink.barrier(), self.cut))  # step 4 of ``commit``, now possible
            self.cut = None
            self.metrics.state_bytes.set(self.registry.state_bytes)

    def _encode(self, key: Key, state: KeyState) -> None:
        assert self.snapshots is not None  # only installed, and only called, with snapshots on
        self._written += self.snapshots.write_one(key, state)

    def commit(self, partitions: set[int] | None = None, *, blocking: bool = True) -> Committed:
        """Commit what has been processed (all partitions, or just ``partitions`` on revoke).

        The order is the processing guarantee:
        1. finish the open cut, if any: encode every snapshot it still owes and close its barrier,
        2. evict idle / over-limit keys (their tombstones, with the offset they reflect, join this commit),
        3. cut: take the offsets processed so far and the dirty keys (then clear the dirty flags),
        4. snapshot the dirty keys; blocking or exactly-once: all of them now, then make every output
           durable (flush and fail on any delivery error, or commit the transaction with the offsets in
           it, or rewind when it was aborted, see ``_rewind``) and commit the offsets; otherwise the keys
           are *owed*: ``advance`` encodes them a slice per loop iteration (a key about to change is
           encoded first, as it was at the cut, through ``Registry.before_change``), then closes a
           barrier,
        5. commit the input offsets once that barrier's records are all acknowledged (``settle``); a
           failed delivery stops the worker, so nothing is committed past it.
        """
        started = self.clock()
        self.advance(everything=True)
        self._measure_unsnapshotted()
        evicted = self.registry.evict()
        self.metrics.evicted.inc(len(evicted))
        offsets = [
            TopicPartition(topic, part, offset)
            for (topic, part), offset in self.pending.items()
            if partitions is None or part in partitions
        ]
        dirty = sorted(self.registry.dirty)
        self.registry.dirty.clear()
        if self.snapshots is not None:
            self._written += self.snapshots.write([], evicted)
        if blocking or self.sink.exactly_once:
            self._write_now(dirty)
            if not self._commit_now(offsets, rewind=partitions is None):
                offsets = []  # aborted and rewound: nothing was committed
            self._unqueue({tp.partition for tp in offsets})  # already committed, newer or equal
        elif self.snapshots is not None and dirty:
            self.registry.owed.update(dirty)
            self.cut, self._cut_size, self._cut_at = offsets, len(dirty), self.clock()
        else:
            self.queued.append((self.sink.barrier(), offsets))
        now = self.clock()
        self._last, self._since = now, 0
        self.metrics.commit.observe(now - started)
        self.metrics.state_bytes.set(self.registry.state_bytes)
        written, self._written = self._written, 0
        return Committed(len(offsets), written, len(evicted), now - started)

    def _measure_unsnapshotted(self) -> None:
        """No state topic: size dirty keys as their snapshot would be, so the byte bound still holds."""
        if self.snapshots is None and self.registry.max_bytes is not None:
            for key in self.registry.dirty:
                state = self.registry.peek(key)
                if state is not None:
                    self.registry.record_size(key, encoded_size(state))

    def _write_now(self, keys: list[Key]) -> None:
        if self.snapshots is not None:
            self._written += self.snapshots.write(keys, [])

    def settle(self) -> None:
        """Commit the offsets of every barrier whose records are all acknowledged, oldest first."""
        while self.queued and self.sink.settled(self.queued[0][0]):
            _, offsets = self.queued.pop(0)
            if self._try_offsets(offsets):
                self._forget(offsets)

    def release(self, parts: set[int], topic: str) -> None:
        """Forget a partition this member no longer owns: its pending offsets, cut and queued barriers."""
        for part in parts:
            self.pending.pop((topic, part), None)
            self.first.pop((topic, part), None)
        if self.cut is not None:
            self.cut = [tp for tp in self.cut if tp.partition not in parts]
        self._unqueue(parts)  # a queued barrier must never commit over the partition's new owner

    def _commit_now(self, offsets: list[TopicPartition], *, rewind: bool) -> bool:
        """Make outputs durable and commit ``offsets``; False when an aborted transaction was rewound."""
        try:
            if self.sink.exactly_once:
                try:
                    self.sink.commit_transaction(self.consumer, offsets)
                except TransactionAbortedError as exc:
                    if not rewind:  # in a revoke callback: no seeking there, the worker restarts
                        raise
                    self.metrics.commit_failures.inc()
                    self._rewind(exc)
                    return False
            else:
                self.sink.flush()
                if not self._try_offsets(offsets):
                    return True
        except (DeliveryError, BrokerError):
            self.metrics.commit_failures.inc()
            raise
        self._forget(offsets)
        return True

    def _try_offsets(self, offsets: list[TopicPartition]) -> bool:
        """Commit offsets whose outputs are durable; False when the group moved on (kept pending)."""
        try:
            self._commit_offsets(offsets)
        except CommitRejectedError as exc:
            # Outputs are delivered; only the offsets were refused. Keep them pending for the next
            # commit (a revoked partition's are dropped on release) and carry on.
            self.metrics.commit_failures.inc()
            self.log.warning("commit_rejected", error=str(exc), partitions=len(offsets))
            return False
        return True

    def _commit_offsets(self, offsets: list[TopicPartition]) -> None:
        if not offsets:
            return
        deadline = self.clock() + self.policy.outage_timeout_s
        while True:
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
                return
            except KafkaException as exc:
                err = exc.args[0]
                if err.code() in _GROUP_MOVED_ON:
                    raise CommitRejectedError(f"offset commit rejected: {err.str()}") from exc
                transient = err.retriable() or err.code() in _BROKER_AWAY
                if not transient or self.clock() > deadline:
                    raise BrokerError(f"offset commit failed: {err.str()}") from exc
                self.sleep(0.5)  # coordinator moving or broker restarting: try again

    def _unqueue(self, parts: set[int]) -> None:
        self.queued = [(e, [tp for tp in offs if tp.partition not in parts]) for e, offs in self.queued]

    def _forget(self, offsets: list[TopicPartition]) -> None:
        for tp in offsets:
            where = (tp.topic, tp.partition)
            if self.pending.get(where) == tp.offset:
                del self.pending[where]
                self.first.pop(where, None)
            elif where in self.first:
                self.first[where] = tp.offset  # processed past the commit: the next record is there

    def _rewind(self, why: TransactionAbortedError) -> None:
        """Undo an aborted transaction: consume its records again from the last committed offsets.

        1. drop the state of every partition it touched (that state learnt from the discarded records),
        2. seek each partition back to the first offset processed since its last commit,
        3. restore that state from the snapshots below it, as on assignment,
        4. forget the pending offsets: the records are scored again and commit in a later transaction.
        """
        starts, self.first = self.first, {}
        self.log.warning(
            "transaction_aborted", error=str(why), rewound={f"{t}[{p}]": o for (t, p), o in starts.items()}
        )
        for _topic, part in starts:
            self.registry.drop_partition(part)
        try:
            for (topic, part), offset in starts.items():
                self.consumer.seek(TopicPartition(topic, part, offset))
        except KafkaException as exc:
            raise BrokerError(f"cannot rewind after an aborted transaction: {exc.args[0]}") from exc
        if self.snapshots is not None:
            self.snapshots.restore_until({part: offset for (_topic, part), offset in starts.items()})
        self.pending.clear()
