"""The worker's producer: produce with back-pressure, delivery tracking by barrier, and transactions.

It only writes; when offsets are committed is decided by ``checkpoint``, the owner of the commit protocol.
Exactly-once: outputs and offsets in one Kafka transaction, opened lazily on the first write.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from anomstream.errors import AuthorizationError, DeliveryError

# init_transactions failures a leader or coordinator moving to another broker can cause.
_FAILOVER = (KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError.COORDINATOR_NOT_AVAILABLE)


class Sink:
    """The worker's single producer: every output and snapshot goes through it.

    Parameters
    ----------
    producer
        An idempotent producer; transactional (``transactional.id`` set) when ``exactly_once``.
    exactly_once
        Put outputs and input offsets in one transaction per commit.
    flush_timeout_s
        How long one flush or transaction commit may take.
    outage_timeout_s
        How long a flush keeps waiting for an unreachable broker before it fails.
    clock
        Monotonic seconds (injected in tests).
    """

    def __init__(
        self,
        producer: Any,
        *,
        exactly_once: bool,
        flush_timeout_s: float,
        outage_timeout_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.producer = producer
        self.exactly_once = exactly_once
        self.flush_timeout_s = flush_timeout_s
        self.outage_timeout_s = outage_timeout_s
        self._errors: list[str] = []
        self._in_txn = False
        # Barrier epochs: records produced between two barriers share an epoch and a callback that
        # counts their acknowledgements, so the loop can commit without blocking in flush().
        self._epoch = 0
        self._outstanding: dict[int, int] = {0: 0}
        self._callback = functools.partial(self._delivered, 0)

    def start(self) -> None:
        """Register the transactional id (fencing any zombie with the same id)."""
        if not self.exactly_once:
            return
        # A broker failing over (leader or transaction coordinator moving) is waited out, like an
        # outage in flush(); anything else is final.
        deadline = self.clock() + self.outage_timeout_s
        while True:
            try:
                self.producer.init_transactions(self.flush_timeout_s)
                return
            except KafkaException as exc:
                err = exc.args[0]
                transient = err.retriable() or err.code() in _FAILOVER
                if not transient or self.clock() > deadline:
                    self._refuse(exc)
                    raise

    def _refuse(self, exc: KafkaException) -> None:
        """Raise ``AuthorizationError`` when ``init_transactions`` failed for want of an ACL."""
        err = exc.args[0]
        if err.code() in (err.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, err.CLUSTER_AUTHORIZATION_FAILED):
            raise AuthorizationError(
                f"not authorised to use the transactional id ({err.str()}); exactly-once needs "
                "WRITE on TransactionalId (prefix '<group_id>-' unless "
                "ANOMSTREAM_KAFKA__TRANSACTIONAL_ID "
                "is set): see docs/security.md"
            ) from None

    def produce(self, topic: str, value: bytes | None, key: bytes | None, **kw: Any) -> None:
        """Queue one record; waits for room when librdkafka's local queue is full."""
        if self.exactly_once and not self._in_txn:
            self.producer.begin_transaction()
            self._in_txn = True
        while True:
            try:
                self.producer.produce(topic, value, key, on_delivery=self._callback, **kw)
                self._outstanding[self._epoch] += 1
                return
            except BufferError:
                self.producer.poll(0.1)

    def _delivered(self, epoch: int, err: Any, msg: Any) -> None:
        self._outstanding[epoch] -= 1
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def barrier(self) -> int:
        """Close the current epoch: ``settled(epoch)`` turns true once all its records are acked."""
        closed = self._epoch
        self._epoch += 1
        self._outstanding[self._epoch] = 0
        self._callback = functools.partial(self._delivered, self._epoch)
        return closed

    def settled(self, epoch: int) -> bool:
        """True when every record produced up to barrier ``epoch`` is acknowledged.

        Raises ``DeliveryError`` if any record failed: offsets past it must never be committed.
        """
        self._raise_failures(0)
        for done in [e for e, n in self._outstanding.items() if n == 0 and e < self._epoch]:
            del self._outstanding[done]
        return all(e > epoch for e in self._outstanding)

    def poll(self) -> None:
        """Serve delivery callbacks without blocking."""
        self.producer.poll(0)

    def flush(self) -> None:
        """Wait until every queued record is acknowledged; raises ``DeliveryError`` on any failure."""
        # A broker outage only delays deliveries (librdkafka retries until message.timeout.ms);
        # wait it out. A delivery *error* is final: the commit must not go ahead.
        deadline = self.clock() + self.outage_timeout_s
        remaining = self.producer.flush(self.flush_timeout_s)
        while remaining and not self._errors and self.clock() < deadline:
            remaining = self.producer.flush(self.flush_timeout_s)
        self._raise_failures(remaining)

    def _raise_failures(self, remaining: int) -> None:
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            raise DeliveryError(f"{remaining} records undelivered; errors: {errors[:5]}")

    def commit_transaction(self, consumer: Any, offsets: list[TopicPartition]) -> None:
        """Commit the open transaction with ``offsets`` in it (one is opened when there is none)."""
        if not self._in_txn and not offsets:
            return
        if not self._in_txn:
            self.producer.begin_transaction()
            self._in_txn = True
        try:
            if offsets:
                self.producer.send_offsets_to_transaction(
                    offsets, consumer.consumer_group_metadata(), self.flush_timeout_s
                )
            self.producer.commit_transaction(self.flush_timeout_s)
        except KafkaException as exc:
            self.abort()
            raise DeliveryError(f"transaction commit failed: {exc.args[0]}") from exc
        finally:
            self._in_txn = False
        self._errors.clear()  # commit_transaction succeeds only if every record in it was delivered

    def abort(self) -> None:
        """Abort the open transaction, if any (its outputs are never seen by read_committed readers)."""
        if self.exactly_once and self._in_txn:
            # A fenced or failed producer cannot abort; the broker aborts on its own after the timeout.
            with contextlib.suppress(KafkaException):
                self.producer.abort_transaction(self.flush_timeout_s)
            self._in_txn = False

    def close(self) -> None:
        """Deliver what is queued (at-least-once) or abort what is uncommitted (exactly-once)."""
        if self.exactly_once:
            self.abort()
        else:
            self.producer.flush(self.flush_timeout_s)
