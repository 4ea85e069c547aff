"""The benchmark's peers, each in its own process, over the same pre-produced topic as the worker.

``python -m loadtest.peerproc bare <config.json>``: the bare consume → decode (``orjson``) → produce loop,
what the language allows with the same client library. ``<quix venv>/bin/python -m loadtest.peerproc quix
<config.json>``: a Quix Streams application keeping one River-based model per key (built by
``anomstream.detect.catalog.build`` from the same spec, so the model is the worker's), scoring and learning
each event and producing a score record. Both print one ``{"event": "drained", ...}`` line with the fields
``workerproc`` reports (the first ``warm`` records untimed), then exit.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer


def emit(event: str, **fields: Any) -> None:
    """One protocol line on stdout for the parent (as ``workerproc`` does; kept light: no worker imports)."""
    sys.stdout.write(orjson.dumps({"event": event, **fields}).decode() + "\n")
    sys.stdout.flush()


class Meter:
    """Counts processed records; times those after the first ``warm`` (wall and process CPU seconds)."""

    def __init__(self, warm: int, measure: int) -> None:
        self.warm, self.end = warm, warm + measure
        self.total = 0
        self.c_measure = 0
        self.t_first = self.t_measure = 0.0
        self.cpu_measure = 0.0
        self.started = self.measuring = False

    def add(self, n: int) -> bool:
        """Count ``n`` more records; True once ``warm + measure`` are processed."""
        if not self.started:
            self.started, self.t_first = True, time.perf_counter()
        self.total += n
        if not self.measuring and self.total >= self.warm:
            self.measuring, self.c_measure = True, self.total
            self.t_measure, self.cpu_measure = time.perf_counter(), time.process_time()
        return self.total >= self.end

    def finish(self) -> None:
        """Report the timed part (call after the outputs are flushed)."""
        end, cpu_end = time.perf_counter(), time.process_time()
        emit(
            "drained",
            warm=self.c_measure,
            warm_s=self.t_measure - self.t_first,
            measured=self.total - self.c_measure,
            measure_s=end - self.t_measure,
            measure_cpu_s=cpu_end - self.cpu_measure,
        )


def bare(cfg: dict[str, Any]) -> None:
    """Consume → ``orjson.loads`` → produce a small score record; offsets committed every 5 s."""
    consumer = Consumer(
        {
            "bootstrap.servers": cfg["bootstrap"],
            "group.id": cfg["group"],
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    producer = Producer({"bootstrap.servers": cfg["bootstrap"], "linger.ms": 5, "enable.idempotence": True})
    consumer.subscribe([cfg["events"]])
    meter, out, last = Meter(int(cfg["warm"]), int(cfg["measure"])), cfg["output"], time.monotonic()
    done = False
    while not done:
        got = 0
        for msg in consumer.consume(500, 0.5):
            if msg.error() is not None:
                continue
            event = orjson.loads(msg.value() or b"{}")
            record = orjson.dumps({"entity_id": event["entity_id"], "timestamp": event["timestamp"]})
            while True:
                try:
                    producer.produce(out, record, msg.key())
                    break
                except BufferError:
                    producer.poll(0.05)
            got += 1
        producer.poll(0)
        if time.monotonic() - last >= 5.0:
            consumer.commit(asynchronous=True)
            last = time.monotonic()
        done = meter.add(got) if got else False
    producer.flush(60)
    meter.finish()
    consumer.close()


def quix(cfg: dict[str, Any]) -> None:
    """A Quix Streams app: one model per key in the process, ``score_one`` + ``learn_one`` per event."""
    from quixstreams import Application

    from anomstream.detect.catalog import build
    from anomstream.detect.spec import StreamSpec

    spec = StreamSpec.model_validate(cfg["spec"])
    app = Application(
        broker_address=cfg["bootstrap"],
        consumer_group=cfg["group"],
        auto_offset_reset="earliest",
        commit_interval=5.0,
        loglevel="WARNING",
        state_dir=cfg["state_dir"],
        use_changelog_topics=False,
    )
    source = app.topic(cfg["events"], key_deserializer="str", value_deserializer="json")
    sink = app.topic(cfg["output"], key_serializer="str", value_serializer="json")
    meter = Meter(int(cfg["warm"]), int(cfg["measure"]))
    models: dict[str, Any] = {}

    def score(value: dict[str, Any], key: str, timestamp: int, headers: Any) -> dict[str, Any]:
        model = models.get(key)
        if model is None:
            model = models[key] = build(spec)
        x = value["values"]
        result = {"entity_id": key, "timestamp": value["timestamp"], "score": model.score_one(x)}
        model.learn_one(x)
        if meter.add(1):
            app.stop()  # the run loop then flushes the producer and commits, inside the timed part
        return result

    app.dataframe(source).apply(score, metadata=True).to_topic(sink)
    app.run()
    meter.finish()


def main(argv: list[str]) -> int:
    """``bare|quix <config.json>``."""
    kind, config = argv[0], orjson.loads(Path(argv[1]).read_bytes())
    {"bare": bare, "quix": quix}[kind](config)
    emit("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
