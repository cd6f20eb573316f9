"""A real orders service with a create-then-read flow, for tests made from traffic: run in-process
on a background thread (the standard library's threading HTTP server) on a loopback port.

* ``POST /orders`` with a JSON object ``{"item": ..., "quantity": ...}``: 201 and the new order
  ``{"id": N, "item", "quantity", "status": "new", "created_at"}``; every order gets a fresh id.
* ``GET /orders/{id}``: 200 and that order, 404 ``{"error": "not_found"}`` for an unknown id.
* Every request must carry ``Authorization: Bearer <token>`` (the token given to
  ``running_orders``): else 401 ``{"error": "unauthorized"}``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_ORDER_PATH = re.compile(r"/orders/(\d+)")


@contextmanager
def running_orders(token: str, *, first_id: int = 4711) -> Iterator[str]:
    """The orders service at http://127.0.0.1:PORT (yielded), stopped on exit. Ids count from
    `first_id`: not a round number, which radar.generate takes for a constant, not an id."""
    orders: dict[int, dict] = {}
    ids = itertools.count(first_id)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass  # quiet: tests read the store, not this log

        def answer(self, status: int, value: object) -> None:
            data = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def authorized(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {token}":
                return True
            self.answer(401, {"error": "unauthorized"})
            return False

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not self.authorized():
                return
            if self.path != "/orders":
                self.answer(404, {"error": "not_found"})
                return
            try:
                fields = json.loads(data)
            except ValueError:
                fields = None
            if not isinstance(fields, dict):
                self.answer(400, {"error": "expected a JSON object"})
                return
            with lock:
                order = {"id": next(ids), "item": fields.get("item"), "quantity": fields.get("quantity"),
                         "status": "new", "created_at": dt.datetime.now(dt.UTC).isoformat()}  # fmt: skip
                orders[order["id"]] = order
            self.answer(201, order)

        def do_GET(self) -> None:  # noqa: N802
            if not self.authorized():
                return
            match = _ORDER_PATH.fullmatch(self.path)
            with lock:
                order = orders.get(int(match.group(1))) if match else None
            if order is None:
                self.answer(404, {"error": "not_found"})
            else:
                self.answer(200, order)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="orders", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
