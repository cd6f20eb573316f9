"""/api/test-runs and the refusals of POST /api/tests/run, on real SQLite and PostgreSQL stores
(tests/integration/test_api_tests.py runs tests through a real proxy)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from inspector_ui.routers.tests import url_guard
from inspector_ui.settings import InspectorSettings
from radar.transport import TransportError
from storage.sink import write_records
from storage.test_runs import save_run
from tests.support.records import make_record

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPANS = ["a1a1a1a1a1a1a1a1", "b2b2b2b2b2b2b2b2", "c3c3c3c3c3c3c3c3"]


@pytest.fixture
def api(make_client, any_store):
    return make_client(app_store=any_store)


def step(index: int, span: str | None) -> dict:
    return {
        "index": index, "line": 1 + 3 * index, "method": "GET", "url": f"service://users/{index}", "status": 200,
        "duration_ms": 3.5, "attempts": 1, "span_id": span, "exchange_id": None, "error": None, "captures": {},
        "asserts": [{"line": 2, "column": 1, "text": "HTTP 200", "passed": True, "expected": "200", "actual": "200",
                     "message": None}],
    }  # fmt: skip


def a_run(test: str = "checkout", *, source: str = "api", monitor: str | None = None, steps=(), passed=True) -> dict:
    return {
        "id": None, "uuid": str(uuid.uuid4()), "test": test, "file": f"{test}.hurl", "realm": None, "source": source,
        "monitor": monitor, "started_at": dt.datetime.now(dt.UTC).isoformat(), "duration_ms": 7.0, "passed": passed,
        "error": None, "trace_id": TRACE, "steps": list(steps),
    }  # fmt: skip


def test_a_runs_steps_are_linked_to_their_exchanges_once_captured(api, any_store):
    run_id = save_run(any_store, a_run(steps=[step(0, SPANS[0]), step(1, SPANS[1]), step(2, None)]))
    before = api.get(f"/api/test-runs/{run_id}").json()
    assert [s["exchange_id"] for s in before["steps"]] == [None, None, None] and before["id"] == run_id
    # The proxy gives each exchange a span of its own, child of the step's (tracing on), or keeps the step's.
    write_records(any_store, [
        make_record(trace_id=TRACE, span_id="d4d4d4d4d4d4d4d4", parent_span_id=SPANS[0]),
        make_record(trace_id=TRACE, span_id=SPANS[1]),
        make_record(trace_id="f" * 32, parent_span_id=SPANS[1]),  # another trace's
    ])  # fmt: skip
    after = api.get(f"/api/test-runs/{run_id}").json()
    assert [s["exchange_id"] for s in after["steps"]] == [1, 2, None]
    assert after["steps"][0]["asserts"][0]["text"] == "HTTP 200" and after["trace_id"] == TRACE


def test_an_unknown_run_is_a_404(api):
    answer = api.get("/api/test-runs/999")
    assert answer.status_code == 404 and answer.json() == {"detail": "no test run 999"}
    assert api.get("/api/test-runs/0").status_code == 422


def test_runs_are_listed_newest_first_by_test_or_monitor_and_paged(api, any_store):
    ids = [save_run(any_store, a_run("checkout")), save_run(any_store, a_run("login", passed=False)),
           save_run(any_store, a_run("checkout", source="monitor", monitor="shop")),
           save_run(any_store, a_run("checkout"))]  # fmt: skip
    every = api.get("/api/test-runs").json()["runs"]
    assert [run["id"] for run in every] == list(reversed(ids))
    assert set(every[0]) == {"id", "test", "monitor", "realm", "source", "started_at", "duration_ms", "passed",
                             "failures", "error", "trace_id"}  # fmt: skip
    assert [r["id"] for r in api.get("/api/test-runs", params={"test": "login"}).json()["runs"]] == [ids[1]]
    assert [r["id"] for r in api.get("/api/test-runs", params={"monitor": "shop"}).json()["runs"]] == [ids[2]]
    page = api.get("/api/test-runs", params={"limit": 2, "before_id": ids[3]}).json()["runs"]
    assert [run["id"] for run in page] == [ids[2], ids[1]]
    assert api.get("/api/test-runs", params={"limit": 501}).status_code == 422


def test_a_test_that_does_not_parse_is_a_400_naming_file_line_and_column(api):
    answer = api.post("/api/tests/run", json={"hurl": "GET service://users/1\nHTTP 200\n[Bogus]\n", "name": "shop"})
    assert answer.status_code == 400 and answer.json() == {"detail": "shop.hurl:3:1: unknown section [Bogus]"}
    default = api.post("/api/tests/run", json={"hurl": "GOT\n"})
    assert default.status_code == 400 and default.json()["detail"].startswith("api.hurl:1:1: ")
    assert api.get("/api/test-runs").json() == {"runs": []}  # nothing ran, nothing kept


def test_tests_need_the_proxys_address(api):
    answer = api.post("/api/tests/run", json={"hurl": "GET service://users/1\n"})
    assert answer.status_code == 503
    assert answer.json() == {"detail": "tests cannot run: the inspector does not know the proxy's address (set replay_via)"}


@pytest.mark.parametrize(
    "body",
    [{"hurl": ""}, {"hurl": "GET service://a/b\n", "name": "a b"}, {"hurl": "GET service://a/b\n", "name": "x\r\ny"},
     {"hurl": "GET service://a/b\n", "variables": {"x": [1]}}, {"hurl": "GET service://a/b\n", "extra": 1}],
)  # fmt: skip
def test_a_bad_request_body_is_refused(api, body):
    answer = api.post("/api/tests/run", json=body)
    assert answer.status_code == 422 and "\n" not in answer.json()["message"]


def guard(**settings):
    return url_guard(InspectorSettings(db_url="sqlite://", **settings), [("127.0.0.1", 8081)])


def test_the_guard_refuses_loopback_that_is_no_service_even_with_allow_any():
    for allow_any in (False, True):
        with pytest.raises(TransportError) as refused:
            guard(allow_any_replay_target=allow_any)("http://127.0.0.1:9/x")
        assert refused.value.kind == "refused" and "127.0.0.1" in refused.value.message


def test_the_guard_refuses_a_url_the_sender_would_read_otherwise():
    check = guard(replay_services={"svc": "http://127.0.0.1:9"})
    check("http://127.0.0.1:9/ok")  # the service itself
    with pytest.raises(TransportError) as refused:
        check("http://127.1:9/x")  # 127.0.0.1 to the guard (as libc reads it), "127.1" to httpx
    assert refused.value.kind == "refused" and "not read the same way" in refused.value.message
    with pytest.raises(TransportError, match="the inspector itself"):
        guard(replay_services={"me": "http://127.0.0.1:8081"})("http://127.0.0.1:8081/api/exchanges")
