"""A service tested entirely against its mock (issue 18 §3), through the real proxy on SQLite and
PostgreSQL: a client's sequence (create -> get, a 404) is recorded from the real orders service,
the service is stopped, `passageway mock orders` simulates it, and the same sequence gets the
same answers with no upstream at all, each marked with the recording that answered (`is:mock`,
`mock:#ID`), traced like any exchange; a miss names the closest recordings. Recorded latency is
reproduced on demand, and the simulation keeps answering while the database is away (the
proxy's event loop never waits on it).

One proxy per database; PostgreSQL is reached through a TCP relay the test can cut, SQLite is
held by another connection's exclusive lock."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from passageway.wire import MOCK_HEADER
from storage.mocks import SimulationSpec, put_simulation
from storage.queries import get_exchange, list_exchanges
from storage.store import Store, open_store
from storage.traces import get_trace
from tests.support import ManagedProcess, free_port, start_process, wait_for
from tests.support.orders import running_orders
from tests.support.relay import TcpRelay

TOKEN = "orders-token-0123456789"
PASSAGEWAY = [sys.executable, "-m", "cli"]


@dataclass
class Scene:
    process: ManagedProcess
    store: Store
    db_url: str
    """What the proxy and the commands are given (through the relay on PostgreSQL)."""
    gateway: str
    stop_orders: Callable[[], None]
    away: Callable[[], None]
    back: Callable[[], None]

    def exchanges(self, q: str) -> list[dict]:
        return list_exchanges(self.store, limit=1000, q=q).data

    def recorded(self, q: str, count: int) -> list[dict]:
        return wait_for(lambda: (found if len(found := self.exchanges(q)) >= count else None), timeout=15,
                        message=self.process.describe)  # fmt: skip

    def passageway(self, *words: str) -> subprocess.CompletedProcess:
        return subprocess.run([*PASSAGEWAY, *words, "--db", self.db_url], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def scene(db_url, upstream, tmp_path_factory) -> Iterator[Scene]:  # type: ignore[no-untyped-def]
    with contextlib.ExitStack() as stack:
        orders = contextlib.ExitStack()
        stack.callback(orders.close)
        orders_url = orders.enter_context(running_orders(TOKEN))
        proxy_db = db_url
        if db_url.startswith("postgresql"):
            parts = urlsplit(db_url)
            relay = TcpRelay((parts.hostname or "127.0.0.1", parts.port or 5432)).start()
            stack.callback(relay.cut)
            proxy_db = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{relay.port}"))
            away, back = relay.cut, relay.restore
        else:
            path = db_url.removeprefix("sqlite:///")
            holder: list[sqlite3.Connection] = []

            def away() -> None:
                connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                connection.execute("BEGIN EXCLUSIVE")
                holder.append(connection)

            def back() -> None:
                connection = holder.pop()
                connection.execute("ROLLBACK")
                connection.close()

        store = open_store(db_url)  # migrated before the proxy starts
        stack.callback(store.close)
        port = free_port()
        args = [*PASSAGEWAY, "proxy", "--db", proxy_db, "--listen", f"127.0.0.1:{port}",
                "--route", f"orders={orders_url}", "--route", f"slow={upstream.url}",
                "--certs-dir", str(tmp_path_factory.mktemp("certs")), "--proxy-name", "mock-test"]  # fmt: skip
        process = stack.enter_context(start_process(args, port=port, name="passageway proxy", timeout=30))
        yield Scene(process, store, proxy_db, f"http://127.0.0.1:{port}", orders.close, away, back)


def client_sequence(http: httpx.Client) -> list[tuple[int, dict, str | None]]:
    """What a client of the orders service does in its tests: create, read back, read a missing one."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    created = http.post("/orders/orders", json={"item": "tea", "quantity": 2}, headers=auth)
    got = http.get(f"/orders/orders/{created.json()['id']}", headers=auth)
    missing = http.get("/orders/orders/1", headers=auth)
    return [(r.status_code, r.json(), r.headers.get(MOCK_HEADER)) for r in (created, got, missing)]


def test_a_client_runs_its_tests_against_the_mock_with_the_service_gone(scene: Scene) -> None:
    with httpx.Client(base_url=scene.gateway, timeout=10) as http:
        real = client_sequence(http)
        assert [status for status, _, _ in real] == [201, 200, 404] and real[1][1] == real[0][1]
        assert all(mark is None for _, _, mark in real)
        recordings = sorted(e["id"] for e in scene.recorded("service:orders", 3))

        scene.stop_orders()
    # A new client connection: the proxy's connection to the stopped service went with the old one.
    with httpx.Client(base_url=scene.gateway, timeout=10) as http:
        assert http.get("/orders/orders/1").status_code == 502  # the service is gone (not a recording)
        done = scene.passageway("mock", "orders")
        assert done.returncode == 0 and "simulating orders" in done.stdout and "3 recording(s)" in done.stdout, done
        wait_for(lambda: http.get("/orders/orders/1").headers.get(MOCK_HEADER), timeout=15, message=scene.process.describe)

        mocked = client_sequence(http)
        assert [(status, body) for status, body, _ in mocked] == [(status, body) for status, body, _ in real]
        assert [mark for _, _, mark in mocked] == [f"#{i}" for i in recordings]

        # The same endpoint, an id never recorded: the closest recording of GET /orders/{id}.
        closest = http.get(f"/orders/orders/{real[0][1]['id'] + 1}", headers={"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})
        assert closest.status_code == 200 and closest.headers[MOCK_HEADER] == f"#{recordings[1]}"
        # No recording of DELETE at all: a 404 naming the closest, never a silent pass-through.
        miss = http.delete(f"/orders/orders/{real[0][1]['id']}")
        assert miss.status_code == 404 and miss.headers[MOCK_HEADER] == "no-match"
        answer = miss.json()
        assert answer["error"] == "no_mock_match" and answer["closest"][0]["method"] == "GET"
        assert {c["exchange_id"] for c in answer["closest"]} <= set(recordings)
        assert "no recording of 'orders' matches DELETE /orders/" in answer["message"]

    # Captured like any exchange, marked, searchable, traced.
    marked = scene.recorded(f'mock:"#{recordings[1]}"', 2)
    assert all(e["service"] == "orders" and e["status"] == 200 for e in marked)
    assert scene.recorded("is:mock mock:no-match method:DELETE", 1)[0]["status"] == 404
    traced = scene.recorded(f"is:mock trace:{'ab' * 16}", 1)[0]
    detail = get_exchange(scene.store, exchange_id=traced["id"])
    assert detail["mock"] == f"#{recordings[1]}" and detail["parent_span_id"] == "cd" * 8
    assert ("X-Passageway-Mock", f"#{recordings[1]}") in [tuple(h) for h in detail["response_headers"]]
    [node] = get_trace(scene.store, trace_id="ab" * 16)["nodes"]  # the waterfall labels the call
    assert node["mock"] == f"#{recordings[1]}"
    assert not scene.exchanges("is:mock service:slow")


def test_recorded_latency_is_reproduced_when_asked(scene: Scene) -> None:
    with httpx.Client(base_url=scene.gateway, timeout=10) as http:
        assert http.get("/slow/slow", params={"seconds": "0.5"}).text == "slow"
        scene.recorded("service:slow", 1)
        put_simulation(scene.store, SimulationSpec("slow", latency=True))

        def timed() -> tuple[float, httpx.Response]:
            started = time.monotonic()
            response = http.get("/slow/slow", params={"seconds": "0.5"})
            return time.monotonic() - started, response

        wait_for(lambda: timed()[1].headers.get(MOCK_HEADER), timeout=15, message=scene.process.describe)
        took, answer = timed()
        assert answer.text == "slow" and took >= 0.5
        put_simulation(scene.store, SimulationSpec("slow", latency=False))
        took = wait_for(lambda: (t if (t := timed()[0]) < 0.3 else None), timeout=15, message=scene.process.describe)
        assert took < 0.3


def test_the_simulation_answers_while_the_database_is_away(scene: Scene) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=scene.gateway, timeout=10) as http:
        assert http.get("/orders/orders/1", headers=auth).headers[MOCK_HEADER]  # simulated (the first test)
        before = len(scene.exchanges("is:mock service:orders"))
        scene.away()
        try:
            slowest = 0.0
            for _ in range(3):  # across the proxy's reads of the simulations (every 2 s), which fail now
                for _ in range(10):
                    started = time.monotonic()
                    answer = http.get("/orders/orders/1", headers=auth)
                    slowest = max(slowest, time.monotonic() - started)
                    assert answer.status_code == 404 and answer.headers[MOCK_HEADER]
                time.sleep(1)
            assert slowest < 1.0  # a loop waiting on the database would wait out its timeouts (seconds)
        finally:
            scene.back()
    scene.recorded("is:mock service:orders", before + 30)  # recorded once the database is back
