"""``Sink.start``: transactions registered through a broker failover, a missing ACL named."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from anomstream.errors import AuthorizationError
from anomstream.stream.producer import Sink


class _Producer:
    """Fails ``init_transactions`` with ``errors`` in turn, then succeeds."""

    def __init__(self, *errors: int) -> None:
        self.errors = list(errors)
        self.calls = 0

    def init_transactions(self, timeout: float) -> None:
        self.calls += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected call {name}")


def test_init_transactions_is_retried_through_a_failover() -> None:
    """Transport failures and timeouts while a coordinator moves are retried until it answers."""
    producer = _Producer(KafkaError._TRANSPORT, KafkaError._TIMED_OUT)
    Sink(producer, exactly_once=True, flush_timeout_s=1).start()
    assert producer.calls == 3


def test_init_transactions_gives_up_after_the_outage_timeout() -> None:
    """A failover that outlasts ``outage_timeout_s`` ends in the broker's error, not a retry loop."""
    ticks = iter(range(100))
    producer = _Producer(*[KafkaError._TRANSPORT] * 50)
    sink = Sink(producer, exactly_once=True, flush_timeout_s=1, outage_timeout_s=5, clock=lambda: next(ticks))
    with pytest.raises(KafkaException):
        sink.start()
    assert producer.calls < 10


def test_a_missing_transactional_id_acl_is_named() -> None:
    """TRANSACTIONAL_ID_AUTHORIZATION_FAILED becomes an ``AuthorizationError`` (exit 6) at once."""
    producer = _Producer(KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    with pytest.raises(AuthorizationError, match="TransactionalId") as caught:
        Sink(producer, exactly_once=True, flush_timeout_s=1).start()
    assert caught.value.exit_code == 6
    assert producer.calls == 1
