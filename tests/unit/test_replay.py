"""Replay: file parsing, column mapping, rejected rows, deterministic alert ids and the output files."""

from __future__ import annotations

import csv
import io
import json
import random
import sys
from pathlib import Path

import pytest

from anomstream import cli
from anomstream.detect.scorer import alert_id
from anomstream.detect.spec import DetectorSpecs
from anomstream.errors import ConfigError
from anomstream.offline import replay
from anomstream.offline.outputs import Progress
from anomstream.offline.replay import Replayer, Verdict, replay_files
from anomstream.offline.sources import ColumnMap, rows
from anomstream.wire.records import Source

# The likelihood calibrator judges from its 20th deviation (zscore's own choice, SPOT, needs 300 and these
# files spike earlier); the tests pin replay, not the calibrator.
SPECS = DetectorSpecs.model_validate(
    {"streams": {"default": {"detector": "zscore", "warmup": 20, "threshold": {"calibrator": "likelihood"}}}}
)
SPIKE_ROW = 150


def nab_csv(path: Path, n: int = 200, spike_at: int | None = SPIKE_ROW) -> Path:
    """A NAB-shaped file (timestamp,value; 5-minute steps) with one spike."""
    rng = random.Random(3)
    lines = ["timestamp,value"]
    for i in range(n):
        value = 10 + rng.gauss(0, 1) + (60 if i == spike_at else 0)
        lines.append(f"2014-04-01 {i // 12:02d}:{i % 12 * 5:02d}:00,{value}")
    path.write_text("\n".join(lines) + "\n")
    return path


def parse(*argv: str) -> replay.ReplayOptions:
    return cli.replay_options(cli.build_parser().parse_args(["replay", *argv]))


def run_file(path: Path, specs: DetectorSpecs = SPECS, **cmap: object) -> list[Verdict]:
    return list(replay_files([path], ColumnMap(**cmap), Replayer(specs)))  # type: ignore[arg-type]


def test_nab_csv_entity_is_file_stem_and_coordinates_are_file_rows(tmp_path: Path) -> None:
    """NAB CSVs: entity = file stem, values = {value}, source = (file name, partition 0, row index)."""
    verdicts = run_file(nab_csv(tmp_path / "cpu.csv"))
    assert len(verdicts) == 200
    first = verdicts[0].row
    assert first.event is not None
    assert (first.event.entity_id, list(first.event.values), first.event.stream) == (
        "cpu",
        ["value"],
        "default",
    )
    assert [v.row.source for v in verdicts[:2]] == [
        Source(topic="cpu.csv", partition=0, offset=i) for i in (0, 1)
    ]
    assert first.timestamp == "2014-04-01 00:00:00"


def test_column_mapping_selects_entity_values_and_stream(tmp_path: Path) -> None:
    """--entity-col / --value-cols / --stream map columns; other columns are not scored."""
    path = tmp_path / "m.csv"
    path.write_text("host,ts,a,b,c\nh1,1700000000000,1,2,3\nh2,1700000060000,4,,6\n")
    verdicts = run_file(path, entity_col="host", timestamp_col="ts", value_cols=("a", "b"), stream="s")
    events = [v.row.event for v in verdicts]
    assert [(e.entity_id, dict(e.values), e.stream) for e in events if e] == [
        ("h1", {"a": 1.0, "b": 2.0}, "s"),
        ("h2", {"a": 4.0}, "s"),  # an empty cell is a missing feature, as in an event without it
    ]
    assert events[0] is not None
    assert events[0].timestamp.isoformat() == "2023-11-14T22:13:20+00:00"


def test_label_column_is_read_and_excluded_from_values(tmp_path: Path) -> None:
    """The label column becomes Row.label and never a feature."""
    path = tmp_path / "l.csv"
    path.write_text("timestamp,value,is_anomaly\n2024-01-01T00:00:00Z,1,0\n2024-01-01T00:01:00Z,2,1\n")
    got = list(rows(path, ColumnMap(), label_col="is_anomaly"))
    assert [r.label for r in got] == [False, True]
    assert all(r.event is not None and list(r.event.values) == ["value"] for r in got)


def test_jsonl_event_records_keep_their_entity_stream_and_values(tmp_path: Path) -> None:
    """Event-shaped JSONL (entity_id, epoch-ms timestamp, values object) replays as the worker decodes it."""
    path = tmp_path / "events.jsonl"
    records = [
        {
            "entity_id": "pump-1",
            "timestamp": 1700000000000,
            "values": {"t": 70.5, "p": 1.0},
            "stream": "pumps",
        },
        {"entity_id": "pump-2", "timestamp": 1700000001000, "values": {"t": 71.0}},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    events = [r.event for r in rows(path, ColumnMap())]
    assert [(e.entity_id, e.stream, dict(e.values)) for e in events if e] == [
        ("pump-1", "pumps", {"t": 70.5, "p": 1.0}),
        ("pump-2", "default", {"t": 71.0}),
    ]


def test_bad_rows_are_rejected_but_still_written(tmp_path: Path) -> None:
    """A non-numeric, non-finite or unparsable row gets an error and no score; the output keeps the row."""
    path = tmp_path / "bad.csv"
    lines = ["timestamp,value", "2024-01-01 00:00:00,1", "2024-01-01 00:01:00,abc", "not-a-time,3"]
    path.write_text("\n".join([*lines, "2024-01-01 00:02:00,inf"]) + "\n")
    verdicts = run_file(path)
    assert [v.outcome is None for v in verdicts] == [False, True, True, True]
    errors = [v.as_dict()["error"] for v in verdicts]
    assert errors[0] is None
    assert "not a number" in errors[1]
    assert "timestamp" in errors[2]
    assert "finite" in errors[3]


def test_alert_ids_are_deterministic_from_file_coordinates(tmp_path: Path) -> None:
    """The spike's alert id is alert_id(file name, 0, row index, stream, detector), on every replay."""
    path = nab_csv(tmp_path / "cpu.csv")
    first, second = run_file(path), run_file(path)
    spike = first[SPIKE_ROW]
    assert spike.status == "open"
    assert spike.alarm
    expected = alert_id(Source(topic="cpu.csv", partition=0, offset=SPIKE_ROW), "default", "zscore")
    assert spike.as_dict()["alert_id"] == expected == second[SPIKE_ROW].as_dict()["alert_id"]
    assert spike.as_dict()["top_feature"] == "value"
    assert spike.as_dict()["expected_high"] is not None


def test_recording_bands_does_not_change_any_score(tmp_path: Path) -> None:
    """--bands reads the model before each row; scores and decisions are identical without it."""
    path = nab_csv(tmp_path / "cpu.csv")
    plain = list(replay_files([path], ColumnMap(), Replayer(SPECS)))
    banded = list(replay_files([path], ColumnMap(), Replayer(SPECS, bands=True)))
    assert [v.outcome.score for v in plain if v.outcome] == [v.outcome.score for v in banded if v.outcome]
    assert banded[100].expected["value"].low < 10 < banded[100].expected["value"].high


def test_cli_writes_one_csv_row_per_input_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`replay FILE --out x.csv` writes a header plus one row per input row, including rejected ones."""
    path = nab_csv(tmp_path / "cpu.csv", n=50)
    with path.open("a") as handle:
        handle.write("2014-04-02 00:00:00,oops\n")
    out = tmp_path / "out" / "scores.csv"
    assert replay.run(parse(str(path), "--out", str(out)), SPECS) == 0
    written = list(csv.DictReader(out.open()))
    assert len(written) == 51
    assert written[0]["warming"] == "true"
    assert written[-1]["error"]
    assert {"score", "threshold", "anomalous", "alert_status", "top_feature"} <= set(written[0])
    assert "51 rows, 1 rejected" in capsys.readouterr().err


def test_cli_jsonl_output_with_detector_override(tmp_path: Path) -> None:
    """`--detector ewma --out x.jsonl` scores with that detector and writes JSON lines."""
    out = tmp_path / "scores.jsonl"
    assert (
        replay.run(parse(str(nab_csv(tmp_path / "cpu.csv")), "--detector", "ewma", "--out", str(out)), SPECS)
        == 0
    )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 200
    assert lines[SPIKE_ROW]["alert_status"] == "open"
    assert lines[SPIKE_ROW]["alert_id"] == alert_id(
        Source(topic="cpu.csv", partition=0, offset=SPIKE_ROW), "default", "ewma"
    )


def test_cli_without_input_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """`replay` with neither files nor --from-kafka exits 2 with a message."""
    assert replay.run(parse(), SPECS) == 2
    assert "FILE" in capsys.readouterr().err


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading Parquet with pyarrow missing raises a ConfigError naming the package."""
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(ConfigError, match="pyarrow"):
        list(rows(path, ColumnMap()))


def test_unknown_suffix_is_a_config_error(tmp_path: Path) -> None:
    """Only .csv, .jsonl/.ndjson/.json and .parquet are replayed."""
    with pytest.raises(ConfigError, match="unknown file type"):
        list(rows(tmp_path / "x.xlsx", ColumnMap()))


def test_progress_draws_only_on_a_terminal() -> None:
    """The progress line uses carriage returns on a TTY and prints nothing otherwise."""

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    quiet, tty = io.StringIO(), Tty()
    for stream in (quiet, tty):
        progress = Progress("f.csv", 10, stream)
        progress.step(10)
        progress.close()
    assert quiet.getvalue() == ""
    assert tty.getvalue().startswith("\rf.csv [")
    assert "10/10 100.0%" in tty.getvalue()


def test_missing_column_fails_before_any_row(tmp_path: Path) -> None:
    """A mapped column absent from the first record is a ConfigError listing the columns there are."""
    path = nab_csv(tmp_path / "cpu.csv", n=5)
    with pytest.raises(ConfigError, match=r"no column \['time'\].*'timestamp', 'value'"):
        list(rows(path, ColumnMap(timestamp_col="time")))


def test_cli_writes_stream_wide_alerts_in_the_row_that_released_them(tmp_path: Path) -> None:
    """A key goes quiet while another keeps sending: replay's CSV names its silent alert, then resolved."""
    lines = ["timestamp,entity,value"]
    for i in range(60):
        for entity in ("a", "b"):
            if entity == "a" and 30 <= i < 45:
                continue  # a is silent for 15 steps of 5 minutes
            lines.append(f"2014-04-01 {i // 12:02d}:{i % 12 * 5:02d}:00,{entity},{10 + i % 3}")
    path = tmp_path / "two.csv"
    path.write_text("\n".join(lines) + "\n")
    specs = DetectorSpecs.model_validate(
        {"streams": {"default": {"detector": "zscore", "warmup": 5, "silence": {"enabled": True}}}}
    )
    out = tmp_path / "out.csv"
    assert replay.run(parse(str(path), "--entity-col", "entity", "--out", str(out)), specs) == 0
    written = [json.loads(r["stream_alerts"]) for r in csv.DictReader(out.open()) if r["stream_alerts"]]
    assert [(a["kind"], a["status"], a["entity_id"]) for (a,) in written] == [
        ("silent", "open", "a"),
        ("silent", "resolved", "a"),
    ]
