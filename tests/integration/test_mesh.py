"""Issue 7 end to end: three real uvicorn services call each other through a real `passageway up`
with the smart client; the inspector assembles one trace with correct parent links, retries
show as separate exchanges of that trace, and health probes follow a service going away and
coming back (while its traffic still flows: Passageway observes, it does not decide)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from passageway import Client
from tests.support import ManagedProcess, free_port, start_process, wait_for

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("frontend", "orders", "identity")
TRACE = "5c4ad3d4f1a0c0ffee0ddba11c0ffee5"
ROOT_SPAN = "a1b2c3d4e5f60718"


@dataclass
class Mesh:
    gateway: str
    inspector: str
    ports: dict[str, int]
    services: dict[str, ManagedProcess]
    config: Path
    db_url: str
    proxy: ManagedProcess

    def start_service(self, name: str) -> ManagedProcess:
        args = [sys.executable, "-m", "uvicorn", "tests.support.mesh:app", "--host", "127.0.0.1",
                "--port", str(self.ports[name]), "--log-level", "warning"]  # fmt: skip
        env = {"MESH_SERVICE": name, "PASSAGEWAY_URL": self.gateway, "PASSAGEWAY_SERVICE": name}
        process = start_process(args, port=self.ports[name], name=name, extra_env=env, cwd=REPO, timeout=30)
        self.services[name] = process
        return process

    def api(self, path: str) -> httpx.Response:
        return httpx.get(self.inspector + path, timeout=10)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory) -> Iterator[Mesh]:
    tmp = tmp_path_factory.mktemp("mesh")
    ports = {name: free_port() for name in SERVICES}
    gateway, ui = free_port(), free_port()
    config = tmp / "passageway.toml"
    config.write_text("".join(
        f'[realms.dev.services.{name}]\nurl = "http://127.0.0.1:{port}"\nhealth = "/healthz"\n'
        'health_interval = "0.3s"\nhealth_timeout = "0.25s"\n'
        f'[realms.prod.services.{name}]\nurl = "http://{name}.prod.invalid"\n'
        for name, port in ports.items()
    ))  # fmt: skip
    db_url = f"sqlite:///{tmp / 'capture.db'}"
    args = [sys.executable, "-m", "cli", "up", "--config", str(config), "--realm", "dev", "--db", db_url,
            "--listen", f"127.0.0.1:{gateway}", "--ui", f"127.0.0.1:{ui}", "--certs-dir", str(tmp / "certs"),
            "--proxy-name", "mesh-proxy"]  # fmt: skip
    with start_process(args, port=gateway, name="passageway up", timeout=30, cwd=tmp) as proxy:
        proxy.wait_for_port(ui)
        mesh = Mesh(f"http://127.0.0.1:{gateway}", f"http://127.0.0.1:{ui}", ports, {}, config, db_url, proxy)
        try:
            for name in SERVICES:
                mesh.start_service(name)
            yield mesh
        finally:
            for process in mesh.services.values():
                process.stop()


def test_a_call_across_three_services_is_one_trace_with_parent_links_and_retries(mesh: Mesh) -> None:
    with Client(gateway=mesh.gateway, service="checkout-test", timeout=10) as client:
        response = client.get("service://frontend/checkout/u13", headers={"traceparent": f"00-{TRACE}-{ROOT_SPAN}-01"})
    assert response.status_code == 200, response.text
    assert response.json()["statuses"] == [200, 200]  # identity's 503 was retried by orders' smart client

    def whole_trace() -> dict | None:
        got = mesh.api(f"/api/traces/{TRACE}")
        return got.json() if got.status_code == 200 and got.json()["exchange_count"] >= 5 else None

    trace = wait_for(whole_trace, timeout=15, message=lambda: mesh.proxy.describe())
    spans = trace["nodes"]
    assert len(spans) == 5 and trace["error_count"] == 1
    by_call = {(s["caller"], s["service"], s["status"]): s for s in spans}
    root = by_call[("checkout-test", "frontend", 200)]
    to_orders = by_call[("frontend", "orders", 200)]
    failed = by_call[("orders", "identity", 503)]
    retried = by_call[("orders", "identity", 200)]
    direct = by_call[("frontend", "identity", 200)]

    # The root's parent span is the test's own, which no exchange has.
    assert root["parent_id"] is None and root["depth"] == 0
    for child, parent in ((to_orders, root), (failed, to_orders), (retried, to_orders), (direct, root)):
        assert (child["parent_id"], child["link"]) == (parent["exchange_id"], "span"), child
        assert child["depth"] == parent["depth"] + 1
    assert (failed["attempt"], retried["attempt"]) == (1, 2)
    assert failed["failed"] and not retried["failed"]
    assert len({s["span_id"] for s in spans}) == 5
    assert {(e["caller"], e["service"]) for e in trace["edges"]} == {
        ("checkout-test", "frontend"), ("frontend", "orders"), ("orders", "identity"), ("frontend", "identity"),
    }


def test_services_are_listed_with_health_and_a_stopped_one_flips_down_and_back(mesh: Mesh) -> None:
    def states() -> dict[str, str]:
        listed = mesh.api("/api/services?realm=dev").json()["services"]
        return {s["name"]: s["health"]["state"] for s in listed}

    wait_for(lambda: states() == dict.fromkeys(SERVICES, "up"), timeout=15, message=lambda: str(states()))
    mesh.services["identity"].stop()
    wait_for(lambda: states()["identity"] == "down", timeout=10, message=lambda: str(states()))
    assert states()["orders"] == "up"

    # Down, and still forwarded: the gateway tries the upstream and reports its failure.
    failed = httpx.get(f"{mesh.gateway}/identity/users/1", timeout=10)
    assert failed.status_code == 502
    assert 'passageway_service_up{service="identity",realm="dev"} 0' in mesh.api("/api/metrics").text
    status = subprocess.run([sys.executable, "-m", "cli", "status", "--db", mesh.db_url],
                            capture_output=True, text=True, timeout=30, cwd=REPO)  # fmt: skip
    assert re.search(r"^service identity \(dev\): down since \S+: cannot connect: connection refused$",
                     status.stdout, re.MULTILINE), status.stdout  # fmt: skip
    assert re.search(r"^service orders \(dev\): up since \S+, \d+ ms$", status.stdout, re.MULTILINE), status.stdout

    mesh.start_service("identity")
    wait_for(lambda: states()["identity"] == "up", timeout=10, message=lambda: str(states()))
    history = mesh.api("/api/services/identity/health?since=5m&realm=dev").json()
    oks = [sample["ok"] for sample in history["samples"]]
    assert False in oks and oks[-1] is True


def test_the_cli_calls_a_service_by_name(mesh: Mesh) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "call", "--config", str(mesh.config), "--realm", "dev",
         "--listen", mesh.gateway.removeprefix("http://"), "--ui", mesh.inspector.removeprefix("http://"),
         "--caller", "cli", "service://identity/users/7"],
        capture_output=True, text=True, timeout=30, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"id": "7", "name": "user 7"}
    link = re.fullmatch(rf"200 OK in \d+ ms; trace: {mesh.inspector}/traces/([0-9a-f]{{32}})\n", result.stderr)
    assert link, result.stderr

    def the_call() -> list[dict] | None:
        got = mesh.api(f"/api/traces/{link[1]}")
        return got.json()["nodes"] if got.status_code == 200 else None

    [node] = wait_for(the_call, timeout=10)
    assert (node["caller"], node["service"], node["path"], node["status"]) == ("cli", "identity", "/users/7", 200)
    bad = subprocess.run([sys.executable, "-m", "cli", "call", "--config", str(mesh.config), "--realm", "dev",
                          "service://nowhere:80/x"], capture_output=True, text=True, timeout=30, cwd=REPO)  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "has a port" in bad.stderr
