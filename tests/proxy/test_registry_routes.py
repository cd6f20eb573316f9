"""proxy.registry_routes.RegistryRoutes with the Router, driven directly (mitmproxy's tflow), over a
real SQLite store and real servers on 127.0.0.1: reading the registry, routing, counting outcomes,
probing ejected instances back."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from mitmproxy import http
from mitmproxy.flow import Error
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow

from proxy.flow_record import META_ERROR_KIND, META_INSTANCE, META_SERVICE, flow_to_record
from proxy.registry_routes import META_ENDPOINT, RegistryRoutes, registered_endpoints
from proxy.router import Router, gateway_mode
from proxy.routing import parse_route, parse_upstream
from storage.registry import Heartbeat, deregister, heartbeat
from storage.store import Store, open_store
from tests.support import free_port, running_upstream, wait_for

GATEWAY = gateway_mode(("127.0.0.1", 8080))


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    s = open_store(f"sqlite:///{tmp_path}/routes.db")
    yield s
    s.close()


def register(store: Store, name: str, instance: str, url: str, *, realm: str | None = "dev", **extra) -> None:  # type: ignore[no-untyped-def]
    heartbeat(store, Heartbeat(name=name, url=url, instance=instance, realm=realm, **extra))


def gateway_flow(path: str) -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.client_conn.proxy_mode = ProxyMode.parse(GATEWAY)
    flow.request.path = path
    return flow


def routes_for(store: Store, **knobs) -> RegistryRoutes:  # type: ignore[no-untyped-def]
    return RegistryRoutes(store, realm="dev", configured={"configured": parse_upstream("http://10.9.9.9:80")}, **knobs)


def test_refresh_reads_this_realms_up_instances_and_keeps_an_unchanged_table(store, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="proxy.registry_routes")
    register(store, "billing", "b1", "http://127.0.0.1:9001", health="/readyz")
    register(store, "billing", "b2", "http://127.0.0.1:9002/base")
    register(store, "billing", "other-realm", "http://127.0.0.1:9003", realm="prod")
    register(store, "configured", "c1", "http://127.0.0.1:9004")
    register(store, "bad", "x", "http://127.0.0.1:9005", health="readyz")  # no leading '/': TCP probes instead
    routes = routes_for(store)
    assert routes.refresh()
    table = routes.table
    assert sorted(table.pools) == ["bad", "billing"] and table.shadowed == {"configured"}
    assert [(e.instance, e.upstream.url, e.health) for e in table.pools["billing"].endpoints] == [
        ("b1", "http://127.0.0.1:9001", "/readyz"), ("b2", "http://127.0.0.1:9002/base", None),
    ]  # fmt: skip
    assert routes.refresh() and routes.table is table  # nothing changed: nothing swapped
    deregister(store, name="billing", instance="b1")
    assert routes.refresh() and [e.instance for e in routes.table.pools["billing"].endpoints] == ["b2"]
    assert routes.refresher.reads == 3
    messages = [r.getMessage() for r in caplog.records]
    assert sum("configured route wins" in m for m in messages) == 1
    assert sum("not routable" in m and "readyz" in m for m in messages) == 1  # each malformed row once


def test_the_router_sends_a_registered_name_to_an_instance_and_the_record_says_which(store) -> None:  # type: ignore[no-untyped-def]
    register(store, "billing", "b1", "http://127.0.0.1:9001/v1")
    register(store, "billing", "b2", "http://127.0.0.1:9002/v1")
    register(store, "configured", "c1", "http://127.0.0.1:9004")
    routes = routes_for(store)
    routes.refresh()
    router = Router(services={"configured": parse_route("configured=http://10.9.9.9:80")}, gateway=GATEWAY,
                    registered=routes)  # fmt: skip
    seen = []
    with taddons.context(router):
        for _ in range(4):
            flow = gateway_flow("/billing/invoices/7?x=1")
            router.requestheaders(flow)
            request = flow.request
            assert request.path == "/v1/invoices/7?x=1" and flow.response is None
            assert request.host_header == f"127.0.0.1:{request.port}" and flow.metadata[META_SERVICE] == "billing"
            seen.append(flow.metadata[META_INSTANCE])
            assert flow.metadata[META_ENDPOINT].instance == seen[-1]
            record = flow_to_record(flow, proxy="p", body_cap=100)
            assert record.tags == [f"instance:{seen[-1]}"] and record.port == {"b1": 9001, "b2": 9002}[seen[-1]]

        configured = gateway_flow("/configured/x")
        router.requestheaders(configured)
        unknown = gateway_flow("/nobody/x")
        router.requestheaders(unknown)
    assert sorted(seen) == ["b1", "b1", "b2", "b2"] and seen[0] != seen[1]  # round robin
    assert configured.request.host == "10.9.9.9" and META_INSTANCE not in configured.metadata
    assert flow_to_record(configured, proxy="p", body_cap=100).tags == []
    assert unknown.response is not None and unknown.response.status_code == 404
    assert json.loads(unknown.response.content)["services"] == ["billing", "configured"]


def failed_connect(routes: RegistryRoutes, router: Router, path: str = "/billing/x") -> str:
    """A flow routed to an instance whose connection is refused; the instance's id."""
    flow = gateway_flow(path)
    router.requestheaders(flow)
    flow.server_conn.timestamp_tcp_setup = None
    flow.error = Error("Multiple connection attempts failed: [Errno 111] Connect call failed")
    routes.error(flow)
    assert META_ENDPOINT not in flow.metadata  # counted once
    return flow.metadata[META_INSTANCE]


def connected(routes: RegistryRoutes, router: Router, path: str = "/billing/x") -> str:
    flow = gateway_flow(path)
    router.requestheaders(flow)
    flow.response = http.Response.make(200)
    routes.responseheaders(flow)
    return flow.metadata[META_INSTANCE]


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200 if self.path == "/readyz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_refused_connections_eject_and_a_probe_brings_the_instance_back(store, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="proxy.registry_routes")
    closed_port, tcp_port = free_port(), free_port()
    register(store, "billing", "a-refusing", f"http://127.0.0.1:{closed_port}", health="/readyz")
    register(store, "billing", "b-healthy", "http://127.0.0.1:9")
    register(store, "tcp", "t1", f"http://127.0.0.1:{tcp_port}")

    async def main() -> None:
        routes = routes_for(store, eject_after=2, probe_interval=0.05, probe_timeout=0.5)
        routes.running()  # reads the registry once before it returns
        try:
            router = Router(services={}, gateway=GATEWAY, registered=routes)
            refusing = routes.table.pools["billing"].endpoints[0]
            while failed_connect(routes, router) != "a-refusing":
                pass
            assert routes.balancer.failures(refusing) == 1
            assert connected(routes, router) == "b-healthy"
            while failed_connect(routes, router) != "a-refusing":
                pass
            assert routes.balancer.ejected == {refusing}
            assert {connected(routes, router) for _ in range(4)} == {"b-healthy"}
            await asyncio.sleep(0.3)  # probes fail while nothing listens: still out
            assert routes.balancer.ejected == {refusing}

            server = ThreadingHTTPServer(("127.0.0.1", closed_port), Health)
            try:
                asyncio.get_running_loop().run_in_executor(None, server.serve_forever)
                while routes.balancer.ejected:  # readmitted by the probe thread, on this loop
                    await asyncio.sleep(0.02)
                assert {connected(routes, router) for _ in range(4)} == {"a-refusing", "b-healthy"}
            finally:
                server.shutdown()
                server.server_close()

            # No health path: a TCP connect is the probe. Alone in its pool, it still gets traffic.
            tcp = routes.table.pools["tcp"].endpoints[0]
            for _ in range(2):
                assert failed_connect(routes, router, "/tcp/") == "t1"
            assert routes.balancer.ejected == {tcp} and connected(routes, router, "/tcp/") == "t1"  # fails open
            assert routes.balancer.ejected == frozenset()  # and a connection it accepted brings it back
        finally:
            routes.done()
            routes.done()  # safe twice

    asyncio.run(asyncio.wait_for(main(), 20))
    messages = [r.getMessage() for r in caplog.records]
    assert sum("a-refusing" in m and "ejected after 2" in m for m in messages) == 1
    assert any("a-refusing" in m and "back in the rotation" in m for m in messages)


def test_outcomes_that_say_nothing_about_the_instance_are_not_counted(store) -> None:  # type: ignore[no-untyped-def]
    register(store, "billing", "b1", "http://127.0.0.1:9")
    routes = routes_for(store, eject_after=1)
    routes.refresh()
    router = Router(services={}, gateway=GATEWAY, registered=routes)
    for message, kind in (("client disconnected", None), ("killed", None), ("anything", "client_disconnected")):
        flow = gateway_flow("/billing/")
        router.requestheaders(flow)
        flow.server_conn.timestamp_tcp_setup = None
        flow.error = Error(message)
        if kind:
            flow.metadata[META_ERROR_KIND] = kind
        routes.error(flow)
    assert routes.balancer.ejected == frozenset()
    flow = gateway_flow("/billing/")
    router.requestheaders(flow)
    flow.server_conn.timestamp_tcp_setup = None
    flow.metadata[META_ERROR_KIND] = "timeout"  # the upstream timeout struck while still connecting
    flow.error = Error("upstream did not respond")
    routes.error(flow)
    assert len(routes.balancer.ejected) == 1


def test_a_database_away_keeps_the_last_table_and_is_logged_once(store, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="proxy.registry_routes")
    register(store, "billing", "b1", "http://127.0.0.1:9001")
    routes = routes_for(store)
    assert routes.refresh()
    table = routes.table
    db = sqlite3.connect(tmp_path / "routes.db", isolation_level=None)
    db.execute("ALTER TABLE registry_instances RENAME TO registry_away")
    try:
        assert not routes.refresh() and not routes.refresh()
        assert routes.table is table and routes.route("billing") is not None
    finally:
        db.execute("ALTER TABLE registry_away RENAME TO registry_instances")
        db.close()
    assert routes.refresh()
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("cannot read the service registry") for m in messages) == 1
    assert "routing by the last 1 service(s) read" in next(m for m in messages if m.startswith("cannot read"))
    assert any(m == "reading the service registry again" for m in messages)


def test_departed_instances_are_forgotten_by_the_balancer(store) -> None:  # type: ignore[no-untyped-def]
    register(store, "billing", "b1", "http://127.0.0.1:9")
    routes = routes_for(store, eject_after=1)
    routes.refresh()
    router = Router(services={}, gateway=GATEWAY, registered=routes)
    failed_connect(routes, router)
    assert routes.balancer.ejected
    [b1] = routes.balancer.ejected
    deregister(store, name="billing", instance="b1")
    register(store, "billing", "b2", "http://127.0.0.1:9")
    routes.refresh()
    assert b1 not in registered_endpoints(routes.table, "billing")  # so no longer probed
    assert routes.route("nobody") is None and routes.balancer.ejected == frozenset()  # forgotten on any lookup
    assert routes.route("billing").instance == "b2"


def test_the_probe_follows_the_upstream_tls_settings(store) -> None:  # type: ignore[no-untyped-def]
    with running_upstream(tls=True) as upstream:
        register(store, "secure", "s1", upstream.url, health="/status/200")
        trusting = RegistryRoutes(store, realm="dev", configured={}, upstream_ca=upstream.ca_cert)
        strict = RegistryRoutes(store, realm="dev", configured={})
        for routes in (trusting, strict):
            routes.refresh()
        endpoint = trusting.table.pools["secure"].endpoints[0]
        with httpx.Client(verify=trusting.verify) as good, httpx.Client(verify=strict.verify) as bad:
            assert trusting.probe(good, endpoint) and not strict.probe(bad, endpoint)
        wait_for(lambda: upstream.requests.matching("/status/200"), timeout=2)
