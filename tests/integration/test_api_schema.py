"""Every operation of /api/openapi.json, fuzzed by schemathesis against a real inspector (uvicorn,
token set) on a real database holding real captured exchanges: no answer is a 5xx, and each
answer matches the schema where the schema describes it.

Replays are fuzzed too, and sent: through a real `passageway proxy` to a loopback upstream that
answers at once, the one configured service. Every other target is refused (403) before anything
is resolved or sent, so nothing leaves the machine.

Generation is derandomized (the same cases every run) and bounded: 12 fuzzed examples per
operation, plus schemathesis's coverage cases (boundary values, missing and malformed fields),
about a thousand requests per database in some 10 s. The ids of the rows the fixture writes are
known (a fresh database counts from 1), and about half the generated ids are swapped for one of
them: a fuzzer's own ids would all be 404s.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from inspector_ui import InspectorSettings, create_app
from storage.queries import list_exchanges
from storage.sink import write_records
from storage.store import open_store
from tests.inspector_ui.ui_support import LiveInspector, live_inspector
from tests.support import free_port, start_process, wait_for
from tests.support.records import make_record, websocket_message

PASSAGEWAY = [sys.executable, "-m", "cli"]
TOKEN = "t0ken-for-the-fuzzer-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SENT = [("GET", "/users/42?verbose=1", None), ("POST", "/users", b'{"name": "Ada", "token": "s3cret"}'),
        ("PUT", "/users/42", b"plain text"), ("DELETE", "/users/42", None), ("GET", "/users/7", None)]  # fmt: skip
EXCHANGE_IDS = list(range(1, len(SENT) + 3))
"""What the fixture stores, in order: SENT through the proxy, then a WebSocket exchange and an error."""
KNOWN_VALUES: dict[str, Any] = {
    "exchange_id": EXCHANGE_IDS, "a": EXCHANGE_IDS, "b": EXCHANGE_IDS, "before": EXCHANGE_IDS, "share_id": [1],
    "ids": [",".join(map(str, EXCHANGE_IDS))], "name": ["users"], "trace_id": [TRACE], "trace": [TRACE],
}  # fmt: skip

# The document the live inspector serves at /api/openapi.json (test_the_fuzzed_document_is_the_served_one).
schema = schemathesis.openapi.from_dict(create_app(InspectorSettings(db_url="sqlite://")).openapi())
schema.config.generation.update(max_examples=12, deterministic=True, database="none")
schema.config.phases.coverage.unexpected_methods = set()  # 405s for methods no route has: Starlette's, not ours


def _sometimes_known(values: dict[str, Any] | None) -> st.SearchStrategy[dict[str, Any] | None]:
    known = {name: st.sampled_from(KNOWN_VALUES[name]) for name in values or () if name in KNOWN_VALUES}
    if not known:
        return st.just(values)
    return st.one_of(st.just(values), st.fixed_dictionaries(known).map(lambda chosen: {**values, **chosen}))


@schema.hook
def flatmap_path_parameters(context, path_parameters: dict[str, Any] | None) -> st.SearchStrategy:
    return _sometimes_known(path_parameters)


@schema.hook
def flatmap_query(context, query: dict[str, Any] | None) -> st.SearchStrategy:
    return _sometimes_known(query)


class Answers(BaseHTTPRequestHandler):
    """The replay target: a small JSON answer at once, whatever the path (501 for unusual methods:
    still an answer, which the replay reports as its status)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        body = json.dumps({"method": self.command, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=server.serve_forever, name="fuzz-upstream", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def inspector(db_url, upstream, tmp_path_factory) -> Iterator[LiveInspector]:
    """The proxy captures SENT (and every replay) into `db_url`; the inspector reads it."""
    port = free_port()
    args = [
        *PASSAGEWAY, "proxy", "--db", db_url, "--listen", f"127.0.0.1:{port}", "--route", f"users={upstream}",
        "--certs-dir", str(tmp_path_factory.mktemp("certs")), "--proxy-name", "fuzz-proxy",
    ]  # fmt: skip
    with start_process(args, port=port, name="passageway proxy", timeout=30):
        store = open_store(db_url, migrate=False)
        try:
            for method, path, body in SENT:
                httpx.request(method, f"http://127.0.0.1:{port}{path}", content=body, timeout=10,
                              headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})  # fmt: skip
            wait_for(lambda: len(list_exchanges(store, limit=100).data) == len(SENT), timeout=10)
            handshake = make_record(host="127.0.0.1", path="/ws", websocket=True, trace_id=TRACE)
            failed = make_record(host="127.0.0.1", status=None, reason=None, response_headers=None,
                                 response_body=None, error_kind="connect_failed", error_message="refused")
            write_records(store, [handshake, *(websocket_message(handshake.uuid, i) for i in range(3)), failed])
            settings = {"token": TOKEN, "replay_gateway": f"http://127.0.0.1:{port}", "replay_timeout": 5,
                        "replay_services": {"users": upstream}}  # fmt: skip
            with live_inspector(store, **settings) as live:
                assert httpx.post(f"{live.http}/api/shares", json={"exchange_id": 1}, headers=AUTH).status_code == 201
                yield live
        finally:
            store.close()


def test_the_fuzzed_document_is_the_served_one(inspector):
    served = httpx.get(f"{inspector.http}/api/openapi.json", headers=AUTH)
    assert served.status_code == 200 and served.json() == schema.raw_schema


@schema.parametrize()
def test_no_operation_answers_a_server_error(case, inspector):
    response = case.call_and_validate(
        base_url=inspector.http,
        headers=AUTH,
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
        timeout=15,
    )
    if case.operation.label == "POST /api/replays" and response.status_code == 202:
        # Its first replays are sent; the rest would pile up in the database under every later case.
        httpx.delete(f"{inspector.http}/api/replays/{response.json()['id']}", headers=AUTH, timeout=15)
