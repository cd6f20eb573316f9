"""Integration fixtures: the real `passageway proxy` process, real upstreams, real databases."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from storage.queries import get_exchange, list_exchanges
from storage.store import Store, open_store
from tests.support import (
    ManagedProcess,
    free_port,
    fresh_postgres_database,
    require_or_skip_postgres,
    running_fault_server,
    running_upstream,
    start_process,
    wait_for,
)

PASSAGEWAY = [sys.executable, "-m", "cli"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request, tmp_path_factory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'capture.db'}"
    else:
        require_or_skip_postgres()
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture(scope="module")
def upstream():
    with running_upstream() as server:
        yield server


@pytest.fixture(scope="module")
def h2_upstream():
    with running_upstream(tls=True, http2=True) as server:
        yield server


@pytest.fixture(scope="module")
def stalling_upstream():
    with running_fault_server("stall") as server:
        yield server


@pytest.fixture(scope="module")
def resetting_upstream():
    with running_fault_server("reset-mid-body") as server:
        yield server


@dataclass
class RunningProxy:
    process: ManagedProcess
    store: Store
    gateway: str
    """http://127.0.0.1:PORT"""
    port: int
    forward_port: int
    solo_port: int
    certs_dir: Path

    def url(self, path: str) -> str:
        return self.gateway + path

    def exchanges(self, **filters) -> list[dict]:
        return list_exchanges(self.store, limit=1000, **filters).data

    def wait_for_exchange(self, trace: str, timeout: float = 10.0) -> dict:
        """The detail of the exchange whose X-Request-ID was `trace`."""

        def find():
            return next((e for e in self.exchanges() if e["trace_id"] == trace), None)

        summary = wait_for(find, timeout=timeout, message=lambda: self.process.describe())
        detail = get_exchange(self.store, exchange_id=summary["id"])
        assert detail is not None
        return detail


@pytest.fixture(scope="module")
def proxy(db_url, upstream, h2_upstream, stalling_upstream, resetting_upstream, tmp_path_factory) -> Iterator[RunningProxy]:
    port, forward_port, solo_port, closed_port = free_port(), free_port(), free_port(), free_port()
    config = tmp_path_factory.mktemp("config") / "passageway.toml"
    certs_dir = tmp_path_factory.mktemp("certs")
    config.write_text(
        f'[services.solo]\nurl = "{upstream.url}"\nlisten = "127.0.0.1:{solo_port}"\n'
    )
    args = [
        *PASSAGEWAY, "proxy", "--config", str(config), "--db", db_url,
        "--listen", f"127.0.0.1:{port}", "--forward-port", str(forward_port),
        "--route", f"up={upstream.url}",
        "--route", f"load={upstream.url}",
        "--route", f"down=http://127.0.0.1:{closed_port}",
        "--route", f"h2={h2_upstream.url}",
        "--route", f"stall={stalling_upstream.url}",
        "--route", f"reset={resetting_upstream.url}",
        "--upstream-ca", str(h2_upstream.ca_cert),
        "--upstream-timeout", "2",
        "--certs-dir", str(certs_dir),
        "--proxy-name", "test-proxy",
        # Two workers: every capture case (HTTP/2, WebSockets, SSE, timeouts, the forward proxy, a
        # service's own port) then runs through workers sharing the ports, each connection held by one.
        "--workers", "2",
    ]
    with start_process(args, port=port, name="passageway proxy", timeout=30) as process:
        for extra in (forward_port, solo_port):
            process.wait_for_port(extra)
        store = open_store(db_url, migrate=False)
        try:
            yield RunningProxy(process, store, f"http://127.0.0.1:{port}", port, forward_port, solo_port, certs_dir)
        finally:
            store.close()
