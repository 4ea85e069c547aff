"""The explorer in real headless Chromium on the real broker: an alert, its series, a false-positive click.

Playwright drives Debian's ``chromium`` (``executable_path``); no browser is downloaded. Screenshots go to
``test-artifacts/`` (gitignored) for a person to look at.
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable, Iterator

import pytest

from anomstream import app
from anomstream.config import Settings
from anomstream.ops.demo import DemoConfig, generate
from anomstream.ui.server import UiServer
from anomstream.wire.codec import encode_event
from anomstream.wire.records import Alert, Feedback
from integration.harness import ROOT, ThreadedWorker, drain, end_offsets, produce, settings_for, worker_thread

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
ARTIFACTS = ROOT / "test-artifacts"
TOKEN = "browser-test-token"


def _wait(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def stack(kafka_bootstrap: str) -> Iterator[tuple[Settings, ThreadedWorker, UiServer, list[Alert]]]:
    """Demo events with injected spikes on the broker, a worker scoring them, the explorer serving."""
    if CHROMIUM is None:
        pytest.fail("the browser test needs Debian's chromium (make test-deps installs it)")
    settings = settings_for(
        kafka_bootstrap,
        partitions=2,
        worker={"score_bands": True},
        ui={"feedback_token": TOKEN, "host": "127.0.0.1"},
    )
    stream = list(itertools.islice(generate(DemoConfig(entities=3, seed=21)), 3 * 700))
    produce(
        kafka_bootstrap,
        settings.topics.events,
        ((x.event.entity_id.encode(), encode_event(x.event)) for x in stream),
    )
    with worker_thread(settings) as worker:
        opened = drain(
            kafka_bootstrap,
            settings.topics.alerts,
            lambda got: any(Alert.model_validate_json(m.value() or b"").status == "open" for m in got),
            120,
        )
        alerts = [Alert.model_validate_json(m.value() or b"") for m in opened]
        # every event scored: the worker's state is settled before the explorer judges it
        scored = len(stream)
        drain(kafka_bootstrap, settings.topics.scores, lambda got: len(got) >= scored, 120)
        ui = app.build_ui(settings, port=0).start()
        try:
            yield settings, worker, ui, alerts
        finally:
            ui.close()


def test_false_positive_click_publishes_feedback_and_moves_threshold_and_precision(
    stack: tuple[Settings, ThreadedWorker, UiServer, list[Alert]], kafka_bootstrap: str
) -> None:
    """Alert listed, its series and band plotted; FP click: 401 without token, else published and applied.

    Without the token the click is refused (401) and nothing is published; with it, "false positive"
    publishes one record to the key's partition, lifts the key's threshold and sets its precision to 0.
    """
    settings, worker, ui, alerts = stack
    base = f"http://127.0.0.1:{ui.port}"
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(f"{base}/?status=open")
        # the strongest alert: a false positive's floor (score + margin) is then surely above the bar
        alert = max((a for a in alerts if a.status == "open"), key=lambda a: a.score)
        row = f'#alerts tbody tr[data-alert="{alert.alert_id}"]'
        page.wait_for_selector(row, timeout=30_000)  # the live list has read it from the alert topic
        page.screenshot(path=str(ARTIFACTS / "explorer-list.png"), full_page=True)
        page.click(f'{row} a[href^="/alerts/"]')
        page.wait_for_selector("#plot .main-svg", timeout=30_000)
        legend = page.inner_text("#plot")
        for trace in ("expected band", "value", "score", "threshold"):
            assert trace in legend, f"the plot has no {trace!r} trace"
        points = int(page.locator("#plot path.js-line").count())
        assert points >= 4, "value, band, score and threshold lines are drawn"

        key = (alert.stream, alert.entity_id)
        before = worker.worker.scorer.threshold_of(*key)
        assert before is not None

        page.click('button[data-verdict="false_positive"]')  # no token typed yet
        page.wait_for_selector("#feedback-status.refused", timeout=10_000)
        assert "401" in page.inner_text("#feedback-status")
        assert sum(end_offsets(kafka_bootstrap, settings.topics.feedback).values()) == 0

        page.fill("#token", TOKEN)
        page.click('button[data-verdict="false_positive"]')
        page.wait_for_selector("#feedback-status.ok", timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / "explorer-alert.png"), full_page=True)
        browser.close()

    published = drain(kafka_bootstrap, settings.topics.feedback, lambda got: len(got) >= 1, 30)
    assert len(published) == 1
    fb = Feedback.model_validate_json(published[0].value() or b"")
    assert (fb.verdict, fb.alert_id, fb.entity_id, fb.score) == (
        "false_positive",
        alert.alert_id,
        alert.entity_id,
        alert.score,
    )
    assert published[0].partition() == alert.source.partition, "co-partitioned with the key's events"

    labels = {"stream": "default", "detector": alert.detector}
    fp = {**labels, "verdict": "false_positive"}
    _wait("the worker to apply the verdict", lambda: worker.sample("anomstream_feedback_total", fp) == 1.0)
    precision = worker.metrics.registry.get_sample_value("anomstream_detection_precision", labels)
    assert precision == 0.0, "one verdict, a false positive: precision 0"
    assert worker.sample("anomstream_alerts_labelled_ratio", labels) > 0.0
    after = worker.worker.scorer.threshold_of(*key)
    assert after is not None
    assert after == pytest.approx(max(before, alert.score + 0.02)), (before, after, alert.score)
    assert after > before
    assert (ARTIFACTS / "explorer-alert.png").stat().st_size > 10_000
