"""Fault rules through the real proxy (issue 17 §3), on SQLite and PostgreSQL: each effect
(status, delay, reset, stall) reaches the client as it says and is recorded as `is:fault`; a
rate holds statistically; an expiry ends a rule; a rule of another realm never applies; and
the smart client retries through injected 503s and resets, each attempt in the trace.

Rules are written to the store as the API and the CLI write them (storage.faults); the proxy
reads them off its loop within about a second, so each test waits for its rule to show.
Every test uses services of its own, so the module shares one proxy."""

from __future__ import annotations

import datetime as dt
import sys
from concurrent.futures import ThreadPoolExecutor
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from passageway import Client, RetryPolicy
from passageway.wire import FAULT_HEADER
from storage.faults import clear_rules, create_rule
from storage.pure.faults import check_rule
from storage.queries import get_exchange, list_exchanges
from storage.store import Store, open_store
from storage.traces import get_trace
from tests.support import ManagedProcess, free_port, start_process, wait_for

SERVICES = ("status", "rate", "delay", "reset", "stall", "expiry", "realm", "retry", "control")


@dataclass
class FaultyGateway:
    process: ManagedProcess
    store: Store
    gateway: str

    def rule(self, service: str, **fields) -> int:
        return create_rule(self.store, check_rule(service=service, **fields, now=dt.datetime.now(dt.UTC))).id

    def exchanges(self, service: str, query: str | None = None) -> list[dict]:
        return list_exchanges(self.store, limit=1000, service=service, q=query).data

    def loaded(self, http: httpx.Client, service: str) -> None:
        """Wait until the proxy holds the rules written so far: a last rule, written after them,
        answers 418 on a path of its own (any read that has it has them too)."""
        self.rule(service, status=418, path="/rules-loaded")
        wait_for(lambda: http.get(f"/{service}/rules-loaded").status_code == 418, timeout=15,
                 message=self.process.describe)  # fmt: skip

    def recorded(self, service: str, count: int, query: str | None = None) -> list[dict]:
        def enough() -> list[dict] | None:
            found = self.exchanges(service, query)
            return found if len(found) >= count else None

        return wait_for(enough, timeout=15, message=self.process.describe)


def faulty_gateway(db_url: str, upstream, tmp_path_factory, *, realm: str | None = None):  # type: ignore[no-untyped-def]
    port = free_port()
    args = [sys.executable, "-m", "cli", "proxy", "--db", db_url, "--listen", f"127.0.0.1:{port}",
            "--certs-dir", str(tmp_path_factory.mktemp("certs")), "--proxy-name", f"fault-test-{realm}",
            *[arg for name in SERVICES for arg in ("--route", f"{name}={upstream.url}")],
            *(["--realm", realm] if realm else [])]  # fmt: skip
    return start_process(args, port=port, name=f"passageway proxy ({realm or 'no realm'})", timeout=30), port


@pytest.fixture(scope="module")
def gateway(db_url, upstream, tmp_path_factory) -> Iterator[FaultyGateway]:
    starting, port = faulty_gateway(db_url, upstream, tmp_path_factory)
    with starting as process:
        store = open_store(db_url, migrate=False)
        try:
            yield FaultyGateway(process, store, f"http://127.0.0.1:{port}")
        finally:
            clear_rules(store)
            store.close()


@pytest.fixture
def http(gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.gateway, timeout=10) as client:
        yield client


def test_a_503_rule_answers_503_and_the_exchange_is_a_fault(gateway, http):
    rule = gateway.rule("status", status=503, path="/json")
    gateway.loaded(http, "status")
    answer = http.get("/status/json")
    assert answer.status_code == 503 and answer.headers[FAULT_HEADER] == f"#{rule} status 503"
    assert answer.json()["error"] == "injected_fault" and answer.json()["rule"] == rule
    assert http.get("/control/json").status_code == 200  # another service of the same proxy: untouched
    faulted = gateway.recorded("status", 1, "is:fault path:/json")[0]
    assert (faulted["status"], faulted["fault"]) == (503, f"#{rule} status 503")
    assert get_exchange(gateway.store, exchange_id=faulted["id"])["fault"] == f"#{rule} status 503"
    assert gateway.recorded("control", 1, "-is:fault path:/json")
    assert gateway.exchanges("control", "is:fault path:/json") == []


def test_a_rate_of_20_percent_holds_over_1000_requests(gateway, http):
    """Binomial(1000, 0.2): mean 200, sigma 12.6; the bound is 5 sigma (137..263), which a fair
    coin leaves about once in 1.7 million runs."""
    rule = gateway.rule("rate", status=503, rate_percent=20, path="/json")
    gateway.loaded(http, "rate")
    # Ten at a time: the test upstream takes ~40 ms an answer (delayed ACKs), the proxy far less.
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda _: http.get("/rate/json").status_code, range(1000)))
    injected = statuses.count(503)
    assert statuses.count(200) + injected == 1000
    assert abs(injected - 200) <= 5 * (1000 * 0.2 * 0.8) ** 0.5, injected
    recorded = gateway.recorded("rate", injected, "is:fault path:/json")
    assert len(recorded) == injected and {e["fault"] for e in recorded} == {f"#{rule} status 503"}
    assert len(gateway.recorded("rate", 1000, "path:/json")) == 1000


def test_a_delay_adds_at_least_the_delay(gateway, http):
    rule = gateway.rule("delay", delay_ms=400, path="/json")
    ranged = gateway.rule("delay", delay_ms=100, delay_max_ms=300, path="/status/200")
    gateway.loaded(http, "delay")
    started = time.perf_counter()
    assert http.get("/delay/json").status_code == 200
    assert time.perf_counter() - started >= 0.4
    started = time.perf_counter()
    assert http.get("/delay/status/200").status_code == 200
    assert time.perf_counter() - started >= 0.1
    recorded = {e["path"]: e for e in gateway.recorded("delay", 3, "is:fault")}
    assert recorded["/json"]["fault"] == f"#{rule} delay 400 ms" and recorded["/json"]["duration_ms"] >= 400
    mark = recorded["/status/200"]["fault"]  # "#N delay 173 ms": drawn from the range
    assert mark.startswith(f"#{ranged} delay ") and mark.endswith(" ms") and 100 <= int(mark.split()[2]) <= 300


def test_a_reset_gives_the_client_a_connection_error(gateway, http):
    rule = gateway.rule("reset", reset=True, path="/json")
    gateway.loaded(http, "reset")
    with pytest.raises(httpx.TransportError):
        http.get("/reset/json")
    recorded = gateway.recorded("reset", 1, "is:fault path:/json")[0]
    assert recorded["fault"] == f"#{rule} reset" and recorded["status"] is None
    assert recorded["error"]["kind"] == "killed" and f"fault rule #{rule}" in recorded["error"]["message"]


def test_a_stall_sends_the_headers_then_stops_the_body(gateway, http):
    rule = gateway.rule("stall", stall=True, path="/json", lasts=dt.timedelta(seconds=4))
    gateway.loaded(http, "stall")
    with httpx.Client(base_url=gateway.gateway, timeout=httpx.Timeout(10, read=1.0)) as client:
        with client.stream("GET", "/stall/json") as answer:
            assert answer.status_code == 200  # the head came through
            with pytest.raises(httpx.ReadTimeout):
                answer.read()
    # The proxy closes the connection when the stall ends (here: with the rule, within 4 s).
    recorded = gateway.recorded("stall", 1, "is:fault path:/json")[0]
    assert recorded["fault"] == f"#{rule} stall" and recorded["error"]["kind"] == "killed"


def test_an_expired_rule_stops_applying(gateway, http):
    gateway.rule("expiry", status=503, path="/json", lasts=dt.timedelta(seconds=3))
    gateway.loaded(http, "expiry")
    assert http.get("/expiry/json").status_code == 503
    wait_for(lambda: http.get("/expiry/json").status_code == 200, timeout=10, interval=0.1)
    assert http.get("/expiry/json").status_code == 200


def test_a_rule_applies_in_its_realm_only(gateway, http, db_url, upstream, tmp_path_factory):
    """The same service behind two proxies sharing the store, one of realm staging: the staging
    rule answers 503 there, and never on the proxy without a realm."""
    rule = gateway.rule("realm", status=503, realm="staging", path="/json")
    gateway.loaded(http, "realm")
    assert {http.get("/realm/json").status_code for _ in range(20)} == {200}
    starting, port = faulty_gateway(db_url, upstream, tmp_path_factory, realm="staging")
    with starting as process, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as staging:
        answer = wait_for(lambda: (r := staging.get("/realm/json")).status_code == 503 and r, timeout=15,
                          message=process.describe)  # fmt: skip
        assert answer.headers[FAULT_HEADER] == f"#{rule} status 503"
    assert http.get("/realm/json").status_code == 200


def test_the_smart_client_retries_through_injected_503s_and_resets(gateway, http):
    """The first attempt of each call fails (a rule matching X-Passageway-Attempt: 1); the retry
    passes, and the trace holds both attempts, the first marked as the fault."""
    status_rule = gateway.rule("retry", status=503, path="/json", header="X-Passageway-Attempt=1")
    reset_rule = gateway.rule("retry", reset=True, path="/status/200", header="X-Passageway-Attempt=1")
    gateway.loaded(http, "retry")
    fast = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05)
    with Client(gateway=gateway.gateway, service="orders", retry=fast, timeout=10) as client:
        for path, rule, effect in (("/json", status_rule, "status 503"), ("/status/200", reset_rule, "reset")):
            answer = client.get(f"service://retry{path}")
            assert answer.status_code == 200
            trace_id = answer.request.headers["traceparent"].split("-")[1]

            def both_attempts() -> dict | None:
                trace = get_trace(gateway.store, trace_id=trace_id)
                return trace if trace and trace["exchange_count"] == 2 else None

            nodes = sorted(wait_for(both_attempts, timeout=10)["nodes"], key=lambda node: node["attempt"])
            assert [(n["attempt"], n["retry"], n["fault"]) for n in nodes] == [
                (1, False, f"#{rule} {effect}"), (2, True, None)]
