"""API tests (radar): POST /api/tests/run runs a Hurl test through the proxy and keeps its result;
GET /api/test-runs lists results, GET /api/test-runs/{id} gives one.

A test run through the API is written by whoever can reach the inspector, so its requests are
guarded like replays: a service:// URL goes through the proxy's gateway (which reaches only
configured services), a plain URL only to a configured service's origin unless
allow_any_replay_target is set, never to the inspector itself (inspector_ui.replay.targets).
Its secrets are the configured test secrets: they never appear in the result."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from radar.hurl import HurlError, parse_hurl
from radar.runner import run_test
from radar.transport import TestSession, TransportError
from storage.test_runs import MAX_RUNS_PAGE, get_run, list_runs, save_run, with_exchange_ids

from ..deps import InspectorAddressesDep, SettingsDep, StoreDep
from ..errors import BadRequest, NotConfigured, NotFound
from ..params import RowId
from ..replay.targets import TargetRefused, check_target, system_resolver
from ..settings import InspectorSettings

router = APIRouter(prefix="/api", tags=["tests"])

TEST_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
"""A test's name: it becomes the file name in messages and the X-Passageway-Test header."""
MAX_HURL_CHARS = 1_000_000
WAIT_BUDGET_S = 300.0
"""Seconds an API run may spend in `delay`s and retry intervals in all; past it they are skipped,
so that no test holds one of the inspector's threads for longer than its requests take."""
_DEFAULT_PORTS = {"http": 80, "https": 443}

Variable = str | int | float | bool | None


class TestRunRequest(BaseModel):
    __test__ = False  # not a pytest class, whatever its name
    model_config = ConfigDict(extra="forbid")

    hurl: Annotated[str, Field(min_length=1, max_length=MAX_HURL_CHARS, description="The test, in the Hurl format.")]
    name: Annotated[str, Field(pattern=TEST_NAME, description="The test's name (file NAME.hurl in messages).")] = "api"
    variables: dict[Annotated[str, Field(min_length=1, max_length=200)], Variable] = Field(
        default_factory=dict, max_length=1000, description="Over the inspector's configured test variables."
    )


class TestProblem(BaseModel):
    __test__ = False
    detail: str


def url_guard(settings: InspectorSettings, inspector_addresses: list[tuple[str, int]]) -> Callable[[str], None]:
    """TestSession's check_url for API runs: the replay guard on each plain URL, and the URL must
    mean the same origin to the sender (httpx) as to the guard, or it is refused too."""

    def check(url: str) -> None:
        try:
            approved = check_target(
                url,
                services=settings.replay_services,
                original_url=None,
                inspector_addresses=inspector_addresses,
                allow_any=settings.allow_any_replay_target,
                resolve=system_resolver,
            )
        except TargetRefused as refused:
            raise TransportError("refused", str(refused).removeprefix("refused: ")) from None
        try:
            sent = httpx.URL(url)
            origin = (sent.scheme, sent.raw_host.decode("ascii").lower(), sent.port or _DEFAULT_PORTS.get(sent.scheme))
        except httpx.InvalidURL as e:
            raise TransportError("bad_url", f"{url}: {e}") from None
        if origin != (approved.scheme, approved.host, approved.port):
            raise TransportError("refused", f"{url}: its host is not read the same way by every parser")

    return check


def _capped_sleep(budget: float) -> Callable[[float], None]:
    deadline = time.monotonic() + budget

    def sleep(seconds: float) -> None:
        time.sleep(max(0.0, min(seconds, deadline - time.monotonic())))

    return sleep


@router.post(
    "/tests/run",
    responses={code: {"model": TestProblem} for code in (400, 503)},
    summary="Run a Hurl test through the proxy; its result is kept (source 'api')",
)
async def run(store: StoreDep, settings: SettingsDep, addresses: InspectorAddressesDep, wanted: TestRunRequest) -> Any:
    """The run result (see the README's test-run JSON) with its id. A Hurl text that does not parse
    is a 400 whose detail is `NAME.hurl:LINE:COL: message`; a test that fails, or whose requests
    get no answer, is a 200 with passed false and each step's error."""
    try:
        hurl = parse_hurl(wanted.hurl, f"{wanted.name}.hurl")
    except HurlError as e:
        raise BadRequest(" ".join(str(e).split())) from None
    if settings.replay_gateway is None:
        raise NotConfigured("tests cannot run: the inspector does not know the proxy's address (set replay_via)")
    route = settings.test_route()
    guard = url_guard(settings, addresses)

    def run_and_save() -> dict[str, Any]:
        result = run_test(
            hurl,
            name=wanted.name,
            sessions=lambda trace_id, name: TestSession(route, trace_id, name, check_url=guard),
            variables={**settings.test_variables, **wanted.variables},
            secrets=settings.test_secrets,
            source="api",
            sleep=_capped_sleep(WAIT_BUDGET_S),
        )
        save_run(store, result)
        return result

    return await run_in_threadpool(run_and_save)


RunsLimit = Annotated[int, Query(ge=1, le=MAX_RUNS_PAGE, description="Runs per page.")]
BeforeId = Annotated[RowId | None, Query(description="Only runs with a smaller id (the next page).")]


@router.get("/test-runs", summary="Test runs, newest first: summaries")
async def runs(
    store: StoreDep,
    test: Annotated[str | None, Query(max_length=200, description="Only this test's runs.")] = None,
    monitor: Annotated[str | None, Query(max_length=200, description="Only this monitor's runs.")] = None,
    limit: RunsLimit = 50,
    before_id: BeforeId = None,
) -> Any:
    """{"runs": [{"id", "test", "monitor", "realm", "source", "started_at", "duration_ms", "passed",
    "failures", "error", "trace_id"}]}"""
    found = await run_in_threadpool(
        lambda: list_runs(store, test=test, monitor=monitor, limit=limit, before_id=before_id)
    )
    return {"runs": found}


@router.get("/test-runs/{run_id}", responses={404: {"model": TestProblem}}, summary="One test run: steps and asserts")
async def one_run(store: StoreDep, run_id: RowId) -> Any:
    """The run result with each step's exchange_id (when its exchange is captured by now)."""

    def read() -> dict[str, Any] | None:
        found = get_run(store, run_id)
        return None if found is None else with_exchange_ids(store, found)

    found = await run_in_threadpool(read)
    if found is None:
        raise NotFound(f"no test run {run_id}")
    return found
