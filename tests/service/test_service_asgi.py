"""SmartService in-process (httpx.ASGITransport, no network): its endpoints, route templates,
readiness rules, checks, lifespan wrapping and configuration errors."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Host, Mount, Route

from passageway import ServiceConfigError, SmartService, TraceContextMiddleware, current_trace
from passageway.metrics import parse_exposition
from passageway.service import CheckResult, dependency_state, readiness, route_template, run_check

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def run_async(test):
    """Run an async test in its own event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


async def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return await client.request(method, path, **kwargs)


def counts(service: SmartService) -> dict[tuple[str, str, str], float]:
    samples = parse_exposition(service.metrics.render())
    return {(l["method"], l["route"], l["status"]): v for n, l, v in samples if n == "http_server_requests_total"}


def ok(request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def test_route_templates_follow_starlette_routing_through_mounts_and_hosts() -> None:
    inner = Starlette(routes=[Route("/items/{item_id:int}", ok)])
    routes = [
        Route("/orders/{order_id}", ok, methods=["GET"]),
        Mount("/api/{tenant}", routes=[Mount("/v1", app=inner)]),
        Mount("/static", app=ok),
        Host("admin.example", app=Starlette(routes=[Route("/panel", ok)])),
    ]

    def scope(path: str, method: str = "GET", host: str = "service") -> dict:
        return {"type": "http", "path": path, "method": method, "root_path": "", "headers": [(b"host", host.encode())]}

    assert route_template(routes, scope("/orders/17")) == "/orders/{order_id}"
    assert route_template(routes, scope("/orders/17", "POST")) == "/orders/{order_id}"  # a 405 keeps its route
    assert route_template(routes, scope("/api/acme/v1/items/3")) == "/api/{tenant}/v1/items/{item_id}"
    assert route_template(routes, scope("/api/acme/v1/items/x")) is None  # the int converter refuses it
    assert route_template(routes, scope("/static/css/site.css")) == "/static/{path}"
    assert route_template(routes, scope("/panel", host="admin.example")) == "/panel"
    assert route_template(routes, scope("/nowhere")) is None


@run_async
async def test_own_endpoints_are_served_not_counted_and_paths_are_configurable() -> None:
    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict:
        return {"id": order_id}

    service = SmartService(app, name="orders", health_path="/live", ready_path="/ready", metrics_path="/prom")
    assert (await call(service, "GET", "/live")).json()["status"] == "pass"
    ready = await call(service, "GET", "/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "pass"
    assert (await call(service, "GET", "/healthz")).status_code == 404  # the default path is the app's again
    await call(service, "GET", "/orders/1")
    await call(service, "BREW", "/orders/2")
    head = await call(service, "HEAD", "/prom")
    assert head.status_code == 200 and head.content == b""
    refused = await call(service, "POST", "/live")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    metrics = await call(service, "GET", "/prom")
    assert metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert counts(service) == {
        ("GET", "/orders/{order_id}", "200"): 1,
        ("_OTHER", "/orders/{order_id}", "405"): 1,  # an invented method is one series, not one per name
        ("GET", "<unmatched>", "404"): 1,
    }


@run_async
async def test_a_mounted_route_is_counted_under_its_whole_template() -> None:
    api = Starlette(routes=[Route("/items/{item_id:int}", ok)])
    service = SmartService(Starlette(routes=[Mount("/api/{tenant}", app=api), Route("/items/{name}", ok)]), name="s")
    for path in ("/api/acme/items/1", "/api/other/items/2", "/items/x"):
        assert (await call(service, "GET", path)).status_code == 200
    assert counts(service) == {("GET", "/api/{tenant}/items/{item_id}", "200"): 2, ("GET", "/items/{name}", "200"): 1}


@run_async
async def test_an_app_that_raises_counts_as_a_500_error() -> None:
    async def boom(request):
        raise RuntimeError("down")

    service = SmartService(Starlette(routes=[Route("/boom", boom)]), name="s")
    assert (await call(service, "GET", "/boom")).status_code == 500
    samples = parse_exposition(service.metrics.render())
    assert ("GET", "/boom", "500") in counts(service)
    assert [v for n, l, v in samples if n == "http_server_request_errors_total"] == [1]
    assert [v for n, _, v in samples if n == "http_server_requests_in_flight"] == [0]


@run_async
async def test_requests_run_in_their_callers_trace_once() -> None:
    seen = []

    async def where(request):
        seen.append(current_trace())
        return JSONResponse({})

    plain = SmartService(Starlette(routes=[Route("/", where)]), name="s")
    traced = SmartService(Starlette(routes=[Route("/", where)], middleware=[Middleware(TraceContextMiddleware)]), name="s")
    for service in (plain, traced):
        await call(service, "GET", "/", headers={"traceparent": TRACEPARENT})
    assert [trace.trace_id for trace in seen] == ["4bf92f3577b34da6a3ce929d0e0e4736"] * 2
    assert not isinstance(traced.app, TraceContextMiddleware)  # the app's own middleware is not doubled


@run_async
async def test_checks_sync_async_failing_and_slow() -> None:
    async def fine() -> None:
        await asyncio.sleep(0)

    def broken() -> None:
        raise ConnectionError("db at 127.0.0.1:5432 refused")

    async def stuck() -> None:
        await asyncio.sleep(10)

    assert (await run_check(fine, 1)).state == "pass"
    assert (await run_check(lambda: True, 1)).state == "pass"
    assert (await run_check(lambda: False, 1)).error == "returned False"
    assert (await run_check(broken, 1)).error == "ConnectionError: db at 127.0.0.1:5432 refused"
    started = time.monotonic()
    slow = await run_check(stuck, 0.05)
    assert slow.state == "fail" and slow.error == "timed out after 0.05 s" and time.monotonic() - started < 1
    assert slow.latency_ms >= 50

    service = SmartService(Starlette(), name="s", checks={"db": broken, "cache": fine})
    answer = await call(service, "GET", "/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"]["db"]["state"] == "fail"
    assert answer.json()["checks"]["cache"]["state"] == "pass"
    assert isinstance(answer.json()["checks"]["cache"]["latency_ms"], float)


def test_dependency_states_from_the_registry_and_the_configured_services() -> None:
    def instance(name: str, state: str = "up", ready: bool | None = None) -> dict:
        return {"name": name, "state": state, "ready": ready}

    assert dependency_state("billing", None, None)["state"] == "unknown"
    assert dependency_state("billing", [instance("billing")], None)["state"] == "up"
    assert dependency_state("billing", [instance("billing", "gone"), instance("billing")], None)["up"] == 1
    assert dependency_state("billing", [instance("billing", ready=False)], None)["state"] == "down"
    assert dependency_state("billing", [instance("billing", "deregistered")], None)["state"] == "down"
    assert dependency_state("billing", [instance("other")], None)["state"] == "unknown"  # services not asked yet
    configured = [{"name": "billing", "registered": True, "health": {"state": "down"}}]
    assert dependency_state("billing", [], configured) == {"state": "down", "source": "services", "health": "down"}
    unprobed = [{"name": "billing", "registered": True, "health": {"state": "unknown"}}]
    assert dependency_state("billing", [], unprobed)["state"] == "unknown"
    traffic_only = [{"name": "billing", "registered": False, "health": None}]
    assert dependency_state("billing", [], traffic_only)["state"] == "absent"


def test_readiness_fails_on_a_failed_check_or_a_missing_dependency_and_warns_when_unknown() -> None:
    passing = {"db": CheckResult("pass", 1.0)}
    assert readiness(passing, {"a": {"state": "up"}}) == "pass"
    assert readiness(passing, {"a": {"state": "up"}, "b": {"state": "unknown"}}) == "warn"
    assert readiness(passing, {"a": {"state": "absent"}, "b": {"state": "unknown"}}) == "fail"
    assert readiness(passing, {"a": {"state": "down"}}) == "fail"
    assert readiness({"db": CheckResult("fail", 1.0, "x")}, {}) == "fail"
    assert readiness({}, {}) == "pass"


async def lifespan_events(app) -> list[str]:
    """Drive `app`'s lifespan as a server would; the messages it sent."""
    incoming: asyncio.Queue = asyncio.Queue()
    sent: list[str] = []

    async def send(message) -> None:
        sent.append(message["type"])

    for event in ("lifespan.startup", "lifespan.shutdown"):
        incoming.put_nowait({"type": event})
    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, incoming.get, send)
    return sent


@run_async
async def test_the_apps_own_lifespan_still_runs(monkeypatch) -> None:
    monkeypatch.delenv("PASSAGEWAY_INSPECTOR_URL", raising=False)
    events = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        events.append("app started")
        yield
        events.append("app stopped")

    service = SmartService(Starlette(lifespan=lifespan), name="s")
    assert await lifespan_events(service) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["app started", "app stopped"]

    async def no_lifespan(scope, receive, send):
        assert scope["type"] == "http", "this app knows nothing of lifespan"

    assert await lifespan_events(SmartService(no_lifespan, name="s")) == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


@run_async
async def test_a_bad_environment_fails_startup_before_the_app_starts(monkeypatch) -> None:
    started = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        started.append(True)
        yield

    monkeypatch.setenv("PASSAGEWAY_INSPECTOR_URL", "ftp://inspector")
    assert await lifespan_events(SmartService(Starlette(lifespan=lifespan), name="s")) == ["lifespan.startup.failed"]
    monkeypatch.setenv("PASSAGEWAY_INSPECTOR_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("PASSAGEWAY_TOKEN", "two\nlines")
    assert await lifespan_events(SmartService(Starlette(lifespan=lifespan), name="s", url="http://s")) == [
        "lifespan.startup.failed"
    ]
    assert not started


@pytest.mark.parametrize(
    "options, problem",
    [
        ({"name": "no spaces"}, "service name"),
        ({"name": "s", "depends_on": ["ok", "not/ok"]}, "dependency 'not/ok'"),
        ({"name": "s", "interval": 0.1}, "interval"),
        ({"name": "s", "health_path": "healthz"}, "health_path"),
        ({"name": "s", "ready_path": "/metrics"}, "must differ"),
        ({"name": "s", "checks": {"db": "not callable"}}, "check 'db'"),
        ({"name": "s", "check_timeout": 0}, "check_timeout"),
    ],
)
def test_bad_arguments_are_refused_naming_the_problem(options, problem) -> None:
    with pytest.raises(ServiceConfigError, match=problem):
        SmartService(Starlette(), **options)
