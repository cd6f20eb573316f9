"""Replay: POST /api/exchanges/{id}/replay sends a captured request again, through the proxy."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from storage.pure.search import parse_query
from storage.queries import get_body, get_exchange

from ..deps import InspectorAddressesDep, ReplayClientsDep, ReplayJobsDep, SettingsDep, StoreDep
from ..errors import NotConfigured, NotFound
from ..params import ExchangeId
from ..replay import (
    NOT_CONFIGURED,
    Overrides,
    ReplayRoutes,
    decode_body_override,
    header_bytes,
    plan_replay,
    replay_template,
    send_replay,
)

router = APIRouter(prefix="/api", tags=["replay"])


class ReplayEdits(BaseModel):
    """What to change; everything left out is sent as captured."""

    model_config = ConfigDict(extra="forbid")

    method: Annotated[str, Field(max_length=32)] | None = None
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
    keep_trace: bool = Field(
        False,
        description="Send the captured trace headers (traceparent, tracestate, B3, X-Request-ID) as they are, so "
        "the replay joins its original's trace. By default a replay starts a trace of its own, linked by replay_of.",
    )

    def overrides(self, url: str | None = None) -> Overrides:
        """BadRequest or Unprocessable when the body fields are contradictory or not base64, or a header or the
        body cannot be sent (checked here too, so a bulk job is refused before it starts)."""
        header_bytes(self.set_headers)
        return Overrides(
            method=self.method,
            url=url,
            path=self.path,
            target=self.target,
            set_headers=tuple(self.set_headers),
            remove_headers=tuple(self.remove_headers),
            body=decode_body_override(self.body, self.body_base64),
            keep_trace=self.keep_trace,
        )


class ReplayRequest(ReplayEdits):
    url: Annotated[str, Field(max_length=8192)] | None = Field(
        None, description="Absolute URL: target and path at once (instead of target and path)."
    )


class BulkReplayRequest(ReplayEdits):
    """Replay every exchange a search matches now (at most 10,000, the newest), with the same edits."""

    q: Annotated[str, Field(min_length=1, description="A search (see README, Search), e.g. `is:error since:1h`.")]
    rate: Annotated[float, Field(gt=0, le=1000, description="Requests per second.")] = 10.0
    concurrency: Annotated[int, Field(ge=1, le=64, description="Requests in flight at most.")] = 4


class ReplayCreated(BaseModel):
    id: int = Field(description="The new exchange: the replay, captured by the proxy.")
    replay_of: int
    status: int | None = Field(description="The status the replay got.")


class ReplayProblem(BaseModel):
    detail: str


def replay_routes(settings: SettingsDep) -> ReplayRoutes:
    return ReplayRoutes(
        services=settings.replay_services,
        gateway=settings.replay_gateway,
        forward_proxy=settings.replay_forward_proxy,
    )


def send_options(settings: SettingsDep, clients: ReplayClientsDep, addresses: InspectorAddressesDep) -> dict:
    """dispatch_replay's keyword arguments beyond the exchange and its plan."""
    return {"inspector_addresses": addresses, "allow_any": settings.allow_any_replay_target, "clients": clients}


RoutesDep = Annotated[ReplayRoutes, Depends(replay_routes)]
SendOptionsDep = Annotated[dict, Depends(send_options)]


@router.get(
    "/exchanges/{exchange_id}/replay",
    responses={404: {"model": ReplayProblem}, 503: {"model": ReplayProblem}},
    summary="What a replay of an exchange would send: a starting point for editing",
)
async def template(store: StoreDep, settings: SettingsDep, routes: RoutesDep, exchange_id: ExchangeId) -> Any:
    """method, target (service or base URL), path, headers, body (text) or body_base64, body_truncated,
    targets (the configured services), allow_any_target."""
    exchange = await run_in_threadpool(get_exchange, store, exchange_id=exchange_id)
    if exchange is None:
        raise NotFound(f"exchange {exchange_id} not found")
    if routes.gateway is None:
        raise NotConfigured(NOT_CONFIGURED)
    body = decoded = None
    if exchange["request_body"] is not None:
        body = await run_in_threadpool(get_body, store, exchange_id=exchange_id, side="request")
        if body is not None and body.encoding:
            decoded = await run_in_threadpool(lambda: body.decoded(limit=settings.max_decoded_body))
    answer = replay_template(exchange, body, decoded, routes)
    return {**answer, "allow_any_target": settings.allow_any_replay_target}


@router.post(
    "/exchanges/{exchange_id}/replay",
    status_code=201,
    response_model=ReplayCreated,
    responses={code: {"model": ReplayProblem} for code in (400, 403, 404, 409, 422, 502, 503, 504)},
    summary="Replay an exchange, as captured or edited",
)
async def replay(
    store: StoreDep,
    routes: RoutesDep,
    options: SendOptionsDep,
    exchange_id: ExchangeId,
    edits: ReplayRequest | None = None,
) -> Any:
    edits = edits or ReplayRequest()
    exchange = await run_in_threadpool(get_exchange, store, exchange_id=exchange_id)
    if exchange is None:
        raise NotFound(f"exchange {exchange_id} not found")
    overrides = edits.overrides(url=edits.url)
    body = None
    if overrides.body is None and exchange["request_body"] is not None:
        body = await run_in_threadpool(get_body, store, exchange_id=exchange_id, side="request")
    plan = plan_replay(exchange, body, overrides, routes)
    result = await send_replay(store, exchange_id, plan, routes=routes, original_url=exchange["url"], **options)
    return {"id": result.id, "replay_of": exchange_id, "status": result.status}


@router.post(
    "/replays",
    status_code=202,
    responses={code: {"model": ReplayProblem} for code in (400, 422, 503)},
    summary="Replay every exchange a search matches, at a rate",
)
async def start_bulk_replay(
    jobs: ReplayJobsDep, routes: RoutesDep, options: SendOptionsDep, job: BulkReplayRequest
) -> Any:
    """A job: progress as {"type": "replay-job"} messages on /api/stream and at
    GET /api/replays/{id}; DELETE cancels it."""
    query = parse_query(job.q)
    if routes.gateway is None:
        raise NotConfigured(NOT_CONFIGURED)
    overrides = job.overrides()
    started = await jobs.start(
        query, job.q, rate=job.rate, concurrency=job.concurrency, overrides=overrides, send_options=options
    )
    return started.summary()


@router.get("/replays", summary="Bulk replay jobs, newest first")
async def list_bulk_replays(jobs: ReplayJobsDep) -> Any:
    newest_first = sorted(jobs.jobs.values(), key=lambda job: job.started, reverse=True)
    return {"data": [job.summary() for job in newest_first]}


@router.get("/replays/{job_id}", summary="A bulk replay job, with each exchange's result")
async def get_bulk_replay(jobs: ReplayJobsDep, job_id: str) -> Any:
    job = jobs.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no replay job {job_id!r}")
    return {**job.summary(), "results": job.results}


@router.delete("/replays/{job_id}", summary="Cancel a bulk replay job")
async def cancel_bulk_replay(jobs: ReplayJobsDep, job_id: str) -> Any:
    job = jobs.cancel(job_id)
    if job is None:
        raise NotFound(f"no replay job {job_id!r}")
    if job.task is not None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(job.task)
    return job.summary()
