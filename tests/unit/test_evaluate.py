"""Evaluate: metrics wiring on a labelled file, NAB windows and results layout, profiles printed per line."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from anomstream import cli
from anomstream.detect.catalog import CATALOG
from anomstream.detect.spec import DetectorSpecs
from anomstream.errors import ConfigError
from anomstream.offline import evaluate, nab
from anomstream.offline import pointscore as metrics

NAB_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "nab"
WINDOWS = NAB_DIR / "labels" / "combined_windows.json"
SMALL = ("realAdExchange/exchange-3_cpc_results.csv", "realAdExchange/exchange-2_cpc_results.csv")
# The likelihood calibrator judges from its 20th deviation (zscore's own choice, SPOT, needs 300): these
# series are 400 rows, and the tests pin the metrics' wiring, not the calibrator.
SPECS = DetectorSpecs.model_validate(
    {"streams": {"default": {"detector": "zscore", "warmup": 20, "threshold": {"calibrator": "likelihood"}}}}
)
PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
N, SPIKES = 400, (150, 300)

needs_nab = pytest.mark.skipif(not WINDOWS.exists(), reason=f"NAB subset not found at {NAB_DIR}")


def labelled_csv(path: Path) -> Path:
    """Noise with two spikes, each labelled on its row and the two rows after it."""
    rng = random.Random(5)
    lines = ["timestamp,value,label"]
    for i in range(N):
        spike = i in SPIKES
        label = any(0 <= i - s <= 2 for s in SPIKES)
        lines.append(f"{1_700_000_000_000 + i * 60_000},{10 + rng.gauss(0, 1) + 50 * spike},{int(label)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def parse(*argv: str) -> evaluate.EvaluateOptions:
    return cli.evaluate_options(cli.build_parser().parse_args(["evaluate", *argv]))


def test_label_column_metrics_are_wired_to_the_point_metrics(tmp_path: Path) -> None:
    """P/R/F1, ROC/PR AUC and window recall equal the metrics module on the replayed rows past probation."""
    args = parse(str(labelled_csv(tmp_path / "svc.csv")), "--label-col", "label")
    (result,) = [
        evaluate.evaluate(n, s, evaluate.discover(args.paths), args, None) for n, s in [("z", SPECS)]
    ]
    (run,) = result.runs
    keep = slice(nab.probation_rows(N), None)
    assert run.window_rows == ((150, 152), (300, 302))
    p = result.points
    assert (p.windows, p.windows_alarmed) == (2, 2)
    assert p.roc_auc == metrics.roc_auc(run.labels[keep], run.scores[keep])
    assert p.pr_auc == metrics.pr_auc(run.labels[keep], run.scores[keep])
    assert (p.precision, p.recall, p.f1) == metrics.precision_recall_f1(run.labels[keep], run.anomalous[keep])
    assert run.alarms[list(SPIKES)].all()
    assert p.precision == 1.0
    assert result.nab["standard"].live.score > 80


def test_text_output_prints_one_line_per_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The text summary has a line starting with each NAB profile, holding both numbers."""
    args = parse(str(labelled_csv(tmp_path / "svc.csv")), "--label-col", "label")
    assert evaluate.run(args, SPECS) == 0
    lines = capsys.readouterr().out.splitlines()
    for profile in PROFILE_NAMES:
        (line,) = [x for x in lines if x.startswith(profile + " ")]
        assert len(line.split()) == 5  # name, optimised score, "(at", threshold), live score


def test_json_output_is_machine_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--format json prints a list with points and both NAB numbers per profile."""
    args = parse(str(labelled_csv(tmp_path / "svc.csv")), "--label-col", "label", "--format", "json")
    assert evaluate.run(args, SPECS) == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert set(doc["nab"]) == set(PROFILE_NAMES)
    assert doc["points"]["windows"] == 2


def test_labels_are_required_exactly_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Neither --labels nor --label-col (or both) is a usage error, exit code 2."""
    assert evaluate.run(parse(str(labelled_csv(tmp_path / "svc.csv"))), SPECS) == 2
    assert "--label-col" in capsys.readouterr().err


def test_nab_layout_writer_paths_and_columns(tmp_path: Path) -> None:
    """Results land in DIR/<detector>/<category>/<detector>_<file>.csv with NAB's four columns."""
    args = parse(str(labelled_csv(tmp_path / "svc.csv")), "--label-col", "label")
    result = evaluate.evaluate("z", SPECS, [("cat/svc.csv", tmp_path / "svc.csv")], args, None)
    (path,) = evaluate.write_nab_results(tmp_path / "results", "anomstream", result.runs)
    assert path == tmp_path / "results" / "anomstream" / "cat" / "anomstream_svc.csv"
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "label"]
    assert len(rows) == N
    assert [int(r["label"]) for r in rows[150:154]] == [1, 1, 1, 0]
    assert float(rows[150]["anomaly_score"]) == result.runs[0].scores[150]


@needs_nab
def test_nab_files_print_all_three_profiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Evaluating real NAB files with their windows prints every profile and writes NAB's layout."""
    data = tmp_path / "data"
    for key in SMALL:
        (data / key).parent.mkdir(parents=True, exist_ok=True)
        (data / key).symlink_to(NAB_DIR / "data" / key)
    out = tmp_path / "results"
    args = parse(
        str(data), "--labels", str(WINDOWS), "--format", "nab", "--out", str(out), "--spec", "univariate"
    )
    assert evaluate.run(args, DetectorSpecs()) == 0
    text = capsys.readouterr().out
    for profile in PROFILE_NAMES:
        assert any(line.startswith(profile + " ") for line in text.splitlines()), text
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv"))
    assert written == [f"anomstream/realAdExchange/anomstream_{Path(k).name}" for k in sorted(SMALL)]


@needs_nab
def test_windows_mark_rows_and_match_nab_series(tmp_path: Path) -> None:
    """Window rows from the JSON equal labels_from_windows and NAB's own row matching."""
    key = SMALL[0]
    args = parse(str(NAB_DIR / "data" / key), "--labels", str(WINDOWS))
    labels = nab.load_windows(WINDOWS)
    result = evaluate.evaluate("z", SPECS, evaluate.discover(args.paths), args, labels)
    (run,) = result.runs
    assert run.name == key
    assert len(run.window_rows) == len(labels[key]) == 3
    assert np.array_equal(run.labels, metrics.labels_from_windows(run.ts, labels[key]))
    assert run.nab_series().window_rows == run.window_rows


@needs_nab
def test_all_detectors_prints_a_row_per_catalog_detector(capsys: pytest.CaptureFixture[str]) -> None:
    """--all-detectors evaluates each catalog detector and prints one table row each."""
    args = parse(str(NAB_DIR / "data" / SMALL[0]), "--labels", str(WINDOWS), "--all-detectors")
    assert evaluate.run(args, DetectorSpecs()) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == list(CATALOG)
    assert "standard:opt" in lines[0]
    assert "reward_low_FN_rate:live" in lines[0]


def test_file_missing_from_labels_is_a_config_error(tmp_path: Path) -> None:
    """A file with no entry in the windows JSON is refused, naming the file."""
    windows = tmp_path / "w.json"
    windows.write_text('{"other/x.csv": []}')
    args = parse(str(labelled_csv(tmp_path / "svc.csv")), "--labels", str(windows))
    with pytest.raises(ConfigError, match=r"svc\.csv"):
        evaluate.run(args, SPECS)
