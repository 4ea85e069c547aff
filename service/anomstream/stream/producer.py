"""The worker's producer: produce with back-pressure, delivery tracking by barrier, and transactions.

It only writes; when offsets are committed is decided by ``checkpoint``, the owner of the commit protocol.
Exactly-once: outputs and offsets in one Kafka transaction, opened lazily on the first write.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from anomstream.errors import AuthorizationError, DeliveryError, TransactionAbortedError

# init_transactions failures a leader or coordinator moving to another broker can cause.
_FAILOVER = (KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError.COORDINATOR_NOT_AVAILABLE)
# Deliveries failed by an abort: their records were meant to be discarded.
_PURGED = (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT)


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
    call_timeout_s
        Exactly-once: the longest one transactional call may block. librdkafka can ignore its own
        timeout there (``send_offsets_to_transaction`` waits for ever on a group coordinator that left
        the cluster metadata, librdkafka issues #5456 and #5511); past this the producer is declared
        wedged and the worker exits for a restart. Set it above ``transaction.timeout.ms``.
    clock, sleep
        Monotonic seconds and a pause between retries (injected in tests).
    """

    def __init__(
        self,
        producer: Any,
        *,
        exactly_once: bool,
        flush_timeout_s: float,
        outage_timeout_s: float = 300.0,
        call_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.clock, self.sleep = clock, sleep
        self.producer = producer
        self.exactly_once = exactly_once
        self.flush_timeout_s = flush_timeout_s
        self.outage_timeout_s = outage_timeout_s
        self.call_timeout_s = call_timeout_s
        self._wedged = False  # a transactional call never returned: this producer cannot be used again
        self._errors: list[str] = []
        self._in_txn = False
        self._refused: KafkaError | None = None  # a record the open transaction could not take
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
            except KafkaException as exc:
                # A transaction already failed (abortable state) refuses new records; the commit then
                # aborts it rather than commit without this one.
                if not (self.exactly_once and exc.args[0].code() == KafkaError._STATE):
                    raise
                self._refused = exc.args[0]
                return

    def _delivered(self, epoch: int, err: Any, msg: Any) -> None:
        self._outstanding[epoch] -= 1
        if err is not None and err.code() not in _PURGED:  # purged: part of an aborted transaction
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
        """Commit the open transaction with ``offsets`` in it (one is opened when there is none).

        librdkafka's error classes decide what follows a failed step:
        1. retriable (coordinator moving or loading, request timed out): the same step again, until
           ``outage_timeout_s``,
        2. abortable (``txn_requires_abort``, or retriable past the deadline): abort, then raise
           ``TransactionAbortedError``; the producer is usable and the caller rewinds its input,
        3. fatal (fenced, or the abort failed too): raise ``DeliveryError``; the worker must restart.
        """
        if not self._in_txn and not offsets:
            return
        if self._wedged:
            raise DeliveryError("the producer is wedged in a transactional call; restart the worker")
        if not self._in_txn:
            self.producer.begin_transaction()
            self._in_txn = True
        try:
            if self._refused is not None:
                raise KafkaException(self._refused)
            if offsets:
                meta = consumer.consumer_group_metadata()
                # No timeout: librdkafka then bounds each step by the remaining transaction time, as
                # it recommends; a shorter one can desynchronise its transaction state.
                self._retry(lambda: self.producer.send_offsets_to_transaction(offsets, meta))
            self._retry(self.producer.commit_transaction)
        except KafkaException as exc:
            err = exc.args[0]
            if err.fatal() or self._wedged or not self._abort_clean():
                self._in_txn = False
                raise DeliveryError(f"transaction commit failed: {err}") from exc
            raise TransactionAbortedError(f"transaction aborted: {err}") from exc
        self._in_txn = False
        self._errors.clear()  # commit_transaction succeeds only if every record in it was delivered

    def _retry(self, step: Callable[[], None]) -> None:
        """Run one transactional step, again while librdkafka calls its failure retriable."""
        deadline = self.clock() + self.outage_timeout_s
        while True:
            try:
                self._bounded(step)
                return
            except KafkaException as exc:
                err = exc.args[0]
                if err.fatal() or err.txn_requires_abort() or not err.retriable() or self.clock() > deadline:
                    raise
                self.sleep(0.2)

    def _bounded(self, step: Callable[[], None]) -> None:
        """Run ``step`` in a helper thread; raise a fatal error if it is still blocked after the limit."""
        failure: list[BaseException] = []

        def call() -> None:
            try:
                step()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
                failure.append(exc)

        helper = threading.Thread(target=call, name="anomstream-txn", daemon=True)
        helper.start()
        helper.join(self.call_timeout_s)
        if helper.is_alive():
            self._wedged = True  # the call still holds the producer: no abort, no retry, only a restart
            raise KafkaException(
                KafkaError(
                    KafkaError._TIMED_OUT,
                    f"transactional call blocked over {self.call_timeout_s:.0f}s (librdkafka #5511)",
                    fatal=True,
                )
            )
        if failure:
            raise failure[0]

    def _abort_clean(self) -> bool:
        """Abort the open transaction, retrying while retriable; False when the producer is unusable."""
        try:
            self._retry(lambda: self.producer.abort_transaction(self.flush_timeout_s))
        except KafkaException:
            return False  # fatal: only a new producer (a restart) can go on
        finally:
            self._in_txn, self._refused = False, None
        self._errors.clear()  # records purged by the abort are reported as failed; they are discarded
        return True

    def abort(self) -> None:
        """Abort the open transaction, if any (its outputs are never seen by read_committed readers)."""
        if self.exactly_once and self._in_txn and not self._wedged:
            # A fenced or failed producer cannot abort; the broker aborts on its own after the timeout.
            self._abort_clean()

    def close(self) -> None:
        """Deliver what is queued (at-least-once) or abort what is uncommitted (exactly-once)."""
        if self.exactly_once:
            self.abort()
        else:
            self.producer.flush(self.flush_timeout_s)
