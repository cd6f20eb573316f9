"""50 live viewers of /api/stream, one of which never reads: the slow one is dropped, the others
get every exchange exactly once and in order, and every request through the proxy succeeds.

A real `passageway proxy` and a real `passageway ui`, on PostgreSQL (a team's store: the one
many viewers watch; the stream's SQLite feed has its own tests in tests/inspector_ui). The slow
viewer has a tiny socket receive buffer and a websockets client that stops reading after one
queued frame, so its TCP window really closes and the inspector's send to it blocks; each
exchange's summary carries a long query string, so the buffers fill with a few thousand
exchanges. Throughput with and without viewers is compared in bench/viewers_bench.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import websockets

from storage.queries import MAX_PAGE, list_exchanges
from storage.store import open_store
from tests.support import (
    ManagedProcess,
    free_port,
    fresh_postgres_database,
    require_or_skip_postgres,
    start_process,
    wait_for,
)

PASSAGEWAY = [sys.executable, "-m", "cli"]
VIEWERS = 50
REQUESTS = 2000
CONCURRENCY = 20
PAD_BYTES = 6000
"""Random hex in each request's query: it is in every summary (about 6.5 KB a message) and does
not compress. The slow viewer's kernel buffers hold about 3 MB (the inspector's send buffer grows
to tcp_wmem's maximum), about 500 messages; then its queue of STREAM_QUEUE overflows."""
SLOW_RCVBUF = 4096
STREAM_QUEUE = 1000
"""The inspector's default stream_queue_size: messages a viewer may fall behind before it is dropped."""
DEADLINE = 150.0
"""Bound on the whole traffic-and-viewing phase (a hang guard: about 55 s on a busy 2-core machine)."""


@dataclass
class Stack:
    proxy: ManagedProcess
    ui: ManagedProcess
    gateway: str
    ui_port: int
    db_url: str

    @property
    def stream_uri(self) -> str:
        return f"ws://127.0.0.1:{self.ui_port}/api/stream"

    def metric(self, name: str) -> int:
        text = httpx.get(f"http://127.0.0.1:{self.ui_port}/api/metrics", timeout=10).text
        match = re.search(rf"^{name} (\d+)$", text, re.MULTILINE)
        assert match, f"{name} missing from /api/metrics:\n{text}"
        return int(match[1])


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    require_or_skip_postgres()
    with fresh_postgres_database("passageway_viewers") as url:
        yield url


@pytest.fixture(scope="module")
def stack(db_url, upstream, tmp_path_factory) -> Iterator[Stack]:
    port, ui_port = free_port(), free_port()
    certs = tmp_path_factory.mktemp("certs")
    proxy_args = [*PASSAGEWAY, "proxy", "--db", db_url, "--listen", f"127.0.0.1:{port}",
                  "--route", f"up={upstream.url}", "--certs-dir", str(certs), "--proxy-name", "viewers"]  # fmt: skip
    # --no-maintenance: a team's viewing inspector whose store another process maintains. No viewer
    # here filters (nothing needs the search index), and indexing and summarising 2,000 exchanges of
    # 6 KB URLs cost this test seconds of the CPU the proxy and the viewers are measured on.
    ui_args = [*PASSAGEWAY, "ui", "--db", db_url, "--listen", f"127.0.0.1:{port}", "--ui", f"127.0.0.1:{ui_port}",
               "--certs-dir", str(certs), "--no-maintenance"]  # fmt: skip
    with start_process(proxy_args, port=port, name="passageway proxy", timeout=30) as proxy:
        with start_process(ui_args, port=ui_port, name="passageway ui", timeout=30) as ui:
            yield Stack(proxy, ui, f"http://127.0.0.1:{port}", ui_port, db_url)


async def open_slow_viewer(stack: Stack) -> websockets.ClientConnection:
    """A viewer that will never read: a small receive buffer, set before connecting (the window
    is agreed at the handshake), and a client that stops reading the socket after one frame."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", stack.ui_port))
    return await websockets.connect(
        stack.stream_uri, sock=sock, compression=None, max_queue=1, ping_interval=None, max_size=None
    )


async def watch(stack: Stack, connected: list[int], ids: list[int]) -> None:
    """A viewer that reads everything: appends the exchange ids it receives until cancelled."""
    async with websockets.connect(stack.stream_uri, compression=None, ping_interval=None, max_size=None) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello", hello
        connected.append(1)
        async for text in ws:
            message = json.loads(text)
            assert message["type"] == "exchange", message
            ids.append(message["data"]["id"])


async def send_traffic(stack: Stack) -> list[int]:
    """REQUESTS GETs through the proxy, CONCURRENCY at a time; their statuses."""
    pads = random.Random(6).randbytes(PAD_BYTES // 2 * 64).hex()
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        queue = iter(range(REQUESTS))
        statuses: list[int] = [0] * REQUESTS

        async def worker() -> None:
            for i in queue:
                pad = pads[(i % 64) * PAD_BYTES : (i % 64 + 1) * PAD_BYTES]
                response = await client.get(f"{stack.gateway}/up/binary?size=512&i={i}&pad={pad}")
                statuses[i] = response.status_code if len(response.content) == 512 else -1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return statuses


def all_ids(stack: Stack) -> list[int]:
    store = open_store(stack.db_url, migrate=False)
    ids, before = [], None
    try:
        while True:
            page = list_exchanges(store, limit=MAX_PAGE, before=before)
            ids += [e["id"] for e in page.data]
            if page.next is None:
                return sorted(ids)
            before = page.next
    finally:
        store.close()


async def until(condition, timeout: float, viewers: list[asyncio.Task]) -> None:
    """Wait (bounded) until `condition()`; a viewer that failed fails the test at once."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        for viewer in viewers:
            if viewer.done() and not viewer.cancelled() and viewer.exception() is not None:
                raise viewer.exception()
        assert asyncio.get_running_loop().time() < deadline, f"not reached within {timeout} s"
        await asyncio.sleep(0.05)


def all_stored(stack: Stack) -> list[int] | None:
    ids = all_ids(stack)
    return ids if len(ids) >= REQUESTS else None


async def drain(slow: websockets.ClientConnection) -> tuple[int, int | None]:
    """Read what the slow viewer was sent until its connection ends: (exchanges, close code)."""
    received = 0
    try:
        while True:
            message = json.loads(await slow.recv())
            received += message["type"] == "exchange"
    except websockets.ConnectionClosed as closed:
        return received, closed.rcvd.code if closed.rcvd else None


def test_a_viewer_that_never_reads_is_dropped_and_the_others_keep_up(stack):
    dropped_before = stack.metric("passageway_viewers_dropped_total")

    async def scenario():
        slow = await open_slow_viewer(stack)
        connected: list[int] = []
        seen: list[list[int]] = [[] for _ in range(VIEWERS - 1)]
        viewers = [asyncio.create_task(watch(stack, connected, ids)) for ids in seen]
        await until(lambda: len(connected) == VIEWERS - 1, 20, viewers)
        statuses = await send_traffic(stack)
        expected = await asyncio.to_thread(wait_for, lambda: all_stored(stack), 20)
        await until(lambda: all(ids and ids[-1] >= expected[-1] for ids in seen), 30, viewers)
        for viewer in viewers:
            viewer.cancel()
        slow_received, close_code = await asyncio.wait_for(drain(slow), timeout=20)
        return statuses, expected, seen, slow_received, close_code

    statuses, expected, seen, slow_received, close_code = asyncio.run(asyncio.wait_for(scenario(), DEADLINE))

    assert statuses == [200] * REQUESTS, "every request through the proxy succeeds, body intact"
    assert len(expected) == REQUESTS
    for ids in seen:
        assert ids == expected, "each viewer that reads gets every exchange, exactly once, in id order"
    # The slow viewer was cut off by the server (1013 "try again later", or the connection
    # dropped when even the close frame could not be delivered), well before the end.
    assert close_code in (1013, None), close_code
    assert slow_received < REQUESTS - STREAM_QUEUE // 2, slow_received
    assert stack.metric("passageway_viewers_dropped_total") == dropped_before + 1
    wait_for(lambda: stack.metric("passageway_live_viewers") == 0, timeout=10)
