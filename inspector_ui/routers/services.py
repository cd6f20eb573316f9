"""GET /api/services (the services overview), GET /api/services/graph (the dependency graph) and
GET /api/services/{name}/health (a service's probes).

All read the store in a worker thread. Each service in /api/services is a plain dict, so other
figures (traffic, self-registered instances: storage.registry.merge_overview) can be merged into
it by name and realm. A name that is no service here (inspector_ui.known_services) answers 404
on /health, as on /stats."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from storage import registry
from storage.dependencies import dependency_graph
from storage.services import HISTORY_MAX, health_history, known_realms, service_overview
from storage.traffic_stats import parse_since as window_seconds
from storage.traffic_stats import rolled_service_summaries

from ..deps import SettingsDep, StoreDep
from ..errors import BadRequest
from ..known_services import UNKNOWN_SERVICE, require_service

router = APIRouter(prefix="/api/services", tags=["services"])

MAX_SINCE = dt.timedelta(days=31)
TRAFFIC_WINDOW = dt.timedelta(minutes=15)

RealmQuery = Annotated[str | None, Query(max_length=200, description="Only this realm (empty: services without a realm)")]


def parse_since(value: str) -> dt.timedelta:
    """`30m`, `1h`, `2d`... (the search language's since:) -> timedelta; ValueError naming the problem."""
    span = dt.timedelta(seconds=window_seconds(value))
    if span > MAX_SINCE:
        raise ValueError(f"since: must be more than 0 and at most {MAX_SINCE.days}d")
    return span


def with_traffic(services: list[dict[str, Any]], summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each registered service with its last TRAFFIC_WINDOW's figures (None without traffic; `summaries`
    are of the realm asked for, or of all realms), then the services seen in traffic that no
    proxy registers (forward-proxy hosts, services since removed from the configuration)."""
    by_name = {summary["service"]: summary for summary in summaries}
    for service in services:
        service["registered"] = True
        service["traffic"] = by_name.get(service["name"])
    registered = {service["name"] for service in services}
    unregistered = [
        {"name": name, "realm": None, "registered": False, "upstreams": [], "proxies": [], "health": None,
         "history": [], "uptime": None, "traffic": summary}
        for name, summary in sorted(by_name.items())
        if name not in registered
    ]  # fmt: skip
    for service in unregistered:
        service.update(instances=[], source=None, depends_on=[], conflict=None)
    return services + unregistered


@router.get("", summary="Configured and self-registered services with their health, instances, probes and uptime")
async def services(
    store: StoreDep,
    realm: RealmQuery = None,
    history: Annotated[int, Query(ge=1, le=HISTORY_MAX, description="Probes per service in `history`")] = 60,
) -> Any:
    def read() -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        # From the rollups (storage.rollups): every exchange of the window, at any volume.
        summaries = rolled_service_summaries(store, since=now - TRAFFIC_WINDOW, until=now, realm=realm or None)[
            "services"
        ]
        overview = registry.merge_overview(
            service_overview(store, realm=realm, history=history), registry.instances(store, realm=realm, now=now)
        )
        return {"realms": known_realms(store), "services": with_traffic(overview, summaries)}

    return await run_in_threadpool(read)


@router.get("/graph", summary="The dependency graph: declared dependencies and calls seen in traffic")
async def graph(
    store: StoreDep,
    realm: RealmQuery = None,
    since: Annotated[str, Query(max_length=20, description="Traffic of how long ago: 30m, 1h, 2d (at most 31d)")] = "1h",
) -> Any:
    try:
        span = parse_since(since)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    now = dt.datetime.now(dt.UTC)
    return await run_in_threadpool(lambda: dependency_graph(store, since=now - span, until=now, realm=realm, now=now))


@router.get(
    "/{name:path}/health", responses=UNKNOWN_SERVICE, summary="A service's health probes since a time, oldest first"
)
async def service_health(
    store: StoreDep,
    settings: SettingsDep,
    name: str,
    since: Annotated[str, Query(max_length=20, description="How far back: 30m, 1h, 2d (at most 31d)")] = "1h",
    realm: RealmQuery = None,
) -> Any:
    try:
        span = parse_since(since)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    await require_service(store, settings, name)
    start = dt.datetime.now(dt.UTC) - span
    samples = await run_in_threadpool(lambda: health_history(store, service=name, realm=realm, since=start))
    return {"service": name, "realm": realm, "since": start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "samples": samples}
