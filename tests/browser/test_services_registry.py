"""The Services page with self-registered services (issue 17) in Chromium: each service's
instances (state, version, URL, heartbeat), its source and a name conflict; the dependency graph
with a declared-but-unseen and an observed-but-undeclared edge; forgetting an instance through
the confirm dialog. Both sizes, light and dark, are screenshotted (test-output/screenshots).

The inspector runs in-process (uvicorn on a thread) over a SQLite store the test fills through
storage.registry, storage.services and storage.sink, as heartbeats, a proxy and traffic would."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from playwright.sync_api import expect

from inspector_ui import InspectorSettings, create_app
from storage import registry
from storage.services import register_services
from storage.sink import write_records
from storage.store import Store, open_store
from tests.support import wait_for
from tests.support.records import make_record

from .conftest import SCRIPT_CANARY, assert_nothing_ran, each_variant, open_page, screenshot

HOSTILE_INSTANCE = f"ledger{SCRIPT_CANARY}"


@dataclass
class Inspector:
    url: str
    store: Store


def beat(store: Store, name: str, instance: str, **fields) -> None:  # type: ignore[no-untyped-def]
    registry.heartbeat(store, registry.Heartbeat(name=name, instance=instance, realm="staging",
                                                 url=f"http://127.0.0.1:9001/{name}", **fields))  # fmt: skip


@pytest.fixture(scope="module")
def inspector(tmp_path_factory) -> Iterator[Inspector]:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('registry-page') / 'services.db'}")
    beat(store, "frontend", "frontend-1", version="2.0.0", depends_on=("orders", "identity"), ready=True)
    beat(store, "orders", "orders-1", version="1.4.2", depends_on=("billing",), ready=True)
    beat(store, "orders", "orders-2", version="1.4.3", depends_on=("billing",), ready=False)
    beat(store, "billing", "billing-1", version="0.9.0")
    beat(store, "ledger", HOSTILE_INSTANCE)
    register_services(store, proxy="edge-1", realm="staging", services=[
        {"service": "billing", "upstream": "http://127.0.0.1:9100", "health_path": None},
        {"service": "identity", "upstream": "http://127.0.0.1:9200", "health_path": None},
    ])  # fmt: skip
    write_records(store, [
        *(make_record(service="orders", realm="staging", caller="frontend") for _ in range(3)),
        make_record(service="billing", realm="staging", caller="orders"),
        make_record(service="ledger", realm="staging", caller="orders", status=502),  # orders never declared ledger
    ])  # fmt: skip
    app = create_app(InspectorSettings(db_url=store.url, port=0), store=store)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10)
    try:
        yield Inspector(f"http://127.0.0.1:{sock.getsockname()[1]}", store)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        store.close()


def test_instances_conflict_graph_and_forgetting_an_instance(browser, inspector) -> None:  # type: ignore[no-untyped-def]
    page, watched = open_page(browser, inspector.url + "/services?realm=staging")
    try:
        orders = page.locator("tr.service-detail[data-service='orders']")
        expect(orders.locator("tr.instance")).to_have_count(2)
        second = orders.locator("tr.instance[data-instance='orders-2']")
        expect(second.locator("td")).to_have_text(
            ["orders-2", "up", "not ready", "1.4.3", "http://127.0.0.1:9001/orders", re.compile(r"^\d+s ago$"), "Forget…"]
        )
        expect(orders.locator(".source")).to_have_text("self-registered")
        expect(orders.locator(".depends-on")).to_have_text("depends on billing")
        billing = page.locator("tr.service-detail[data-service='billing']")
        expect(billing.locator(".source")).to_have_text("configured + self-registered")
        expect(billing.locator("p.conflict")).to_contain_text("the configured upstream wins in routing")
        expect(page.locator("tr.service-row[data-service='billing'] .conflict-mark")).to_have_text("conflict")
        expect(page.locator("tr.service-row[data-service='ledger'] .state-badge")).to_have_text("up")
        expect(page.locator(f"tr.instance[data-instance='{HOSTILE_INSTANCE}'] td.instance-id")).to_have_text(HOSTILE_INSTANCE)

        graph = page.locator("#graph svg.dependency-graph")
        expect(graph.locator("g.node")).to_have_count(5)
        unseen = graph.locator("g.edge.flag-unseen[data-caller='frontend'][data-service='identity']")
        expect(unseen.locator("text.edge-label")).to_have_text("unseen")
        undeclared = graph.locator("g.edge.flag-undeclared[data-caller='orders'][data-service='ledger']")
        expect(undeclared.locator("text.edge-label")).to_have_text("undeclared")
        expect(graph.locator("g.edge.kind-both")).to_have_count(2)  # frontend → orders, orders → billing
        expect(page.locator("#graph-flags li")).to_have_text([
            "frontend → identity: declared, not seen in traffic in the last hour",
            "orders → ledger: seen in traffic, not declared by orders; 1 request, 1 failed",
        ])  # fmt: skip
        # Callers left of what they call: frontend, then orders, then billing and ledger.
        x = {name: graph.locator(f"g.node[data-name='{name}']").bounding_box()["x"] for name in ("frontend", "orders", "ledger")}
        assert x["frontend"] < x["orders"] < x["ledger"]
        # A cycle still lays out: no column beyond the last.
        columns = page.evaluate("""async () => {
            const { layers } = await import("/static/dependency_graph.js");
            const found = layers(["a", "b", "c"], [{caller: "a", service: "b"}, {caller: "b", service: "c"}, {caller: "c", service: "a"}]);
            return [...found.values()];
        }""")
        assert max(columns) <= 2 and len(set(columns)) > 1
        screenshot(page, "services-registry-instances")
        for variant in each_variant(page, "services-registry-graph"):
            page.locator("#dependencies").scroll_into_view_if_needed()
            expect(graph.locator("g.node")).to_have_count(5)
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), variant

        second.locator("button.forget-instance").click()
        dialog = page.locator("#forget-dialog")
        expect(dialog.locator("#forget-dialog-title")).to_have_text("Forget instance orders-2?")
        dialog.locator("button", has_text="Cancel").click()
        expect(dialog).to_be_hidden()
        expect(orders.locator("tr.instance")).to_have_count(2)
        second.locator("button.forget-instance").click()
        dialog.locator("button.confirm-forget").click()
        expect(dialog).to_be_hidden()
        expect(orders.locator("tr.instance")).to_have_count(1)
        assert [i.instance for i in registry.instances(inspector.store, name="orders")] == ["orders-1"]
        assert_nothing_ran(page, watched, scripts=["/static/theme.js", "/static/services.js"], no_elements="img, iframe, object")
    finally:
        page.context.close()
