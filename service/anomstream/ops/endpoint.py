"""The worker's HTTP endpoint: ``/metrics`` (Prometheus), ``/healthz`` (loop alive), ``/readyz``.

Kubernetes probes use the last two; both answer JSON with the reason when unhealthy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Probe = Callable[[], tuple[bool, str]]


class Endpoint:
    """Serves metrics and probes from a daemon thread.

    Parameters
    ----------
    registry
        The Prometheus registry to expose.
    live, ready
        Callables returning ``(ok, reason)``.
    host, port
        Where to listen; port 0 picks a free port (read it back from ``port``).
    """

    def __init__(
        self, registry: CollectorRegistry, live: Probe, ready: Probe, host: str = "0.0.0.0", port: int = 9108
    ) -> None:
        handler = _handler(registry, {"/healthz": live, "/readyz": ready})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="endpoint", daemon=True)

    def start(self) -> Endpoint:
        """Start serving in the background."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()


def _handler(registry: CollectorRegistry, probes: dict[str, Probe]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in probes:
                ok, reason = probes[path]()
                body = orjson.dumps({"ok": ok, "reason": reason})
                self._send(200 if ok else 503, body, "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds would drown the logs

    return Handler
