"""proxy.faults.Faults driven directly (mitmproxy's taddons and tflow), on a real SQLite store:
it reads only its realm's rules, keeps them while the database is away (each still ends at its
own expiry), touches only requests the Router gave a service and the proxy has not answered,
and marks what it did."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from mitmproxy.test import taddons, tflow

from passageway.wire import FAULT_HEADER
from proxy.faults import Faults
from proxy.flow_record import META_ERROR_KIND, META_FAULT, META_SERVICE, flow_to_record
from storage.errors import Unavailable
from storage.faults import create_rule
from storage.pure.faults import check_rule
from storage.store import open_store
from tests.support.stores import migrated_sqlite_url

@pytest.fixture
def store(tmp_path):  # type: ignore[no-untyped-def]
    s = open_store(migrated_sqlite_url(tmp_path / "faults.db"))
    yield s
    s.close()


def flow_for(service: str | None, path: str = "/json"):  # type: ignore[no-untyped-def]
    flow = tflow.tflow()
    flow.request.path = path
    if service is not None:
        flow.metadata[META_SERVICE] = service
    return flow


def rule(store, service: str = "billing", **fields) -> int:  # type: ignore[no-untyped-def]
    return create_rule(store, check_rule(service=service, **{"status": 503, **fields}, now=dt.datetime.now(dt.UTC))).id  # now: the store reads them against the clock


def test_a_proxy_reads_only_its_realms_rules(store) -> None:  # type: ignore[no-untyped-def]
    ours = rule(store, realm="staging")
    rule(store, realm="prod", status=500)
    rule(store, status=418)  # no realm
    faults = Faults(store, realm="staging")
    faults.reload()
    assert [r.id for r in faults.rules["billing"]] == [ours]
    flow = flow_for("billing")
    with taddons.context(faults):
        assert faults.requestheaders(flow) is None
    assert flow.response.status_code == 503 and flow.response.headers[FAULT_HEADER] == f"#{ours} status 503"
    assert flow_to_record(flow, proxy="p", body_cap=100).fault == f"#{ours} status 503"


def test_rules_survive_the_database_going_away_until_their_own_expiry(store) -> None:  # type: ignore[no-untyped-def]
    rule(store, lasts=dt.timedelta(seconds=30))
    clock = [dt.datetime.now(dt.UTC).timestamp()]
    faults = Faults(store, realm=None, clock=lambda: clock[0])
    faults.reload()

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise Unavailable("connection refused")

    faults.store = type("Away", (), {"connect": broken, "begin": broken, "dialect": "sqlite"})()
    with pytest.raises(Unavailable):
        faults.reload()
    assert faults.rules  # the last rules stay
    with taddons.context(faults):
        touched = flow_for("billing")
        faults.requestheaders(touched)
        assert touched.response is not None and touched.response.status_code == 503
        clock[0] += 31  # past the rule's own expiry: it no longer applies, database or not
        untouched = flow_for("billing")
        faults.requestheaders(untouched)
        assert untouched.response is None and META_FAULT not in untouched.metadata


def test_only_routed_unanswered_requests_are_touched(store) -> None:  # type: ignore[no-untyped-def]
    rule(store)
    faults = Faults(store, realm=None)
    faults.reload()
    with taddons.context(faults):
        unrouted = flow_for(None)  # no service: a request the Router did not route
        faults.requestheaders(unrouted)
        other = flow_for("orders")
        faults.requestheaders(other)
        answered = flow_for("billing")
        answered.response = tflow.tresp()  # e.g. no_route or the inspector guard's refusal
        answered.response.status_code = 403
        faults.requestheaders(answered)
    assert unrouted.response is None and other.response is None and answered.response.status_code == 403
    assert not any(META_FAULT in f.metadata for f in (unrouted, other, answered))


def test_delay_then_reset(store) -> None:  # type: ignore[no-untyped-def]
    rule_id = rule(store, status=None, reset=True, delay_ms=50)
    faults = Faults(store, realm=None)
    faults.reload()
    flow = flow_for("billing")

    async def run() -> float:
        with taddons.context(faults):
            loop = asyncio.get_running_loop()
            started = loop.time()
            waiting = faults.requestheaders(flow)
            assert waiting is not None and flow.error is None  # mitmproxy awaits it: only this flow waits
            await waiting
            return loop.time() - started

    assert asyncio.run(run()) >= 0.05
    assert flow.error is not None and flow.metadata[META_ERROR_KIND] == "killed"
    record = flow_to_record(flow, proxy="p", body_cap=100)
    assert record.fault == f"#{rule_id} delay 50 ms, reset" and record.error_kind == "killed"
    assert f"fault rule #{rule_id}" in record.error_message
