"""The demo upstreams for `make run`: a users API with a few realistic behaviours, and a small
shop that depends on it. Both are smart services (passageway.SmartService): they register
themselves with the inspector (PASSAGEWAY_INSPECTOR_URL, set by `passageway up --demo`), answer
/healthz, /readyz and /metrics, and the shop declares `depends_on=["demo"]`.

`/checkout/{user_id}` calls the demo service itself back through the gateway with the smart
client (the user, then a flaky stock check that is retried), so one curl makes a trace of
several exchanges to look at in the inspector. `POST /admin/outage` breaks the users API (503)
until `DELETE /admin/outage`, to watch a monitor fail and recover (and the shop turn unready:
the registry hears from demo that it is not ready). The shop's `/orders/{order_id}` reads the
order's customer from the demo through the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import random
import signal
from collections.abc import Iterator

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from passageway import AsyncClient, SmartService, TraceContextMiddleware
from proxy.routing import format_address, parse_listen

VERSION = "1.0.0"

# The gateway of `make run` (examples/demo.toml); PASSAGEWAY_URL overrides it.
client = AsyncClient(service="demo", timeout=10)
shop_client = AsyncClient(service="shop", timeout=10)


outage = False
created: dict[int, dict] = {}
"""Users made by POST /users, readable at /users/{id} (a create-then-read flow to make tests from)."""


def unavailable() -> Response:
    return JSONResponse({"error": "outage", "detail": "POST /admin/outage broke me"}, status_code=503)


async def set_outage(request: Request) -> Response:
    global outage
    outage = request.method == "POST"
    return JSONResponse({"outage": outage})


async def user(request: Request) -> Response:
    if outage:
        return unavailable()
    user_id = request.path_params["user_id"]
    if user_id in created:
        return JSONResponse(created[user_id])
    if user_id > 1000:
        return JSONResponse({"error": "not_found", "id": user_id}, status_code=404)
    return JSONResponse({"id": user_id, "name": f"User {user_id}", "email": f"user{user_id}@example.com", "roles": ["reader"]})


async def create_user(request: Request) -> Response:
    body = await request.body()
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return JSONResponse({"error": "invalid_json"}, status_code=400)
    if not isinstance(data, dict):
        return JSONResponse({"error": "expected a JSON object"}, status_code=400)
    user = {**data, "id": random.randint(1001, 9_999_999)}
    created[user["id"]] = user
    if len(created) > 10_000:  # a demo, not a database: the oldest go
        del created[next(iter(created))]
    return JSONResponse(user, status_code=201)


async def users(request: Request) -> Response:
    if outage:
        return unavailable()
    page = [{"id": i, "name": f"User {i}"} for i in range(1, 51)]
    body = gzip.compress(json.dumps({"data": page}).encode())
    return Response(body, media_type="application/json", headers={"Content-Encoding": "gzip"})


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("seconds", "1")))
    return JSONResponse({"slept": True})


async def flaky(request: Request) -> Response:
    if random.random() < 0.5:
        return JSONResponse({"error": "unavailable"}, status_code=503)
    return JSONResponse({"ok": True})


async def checkout(request: Request) -> Response:
    user_id = request.path_params["user_id"]
    user = await client.get(f"service://demo/users/{user_id}")
    stock = await client.get("service://demo/flaky")
    return JSONResponse({"user": user.json(), "stock": stock.json(), "statuses": [user.status_code, stock.status_code]})


async def ready() -> bool:
    """The users API's own readiness check: not ready while POST /admin/outage holds."""
    return not outage


async def events(request: Request) -> Response:
    async def stream():
        for i in range(5):
            yield f"id: {i}\nevent: tick\ndata: {json.dumps({'n': i})}\n\n"
            await asyncio.sleep(0.5)

    return StreamingResponse(stream(), media_type="text/event-stream")


app = Starlette(
    routes=[
        Route("/users", users),
        Route("/users", create_user, methods=["POST"]),
        Route("/users/{user_id:int}", user),
        Route("/slow", slow),
        Route("/flaky", flaky),
        Route("/events", events),
        Route("/checkout/{user_id:int}", checkout),
        Route("/admin/outage", set_outage, methods=["POST", "DELETE"]),
    ],
    middleware=[Middleware(TraceContextMiddleware)],
)


async def order(request: Request) -> Response:
    """An order and its customer, read from the demo service through the gateway."""
    order_id = request.path_params["order_id"]
    try:
        customer = await shop_client.get(f"service://demo/users/{order_id % 50 + 1}")
    except httpx.HTTPError as exc:
        return JSONResponse({"error": "gateway unreachable", "detail": str(exc)}, status_code=502)
    if customer.status_code != 200:
        return JSONResponse({"error": "customer unavailable", "status": customer.status_code}, status_code=502)
    return JSONResponse({"id": order_id, "customer": customer.json(), "total": round(order_id * 1.5, 2)})


shop = Starlette(routes=[Route("/orders/{order_id:int}", order)], middleware=[Middleware(TraceContextMiddleware)])


def smart_services(demo_listen: str, shop_listen: str) -> dict[tuple[str, int], SmartService]:
    """Both apps as smart services, by the address each listens on (and registers)."""
    demo_address, shop_address = parse_listen(demo_listen), parse_listen(shop_listen)
    return {
        demo_address: SmartService(app, name="demo", version=VERSION, checks={"users": ready},
                                   url=f"http://{format_address(*demo_address)}"),
        shop_address: SmartService(shop, name="shop", version=VERSION, depends_on=["demo"],
                                   url=f"http://{format_address(*shop_address)}"),
    }  # fmt: skip


class _SiblingServer(uvicorn.Server):
    """One of several servers in one process: serve() stops them all on SIGINT/SIGTERM, so each
    server leaves its own signal handlers alone (they would replace each other's)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(listen: str, shop_listen: str) -> None:
    servers = [
        _SiblingServer(uvicorn.Config(service, host=host, port=port, log_level="warning"))
        for (host, port), service in smart_services(listen, shop_listen).items()
    ]

    def stop(*_: object) -> None:
        for server in servers:
            server.should_exit = True

    async def run() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    asyncio.run(run())
