"""A small demo upstream for `make run`: a users API with a few realistic behaviours.

`/checkout/{user_id}` calls the demo service itself back through the gateway with the smart
client (the user, then a flaky stock check that is retried), so one curl makes a trace of
several exchanges to look at in the inspector. `POST /admin/outage` breaks the users API (503)
until `DELETE /admin/outage`, to watch a monitor fail and recover."""

from __future__ import annotations

import asyncio
import gzip
import json
import random

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from passageway import AsyncClient, TraceContextMiddleware
from proxy.routing import parse_listen

# The gateway of `make run` (examples/demo.toml); PASSAGEWAY_URL overrides it.
client = AsyncClient(service="demo", timeout=10)


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


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


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
        Route("/healthz", healthz),
        Route("/admin/outage", set_outage, methods=["POST", "DELETE"]),
    ],
    middleware=[Middleware(TraceContextMiddleware)],
)


def serve(listen: str) -> None:
    host, port = parse_listen(listen)
    uvicorn.run(app, host=host, port=port, log_level="warning")
