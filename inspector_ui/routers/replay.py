"""Replay: POST /api/exchanges/{id}/replay sends a captured request again, through the proxy."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from storage.queries import get_body, get_exchange

from ..deps import StoreDep
from .exchanges import ExchangeId
from ..replay import Overrides, ReplayError, ReplayRoutes, decode_body_override, plan_replay, send_replay

router = APIRouter(prefix="/api", tags=["replay"])


class ReplayRequest(BaseModel):
    """What to change; everything left out is sent as captured."""

    model_config = ConfigDict(extra="forbid")

    method: Annotated[str, Field(max_length=32)] | None = None
    url: Annotated[str, Field(max_length=8192)] | None = Field(
        None, description="Absolute URL: target and path at once (instead of target and path)."
    )
    path: Annotated[str, Field(max_length=8192)] | None = Field(None, description="Path and query, from '/'.")
    target: Annotated[str, Field(max_length=2048)] | None = Field(
        None, description="A configured service's name, or a base URL; default: where it was sent."
    )
    set_headers: list[tuple[str, str]] = Field(
        default_factory=list, max_length=200, description="[[name, value], ...]: each replaces that header."
    )
    remove_headers: list[str] = Field(default_factory=list, max_length=200)
    body: str | None = Field(None, description="New body as text (sent as UTF-8).")
    body_base64: str | None = Field(None, description="New body as base64, for binary bodies.")


class ReplayCreated(BaseModel):
    id: int = Field(description="The new exchange: the replay, captured by the proxy.")
    replay_of: int
    status: int | None = Field(description="The status the replay got.")


class ReplayProblem(BaseModel):
    detail: str


def routes_of(request: Request) -> ReplayRoutes:
    settings = request.app.state.settings
    return ReplayRoutes(
        services=settings.replay_services,
        gateway=settings.replay_gateway,
        forward_proxy=settings.replay_forward_proxy,
    )


def inspector_addresses(request: Request) -> list[tuple[str, int]]:
    """Where this inspector listens: never a replay target."""
    settings = request.app.state.settings
    server = request.scope.get("server")
    addresses = [(settings.host, settings.port)]
    if server and server[1]:
        addresses.append((settings.host, int(server[1])))
    return addresses


@router.post(
    "/exchanges/{exchange_id}/replay",
    status_code=201,
    response_model=ReplayCreated,
    responses={code: {"model": ReplayProblem} for code in (400, 403, 404, 409, 422, 502, 503, 504)},
    summary="Replay an exchange, as captured or edited",
)
async def replay(store: StoreDep, request: Request, exchange_id: ExchangeId, edits: ReplayRequest | None = None) -> Any:
    edits = edits or ReplayRequest()
    exchange = await run_in_threadpool(get_exchange, store, exchange_id=exchange_id)
    if exchange is None:
        return JSONResponse({"detail": f"exchange {exchange_id} not found"}, status_code=404)
    settings = request.app.state.settings
    try:
        overrides = Overrides(
            method=edits.method,
            url=edits.url,
            path=edits.path,
            target=edits.target,
            set_headers=tuple(edits.set_headers),
            remove_headers=tuple(edits.remove_headers),
            body=decode_body_override(edits.body, edits.body_base64),
        )
        body = None
        if overrides.body is None and exchange["request_body"] is not None:
            body = await run_in_threadpool(get_body, store, exchange_id=exchange_id, side="request")
        routes = routes_of(request)
        plan = plan_replay(exchange, body, overrides, routes)
        result = await send_replay(
            store,
            exchange_id,
            plan,
            routes=routes,
            original_url=exchange["url"],
            inspector_addresses=inspector_addresses(request),
            allow_any=settings.allow_any_replay_target,
            timeout=settings.replay_timeout,
            proxy_ca=settings.replay_ca,
        )
    except ReplayError as exc:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)
    return {"id": result.id, "replay_of": exchange_id, "status": result.status}
