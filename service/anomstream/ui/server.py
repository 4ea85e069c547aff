"""The explorer's HTTP side: Starlette routes (pages, JSON API, static files) and the uvicorn server.

Read-only unless a feedback token is configured; ``POST /api/feedback`` then needs it (``Authorization:
Bearer <token>``), compared in constant time. A refused request publishes nothing.
"""

from __future__ import annotations

import hmac
import threading
import time
from importlib import resources
from typing import Any

import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from anomstream.errors import BrokerError
from anomstream.ui import pages
from anomstream.ui.book import AlertBook, Filters
from anomstream.ui.feed import Publisher
from anomstream.ui.plots import plotly_js
from anomstream.wire.records import Feedback

_STATIC = {"explorer.js": "text/javascript", "explorer.css": "text/css"}
_JUDGED = ("true_positive", "false_positive")


class Explorer:
    """The web application over an ``AlertBook``; ``publisher`` is None when feedback is off.

    Parameters
    ----------
    book
        What the feed has read from the alert, score and feedback topics.
    publisher
        Sends verdicts to the feedback topic.
    token
        The feedback token; None makes the explorer read-only.
    """

    def __init__(self, book: AlertBook, publisher: Publisher | None, token: bytes | None, log: Any) -> None:
        self.book, self.publisher, self.token, self.log = book, publisher, token, log
        self._plotly: bytes | None = None

    @property
    def writable(self) -> bool:
        """Feedback can be sent (a token and a publisher are configured)."""
        return self.token is not None and self.publisher is not None

    def app(self) -> Starlette:
        """The Starlette application."""
        return Starlette(
            routes=[
                Route("/", self.home),
                Route("/fragments/alerts", self.rows),
                Route("/alerts/{alert_id}", self.alert),
                Route("/entities", self.entities),
                Route("/entities/{stream}/{entity}", self.entity),
                Route("/api/alerts", self.api_alerts),
                Route("/api/alerts/{alert_id}", self.api_alert),
                Route("/api/feedback", self.api_feedback, methods=["POST"]),
                Route("/static/{name}", self.static),
                Route("/healthz", lambda _: JSONResponse({"ok": True})),
            ]
        )

    # -- pages -------------------------------------------------------------------------------------
    async def home(self, request: Request) -> Response:
        """The live alert list."""
        return HTMLResponse(pages.alert_list(self.book, _filters(request)))

    async def rows(self, request: Request) -> Response:
        """The list's table rows (the page's script refreshes them every two seconds)."""
        return HTMLResponse(pages.alert_rows(self.book, self.book.alerts(_filters(request))))

    async def alert(self, request: Request) -> Response:
        """One alert's page (404 when unknown or aged out)."""
        found = self.book.alert(request.path_params["alert_id"])
        if found is None:
            return HTMLResponse("unknown alert", status_code=404)
        html = await run_in_threadpool(pages.alert_page, self.book, found, writable=self.writable)
        return HTMLResponse(html)

    async def entities(self, _: Request) -> Response:
        """Every entity seen."""
        return HTMLResponse(pages.entity_list(self.book))

    async def entity(self, request: Request) -> Response:
        """One entity's page."""
        stream, entity = request.path_params["stream"], request.path_params["entity"]
        html = await run_in_threadpool(pages.entity_page, self.book, stream, entity, writable=self.writable)
        return HTMLResponse(html)

    async def static(self, request: Request) -> Response:
        """The package's script and style, and plotly.js from the plotly wheel."""
        name = request.path_params["name"]
        if name == "plotly.min.js":
            if self._plotly is None:
                self._plotly = plotly_js()
            return Response(self._plotly, media_type="text/javascript")
        if name not in _STATIC:
            return Response("not found", status_code=404)
        body = (resources.files("anomstream.ui") / "static" / name).read_bytes()
        return Response(body, media_type=_STATIC[name])

    # -- JSON API ----------------------------------------------------------------------------------
    async def api_alerts(self, request: Request) -> Response:
        """Filtered alerts, newest first (query: stream, entity, severity, kind, status, limit)."""
        limit = min(int(request.query_params.get("limit", "200") or 200), 5000)
        alerts = self.book.alerts(_filters(request), limit)
        return JSONResponse([a.model_dump(mode="json") for a in alerts])

    async def api_alert(self, request: Request) -> Response:
        """One alert with its latest verdict."""
        alert_id = request.path_params["alert_id"]
        found = self.book.alert(alert_id)
        if found is None:
            return JSONResponse({"error": "unknown alert"}, status_code=404)
        return JSONResponse({"alert": found.model_dump(mode="json"), "verdict": self.book.verdict(alert_id)})

    async def api_feedback(self, request: Request) -> Response:
        """Publish a verdict: ``{"alert_id", "verdict"}`` or ``{"verdict": "missed", "entity_id", ...}``.

        1. refuse (403 read-only, 401 without the right token) before the body is even read,
        2. validate the request and find the alert or the entity's partition,
        3. publish and wait for the broker's acknowledgement (503 if it does not come).
        """
        if not self.writable:
            return JSONResponse({"error": "feedback is off: this explorer has no token"}, status_code=403)
        if not self._authorised(request):
            headers = {"WWW-Authenticate": "Bearer"}
            return JSONResponse({"error": "missing or wrong token"}, status_code=401, headers=headers)
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            fb = await run_in_threadpool(self._publish, body)
        except LookupError as exc:
            return JSONResponse({"error": str(exc.args[0])}, status_code=404)
        except (ValueError, ValidationError) as exc:  # ValidationError first would be unreachable
            return JSONResponse({"error": str(exc)[:500]}, status_code=422)
        except BrokerError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        self.book.add_feedback(fb)  # shown at once; the feed confirms it from the topic
        self.log.info("feedback_published", verdict=fb.verdict, alert_id=fb.alert_id, entity=fb.entity_id)
        return JSONResponse({"verdict": fb.verdict, "alert_id": fb.alert_id, "entity_id": fb.entity_id})

    def _authorised(self, request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            given = request.headers.get("x-anomstream-token", "")
        return self.token is not None and hmac.compare_digest(given.strip().encode(), self.token)

    def _publish(self, body: dict[str, Any]) -> Feedback:
        assert self.publisher is not None  # writable was checked by the caller
        verdict = body.get("verdict")
        who, comment = str(body.get("submitted_by", ""))[:128], str(body.get("comment", ""))[:2000]
        if verdict in _JUDGED:
            alert = self.book.alert(str(body.get("alert_id", "")))
            if alert is None:
                raise LookupError("unknown alert_id (not among the alerts this explorer has read)")
            return self.publisher.verdict(alert, str(verdict), comment, who)
        if verdict != "missed":
            raise ValueError("verdict must be true_positive, false_positive or missed")
        key = (str(body.get("stream", "default")), str(body.get("entity_id", "")))
        partition = self.book.partition_of(key)
        if partition is None:
            raise LookupError(f"unknown entity {key[1]!r} in stream {key[0]!r}")
        fb = Feedback.model_validate(
            {**_missed_fields(body), "stream": key[0], "entity_id": key[1], "comment": comment,
             "submitted_by": who, "submitted_at": self.publisher.now()}
        )  # fmt: skip
        scores = [
            r.score
            for r in self.book.series(key)
            if fb.start and fb.end and fb.start <= r.timestamp <= fb.end
        ]
        fb = fb.model_copy(update={"score": max(scores) if scores else None})
        self.publisher.publish(fb, partition)
        return fb


def _missed_fields(body: dict[str, Any]) -> dict[str, Any]:
    return {"verdict": "missed", "start": body.get("start"), "end": body.get("end")}


def _filters(request: Request) -> Filters:
    q = request.query_params
    return Filters(*(q.get(name, "").strip() for name in ("stream", "entity", "severity", "kind", "status")))


class UiServer:
    """Runs the explorer under uvicorn: ``serve()`` in the foreground, or ``start()`` in a thread (tests)."""

    def __init__(self, explorer: Explorer, feed: Any, host: str, port: int) -> None:
        self.explorer, self.feed = explorer, feed
        config = uvicorn.Config(explorer.app(), host=host, port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the real one when asked for port 0)."""
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    def serve(self, *, announce: bool = False) -> None:
        """Serve until SIGINT / SIGTERM (uvicorn handles both), then stop the feed.

        ``announce`` prints the URL on stdout (``make run`` shows it) and logs what is served.
        """
        if announce:
            cfg = self.server.config
            host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
            print(f"anomstream explorer on http://{host}:{cfg.port}/", flush=True)
            self.explorer.log.info(
                "ui_started", feedback=self.explorer.writable, host=cfg.host, port=cfg.port
            )
        self.feed.start()
        try:
            self.server.run()
        finally:
            self.feed.stop()

    def start(self, timeout: float = 30.0) -> UiServer:
        """Serve in a daemon thread; returns once it is listening."""
        self.feed.start()
        self._thread = threading.Thread(target=self.server.run, name="ui", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("explorer did not start")
            time.sleep(0.05)
        return self

    def close(self) -> None:
        """Stop serving and stop the feed."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.feed.stop()
