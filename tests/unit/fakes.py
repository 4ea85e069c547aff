"""A fake broker for unit tests: consumer and producer with confluent-kafka's method shapes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, TopicPartition


@dataclasses.dataclass
class FakeMessage:
    """A consumed record."""

    _topic: str
    _partition: int
    _offset: int
    _value: bytes | None
    _key: bytes | None = None
    _error: Any = None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def error(self) -> Any:
        return self._error

    def timestamp(self) -> tuple[int, int]:
        return (0, 0)


class FakeConsumer:
    """Hands out queued records in batches; records commits and the order of calls in ``log``."""

    def __init__(
        self, topic: str, values: list[bytes | None], partition: int = 0, log: list[str] | None = None
    ) -> None:
        self.queue = [FakeMessage(topic, partition, i, v) for i, v in enumerate(values)]
        self.topic, self.partition = topic, partition
        self.commits: list[list[tuple[str, int, int]]] = []
        self.log = log if log is not None else []
        self.closed = False
        self.on_assign: Callable[..., None] | None = None

    def subscribe(
        self, topics: list[str], on_assign: Any = None, on_revoke: Any = None, on_lost: Any = None
    ) -> None:
        self.on_assign = on_assign
        on_assign(self, [TopicPartition(self.topic, self.partition)])

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        batch, self.queue = self.queue[:num_messages], self.queue[num_messages:]
        return batch

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.log.append("commit")
        self.commits.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])

    def close(self) -> None:
        self.closed = True

    def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        """Nothing committed before the test: every partition answers -1001 (invalid)."""
        return [TopicPartition(tp.topic, tp.partition, -1001) for tp in tps]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.log.append("pause")

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.log.append("resume")


class FakeProducer:
    """Keeps produced records in memory; deliveries (or ``fail`` errors) are reported on flush."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None]] = []
        self._callbacks: list[Callable[[Any, Any], None]] = []
        self.fail: str | None = None
        self.hold = False  # withhold acknowledgements (as while the broker is slow to ack)
        self.log = log if log is not None else []

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        on_delivery: Callable[[Any, Any], None] | None = None,
        **kw: Any,
    ) -> None:
        self.records.append((topic, key, value))
        if on_delivery is not None:
            self._callbacks.append(on_delivery)

    def poll(self, timeout: float = 0) -> int:
        if self.hold:
            return 0
        return self._deliver()

    def _deliver(self) -> int:
        msg = FakeMessage("t", 0, 0, None)
        callbacks, self._callbacks = self._callbacks, []
        # librdkafka reports a failed delivery as a KafkaError (the sink asks for its code)
        err = None if self.fail is None else KafkaError(KafkaError._MSG_TIMED_OUT, self.fail)
        for callback in callbacks:
            callback(err, msg)
        return len(callbacks)

    def flush(self, timeout: float = 0) -> int:
        self.log.append("flush")
        self._deliver()
        return 0

    def on(self, topic: str) -> list[bytes]:
        """Values produced to ``topic`` (tombstones left out)."""
        return [value for t, _, value in self.records if t == topic and value is not None]
