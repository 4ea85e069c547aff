"""Behaviour of the catalog's detector families beyond the shared contract.

Isolation (HST fix, forest, stream scope), neighbours and clusters, hypothesis tests, forecasts, the
deep extra, and the catalog listing.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import pytest

from anomstream import cli
from anomstream.detect import catalog, deep, describe, vector
from anomstream.detect.catalog import CATALOG, build
from anomstream.detect.clustering import KMeansDistance
from anomstream.detect.detector import Detector
from anomstream.detect.forest import IsolationForest
from anomstream.detect.hypothesis import ESD, ChangePoint
from anomstream.detect.neighbours import LocalOutlierFactor
from anomstream.detect.spec import StreamSpec
from anomstream.errors import ConfigError

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
MULTIVARIATE = ["hst", "iforest", "ocsvm", "lof", "kmeans"]


def _feed(det: Detector, n: int, seed: int = 5) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        det.learn_one({"a": rng.gauss(0.0, 1.0), "b": rng.gauss(50.0, 5.0), "c": rng.gauss(-3.0, 0.5)})


@pytest.mark.parametrize("name", MULTIVARIATE)
def test_far_spike_outscores_every_normal_point(name: str) -> None:
    """A 8σ spike on one feature scores above the key's recent normal points (the HST face bug)."""
    det = build(StreamSpec(detector=name))
    _feed(det, 400)
    rng = random.Random(9)
    normal = [
        det.score_one({"a": rng.gauss(0, 1), "b": rng.gauss(50, 5), "c": rng.gauss(-3, 0.5)})
        for _ in range(50)
    ]
    assert det.score_one({"a": 8.0, "b": 50.0, "c": -3.0}) > max(normal)


def test_forest_depth_keeps_falling_with_distance() -> None:
    """The isolation forest's raw score grows with distance beyond the data (no saturation at the edge)."""
    det = CATALOG["iforest"]()
    _feed(det, 300)
    raws = [det.deviations({"a": a, "b": 50.0, "c": -3.0})["model"] for a in (4.0, 8.0, 100.0)]
    assert raws == sorted(raws)
    assert raws[0] < raws[-1]


def test_forest_state_is_arrays() -> None:
    """The forest's fitted state (window and trees) is numpy arrays."""
    det = IsolationForest()
    _feed(det, 200)
    model = det._model()
    assert model.forest is not None
    assert all(type(a) is np.ndarray for a in (*model.forest, model.window))


def test_stream_scope_shares_one_model_and_keeps_it_out_of_key_state() -> None:
    """With scope="stream" two keys feed one model, and a key's pickle holds only its own moments."""
    vector.SHARED.clear()
    one, two = IsolationForest(scope="stream", seed=3), IsolationForest(scope="stream", seed=3)
    _feed(one, 100, seed=1)
    _feed(two, 100, seed=2)
    assert one._model() is two._model()
    assert one._model().filled == 128
    assert one._stats().model is None
    assert len(pickle.dumps(one)) < 2_000
    vector.SHARED.clear()


def test_lof_cost_is_bounded_by_the_window() -> None:
    """The windowed LOF keeps at most ``window_size`` points, however long the stream."""
    det = LocalOutlierFactor(window_size=32)
    _feed(det, 300)
    assert det._model().window.shape[0] == 32
    assert det._model().filled == 32


def test_esd_false_alarm_rate_matches_alpha_on_gaussian_data() -> None:
    """On i.i.d. Gaussian data, p < 0.01 happens about 1 % of the time (0.3 %–2 % over 3000 points)."""
    det = ESD(window_size=64)
    rng = random.Random(1)
    hits = 0
    for i in range(3064):
        x = {"x": rng.gauss(0.0, 1.0)}
        if i >= 64:
            hits += det.p_value(x) < 0.01
        det.learn_one(x)
    assert 9 <= hits <= 60, hits


@pytest.mark.parametrize("method", ["page_hinkley", "adwin"])
def test_changepoint_flags_a_level_shift_not_noise(method: str) -> None:
    """A sustained 3σ level shift is detected within 30 points; stationary noise is not."""
    det = ChangePoint(method=method)
    rng = random.Random(2)
    noise = []
    for _ in range(400):
        x = {"x": rng.gauss(10.0, 1.0)}
        noise.append(det.score_one(x))
        det.learn_one(x)
    shifted = []
    for _ in range(30):
        x = {"x": rng.gauss(13.0, 1.0)}
        shifted.append(det.score_one(x))
        det.learn_one(x)
    assert max(noise[100:]) < 0.7 < max(shifted)
    assert det.kind == "shift"


@pytest.mark.parametrize("name", ["arima", "holtwinters"])
def test_forecast_band_follows_a_ramp(name: str) -> None:
    """On a ramp, the expected band is centred on the next ramp value and a jump leaves it."""
    det = CATALOG[name]()
    for i in range(300):
        det.learn_one({"x": 100.0 + 2.0 * i + (i % 3) * 0.5})
    band = det.explain_one({"x": 700.0}).expected["x"]
    assert band.low < 700.5 < band.high
    assert det.score_one({"x": 760.0}) > 0.7


def test_deep_detector_without_extra_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for a deep detector without JAX/optax names the extra to install."""
    monkeypatch.setattr(deep, "available", lambda: False)
    with pytest.raises(ConfigError, match=r"anomstream\[deep\]"):
        build(StreamSpec(detector="lstm"))
    assert catalog.available("zscore")


def test_deep_detector_without_extra_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI turns the missing-extra error into exit code 2 with the install hint."""
    monkeypatch.setattr(deep, "available", lambda: False)
    spec = tmp_path / "d.toml"
    spec.write_text('[streams.default]\ndetector = "autoencoder"\n')
    monkeypatch.setenv("ANOMSTREAM_DETECTORS_FILE", str(spec))
    assert cli.main(["show-config"]) == 2
    assert "anomstream[deep]" in capsys.readouterr().err


@pytest.mark.skipif(not deep.available(), reason="optional extra [deep] not installed")
@pytest.mark.parametrize("name", ["autoencoder", "lstm"])
def test_deep_state_is_numpy_arrays_only(name: str) -> None:
    """A trained deep detector's weights and optimiser state are plain numpy arrays."""
    det = deep.Autoencoder(batch_size=8) if name == "autoencoder" else deep.LSTM(batch_size=8)
    _feed(det, 80)
    model = det._model()
    assert model.steps > 0
    assert all(type(a) is np.ndarray for a in [*model.params, *model.opt])


def test_detectors_command_lists_every_detector(capsys: pytest.CaptureFixture[str]) -> None:
    """``anomstream detectors`` prints each catalog name with its summary and parameters."""
    assert cli.main(["detectors"]) == 0
    out = capsys.readouterr().out
    for name, cls in CATALOG.items():
        assert f"{name} " in out
        assert cls.summary in out
    assert "params: n_trees=20" in out


@pytest.mark.parametrize("doc", ["README.md", "docs/detectors.md"])
def test_documented_table_is_the_generated_one(doc: str) -> None:
    """README and docs/detectors.md carry exactly the table ``anomstream detectors --markdown`` prints."""
    text = (ROOT / doc).read_text()
    assert describe.embedded(text) == describe.markdown(), "run: anomstream detectors --markdown"


def test_scope_is_validated() -> None:
    """An unknown ``scope`` is a configuration error naming the choices."""
    with pytest.raises(ConfigError, match="scope"):
        build(StreamSpec(detector="kmeans", params={"scope": "global"}))
    shared = build(StreamSpec(detector="kmeans", params={"scope": "stream"}))
    assert isinstance(shared, KMeansDistance)
    assert shared.scope == "stream"
