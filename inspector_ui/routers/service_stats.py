"""GET /api/services/{name}/stats and /api/stats/services: traffic figures (req/s, errors,
latency percentiles) per service and per endpoint over a time window (storage.traffic_stats).
A name that is no service here (inspector_ui.known_services) answers 404."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from storage.traffic_stats import (
    DEFAULT_BUCKETS,
    MAX_BUCKETS,
    TimeWindow,
    parse_since,
    rolled_service_stats,
    rolled_service_summaries,
)

from ..deps import SettingsDep, StoreDep
from ..errors import Unprocessable
from ..known_services import UNKNOWN_SERVICE, require_service
from ..models import Problem
from ..params import Blankable

router = APIRouter(tags=["stats"])

MAX_WINDOW_SECONDS = 366 * 86400
"""A year (the rollups keep day rows past 35 days: storage.rollups)."""
BAD_WINDOW = {422: {"model": Problem, "description": "`since`, `until` or `buckets` is not valid."}}


Since = Annotated[
    str, Query(max_length=32, description="Window length before `until`, as in the search's since: (15m, 1h, 24h, 7d).")
]
Until = Annotated[
    Annotated[str, Field(max_length=64)] | None,
    Blankable,
    Query(description="End of the window, ISO 8601 (default: now; naive = UTC)."),
]
Realm = Annotated[
    Annotated[str, Field(max_length=200)] | None, Blankable, Query(description="Only this realm (default: all).")
]


class Figures(BaseModel):
    requests: int
    errors: int = Field(description="Status >= 500, or no response at all (an error kind).")
    client_errors: int = Field(description="4xx answers; not part of the error rate.")
    rps: float = Field(description="Requests per second over the seconds covered.")
    error_rate: float | None = Field(description="errors / requests, 0..1; null without requests.")
    p50: float | None = Field(description="Duration (ms), nearest-rank percentile; null without durations.")
    p95: float | None
    p99: float | None


class Bucket(Figures):
    t: str = Field(description="Start of the bucket, ISO 8601 UTC.")


class Endpoint(Figures):
    method: str
    template: str = Field(description="Path template, e.g. /users/{id} (storage.pure.endpoints).")
    example_path: str = Field(description="The endpoint's most requested path.")
    search: str = Field(description="Inspector search listing these exchanges (open /?q=...).")


class Sampling(BaseModel):
    sampled: bool = Field(description="More exchanges matched than are read per request: figures cover the newest.")
    sampled_since: str | None = Field(description="When sampled, the oldest exchange read (ISO 8601 UTC).")
    rows: int = Field(description="Exchanges read.")


class EndpointKey(BaseModel):
    method: str
    template: str


class ServiceStats(Sampling):
    service: str
    realm: str | None
    endpoint: EndpointKey | None = Field(description="The endpoint the series and totals are of; null: all.")
    since: str
    until: str
    bucket_seconds: int
    series: list[Bucket]
    totals: Figures
    endpoints: list[Endpoint] = Field(description="Most requested first; at most 500.")
    endpoints_total: int = Field(description="Endpoints in the window, listed or not.")


class ServiceSummary(Figures):
    service: str


class ServiceSummaries(Sampling):
    since: str
    until: str
    realm: str | None
    services: list[ServiceSummary] = Field(description="Most requested first; exchanges with no service are left out.")


def _window_bounds(since: str, until: str | None) -> tuple[int, dt.datetime, dt.datetime]:
    """(seconds, start, end) from the query parameters; Unprocessable (one line) when bad."""
    try:
        seconds = parse_since(since)
    except ValueError as exc:
        raise Unprocessable(str(exc)) from None
    if seconds > MAX_WINDOW_SECONDS:
        raise Unprocessable(f"since: at most {MAX_WINDOW_SECONDS // 86400}d, not {since!r}")
    if until is None:
        end = dt.datetime.now(dt.UTC)
        return seconds, end - dt.timedelta(seconds=seconds), end
    try:
        end = dt.datetime.fromisoformat(until.strip())
    except ValueError:
        example = "2026-11-28T10:00:00Z"
        raise Unprocessable(f"until: expected an ISO 8601 date-time, e.g. {example}, not {until!r}") from None
    if end.tzinfo is None:
        end = end.replace(tzinfo=dt.UTC)
    try:
        end = end.astimezone(dt.UTC)
        start = end - dt.timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        raise Unprocessable(f"until: out of range, or the window starts before year 1: {until!r}") from None
    return seconds, start, end


@router.get(
    "/api/services/{name:path}/stats",
    response_model=ServiceStats,
    responses={**BAD_WINDOW, **UNKNOWN_SERVICE},
    summary="One service's traffic over time and per endpoint",
)
async def one_service(
    store: StoreDep,
    settings: SettingsDep,
    name: Annotated[str, Path(max_length=200, description="Service name, as captured.")],
    since: Since = "1h",
    until: Until = None,
    buckets: Annotated[
        int, Query(ge=1, le=MAX_BUCKETS, description="About this many points in the series (at most one more).")
    ] = DEFAULT_BUCKETS,
    realm: Realm = None,
    endpoint: Annotated[
        str | None,
        Query(max_length=2100, description="Chart one endpoint: its method and template, e.g. `GET /users/{id}`."),
    ] = None,
) -> Any:
    seconds, _, end = _window_bounds(since, until)
    window = TimeWindow.ending(end, seconds=seconds, buckets=buckets)
    chosen = None
    if endpoint:
        method, _, template = endpoint.strip().partition(" ")
        if not method or not template.startswith("/"):
            raise Unprocessable(f"endpoint: expected METHOD TEMPLATE, e.g. 'GET /users/{{id}}', not {endpoint!r}")
        chosen = (method, template.strip())
    await require_service(store, settings, name)
    stats = functools.partial(rolled_service_stats, store, service=name, window=window, realm=realm, endpoint=chosen)
    return await run_in_threadpool(stats)


@router.get(
    "/api/stats/services",
    response_model=ServiceSummaries,
    responses=BAD_WINDOW,
    summary="Every service's traffic over a window",
)
async def all_services(store: StoreDep, since: Since = "1h", until: Until = None, realm: Realm = None) -> Any:
    _, start, end = _window_bounds(since, until)
    return await run_in_threadpool(functools.partial(rolled_service_summaries, store, since=start, until=end, realm=realm))
