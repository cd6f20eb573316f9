"""Monitors (radar): GET/POST/DELETE /api/monitors, POST /api/monitors/{name}/run, GET
/api/monitors/{name}/runs.

Monitors live in the store (storage.monitors); a monitor runner (another role, or this
inspector's when it runs one) claims and runs them there. Those from passageway.toml are
listed like the others but only the file changes them."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from radar.hurl import HurlError, parse_hurl
from storage import monitors as monitor_store
from storage.errors import Invalid
from storage.monitors import MonitorRow, NameTaken
from storage.test_runs import MAX_RUNS_PAGE, list_runs, monitor_stats

from ..deps import StoreDep
from ..errors import BadRequest, Conflict, NotFound
from ..params import RowId

router = APIRouter(prefix="/api/monitors", tags=["monitors"])

STATS_WINDOW = dt.timedelta(hours=24)
EVERY_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_EVERY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*")

MonitorName = Annotated[str, Path(max_length=200, description="The monitor's name.")]


class MonitorProblem(BaseModel):
    detail: str


class NewMonitor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(max_length=200, description="Letters, digits, '.', '_', '-'; 1 to 100.")]
    hurl: Annotated[str, Field(max_length=1_000_000, description="The test, in the Hurl format.")]
    every: Annotated[
        str | float, Field(description='How often: seconds, or "30s", "1m", "2h", "1d"; at least 1 s.')
    ]
    realm: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None, description="The realm it runs against: a runner for that realm runs it."
    )
    notify: list[Annotated[str, Field(max_length=2000)]] = Field(
        default_factory=list, max_length=20, description="Webhook URLs told when it goes down or up again."
    )


def every_seconds(every: str | float) -> float:
    """`every` as seconds; BadRequest naming it when it is not a duration."""
    if isinstance(every, str):
        match = _EVERY.fullmatch(every)
        if match is None:
            raise BadRequest(f"every: expected seconds or a duration such as 30s, 1m or 2h, not {every!r}")
        seconds = float(match.group(1)) * EVERY_UNITS[match.group(2)]
    else:
        seconds = float(every)
    if not math.isfinite(seconds):
        raise BadRequest(f"every: expected a number of seconds, not {every!r}")
    return seconds


def monitor_json(store: Any, monitor: MonitorRow, *, hurl: bool = False) -> dict[str, Any]:
    """The monitor as the API shows it: its row, its last 24 hours' figures, and its test if asked."""
    since = dt.datetime.now(dt.UTC) - STATS_WINDOW
    shown = {**monitor.to_json(), "stats": monitor_stats(store, monitor.name, since=since)}
    if hurl:
        shown["hurl"] = monitor.hurl
    return shown


def _one(store: Any, name: str) -> dict[str, Any]:
    monitor = monitor_store.get_monitor(store, name)
    if monitor is None:
        raise NotFound(f"no monitor named {name!r}")
    return monitor_json(store, monitor, hurl=True)


@router.get("", summary="Every monitor, with its state and its last 24 hours")
async def monitors(store: StoreDep) -> Any:
    """{"monitors": [monitor]}: each monitor's fields (name, file, every_s, realm, notify, enabled,
    origin "config" | "api", next_due_at, claimed_by, claimed_until, state "unknown" | "up" |
    "down", state_since, last_run_id, last_duration_ms, last_error, consecutive_failures,
    created_at, updated_at) and `stats` (runs, passed, failed, uptime, p50_ms, p95_ms, history,
    last_failures)."""
    found = await run_in_threadpool(
        lambda: [monitor_json(store, monitor) for monitor in monitor_store.list_monitors(store)]
    )
    return {"monitors": found}


@router.get("/{name}", responses={404: {"model": MonitorProblem}}, summary="One monitor, with its test")
async def monitor(store: StoreDep, name: MonitorName) -> Any:
    return await run_in_threadpool(_one, store, name)


@router.post(
    "",
    status_code=201,
    responses={code: {"model": MonitorProblem} for code in (400, 409)},
    summary="Create a monitor: a Hurl test run on a schedule, due at once",
)
async def create(store: StoreDep, wanted: NewMonitor) -> Any:
    """400 for a bad name, a schedule under 1 s, a test that does not parse (`NAME.hurl:LINE:COL:
    message`) or a notify URL that is not http(s); 409 when the name is taken."""
    every = every_seconds(wanted.every)

    def make() -> dict[str, Any]:
        try:
            monitor_store.check_monitor(wanted.name, wanted.hurl, every, wanted.notify)
            parse_hurl(wanted.hurl, f"{wanted.name}.hurl")
            created = monitor_store.create_monitor(store, wanted.name, wanted.hurl, every, wanted.realm, wanted.notify)
        except NameTaken as e:
            raise Conflict(str(e)) from None
        except (Invalid, HurlError) as e:
            raise BadRequest(" ".join(str(e).split())) from None
        return monitor_json(store, created, hurl=True)

    return await run_in_threadpool(make)


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses={code: {"model": MonitorProblem} for code in (404, 409)},
    summary="Delete a monitor made through the API (its runs stay)",
)
async def delete(store: StoreDep, name: MonitorName) -> Response:
    """409 for a monitor defined in passageway.toml: remove it there."""

    def remove() -> None:
        try:
            monitor_store.delete_monitor(store, name)
        except Invalid as e:  # storage's NotFound goes on to its 404
            raise Conflict(str(e)) from None

    await run_in_threadpool(remove)
    return Response(status_code=204)


@router.post(
    "/{name}/run",
    status_code=202,
    responses={404: {"model": MonitorProblem}},
    summary="Run a monitor now: the monitor runner starts it within its poll interval",
)
async def run_now(store: StoreDep, name: MonitorName) -> Any:
    await run_in_threadpool(lambda: monitor_store.request_run_now(store, name))
    return {"queued": True, "monitor": name}


@router.get("/{name}/runs", summary="A monitor's runs, newest first: summaries")
async def runs(
    store: StoreDep,
    name: MonitorName,
    limit: Annotated[int, Query(ge=1, le=MAX_RUNS_PAGE, description="Runs per page.")] = 50,
    before_id: Annotated[RowId | None, Query(description="Only runs with a smaller id (the next page).")] = None,
) -> Any:
    """{"runs": [summary]} as GET /api/test-runs; a deleted monitor's runs stay listed."""
    found = await run_in_threadpool(lambda: list_runs(store, monitor=name, limit=limit, before_id=before_id))
    return {"runs": found}
