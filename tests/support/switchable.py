"""A real upstream whose answer can be switched while it runs: what a monitor watches go down and up."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SwitchableUpstream:
    """GET /status answers `status` (settable while it runs)."""

    def __init__(self) -> None:
        self.status = 200
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(upstream.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@contextmanager
def running_switchable_upstream() -> Iterator[SwitchableUpstream]:
    upstream = SwitchableUpstream()
    try:
        yield upstream
    finally:
        upstream.server.shutdown()
        upstream.server.server_close()
