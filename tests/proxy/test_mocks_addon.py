"""proxy.mocks.Mocks driven directly (mitmproxy's taddons and tflow) on a real SQLite store: it
answers only its realm's simulated services, marks each answer, keeps answering from what it
loaded while the database is away, restarts sequences on a reload, sleeps the recorded latency on
that flow only, and a miss names the closest recordings."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow

from passageway.wire import MOCK_HEADER
from proxy.flow_record import META_MOCK, META_SERVICE, META_UNROUTED, flow_to_record
from proxy.mocks import Mocks
from proxy.registry_routes import RegistryRoutes
from proxy.router import Router, gateway_mode
from proxy.routing import parse_route
from storage.errors import Unavailable
from storage.mocks import SimulationSpec, delete_simulation, put_simulation
from storage.pure.record import CapturedBody
from storage.registry import Heartbeat, deregister, heartbeat
from storage.sink import write_records
from storage.store import open_store
from tests.support import free_port
from tests.support.records import make_record
from tests.support.stores import migrated_sqlite_url

GATEWAY = gateway_mode(("127.0.0.1", 8080))


@pytest.fixture
def store(tmp_path):  # type: ignore[no-untyped-def]
    s = open_store(migrated_sqlite_url(tmp_path / "mocks.db"))
    yield s
    s.close()


def recorded(store, **fields):  # type: ignore[no-untyped-def]
    body = fields.pop("answer", b"{}")
    fields.setdefault("response_body", CapturedBody(body, len(body), False, content_type="application/json"))
    return write_records(store, [make_record(service="orders", realm="", query="", **fields)])[0]


def flow_for(service: str | None, method: str = "GET", path: str = "/orders/1", body: bytes = b""):  # type: ignore[no-untyped-def]
    flow = tflow.tflow()
    flow.request.method = method
    flow.request.path = path
    flow.request.content = body
    if service is not None:
        flow.metadata[META_SERVICE] = service
    return flow


def test_answers_from_recordings_in_order_and_marks_them(store) -> None:  # type: ignore[no-untyped-def]
    empty = recorded(store, path="/cart", answer=b"[]")
    add = recorded(store, method="POST", path="/cart", status=201, answer=b'{"id": 7}',
                   response_headers=[("Content-Type", "application/json"), ("Content-Encoding", "gzip"), ("X-Shop", "1")])  # fmt: skip
    full = recorded(store, path="/cart", answer=b'[{"id": 7}]')
    put_simulation(store, SimulationSpec("orders"))
    put_simulation(store, SimulationSpec("orders", realm="staging"))
    mocks = Mocks(store, realm=None)
    mocks.reload()
    assert mocks.simulates("orders") and not mocks.simulates("billing")
    answers = []
    with taddons.context(mocks):
        for method in ("GET", "POST", "GET", "GET"):
            flow = flow_for("orders", method, "/cart")
            mocks.requestheaders(flow)
            assert mocks.request(flow) is None
            answers.append((flow.response.status_code, flow.response.content, flow.response.headers[MOCK_HEADER]))
        posted = flow_for("orders", "POST", "/cart")
        mocks.request(posted)
    assert answers == [(200, b"[]", f"#{empty}"), (201, b'{"id": 7}', f"#{add}"), (200, b'[{"id": 7}]', f"#{full}"),
                       (200, b'[{"id": 7}]', f"#{full}")]  # fmt: skip
    # Recorded headers but those that no longer describe the body; its length is the answer's own.
    assert "content-encoding" not in posted.response.headers and posted.response.headers["X-Shop"] == "1"
    assert posted.response.headers["content-length"] == str(len(b'{"id": 7}'))
    assert flow_to_record(posted, proxy="p", body_cap=100).mock == f"#{add}"
    # An answer already given (a fault rule's status, the inspector guard's refusal) stays.
    faulted = flow_for("orders", "GET", "/cart")
    faulted.response = tflow.tresp(status_code=503)
    mocks.request(faulted)
    assert faulted.response.status_code == 503 and META_MOCK not in faulted.metadata
    # Another service, and the staging realm's simulation, are not this proxy's to answer.
    other = flow_for("billing")
    mocks.request(other)
    assert other.response is None and META_MOCK not in other.metadata


def test_a_miss_names_the_closest_unless_passthrough(store) -> None:  # type: ignore[no-untyped-def]
    known = recorded(store, path="/orders/1", status=200)
    put_simulation(store, SimulationSpec("orders"))
    mocks = Mocks(store, realm="")
    mocks.reload()
    with taddons.context(mocks):
        miss = flow_for("orders", "DELETE", "/orders/1")
        mocks.request(miss)
        assert miss.response.status_code == 404 and miss.response.headers[MOCK_HEADER] == "no-match"
        answer = json.loads(miss.response.content)
        assert answer["error"] == "no_mock_match" and f"GET /orders/1 -> 200 (#{known})" in answer["message"]
        assert answer["closest"] == [{"recording": f"#{known}", "exchange_id": known, "method": "GET",
                                      "path": "/orders/1", "query": "", "status": 200}]  # fmt: skip
        assert flow_to_record(miss, proxy="p", body_cap=100).mock == "no-match"

        put_simulation(store, SimulationSpec("orders", passthrough=True))
        mocks.reload()
        forwarded = flow_for("orders", "DELETE", "/orders/1")
        mocks.request(forwarded)
        assert forwarded.response is None and META_MOCK not in forwarded.metadata
        # Passthrough with nowhere to pass to (a service only simulated): the miss is answered.
        unrouted = flow_for("orders", "DELETE", "/orders/1")
        unrouted.metadata[META_UNROUTED] = True
        mocks.request(unrouted)
        assert unrouted.response.status_code == 404 and "no upstream" in json.loads(unrouted.response.content)["message"]


def test_the_database_away_keeps_the_loaded_simulations_answering(store) -> None:  # type: ignore[no-untyped-def]
    recorded(store, path="/orders/1", answer=b'{"id": 1}')
    put_simulation(store, SimulationSpec("orders"))
    mocks = Mocks(store, realm=None)
    mocks.reload()

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise Unavailable("connection refused")

    mocks.store = type("Away", (), {"connect": broken, "begin": broken, "dialect": "sqlite"})()
    assert not mocks.refresher.read_once()  # logged once, never raised
    with taddons.context(mocks):
        flow = flow_for("orders")
        mocks.request(flow)
    assert flow.response.content == b'{"id": 1}'


def test_a_reload_restarts_sequences_and_drops_ended_simulations(store) -> None:  # type: ignore[no-untyped-def]
    first = recorded(store, path="/n", answer=b"1")
    recorded(store, path="/n", answer=b"2")
    put_simulation(store, SimulationSpec("orders"))
    mocks = Mocks(store, realm=None)
    mocks.reload()
    with taddons.context(mocks):
        for _ in range(2):
            mocks.request(flow_for("orders", path="/n"))
        loaded = mocks.simulations["orders"]
        mocks.reload()  # nothing changed: the same simulation, its sequences where they were
        assert mocks.simulations["orders"] is loaded
        put_simulation(store, SimulationSpec("orders"))  # sent again: loaded anew
        mocks.reload()
        again = flow_for("orders", path="/n")
        mocks.request(again)
        assert again.response.headers[MOCK_HEADER] == f"#{first}"
        delete_simulation(store, service="orders")
        mocks.reload()
        assert not mocks.simulates("orders")
        # A request the Router routed to the simulation just before it ended is answered, never sent on.
        late = flow_for("orders", path="/n")
        late.metadata[META_UNROUTED] = True
        mocks.request(late)
        assert late.response.status_code == 404 and META_MOCK not in late.metadata


def test_latency_is_reproduced_on_that_flow_only(store) -> None:  # type: ignore[no-untyped-def]
    recorded(store, path="/slow", duration_ms=200.0)
    recorded(store, path="/fast", duration_ms=1.0)
    put_simulation(store, SimulationSpec("orders", latency=True))
    mocks = Mocks(store, realm=None)
    mocks.reload()

    async def run() -> tuple[float, float]:
        with taddons.context(mocks):
            started = time.time()  # the responses' timestamps are wall-clock
            slow, fast = flow_for("orders", path="/slow"), flow_for("orders", path="/fast")
            waiting = mocks.request(slow)
            assert waiting is not None and slow.response is None  # mitmproxy awaits it: only this flow waits
            fast_wait = mocks.request(fast)
            await asyncio.gather(waiting, fast_wait)
            assert slow.response.status_code == fast.response.status_code == 200
            return fast.response.timestamp_start - started, slow.response.timestamp_start - started

    fast_at, slow_at = asyncio.run(run())
    assert slow_at >= 0.2 and fast_at < 0.1


def test_the_router_brings_every_simulated_name_to_the_mock_with_no_upstream_reached(store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A configured service whose upstream is down, a registered one (its instance down), one
    registered with no instance left, and a name the proxy was never told about: all answered."""
    for name in ("down", "registered", "gone", "unknown"):
        write_records(store, [make_record(service=name, realm="dev", path="/x", query="",
                                          response_body=CapturedBody(name.encode(), len(name), False))])  # fmt: skip
        put_simulation(store, SimulationSpec(name, realm="dev"))
    closed = free_port()
    heartbeat(store, Heartbeat(name="registered", url=f"http://127.0.0.1:{closed}", instance="r1", realm="dev"))
    heartbeat(store, Heartbeat(name="gone", url=f"http://127.0.0.1:{closed}", instance="g1", realm="dev"))
    deregister(store, name="gone", instance="g1")
    down = parse_route(f"down=http://127.0.0.1:{closed}")
    routes = RegistryRoutes(store, realm="dev", configured={"down": down.upstream})
    routes.refresh()
    mocks = Mocks(store, realm="dev")
    mocks.reload()
    router = Router(services={"down": down}, gateway=GATEWAY, registered=routes, simulated=mocks.simulates)
    with taddons.context(router, mocks):
        for name in ("down", "registered", "gone", "unknown"):
            flow = tflow.tflow()
            flow.client_conn.proxy_mode = ProxyMode.parse(GATEWAY)
            flow.request.path = f"/{name}/x"
            router.requestheaders(flow)
            assert flow.response is None and flow.metadata[META_SERVICE] == name
            assert flow.metadata.get(META_UNROUTED, False) == (name in ("gone", "unknown"))
            mocks.requestheaders(flow)
            mocks.request(flow)
            assert flow.response.content == name.encode() and flow.response.headers[MOCK_HEADER].startswith("#")
        nobody = tflow.tflow()
        nobody.client_conn.proxy_mode = ProxyMode.parse(GATEWAY)
        nobody.request.path = "/nobody/x"
        router.requestheaders(nobody)
        assert nobody.response.status_code == 404 and json.loads(nobody.response.content)["error"] == "no_route"
