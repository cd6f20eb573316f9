"""A real upstream that fails before it answers: `GET /flaky/KEY?fail=N` is 503 the first N times
for each KEY, then 200 with `{"key": KEY, "attempt": n}` (what API tests' retries are for)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@contextmanager
def running_flaky_upstream() -> Iterator[str]:
    """The server at http://127.0.0.1:PORT (yielded), stopped on exit."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parts = urlsplit(self.path)
            key = parts.path.removeprefix("/flaky/")
            fail = int(parse_qs(parts.query).get("fail", ["0"])[0])
            with lock:
                seen[key] += 1
                attempt = seen[key]
            status = 503 if attempt <= fail else 200
            body = json.dumps({"key": key, "attempt": attempt}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="flaky-upstream", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
