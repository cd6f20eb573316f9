"""Routes from the registry, live: two real proxies sharing one database (SQLite, then PostgreSQL)
learn registrations without a restart, balance across instances, eject one that refuses
connections and take it back once its health path answers, and record where each exchange went."""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from storage.queries import get_exchange, list_exchanges
from storage.registry import Heartbeat, deregister, heartbeat
from storage.store import Store, open_store
from tests.support import free_port, running_upstream, start_process, wait_for

PASSAGEWAY = [sys.executable, "-m", "cli"]
REALM = "dev"
EJECT_AFTER = 2
PROPAGATION = 15.0
"""Seconds a registry change may take to reach a proxy: a 2 s refresh, on a busy CI machine."""


@pytest.fixture(scope="module")
def configured_upstream():
    with running_upstream() as server:
        yield server


@pytest.fixture(scope="module")
def proxies(db_url, configured_upstream, tmp_path_factory) -> Iterator[tuple[list[str], Store]]:
    """Two proxies of realm `dev` on one database: their gateways, and the store."""
    with ExitStack() as stack:
        gateways = []
        for name in ("edge-a", "edge-b"):
            port = free_port()
            args = [
                *PASSAGEWAY, "proxy", "--db", db_url, "--listen", f"127.0.0.1:{port}", "--realm", REALM,
                "--route", f"configured={configured_upstream.url}", "--eject-after", str(EJECT_AFTER),
                "--certs-dir", str(tmp_path_factory.mktemp("certs")), "--proxy-name", name, "--upstream-timeout", "5",
            ]  # fmt: skip
            stack.enter_context(start_process(args, port=port, name=name, timeout=30))
            gateways.append(f"http://127.0.0.1:{port}")
        store = open_store(db_url, migrate=False)
        stack.callback(store.close)
        yield gateways, store


def register(store: Store, name: str, instance: str, url: str, *, realm: str | None = REALM, **extra) -> None:  # type: ignore[no-untyped-def]
    heartbeat(store, Heartbeat(name=name, url=url, instance=instance, realm=realm, interval_s=30, **extra))


def status_of(gateway: str, path: str) -> int:
    return httpx.get(gateway + path, timeout=10).status_code


def test_a_heartbeat_makes_a_service_routable_on_both_proxies_and_deregistering_stops_it(proxies) -> None:  # type: ignore[no-untyped-def]
    gateways, store = proxies
    with running_upstream() as upstream:
        register(store, "ledger", "l1", upstream.url)
        register(store, "elsewhere", "e1", upstream.url, realm="staging")  # another realm: never routed here
        for gateway in gateways:
            wait_for(lambda: status_of(gateway, "/ledger/echo?x=1") == 200, timeout=PROPAGATION, interval=0.1)
        assert upstream.requests.last.path == "/echo"
        missing = httpx.get(gateways[0] + "/elsewhere/echo", timeout=10)
        assert missing.status_code == 404
        services = missing.json()["services"]
        assert "ledger" in services and "configured" in services and "elsewhere" not in services

        deregister(store, name="ledger", instance="l1", realm=REALM)
        for gateway in gateways:
            wait_for(lambda: status_of(gateway, "/ledger/echo") == 404, timeout=PROPAGATION, interval=0.1)


def test_a_configured_route_wins_over_a_registration_of_the_same_name(proxies, configured_upstream) -> None:  # type: ignore[no-untyped-def]
    gateways, store = proxies
    with running_upstream() as registered:
        register(store, "configured", "c1", registered.url)
        register(store, "marker", "m1", registered.url)  # read in the same refresh as the one above
        wait_for(lambda: status_of(gateways[0], "/marker/echo") == 200, timeout=PROPAGATION, interval=0.1)
        before = len(configured_upstream.requests)
        response = httpx.get(gateways[0] + "/configured/echo", timeout=10)
        assert response.status_code == 200
        assert len(configured_upstream.requests) == before + 1
        assert registered.requests.matching("/echo") and len(registered.requests) == 1  # only the marker's


def test_two_instances_share_the_traffic_and_each_exchange_records_its_instance(proxies) -> None:  # type: ignore[no-untyped-def]
    gateways, store = proxies
    gateway = gateways[1]
    with running_upstream() as one, running_upstream() as two:
        register(store, "pair", "one", one.url)
        register(store, "pair", "two", two.url)
        # Both instances in the table (a refresh may have fallen between the two heartbeats).
        wait_for(lambda: status_of(gateway, "/pair/echo") == 200 and one.requests and two.requests,
                 timeout=PROPAGATION, interval=0.1)  # fmt: skip
        one.requests.clear()
        two.requests.clear()
        trace = uuid.uuid4().hex
        for i in range(10):
            assert status_of(gateway, f"/pair/echo?trace={trace}&i={i}") == 200
        assert len(one.requests) == len(two.requests) == 5  # round robin

        def recorded() -> list[dict]:
            rows = list_exchanges(store, limit=500, service="pair").data
            return [e for e in rows if f"trace={trace}" in e["query"]]

        exchanges = wait_for(lambda: len(recorded()) == 10 and recorded(), timeout=15)
        ports = {"one": one.port, "two": two.port}
        instances = []
        for summary in exchanges:
            detail = get_exchange(store, exchange_id=summary["id"])
            [tag] = detail["tags"]
            instances.append(tag.removeprefix("instance:"))
            assert detail["port"] == ports[instances[-1]] and detail["host"] == "127.0.0.1"
        assert sorted(instances) == ["one"] * 5 + ["two"] * 5


class Instance(BaseHTTPRequestHandler):
    """An instance that answers everything, its health path included."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving_on(port: int) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", port), Instance)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_refusing_instance_is_ejected_and_back_once_its_health_path_answers(proxies) -> None:  # type: ignore[no-untyped-def]
    gateways, store = proxies
    gateway = gateways[0]
    closed = free_port()
    with running_upstream() as healthy:
        register(store, "flaky", "b-healthy", healthy.url, health="/status/200")
        wait_for(lambda: status_of(gateway, "/flaky/echo") == 200, timeout=PROPAGATION, interval=0.1)
        register(store, "flaky", "a-refusing", f"http://127.0.0.1:{closed}", health="/readyz")
        # Round robin over both until the refusing one has failed EJECT_AFTER times (a 502 each)...
        failures = 0

        def refused_once_more() -> bool:
            nonlocal failures
            response = httpx.get(gateway + "/flaky/echo", timeout=10)
            if response.status_code == 502:
                failures += 1
                assert response.headers.get("x-passageway-error") in (None, "connect_failed")
            return failures == EJECT_AFTER

        wait_for(refused_once_more, timeout=PROPAGATION, interval=0.05)
        # ...then it is out: every request goes to the healthy one.
        served = len(healthy.requests)
        assert [status_of(gateway, "/flaky/echo") for _ in range(6)] == [200] * 6
        assert len(healthy.requests) == served + 6

        with serving_on(closed) as back:
            seen: list[str] = []

            def back_in_rotation() -> bool:
                body = httpx.get(gateway + "/flaky/where", timeout=10)
                seen.append(str(body.status_code))
                return body.status_code == 200 and body.headers.get("content-type") == "application/json" and (
                    body.json().get("path") == "/where"
                )

            wait_for(back_in_rotation, timeout=PROPAGATION, interval=0.1, message=lambda: ",".join(seen))
            assert back.server_port == closed
        def refused_recorded() -> list[dict]:
            rows = list_exchanges(store, limit=500, service="flaky").data
            return [e for e in rows if e["error"] and e["error"]["kind"] == "connect_failed"]

        assert len(wait_for(refused_recorded, timeout=15)) >= EJECT_AFTER
