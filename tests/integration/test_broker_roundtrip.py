"""The session broker is a real Kafka: records produced to it come back from a consumer."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer

from conftest import TopicFactory


def test_produce_and_consume_through_real_broker(
    kafka_bootstrap: str, make_topic: TopicFactory, group_id: str
) -> None:
    """100 keyed records produced to a 3-partition topic are all consumed back, in order per key."""
    topic = make_topic("roundtrip", partitions=3)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    sent = [(f"k{i % 5}", f"v{i}") for i in range(100)]
    for key, value in sent:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[tuple[str, str]] = []
    try:
        while len(got) < len(sent):
            msg = consumer.poll(10)
            assert msg is not None, f"timed out after {len(got)} records"
            assert msg.error() is None, msg.error()
            got.append((bytes(msg.key() or b"").decode(), bytes(msg.value() or b"").decode()))
    finally:
        consumer.close()
    assert sorted(got) == sorted(sent)
    for key in {k for k, _ in sent}:
        assert [v for k, v in got if k == key] == [v for k, v in sent if k == key]
