"""Three small services that call each other through Passageway with the smart client, run
as real uvicorn processes by tests/integration/test_mesh.py:

    python -m uvicorn tests.support.mesh:app --port P   (MESH_SERVICE=frontend|orders|identity)

frontend GET /checkout/{user}  -> orders GET /orders?user=U -> identity GET /users/{U}
                               -> identity GET /users/{U}
identity answers 503 to the first request for a user whose id ends in 13, so the smart
client's retry shows as a second exchange in the same trace. Each has GET /healthz.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response

from passageway import AsyncClient, TraceContextMiddleware

SERVICE = os.environ.get("MESH_SERVICE", "frontend")
failed_once: set[str] = set()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # PASSAGEWAY_URL (the gateway) and PASSAGEWAY_SERVICE (our name) come from the environment.
    async with AsyncClient(timeout=10) as client:
        app.state.client = client
        yield


app = FastAPI(lifespan=lifespan)
app.add_middleware(TraceContextMiddleware)


@app.get("/healthz")
async def healthz() -> dict:
    return {"service": SERVICE, "ok": True}


if SERVICE == "frontend":

    @app.get("/checkout/{user}")
    async def checkout(user: str) -> dict:
        client: AsyncClient = app.state.client
        orders = await client.get(f"service://orders/orders?user={user}")
        owner = await client.get(f"service://identity/users/{user}")
        return {"orders": orders.json(), "user": owner.json(), "statuses": [orders.status_code, owner.status_code]}

elif SERVICE == "orders":

    @app.get("/orders")
    async def orders(user: str) -> dict:
        owner = await app.state.client.get(f"service://identity/users/{user}")
        return {"user": user, "owner": owner.json(), "orders": [{"id": 1, "total": 12.5}]}

else:

    @app.get("/users/{user}")
    async def get_user(user: str, response: Response) -> dict:
        if user.endswith("13") and user not in failed_once:
            failed_once.add(user)
            response.status_code = 503
            return {"error": "warming up"}
        return {"id": user, "name": f"user {user}"}
