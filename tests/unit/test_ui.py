"""The explorer's web app over an in-memory book: pages render, feedback needs the token, publishes right."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from anomstream.ops import logs
from anomstream.ui.book import AlertBook
from anomstream.ui.feed import Publisher
from anomstream.ui.server import Explorer
from anomstream.wire.records import Alert, Expected, Feedback, ScoreRecord, Source

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BAND = Expected(mean=10.0, low=8.0, high=12.0)
TOKEN = "s3cret-token"


class _Producer:
    """Records what would be produced; every delivery succeeds."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int | None]] = []

    def produce(
        self, topic: str, value: bytes, key: bytes, on_delivery: Any, partition: int | None = None
    ) -> None:
        self.sent.append((topic, value, key, partition))
        on_delivery(None, None)

    def flush(self, timeout: float) -> int:
        return 0


def _book() -> AlertBook:
    book = AlertBook(100, 100)
    for i in range(30):
        value = 40.0 if i == 20 else 10.0
        book.add_score(
            ScoreRecord(
                entity_id="pump-<1>", stream="default", timestamp=T0 + timedelta(seconds=i),
                detector="zscore", score=0.8 if i == 20 else 0.1, threshold=0.4, anomalous=i == 20,
                warming=False,
                source=Source(topic="events", partition=2, offset=i), values={"temp": value},
                expected={"temp": BAND},
            )
        )  # fmt: skip
    book.add_alert(
        Alert(
            alert_id="alert-1", entity_id="pump-<1>", stream="default", timestamp=T0 + timedelta(seconds=20),
            detected_at=T0, status="open", severity="critical", score=0.8, threshold=0.4, detector="zscore",
            values={"temp": 40.0}, expected={"temp": BAND},
            contributions={"temp": 1.0}, source=Source(topic="events", partition=2, offset=20),
            view="temp.level",
        )
    )  # fmt: skip
    return book


def _client(token: str | None = TOKEN) -> tuple[TestClient, _Producer]:
    producer = _Producer()
    publisher = Publisher(producer, "feedback", now=lambda: T0)
    explorer = Explorer(_book(), publisher, token.encode() if token else None, logs.get("test-ui"))
    return TestClient(explorer.app()), producer


def test_pages_render_with_escaped_values_and_local_plotly() -> None:
    """List, alert and entity pages render; record values are escaped; plotly.js is served locally."""
    client, _ = _client()
    home = client.get("/", params={"severity": "critical"})
    assert home.status_code == 200
    assert "pump-&lt;1&gt;" in home.text
    assert "pump-<1>" not in home.text
    assert "alert-1" in client.get("/fragments/alerts", params={"kind": "point"}).text
    assert "alert-1" not in client.get("/fragments/alerts", params={"status": "resolved"}).text
    page = client.get("/alerts/alert-1")
    assert page.status_code == 200
    assert 'data-verdict="false_positive"' in page.text
    assert '"expected band"' in page.text
    assert "http" not in page.text.split("<main>")[0].replace("http-equiv", ""), "no external script"
    assert client.get("/entities/default/pump-%3C1%3E").status_code == 200
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200
    assert len(js.content) > 1_000_000
    assert client.get("/alerts/nope").status_code == 404


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
def test_feedback_without_the_token_is_refused_and_nothing_is_published(headers: dict[str, str]) -> None:
    """No token, a wrong one, or one without the Bearer scheme: 401 and nothing produced."""
    client, producer = _client()
    resp = client.post(
        "/api/feedback", json={"alert_id": "alert-1", "verdict": "false_positive"}, headers=headers
    )
    assert resp.status_code == 401
    assert producer.sent == []


def test_read_only_explorer_refuses_feedback() -> None:
    """Without a configured token the explorer is read-only: 403, nothing produced, buttons disabled."""
    client, producer = _client(token=None)
    resp = client.post(
        "/api/feedback", json={"alert_id": "alert-1", "verdict": "false_positive"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )  # fmt: skip
    assert resp.status_code == 403
    assert producer.sent == []
    assert "disabled" in client.get("/alerts/alert-1").text


def test_feedback_with_the_token_publishes_to_the_entity_partition() -> None:
    """A verdict is published keyed by entity, to the alert's input partition, with score and features."""
    client, producer = _client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    resp = client.post(
        "/api/feedback", json={"alert_id": "alert-1", "verdict": "false_positive"}, headers=auth
    )
    assert resp.status_code == 200, resp.text
    topic, value, key, partition = producer.sent[0]
    fb = Feedback.model_validate_json(value)
    assert (topic, key, partition) == ("feedback", b"pump-<1>", 2)
    assert (fb.verdict, fb.alert_id, fb.score, fb.features["view=temp.level"]) == (
        "false_positive",
        "alert-1",
        0.8,
        1.0,
    )
    missed = {
        "verdict": "missed",
        "entity_id": "pump-<1>",
        "start": T0.isoformat(),
        "end": (T0 + timedelta(seconds=25)).isoformat(),
    }
    assert client.post("/api/feedback", json=missed, headers=auth).status_code == 200
    fb = Feedback.model_validate_json(producer.sent[1][1])
    assert (fb.verdict, fb.score, producer.sent[1][3]) == ("missed", 0.8, 2)
    assert (
        client.post(
            "/api/feedback", json={"alert_id": "nope", "verdict": "true_positive"}, headers=auth
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/api/feedback", json={"alert_id": "alert-1", "verdict": "maybe"}, headers=auth
        ).status_code
        == 422
    )
    assert len(producer.sent) == 2
