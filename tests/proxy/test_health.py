"""proxy.health.HealthProbes against real upstreams on 127.0.0.1 and a real SQLite store."""

from __future__ import annotations

import datetime as dt
import logging
import random
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from proxy.health import (
    FIRST_PROBE_SPREAD,
    HealthProbes,
    failure_reason,
    first_delay,
    probe_url,
    registration,
    status_is_up,
    tls_verify,
)
from proxy.routing import HealthCheck, Service, parse_upstream
from storage.services import health_history, service_overview
from storage.store import Store, open_store
from tests.support import free_port, running_upstream, wait_for

FAST = 0.2  # probe interval in these tests


def service(name: str, url: str, path: str = "/status/200", *, timeout: float = 1.0, listen=None) -> Service:  # type: ignore[no-untyped-def]
    """Generous timeouts (longer than FAST: a probe then just starts the next one late), so a busy
    machine cannot fail a probe that should succeed."""
    return Service(name, parse_upstream(url), listen, HealthCheck(path, FAST, timeout))


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    s = open_store(f"sqlite:///{tmp_path}/health.db", busy_timeout=0.05)
    yield s
    s.close()


@pytest.fixture
def start_probes(store: Store) -> Iterator:  # type: ignore[type-arg]
    started: list[HealthProbes] = []

    def start(*services: Service, **knobs) -> HealthProbes:  # type: ignore[no-untyped-def]
        probes = HealthProbes(store, proxy_name="p1", realm="dev", services={s.name: s for s in services},
                              flush_interval=0.05, **knobs)  # fmt: skip
        probes.running()
        started.append(probes)
        return probes

    yield start
    for probes in started:
        probes.done()


class Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet
        pass


def test_pure_helpers() -> None:
    api = Service("api", parse_upstream("http://127.0.0.1:9001/base"), ("127.0.0.1", 9100), HealthCheck("/healthz?deep=1"))
    assert probe_url(api) == "http://127.0.0.1:9001/base/healthz?deep=1"
    assert registration(api) == {"service": "api", "upstream": "http://127.0.0.1:9001/base", "health_path": "/healthz?deep=1",
                                 "health_interval": 10.0, "listen": "127.0.0.1:9100"}  # fmt: skip
    plain = Service("plain", parse_upstream("http://[::1]:80"), ("::1", 9), None)
    assert registration(plain)["health_path"] is None and registration(plain)["listen"] == "[::1]:9"
    assert [status_is_up(s) for s in (199, 200, 302, 399, 400, 500)] == [False, True, True, True, False, False]
    assert failure_reason(TimeoutError(), timeout=0.5) == "timed out after 0.5 s"
    assert failure_reason(httpx.ConnectError("All connection attempts failed"), timeout=1).startswith("cannot connect: ")
    assert tls_verify(None, True) is False and tls_verify(None, False) is True


def test_up_500_refused_and_hanging(store: Store, start_probes, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="proxy.health")
    with running_upstream() as upstream:
        probes = start_probes(
            service("ok", upstream.url),
            service("broken", upstream.url, "/status/500"),
            service("refused", f"http://127.0.0.1:{free_port()}"),
            service("hangs", upstream.url, "/slow?seconds=5", timeout=0.15),
            Service("unprobed", parse_upstream(upstream.url)),
        )
        wait_for(lambda: all(len(health_history(store, service=name, since=dt.datetime.min.replace(tzinfo=dt.UTC))) >= 2
                             for name in ("ok", "broken", "refused", "hangs")), timeout=5)  # fmt: skip
        probes.done()
        assert probes.states == {"ok": True, "broken": False, "refused": False, "hangs": False}
    rows = {row["name"]: row for row in service_overview(store, realm="dev")}
    assert set(rows) == {"ok", "broken", "refused", "hangs", "unprobed"}
    assert rows["unprobed"]["health"]["state"] == "unknown"
    assert rows["ok"]["health"]["state"] == "up" and rows["ok"]["health"]["status"] == 200
    assert 0 < rows["ok"]["health"]["latency_ms"] < 1000
    assert rows["broken"]["health"]["error"] == "HTTP 500"
    assert rows["refused"]["health"]["error"] == "cannot connect: connection refused"
    assert rows["hangs"]["health"]["error"] == "timed out after 0.15 s"
    assert probes.failures >= 6 and probes.probes >= 8 and probes.dropped == 0
    # One warning per service going down, not one per failed probe.
    downs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sorted(m.split(" is down")[0] for m in downs) == ["service broken", "service hangs", "service refused"]


def test_down_then_up_when_the_server_starts(store: Store, start_probes, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="proxy.health")
    port = free_port()
    probes = start_probes(service("late", f"http://127.0.0.1:{port}", "/healthz"))
    wait_for(lambda: probes.states.get("late") is False, timeout=3)
    server = ThreadingHTTPServer(("127.0.0.1", port), Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        wait_for(lambda: probes.states.get("late") is True, timeout=3)
        wait_for(lambda: service_overview(store)[0]["health"]["state"] == "up", timeout=3)
    finally:
        server.shutdown()
        server.server_close()
    [row] = service_overview(store)
    assert row["health"]["status"] == 204
    assert row["health"]["since"] > row["history"][0]["t"]  # began after the failures
    assert "service late is back up" in [r.getMessage() for r in caplog.records]


def test_tls_follows_the_upstream_settings(store: Store, start_probes) -> None:  # type: ignore[no-untyped-def]
    with running_upstream(tls=True) as upstream:
        url = upstream.url
        trusted = start_probes(service("trusted", url), upstream_ca=upstream.ca_cert)
        untrusted = HealthProbes(store, proxy_name="p2", realm="dev", services={"untrusted": service("untrusted", url)},
                                 flush_interval=0.05)  # fmt: skip
        insecure = HealthProbes(store, proxy_name="p3", realm="dev", services={"insecure": service("insecure", url)},
                                upstream_insecure=True, flush_interval=0.05)  # fmt: skip
        for probes in (untrusted, insecure):
            probes.running()
        try:
            wait_for(lambda: len(trusted.states) + len(untrusted.states) + len(insecure.states) == 3, timeout=3)
        finally:
            # All stopped before the upstream is: a probe after it would find it gone.
            for probes in (trusted, untrusted, insecure):
                probes.done()
    assert trusted.states == {"trusted": True} and insecure.states == {"insecure": True}
    assert untrusted.states == {"untrusted": False}
    [sample] = health_history(store, service="untrusted", since=dt.datetime.min.replace(tzinfo=dt.UTC))[:1]
    assert sample["error"].startswith("TLS error") and "\n" not in sample["error"]


def test_database_outage_drops_bounded_samples_and_never_raises(store: Store, tmp_path, start_probes, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="proxy.health")
    with running_upstream() as upstream:
        probes = start_probes(service("a", upstream.url), service("b", upstream.url), max_pending=3)
        wait_for(probes.registered.is_set, timeout=3)
        lock = sqlite3.connect(tmp_path / "health.db", isolation_level=None, check_same_thread=False)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            wait_for(lambda: probes.dropped >= 5, timeout=5)
            assert probes.database_errors >= 1
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        written_before = probes.written
        wait_for(lambda: probes.written > written_before, timeout=3)
        probes.done()
        probes.done()  # safe twice
    messages = [r.getMessage() for r in caplog.records]
    assert sum("being dropped" in m for m in messages) == 1
    # the outage is logged once, by whichever write met it first (a sample, or the pruning)
    assert sum(m.startswith(("cannot write health samples", "cannot prune health samples")) for m in messages) == 1
    assert any(m.startswith("database reachable again") for m in messages)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert probes.probes >= probes.written + probes.dropped - 3


def test_a_database_that_is_away_at_start_registers_later(store: Store, tmp_path, start_probes) -> None:  # type: ignore[no-untyped-def]
    lock = sqlite3.connect(tmp_path / "health.db", isolation_level=None, check_same_thread=False)
    lock.execute("BEGIN EXCLUSIVE")
    probes = start_probes(Service("quiet", parse_upstream("http://127.0.0.1:9")))
    try:
        wait_for(lambda: probes.database_errors >= 1, timeout=3)
        assert not probes.registered.is_set()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    wait_for(probes.registered.is_set, timeout=3)
    assert [row["name"] for row in service_overview(store, realm="dev")] == ["quiet"]


def test_first_probes_come_soon_after_start_and_spread() -> None:
    rng = random.Random(3)
    delays = [first_delay(60.0, rng) for _ in range(200)]
    assert all(0 <= d <= FIRST_PROBE_SPREAD for d in delays) and max(delays) - min(delays) > 1
    assert all(first_delay(0.3, rng) <= 0.3 for _ in range(50))
