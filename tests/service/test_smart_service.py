"""SmartService against a real inspector (`python -m cli ui` on SQLite, with its token): real
uvicorn FastAPI apps register, heartbeat, read their dependency from the registry, count their
routes, deregister on a clean shutdown, and keep serving while the inspector is away."""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from passageway import SmartService
from passageway.metrics import parse_exposition
from tests.support.processes import free_port, start_process, wait_for
from tests.support.relay import TcpRelay

PASSAGEWAY = [sys.executable, "-m", "cli"]
TOKEN = "smart-service-test-token-0123456789"
INTERVAL = 0.5  # the registry's least: the tests wait for a few beats, not seconds


class RunningApp:
    """A real uvicorn server in a thread, on a pre-bound port; stop() is a clean shutdown (lifespan)."""

    def __init__(self, app: SmartService) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def start(self) -> RunningApp:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=10, message="uvicorn did not start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


def smart_app(name: str, inspector: str, *, depends_on: tuple[str, ...] = (), token: str | None = TOKEN) -> tuple[SmartService, RunningApp]:
    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict:
        return {"id": order_id}

    service = SmartService(app, name=name, depends_on=depends_on, version="1.2.3", inspector_url=inspector,
                           token=token, interval=INTERVAL, realm="", url="http://placeholder")  # fmt: skip
    running = RunningApp(service)
    service.url = running.url  # the pre-bound port is known only now
    return service, running


@pytest.fixture(scope="module")
def inspector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    db = tmp_path_factory.mktemp("smart") / "inspector.db"
    args = [*PASSAGEWAY, "ui", "--db", f"sqlite:///{db}", "--ui", f"127.0.0.1:{port}"]
    with start_process(args, port=port, name="passageway ui", extra_env={"PASSAGEWAY_UI_TOKEN": TOKEN}):
        yield f"http://127.0.0.1:{port}"


def registry(inspector: str) -> dict[str, dict]:
    answer = httpx.get(f"{inspector}/api/registry", headers={"authorization": f"Bearer {TOKEN}"})
    answer.raise_for_status()
    return {instance["name"]: instance for instance in answer.json()["instances"]}


def test_registers_reads_its_dependency_counts_routes_and_deregisters(inspector: str) -> None:
    assert httpx.get(f"{inspector}/api/registry").status_code == 401  # the token is really needed
    orders, orders_server = smart_app("orders", inspector, depends_on=("billing",))
    orders_server.start()
    try:
        listed = wait_for(lambda: registry(inspector).get("orders"), timeout=10)
        assert listed["state"] == "up"
        assert listed["depends_on"] == ["billing"]
        assert listed["url"] == orders_server.url
        assert listed["health"] == "/readyz"
        assert listed["version"] == "1.2.3"
        assert listed["instance"] == orders.instance
        assert listed["interval_s"] == INTERVAL

        # billing is neither registered nor configured: orders is not ready, and says so in the registry.
        ready = httpx.get(f"{orders_server.url}/readyz")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/health+json"
        assert ready.json()["status"] == "fail"
        assert ready.json()["dependencies"]["billing"]["state"] == "absent"
        wait_for(lambda: registry(inspector)["orders"]["ready"] is False)

        billing, billing_server = smart_app("billing", inspector)
        billing_server.start()
        try:
            wait_for(lambda: httpx.get(f"{orders_server.url}/readyz").status_code == 200, timeout=10)
            dependency = httpx.get(f"{orders_server.url}/readyz").json()["dependencies"]["billing"]
            assert dependency == {"state": "up", "source": "registry", "instances": 1, "up": 1}
            wait_for(lambda: registry(inspector)["orders"]["ready"] is True)
        finally:
            billing_server.stop()
        assert registry(inspector)["billing"]["state"] == "deregistered"  # at once, not after a grace period
        wait_for(lambda: httpx.get(f"{orders_server.url}/readyz").json()["dependencies"]["billing"]["state"] == "down")

        for path in ("/orders/1", "/orders/2", "/orders/3", "/orders/oops", "/nowhere/7", "/healthz", "/readyz"):
            httpx.get(orders_server.url + path)
        samples = parse_exposition(httpx.get(f"{orders_server.url}/metrics").text)
        counts = {(labels["route"], labels["status"]): value for name, labels, value in samples
                  if name == "http_server_requests_total"}  # fmt: skip
        assert counts == {("/orders/{order_id}", "200"): 3, ("/orders/{order_id}", "422"): 1, ("<unmatched>", "404"): 1}
    finally:
        orders_server.stop()
    assert registry(inspector)["orders"]["state"] == "deregistered"
    assert not orders.registered


def test_serves_while_the_inspector_is_down_and_registers_when_it_comes(inspector: str, caplog) -> None:
    relay = TcpRelay(("127.0.0.1", int(inspector.rsplit(":", 1)[1])), port=free_port())  # not started: refused
    service, server = smart_app("lonely", f"http://127.0.0.1:{relay.port}")
    caplog.set_level(logging.WARNING, logger="passageway.service")
    server.start()
    try:
        assert httpx.get(f"{server.url}/orders/5").json() == {"id": 5}
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        wait_for(lambda: service.heartbeats_tried >= 5, timeout=10)
        outage = [record for record in caplog.records if "unreachable" in record.getMessage()]
        assert len(outage) == 1, "one warning per outage, not one per heartbeat"
        assert "lonely" not in registry(inspector)

        relay.start()
        wait_for(lambda: registry(inspector).get("lonely", {}).get("state") == "up", timeout=10)
        assert any("answers again" in record.getMessage() for record in caplog.records)
    finally:
        server.stop()
        relay.cut()
    assert registry(inspector)["lonely"]["state"] == "deregistered"


def test_an_inspector_starting_beside_the_service_is_not_yet_an_outage(caplog) -> None:
    app = SmartService(FastAPI(), name="patient", inspector_url=f"http://127.0.0.1:{free_port()}",
                       url="http://127.0.0.1:1", interval=5)  # fmt: skip
    caplog.set_level(logging.DEBUG, logger="passageway.service")
    server = RunningApp(app).start()
    try:
        wait_for(lambda: app.heartbeats_tried >= 1, timeout=10)
    finally:
        server.stop()
    assert [record.levelname for record in caplog.records if "not yet a warning" in record.getMessage()] == ["DEBUG"]
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_a_wrong_token_is_reported_once_and_the_service_still_serves(inspector: str, caplog) -> None:
    service, server = smart_app("intruder", inspector, token="not-the-token-at-all-000")
    caplog.set_level(logging.WARNING, logger="passageway.service")
    server.start()
    try:
        wait_for(lambda: service.heartbeats_tried >= 4, timeout=10)
        refused = [record.getMessage() for record in caplog.records if "refused" in record.getMessage()]
        assert len(refused) == 1 and "401" in refused[0]
        assert httpx.get(f"{server.url}/orders/9").status_code == 200
    finally:
        server.stop()
    assert "intruder" not in registry(inspector)


def test_no_service_url_is_a_one_line_startup_error(inspector: str, tmp_path) -> None:
    app_file = tmp_path / "nourl.py"
    app_file.write_text(
        "from fastapi import FastAPI\nfrom passageway import SmartService\n"
        "app = SmartService(FastAPI(), name='nourl')\n"
    )
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "--app-dir", str(tmp_path), "nourl:app", "--port", str(port)]
    process = start_process(args, name="uvicorn nourl", extra_env={"PASSAGEWAY_INSPECTOR_URL": inspector,
                                                                        "PASSAGEWAY_SERVICE_URL": ""})  # fmt: skip
    with process:
        assert process.wait_exit(20) != 0
        assert "no URL to register: pass url= or set PASSAGEWAY_SERVICE_URL" in process.stderr
        assert "Traceback" not in process.stderr


def test_the_demo_services_register_themselves_and_say_goodbye(inspector: str) -> None:
    demo, shop = free_port(), free_port()
    args = [*PASSAGEWAY, "demo-upstream", "--listen", f"127.0.0.1:{demo}", "--shop-listen", f"127.0.0.1:{shop}"]
    environment = {"PASSAGEWAY_INSPECTOR_URL": inspector, "PASSAGEWAY_TOKEN": TOKEN}
    with start_process(args, port=shop, name="demo upstream", extra_env=environment) as process:
        listed = wait_for(lambda: {"demo", "shop"} <= registry(inspector).keys() and registry(inspector), timeout=15)
        assert listed["demo"]["url"] == f"http://127.0.0.1:{demo}" and listed["demo"]["ready"] is True
        assert listed["shop"]["url"] == f"http://127.0.0.1:{shop}" and listed["shop"]["depends_on"] == ["demo"]
        assert httpx.get(f"http://127.0.0.1:{demo}/healthz").json()["service"] == "demo"
        process.stop()
    assert {registry(inspector)[name]["state"] for name in ("demo", "shop")} == {"deregistered"}
