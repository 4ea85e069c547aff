"""Report: self-contained HTML with embedded PNGs, the PNG files, and a real render in headless Chromium."""

from __future__ import annotations

import base64
import os
import random
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from anomstream import cli
from anomstream.detect.spec import DetectorSpecs
from anomstream.offline import evaluate

pytest.importorskip("matplotlib", reason="the report needs the 'report' extra (matplotlib)")

SPECS = DetectorSpecs.model_validate({"streams": {"default": {"detector": "zscore", "warmup": 20}}})
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report of two detectors over one labelled file with two spikes."""
    folder = tmp_path_factory.mktemp("report")
    rng = random.Random(9)
    lines = ["timestamp,value,label"]
    for i in range(300):
        spike = i in (120, 240)
        lines.append(
            f"2024-01-01T{i // 60:02d}:{i % 60:02d}:00Z,{10 + rng.gauss(0, 1) + 40 * spike},{int(spike)}"
        )
    data = folder / "svc.csv"
    data.write_text("\n".join(lines) + "\n")
    argv = ["evaluate", str(data), "--label-col", "label", "--report", str(folder / "out")]
    args = cli.evaluate_options(cli.build_parser().parse_args(argv))
    results = [
        evaluate.evaluate(n, s, evaluate.discover(args.paths), args, None) for n, s in [("zscore", SPECS)]
    ]
    ewma = DetectorSpecs.model_validate({"streams": {"default": {"detector": "ewma", "warmup": 20}}})
    results.append(evaluate.evaluate("ewma", ewma, evaluate.discover(args.paths), args, None))
    from anomstream.offline.report import write_report

    return write_report(folder / "out", results)


def test_html_is_self_contained_with_every_figure(report: Path) -> None:
    """Every image is an inline base64 PNG; nothing is loaded from elsewhere."""
    page = report.read_text()
    images = re.findall(r'<img alt="[^"]*" src="([^"]+)"', page)
    assert len(images) == 4  # ROC, PR, histogram and one series
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")
    assert "http://" not in page
    assert "https://" not in page


def test_pngs_and_tables_are_written(report: Path) -> None:
    """The folder holds the figures as PNG files; the page has a row per detector and per file."""
    names = sorted(p.name for p in report.parent.glob("*.png"))
    assert names[:3] == ["histogram.png", "pr.png", "roc.png"]
    assert len(names) == 4
    assert names[3].startswith("series_00_")
    assert names[3].endswith("svc.csv.png")
    page = report.read_text()
    assert "<td>zscore</td>" in page
    assert "<td>ewma</td>" in page
    assert "/svc.csv</td>" in page


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    """Headless Chromium renders the page to a non-blank screenshot (skipped without Chromium, not in CI)."""
    if CHROMIUM is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI requires chromium for the report render test (apt-get install -y chromium)")
        pytest.skip("chromium not installed")
    shot = tmp_path / "shot.png"
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}", f"--screenshot={shot}",
        "--window-size=1400,2000", report.as_uri(),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2000, 1400)
    assert pixels.std() > 0.05, "the screenshot is blank"
