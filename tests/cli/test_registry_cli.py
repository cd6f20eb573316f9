"""`passageway registry list` and `passageway registry forget` as real processes against a real
inspector (uvicorn on a thread, over SQLite) that has a token: they send it, print what the
registry holds, forget, and turn every refusal into one line and a non-zero exit."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn

from inspector_ui import InspectorSettings, create_app
from storage import registry
from storage.services import register_services
from storage.store import Store, open_store
from tests.support import wait_for

TOKEN = "registry-cli-token-0123456789"


@dataclass
class Inspector:
    address: str
    store: Store


@pytest.fixture(scope="module")
def inspector(tmp_path_factory) -> Iterator[Inspector]:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('registry-cli') / 'capture.db'}")
    app = create_app(InspectorSettings(db_url=store.url, port=0, token=TOKEN), store=store)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10)
    try:
        yield Inspector(f"127.0.0.1:{sock.getsockname()[1]}", store)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        store.close()


def passageway(inspector: Inspector, *args: str, token: str | None = TOKEN, cwd=None) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PASSAGEWAY_")}
    if token:
        env["PASSAGEWAY_UI_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "cli", "registry", *args, "--ui", inspector.address],
        capture_output=True, text=True, timeout=60, env=env, cwd=cwd,
    )  # fmt: skip


def beat(store: Store, name: str, instance: str, *, realm: str | None = "staging", **fields) -> None:  # type: ignore[no-untyped-def]
    registry.heartbeat(store, registry.Heartbeat(name=name, instance=instance, realm=realm,
                                                 url=f"http://127.0.0.1:9001/{instance}", **fields))  # fmt: skip


def test_list_forget_an_instance_then_the_service(inspector, tmp_path) -> None:  # type: ignore[no-untyped-def]
    beat(inspector.store, "orders", "orders-1", version="1.4.2", depends_on=("billing",), ready=True)
    beat(inspector.store, "orders", "orders-2", ready=False)
    beat(inspector.store, "billing", "billing-1")
    beat(inspector.store, "orders", "orders-dev", realm="dev")
    register_services(inspector.store, proxy="edge", realm="staging", services=[
        {"service": "billing", "upstream": "http://127.0.0.1:9100"},
    ])  # fmt: skip
    register_services(inspector.store, proxy="gone-edge", realm="staging", services=[
        {"service": "orders", "upstream": "http://127.0.0.1:9200"},
    ], now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))  # fmt: skip
    cwd = str(tmp_path)  # no passageway.toml: no configured realm, every realm is listed

    listed = passageway(inspector, "list", cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "orders (dev): up, registered"
    assert "billing (staging): unknown, configured and registered" in lines  # its proxy does not probe it
    assert any(line.startswith("  conflict: 'billing' is configured on a proxy and self-registered") for line in lines)
    # Only a stale proxy configures orders: no conflict, its health is its instances'.
    assert "orders (staging): up, configured and registered; depends on billing" in lines
    assert sum(line.startswith("  conflict:") for line in lines) == 1
    orders_1 = next(line for line in lines if line.startswith("  orders-1"))
    assert "up, ready v1.4.2  http://127.0.0.1:9001/orders-1  heartbeat" in orders_1 and orders_1.endswith(" s ago")
    assert any(line.startswith("  orders-2  up, not ready") for line in lines)

    as_json = json.loads(passageway(inspector, "list", "--json", "--realm", "staging", cwd=cwd).stdout)
    assert [(s["name"], s["source"], len(s["instances"])) for s in as_json["services"]] == [
        ("billing", "both", 1), ("orders", "both", 2),
    ]  # fmt: skip

    one = passageway(inspector, "forget", "orders", "orders-2", "--realm", "staging", cwd=cwd)
    assert (one.returncode, one.stdout) == (0, "forgot instance 'orders-2' of 'orders' in realm 'staging'\n")
    whole = passageway(inspector, "forget", "orders", "--realm", "staging", cwd=cwd)
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout == "forgot 'orders' in realm 'staging': 1 instance(s) and 1 stale proxy registration(s)\n"
    left = passageway(inspector, "list", "--realm", "staging", cwd=cwd).stdout
    assert "orders" not in left and "billing (staging)" in left
    assert [i.realm for i in registry.instances(inspector.store, name="orders")] == ["dev"]


def test_status_lists_each_services_live_instances_and_any_conflict(inspector, tmp_path) -> None:  # type: ignore[no-untyped-def]
    beat(inspector.store, "billing", "billing-1")
    beat(inspector.store, "search", "search-1", realm="dev")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PASSAGEWAY_")}
    done = subprocess.run([sys.executable, "-m", "cli", "status", "--db", inspector.store.url],
                          capture_output=True, text=True, timeout=60, env=env, cwd=str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    billing = next(line for line in lines if line.startswith("service billing (staging): "))
    assert "; 1 registered instance(s): billing-1 http://127.0.0.1:9001/billing-1; conflict: 'billing' is configured" in billing
    assert next(line for line in lines if line.startswith("service search (dev): ")) == (
        "service search (dev): up; 1 registered instance(s): search-1 http://127.0.0.1:9001/search-1"
    )


@pytest.mark.parametrize(
    ("args", "token", "code", "message"),
    [
        (["forget", "nosuch"], TOKEN, 1, "passageway: error: no service 'nosuch' is registered (HTTP 404)"),
        (["forget", "orders", "no-such-instance"], TOKEN, 1,
         "passageway: error: no instance 'no-such-instance' of 'orders' is registered (HTTP 404)"),
        (["forget", "b@d"], TOKEN, 2, "passageway: error: name: Value error, a service name"),
        (["list"], "wrong-token-0123456789abcdef", 1, "passageway: error: "),
    ],
)  # fmt: skip
def test_refusals_are_one_line_and_a_non_zero_exit(inspector, tmp_path, args, token, code, message) -> None:  # type: ignore[no-untyped-def]
    done = passageway(inspector, *args, token=token, cwd=str(tmp_path))
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_an_inspector_that_is_not_there(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening: refused
        done = passageway(Inspector(address, None), "list", cwd=str(tmp_path))  # type: ignore[arg-type]
    assert done.returncode == 2 and done.stderr.startswith(f"passageway: error: cannot reach the inspector at http://{address}")
    assert done.stderr.count("\n") == 1
