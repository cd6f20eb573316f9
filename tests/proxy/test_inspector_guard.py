"""The InspectorGuard addon driven directly (mitmproxy's taddons/tflow), with a real SQLite store.

Names are resolved by a dict-backed lookup: nothing here asks DNS. The end-to-end checks with
real processes are in tests/integration/test_inspector_guard.py.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from mitmproxy import http
from mitmproxy.proxy.server_hooks import ServerConnectionHookData
from mitmproxy.test import tflow
from sqlalchemy import text

from proxy.flow_record import META_ERROR_KIND
from proxy.inspector_guard import InspectorGuard
from storage.inspectors import register_inspector
from storage.store import open_store

INSPECTOR = ("127.0.0.1", 8081)
SPELLINGS = ["127.0.0.1", "localhost", "LOCALHOST.", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "::ffff:127.0.0.1",
             "127.1", "0.0.0.0", "0", "::1", "::"]  # fmt: skip
RECORDS = {"rebind.example": ["127.0.0.1"], "api.example": ["198.51.100.7", "198.51.100.8"], "v6.example": ["::1"]}


def lookup(host: str, port: int) -> list[str]:
    try:
        return RECORDS[host]
    except KeyError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


def guard_for(*configured: tuple[str, int], store=None, **options) -> InspectorGuard:
    return InspectorGuard(store, configured=list(configured), lookup=lookup, is_own=lambda address: False, **options)


def request_to(host: str, port: int, method: str = "GET") -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.request.method = method
    flow.request.host, flow.request.port = host, port
    return flow


def hook_data(host: str, port: int) -> ServerConnectionHookData:
    server = tflow.tserver_conn()
    server.address, server.sni = (host, port), None
    client = tflow.tclient_conn()
    client.sni = None
    return ServerConnectionHookData(client=client, server=server)


def run(awaitable) -> None:
    if awaitable is not None:
        asyncio.run(_await(awaitable))


async def _await(awaitable) -> None:
    await awaitable


def assert_refused(flow: http.HTTPFlow) -> None:
    assert flow.response is not None and flow.response.status_code == 403
    assert json.loads(flow.response.content)["error"] == "refused"
    assert flow.response.headers["X-Passageway-Error"] == "refused"
    assert flow.metadata[META_ERROR_KIND] == "killed"


@pytest.mark.parametrize("host", SPELLINGS)
def test_every_spelling_of_the_inspector_is_refused(host):
    guard = guard_for(INSPECTOR)
    for hook in (guard.requestheaders, guard.http_connect):
        flow = request_to(host, 8081, "CONNECT" if hook == guard.http_connect else "GET")
        run(hook(flow))
        assert_refused(flow)


@pytest.mark.parametrize("host", SPELLINGS)
def test_every_spelling_is_killed_before_connecting(host):
    guard = guard_for(INSPECTOR)
    data = hook_data(host, 8081)
    run(guard.server_connect(data))
    assert data.server.error and data.server.error.startswith("refused:")


def test_other_ports_and_hosts_pass_untouched():
    guard = guard_for(INSPECTOR)
    for host, port in (("127.0.0.1", 9000), ("198.51.100.7", 8081), ("api.example", 9000)):
        flow = request_to(host, port)
        assert guard.requestheaders(flow) is None or port == 8081
        run(guard.requestheaders(flow))
        assert flow.response is None
        data = hook_data(host, port)
        run(guard.server_connect(data))
        assert data.server.error is None and data.server.address == (host, port)


def test_an_ordinary_request_costs_a_port_lookup_only():
    guard = guard_for(INSPECTOR)
    guard.reached = None  # would fail if called
    assert guard.requestheaders(request_to("api.example", 443)) is None
    assert guard.server_connect(hook_data("api.example", 443)) is None


def test_a_request_already_answered_is_left_alone():
    guard = guard_for(INSPECTOR)
    flow = request_to("127.0.0.1", 8081)
    flow.response = http.Response.make(404)
    assert guard.requestheaders(flow) is None and flow.response.status_code == 404


def test_a_name_resolving_to_the_inspector_is_refused_and_others_are_pinned():
    guard = guard_for(INSPECTOR)
    flow = request_to("rebind.example", 8081)
    run(guard.requestheaders(flow))
    assert_refused(flow)
    refused = hook_data("rebind.example", 8081)
    run(guard.server_connect(refused))
    assert "127.0.0.1:8081" in refused.server.error or "rebind.example:8081" in refused.server.error
    # A name that resolves elsewhere connects to the address that was checked, SNI kept.
    allowed = hook_data("api.example", 8081)
    run(guard.server_connect(allowed))
    assert allowed.server.error is None
    assert allowed.server.address == ("198.51.100.7", 8081) and allowed.server.sni == "api.example"


def test_a_second_dns_answer_cannot_differ_from_the_checked_one():
    answers = iter([["198.51.100.7"], ["127.0.0.1"]])
    guard = InspectorGuard(None, configured=[INSPECTOR], lookup=lambda host, port: next(answers), is_own=lambda a: False)
    data = hook_data("flip.example", 8081)
    run(guard.server_connect(data))
    assert data.server.address == ("198.51.100.7", 8081)  # pinned: the connection does not resolve again


def test_a_name_that_does_not_resolve_at_an_inspector_port_is_refused():
    guard = guard_for(INSPECTOR)
    data = hook_data("unknown.example", 8081)
    run(guard.server_connect(data))
    assert data.server.error.startswith("refused: cannot resolve unknown.example")
    flow = request_to("unknown.example", 8081)
    run(guard.requestheaders(flow))
    assert flow.response is None  # the connection will be refused with the reason


def test_a_configured_name_is_refused_by_name_and_by_address():
    guard = guard_for(("ui.example", 8081))
    flow = request_to("UI.example.", 8081)
    run(guard.requestheaders(flow))
    assert_refused(flow)
    RECORDS["ui.example"] = ["198.51.100.9"]
    try:
        guard.reload()
    finally:
        del RECORDS["ui.example"]
    flow = request_to("198.51.100.9", 8081)
    run(guard.requestheaders(flow))
    assert_refused(flow)


def test_a_wildcard_inspector_is_reached_through_this_machines_own_addresses():
    guard = InspectorGuard(None, configured=[("0.0.0.0", 8081)], lookup=lookup, is_own=lambda a: str(a) == "192.0.2.2")
    for host, refused in (("192.0.2.2", True), ("::1", True), ("192.0.2.3", False)):
        flow = request_to(host, 8081)
        run(guard.requestheaders(flow))
        assert (flow.response is not None) is refused, host


def test_registered_inspectors_are_loaded_and_kept_while_the_store_fails(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/guard.db")
    try:
        register_inspector(store, inspector="other", machine="m", addresses=[("::", 9444)])
        guard = guard_for(INSPECTOR, store=store)
        guard.reload()
        assert guard.listeners.ports == {8081, 9444}
        flow = request_to("127.0.0.1", 9444)
        run(guard.requestheaders(flow))
        assert_refused(flow)
        with store.engine.begin() as conn:
            conn.execute(text("DROP TABLE inspector_addresses"))
        with pytest.raises(Exception):
            guard.reload()
        assert guard.listeners.ports == {8081, 9444}
    finally:
        store.close()


def test_the_refresh_thread_swaps_in_new_registrations(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/guard.db")
    guard = guard_for(INSPECTOR, store=store, refresh_interval=0.05)
    try:
        guard.running()
        register_inspector(store, inspector="late", machine="m", addresses=[("127.0.0.1", 9555)])
        for _ in range(100):
            if 9555 in guard.listeners.ports:
                break
            asyncio.run(asyncio.sleep(0.02))
        assert 9555 in guard.listeners.ports
    finally:
        guard.done()
        guard.done()  # twice is fine
        store.close()


def test_a_configured_name_keeps_its_last_addresses_while_it_does_not_resolve():
    answers = [["198.51.100.9"]]

    def flaky(host: str, port: int) -> list[str]:
        if not answers:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return answers.pop()

    guard = InspectorGuard(None, configured=[("ui.example", 8081)], lookup=flaky, is_own=lambda a: False)
    guard.reload()
    guard.reload()  # DNS fails this time
    flow = request_to("198.51.100.9", 8081)
    run(guard.requestheaders(flow))
    assert_refused(flow)
