"""Calls in progress, end to end (issue 16 point 1): a real `passageway proxy`, a real `passageway
ui` and real upstreams, on SQLite and PostgreSQL. A call waiting ~3 s for a slow upstream and an
SSE stream sending events for ~3 s are listed as pending (GET /api/exchanges, "pending": true)
and streamed as {"type": "pending"} before their finished {"type": "exchange"}, same uuid; a proxy
killed with SIGKILL mid-call leaves a notice that expires into an unknown_outcome exchange."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import websockets

from storage.pending import expire_pending, list_pending
from storage.store import Store, open_store
from tests.support import ManagedProcess, free_port, start_process, wait_for

PASSAGEWAY = [sys.executable, "-m", "cli"]
BOUND = 30.0
"""Bound on each scenario (a hang guard; a slow call takes ~3 s)."""


@dataclass
class Stack:
    proxy: ManagedProcess
    ui: ManagedProcess
    gateway: str
    ui_url: str
    store: Store
    db_url: str
    certs: str

    @property
    def stream_uri(self) -> str:
        return self.ui_url.replace("http://", "ws://") + "/api/stream"


@pytest.fixture(scope="module")
def stack(db_url, upstream, tmp_path_factory) -> Iterator[Stack]:
    port, ui_port = free_port(), free_port()
    certs = str(tmp_path_factory.mktemp("certs"))
    proxy_args = [*PASSAGEWAY, "proxy", "--db", db_url, "--listen", f"127.0.0.1:{port}",
                  "--route", f"up={upstream.url}", "--certs-dir", certs, "--proxy-name", "pending-test"]  # fmt: skip
    ui_args = [*PASSAGEWAY, "ui", "--db", db_url, "--listen", f"127.0.0.1:{port}", "--ui", f"127.0.0.1:{ui_port}",
               "--certs-dir", certs, "--no-monitor-runner"]  # fmt: skip
    with (
        start_process(
            proxy_args, port=port, name="passageway proxy", timeout=30
        ) as proxy,
        start_process(ui_args, port=ui_port, name="passageway ui", timeout=30) as ui,
    ):
        store = open_store(db_url, migrate=False)
        try:
            yield Stack(
                proxy,
                ui,
                f"http://127.0.0.1:{port}",
                f"http://127.0.0.1:{ui_port}",
                store,
                db_url,
                certs,
            )
        finally:
            store.close()


def call_in_background(url: str, request_id: str) -> tuple[threading.Thread, dict]:
    """GET `url` on a thread (the test meanwhile watches); the outcome lands in the dict."""
    outcome: dict = {}

    def run() -> None:
        try:
            with httpx.Client(timeout=BOUND) as client:
                response = client.get(url, headers={"X-Request-ID": request_id})
                outcome["status"], outcome["body"] = (
                    response.status_code,
                    response.content,
                )
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


async def watch_call(stack: Stack, path: str) -> tuple[list[dict], dict, list[dict]]:
    """Open /api/stream, make the call, and collect until its finished exchange: the pending
    messages before it, the exchange, and GET /api/exchanges as seen while it was pending."""
    request_id = f"pending-{uuid.uuid4().hex[:12]}"
    pending: list[dict] = []
    listed: list[dict] = []
    async with websockets.connect(stack.stream_uri) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), BOUND))
        assert hello["type"] == "hello"
        thread, outcome = call_in_background(stack.gateway + path, request_id)
        async with (
            asyncio.timeout(BOUND),
            httpx.AsyncClient(base_url=stack.ui_url, timeout=BOUND) as api,
        ):
            while True:
                message = json.loads(await ws.recv())
                data = message.get("data") or {}
                if data.get("trace_id") != request_id:
                    continue
                if message["type"] == "exchange":
                    exchange = data
                    break
                assert message["type"] == "pending", message
                pending.append(data)
                if len(pending) == 1:
                    page = (await api.get("/api/exchanges")).json()["data"]
                    listed = [s for s in page if s["trace_id"] == request_id]
    thread.join(BOUND)
    assert outcome.get("status") == 200, outcome
    return pending, exchange, listed


def test_a_slow_call_is_pending_then_becomes_its_exchange_in_place(stack):
    pending, exchange, listed = asyncio.run(watch_call(stack, "/up/slow?seconds=3"))
    assert pending, "no pending message before the exchange"
    first = pending[0]
    assert (
        first["uuid"] == exchange["uuid"]
        and first["pending"] is True
        and first["id"] is None
    )
    assert (first["method"], first["service"], first["path"], first["state"]) == (
        "GET",
        "up",
        "/slow",
        "waiting",
    )
    assert (
        first["query"] == "seconds=3"
        and first["status"] is None
        and first["error"] is None
    )
    assert 900 <= first["elapsed_ms"] < 3500
    assert first["captured_at"] == exchange["captured_at"]
    # The REST list had it at the top of the first page, pending, under the same uuid.
    assert [(s["uuid"], s["pending"], s["id"]) for s in listed] == [
        (exchange["uuid"], True, None)
    ]
    # Finished: the exchange, no longer pending; nothing left in pending_exchanges.
    assert (
        exchange["status"] == 200
        and exchange["duration_ms"] >= 2900
        and exchange.get("pending", False) is False
    )
    page = httpx.get(stack.ui_url + "/api/exchanges", timeout=10).json()["data"]
    mine = [s for s in page if s["uuid"] == exchange["uuid"]]
    assert [(s["id"], s.get("pending")) for s in mine] == [(exchange["id"], False)]
    assert not [
        row for row in list_pending(stack.store) if row.notice.uuid == exchange["uuid"]
    ]


def test_an_sse_stream_is_pending_with_its_bytes_so_far_until_it_ends(stack):
    # 6.3 s of stream: pending after 1 s, its progress written at most once a second, through the
    # worker's notices file, the writer process and the inspector's feed (3.6 s left a loaded CI
    # machine room for one update only).
    pending, exchange, _ = asyncio.run(watch_call(stack, "/up/sse?n=14&interval=0.45"))
    assert len(pending) >= 2, pending  # updated while it runs
    assert {p["uuid"] for p in pending} == {exchange["uuid"]}
    assert all(p["state"] == "streaming" and p["status"] == 200 for p in pending)
    sizes = [p["response_size"] for p in pending]
    assert (
        sizes == sorted(sizes) and 0 < sizes[0] < sizes[-1] < exchange["response_size"]
    )
    assert exchange["status"] == 200 and exchange["response_content_type"].startswith(
        "text/event-stream"
    )


def test_searches_list_a_pending_call_only_when_it_can_match(stack):
    request_id = f"pending-{uuid.uuid4().hex[:12]}"
    thread, outcome = call_in_background(
        stack.gateway + "/up/slow?seconds=3", request_id
    )

    def listed(q: str) -> list[str]:
        page = httpx.get(
            stack.ui_url + "/api/exchanges", params={"q": q}, timeout=10
        ).json()["data"]
        return [s["trace_id"] for s in page if s.get("pending")]

    wait_for(lambda: request_id in listed(""), timeout=BOUND)
    assert request_id in listed("service:up path:/slow method:GET")
    assert request_id in listed("slow")  # free text found in the URL
    assert request_id not in listed("status:200")  # needs the response
    assert request_id not in listed("method:POST")
    thread.join(BOUND)
    assert outcome.get("status") == 200


def test_a_proxy_killed_mid_call_leaves_a_notice_that_expires_as_unknown_outcome(
    stack, upstream
):
    port = free_port()
    args = [*PASSAGEWAY, "proxy", "--db", stack.db_url, "--listen", f"127.0.0.1:{port}", "--route",
            f"up={upstream.url}", "--certs-dir", stack.certs, "--proxy-name", "doomed"]  # fmt: skip
    request_id = f"doomed-{uuid.uuid4().hex[:12]}"
    with start_process(args, port=port, name="doomed proxy", timeout=30) as doomed:
        thread, outcome = call_in_background(
            f"http://127.0.0.1:{port}/up/slow?seconds=25", request_id
        )
        rows = wait_for(
            lambda: [
                r for r in list_pending(stack.store) if r.notice.trace_id == request_id
            ],
            timeout=BOUND,
        )
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait_exit(10)
        thread.join(BOUND)
        assert "error" in outcome  # the client lost its connection
    [row] = rows
    # Nobody refreshes it now; a maintenance pass after the expiry turns it into an exchange.
    assert expire_pending(stack.store) == []
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    assert expire_pending(stack.store, now=later) == [row.notice.uuid]

    def finished() -> dict | None:
        page = httpx.get(
            stack.ui_url + "/api/exchanges",
            params={"q": f"trace:{request_id}"},
            timeout=10,
        ).json()
        return next((s for s in page["data"] if not s.get("pending")), None)

    exchange = wait_for(finished, timeout=BOUND)
    assert exchange["uuid"] == row.notice.uuid and exchange["status"] is None
    assert (
        exchange["error"]["kind"] == "unknown_outcome" and exchange["proxy"] == "doomed"
    )
    assert (exchange["method"], exchange["service"], exchange["path"]) == (
        "GET",
        "up",
        "/slow",
    )
    assert not [
        r for r in list_pending(stack.store) if r.notice.uuid == row.notice.uuid
    ]
