"""Replay sources: CSV, JSONL and Parquet files (or a Kafka topic) read as wire events with coordinates.

Every input row becomes one ``Row``: the event, or why it could not be one (as the worker dead-letters).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition
from pydantic import ValidationError

from anomstream.config import Settings
from anomstream.errors import ConfigError
from anomstream.wire.codec import Rejection, decode_event, describe
from anomstream.wire.records import Event, Source

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
_TRUE = {"1", "1.0", "true", "yes", "y", "t"}


@dataclasses.dataclass(frozen=True)
class ColumnMap:
    """Which columns hold what.

    ``entity_col`` unset: the record's ``entity_id``, else the file stem. ``value_cols`` empty: every
    column not used for something else (an event-shaped ``values`` object is taken as it is).
    ``stream`` unset: the record's ``stream``, else ``default``.

    Examples
    --------
    >>> ColumnMap().value_names({"timestamp": "2024-01-01", "value": "3", "label": "0"}, "label")
    ('value',)
    """

    entity_col: str | None = None
    timestamp_col: str = "timestamp"
    value_cols: tuple[str, ...] = ()
    stream: str | None = None

    def value_names(self, record: Mapping[str, Any], label_col: str | None = None) -> tuple[str, ...]:
        """The value columns of ``record``."""
        if self.value_cols:
            return self.value_cols
        skip = {self.entity_col, self.timestamp_col, label_col, "entity_id", "stream", "attributes"}
        return tuple(name for name in record if name not in skip)


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    """One input row: its coordinates, the event (``None`` when rejected) and the reason it was rejected."""

    source: Source
    timestamp: str
    event: Event | None
    error: str | None = None
    label: bool | None = None


def file_format(path: Path) -> str:
    """``csv``, ``jsonl`` or ``parquet`` from the file suffix; anything else is a ``ConfigError``."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path}: unknown file type {path.suffix!r}; expected one of {sorted(FORMATS)}")
    return fmt


def records(path: Path) -> Iterator[dict[str, Any]]:
    """Raw records of a file, in file order (CSV cells are strings)."""
    fmt = file_format(path)
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            yield from csv.DictReader(handle)
    elif fmt == "jsonl":
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield _json_record(path, number, line)
    else:
        yield from _parquet_records(path)


def _json_record(path: Path, number: int, line: bytes) -> dict[str, Any]:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return {"__error__": f"line {number}: invalid JSON: {exc}"}
    return record if isinstance(record, dict) else {"__error__": f"line {number}: not a JSON object"}


def _parquet_records(path: Path) -> Iterator[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]  # optional, untyped
    except ImportError:
        raise ConfigError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    for batch in pq.ParquetFile(path).iter_batches():
        yield from batch.to_pylist()


def count_rows(path: Path) -> int | None:
    """Number of data rows, cheaply where possible (for the progress line); ``None`` if unknown."""
    fmt = file_format(path)
    if fmt == "parquet":
        return None
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return lines - 1 if fmt == "csv" else lines


def rows(
    path: Path, cmap: ColumnMap, label_col: str | None = None, topic: str | None = None
) -> Iterator[Row]:
    """Rows of one file; source = (``topic`` or the file name, partition 0, offset = row index)."""
    for index, record in enumerate(records(path)):
        if index == 0:
            _check_columns(path, record, cmap, label_col)
        source = Source(topic=topic or path.name, partition=0, offset=index)
        yield to_row(record, source, cmap, path.stem, label_col)


def _check_columns(path: Path, record: Mapping[str, Any], cmap: ColumnMap, label_col: str | None) -> None:
    """A misspelt column would reject every row one by one: refuse the file up front instead."""
    if "__error__" in record:
        return
    wanted = [cmap.timestamp_col, cmap.entity_col, label_col, *cmap.value_cols]
    missing = [name for name in wanted if name is not None and name not in record]
    if missing:
        raise ConfigError(f"{path}: no column {missing} in the first record (columns: {sorted(record)})")


def to_row(
    record: Mapping[str, Any], source: Source, cmap: ColumnMap, entity: str, label_col: str | None = None
) -> Row:
    """Map one record to an event; an unusable record becomes a rejected ``Row`` carrying the reason."""
    raw_ts = record.get(cmap.timestamp_col)
    label = _flag(record.get(label_col)) if label_col else None
    stamp = raw_ts.isoformat(sep=" ") if isinstance(raw_ts, datetime) else str(raw_ts or "")
    if "__error__" in record:
        return Row(source, stamp, None, str(record["__error__"]), label)
    try:
        values = _values(record, cmap.value_names(record, label_col))
        event = Event.model_validate(
            {
                "entity_id": _text(record.get(cmap.entity_col or "entity_id", entity)),
                "timestamp": _timestamp(raw_ts),
                "values": values,
                "stream": cmap.stream or record.get("stream") or "default",
                "attributes": record.get("attributes") or {},
            }
        )
    except (ValueError, ValidationError) as exc:
        return Row(source, stamp, None, _reason(exc), label)
    return Row(source, stamp, event, None, label)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return describe(exc, limit=3)
    return str(exc)


def _values(record: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    nested = record.get("values")
    if isinstance(nested, dict) and names == ("values",):
        return nested  # already an event-shaped record
    values: dict[str, Any] = {}
    for name in names:
        cell = record.get(name)
        if cell is None or cell == "":
            continue  # a missing cell is a missing feature, as in an event without it
        values[name] = _number(name, cell)
    return values


def _number(name: str, cell: Any) -> float:
    if isinstance(cell, bool):
        raise ValueError(f"value {name!r} must be a number")
    try:
        number = float(cell)
    except (TypeError, ValueError):
        raise ValueError(f"value {name!r} is not a number: {cell!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"value {name!r} is not finite")
    return number


def _timestamp(raw: Any) -> Any:
    """Numbers (and numeric text) are epoch milliseconds; other text goes to the Event parser."""
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


def kafka_rows(settings: Settings, topic: str, offset: int, partition: int | None = None) -> Iterator[Row]:
    """Records of ``topic`` from ``offset`` (every partition, or just ``partition``) up to the end as of now.

    A throwaway consumer with manual ``assign``: no group offsets are read or committed.
    """
    conf: dict[str, Any] = dict(settings.kafka.client_config())
    conf.update(
        {
            "group.id": f"anomstream-replay-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,  # the end as of now may be a control record, never delivered
        }
    )
    consumer = Consumer(conf)
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise ConfigError(
                f"--from-kafka: topic {topic!r} not found on {settings.kafka.bootstrap_servers}"
            )
        ends: dict[int, int] = {}
        for part in sorted(meta.partitions) if partition is None else [partition]:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, part), timeout=10)
            if max(offset, low) < high:
                ends[part] = high
        consumer.assign([TopicPartition(topic, p, max(offset, 0)) for p in ends])
        yield from _consume(consumer, ends, settings.worker.max_message_bytes)
    finally:
        consumer.close()


def _consume(consumer: Any, ends: dict[int, int], max_bytes: int) -> Iterator[Row]:
    while ends:
        for msg in consumer.consume(500, 1.0):
            if msg.partition() not in ends:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    del ends[msg.partition()]
                continue
            source = Source(topic=msg.topic(), partition=msg.partition(), offset=msg.offset())
            decoded = decode_event(msg.value(), max_bytes)
            if isinstance(decoded, Rejection):
                yield Row(source, "", None, f"{decoded.reason}: {decoded.detail}")
            else:
                yield Row(source, decoded.timestamp.isoformat(), decoded)
            if msg.offset() + 1 >= ends[msg.partition()]:
                del ends[msg.partition()]


def _text(cell: Any) -> Any:
    return str(cell) if isinstance(cell, int | float) and not isinstance(cell, bool) else cell


def _flag(cell: Any) -> bool:
    if isinstance(cell, str):
        return cell.strip().lower() in _TRUE
    return bool(cell) if cell is not None else False
