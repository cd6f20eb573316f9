"""create_app: the inspector's FastAPI application (REST under /api, WS /api/stream, static UI)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from passageway.addresses import format_address
from storage import errors as storage_errors
from storage.maintenance import Maintenance
from storage.pure.search import QueryError
from storage.store import open_store

from . import errors
from .broadcast import Broadcaster
from .problems import document_invalid_requests, invalid_request, problem, search_problem
from .replay import ReplayClients, ReplayJobs, ReplayRoutes
from .responses import SafeJSONResponse
from .routers import (
    contracts,
    diff,
    exchanges,
    faults,
    health,
    mocks,
    metrics,
    monitors,
    openapi,
    registry,
    replay,
    service_stats,
    services,
    shares,
    stream,
    test_generation,
    tests,
    traces,
    transfer,
)
from .security import HostGuardMiddleware, SecurityHeadersMiddleware, TokenMiddleware
from .settings import InspectorSettings
from .shell import PAGES, Page

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/docs"
SWAGGER_UI_URL = "/static/swagger-ui"
SWAGGER_UI_DIR = Path(str(importlib.resources.files("fastapi_offline") / "static"))
"""Swagger UI's bundle and stylesheet from the pinned fastapi-offline package: /docs loads nothing
from another site (and works offline), so its CSP can stay 'self'."""


def _running_monitors(settings: InspectorSettings, store: Any) -> contextlib.AbstractContextManager:
    """The monitor runner role in this process: tests go where replays go (the proxy's gateway and
    forward port), so every monitor request is captured and traced."""
    from radar.monitor_runner import running_monitors

    if settings.replay_gateway is None:
        raise errors.CannotStart("the monitor runner needs the proxy's gateway (replay_gateway)")
    return running_monitors(
        store, settings.test_route(), variables=settings.test_variables, secrets=settings.test_secrets,
        realm=settings.monitor_realm,
        inspector_url=settings.inspector_url or f"http://{format_address(settings.host, settings.port)}",
    )  # fmt: skip


def create_app(settings: InspectorSettings, *, store: Any = None) -> FastAPI:
    """Build the app. Without `store`, the lifespan opens one from settings.db_url and closes it after.
    With settings.maintenance it also runs the database's maintenance role (storage.maintenance)
    for as long as it runs."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = store is None
        app.state.store = await run_in_threadpool(open_store, settings.db_url) if owned else store
        broadcaster = Broadcaster(
            app.state.store, poll_interval=settings.stream_poll_interval, queue_size=settings.stream_queue_size
        )
        app.state.broadcaster = broadcaster
        routes = ReplayRoutes(
            services=settings.replay_services,
            gateway=settings.replay_gateway,
            forward_proxy=settings.replay_forward_proxy,
        )
        app.state.replay_clients = ReplayClients(routes, timeout=settings.replay_timeout, proxy_ca=settings.replay_ca)
        app.state.replay_jobs = ReplayJobs(app.state.store, routes=routes, publish=broadcaster.publish)
        feed_task = asyncio.create_task(broadcaster.run(), name="passageway-change-feed")
        app.state.maintenance = (
            Maintenance(
                app.state.store,
                retention_policy=settings.retention_policy(),
                retention_interval=settings.retention_interval,
                poll_interval=settings.stream_poll_interval,
                on_indexed=broadcaster.indexed,
                redaction_rules=settings.redaction_rules(),
            )
            if settings.maintenance
            else None
        )
        maintenance_task = (
            asyncio.create_task(app.state.maintenance.run(), name="passageway-maintenance")
            if app.state.maintenance is not None
            else None
        )
        monitors = contextlib.ExitStack()
        app.state.monitor_runner = (
            monitors.enter_context(_running_monitors(settings, app.state.store)) if settings.monitor_runner else None
        )
        try:
            yield
        finally:
            await run_in_threadpool(monitors.close)  # the runs in progress finish (bounded by their timeouts)
            if maintenance_task is not None:
                maintenance_task.cancel()  # returns once no job uses the store
                with contextlib.suppress(asyncio.CancelledError):
                    await maintenance_task
            await app.state.replay_jobs.close()
            await app.state.replay_clients.close()
            broadcaster.close()  # ends every /api/stream connection with 1001
            feed_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed_task
            if owned:
                await run_in_threadpool(app.state.store.close)

    app = FastAPI(
        title="Passageway inspector",
        summary="Browse the HTTP traffic captured by Passageway.",
        version="1",
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
        openapi_url=OPENAPI_URL if settings.docs else None,
        docs_url=None,  # our own /docs below: Swagger UI without inline script
        redoc_url=None,
    )
    app.state.settings = settings
    app.include_router(exchanges.router)
    app.include_router(stream.router)
    app.include_router(health.router)
    app.include_router(replay.router)
    app.include_router(diff.router)
    app.include_router(shares.router)
    app.include_router(transfer.router)
    app.include_router(metrics.router)
    app.include_router(service_stats.router)
    app.include_router(services.router)
    app.include_router(traces.router)
    app.include_router(tests.router)
    app.include_router(test_generation.router)
    app.include_router(monitors.router)
    app.include_router(registry.router)
    app.include_router(faults.router)
    app.include_router(openapi.router)
    app.include_router(contracts.router)
    app.include_router(mocks.router)
    _answer_errors(app)
    document_invalid_requests(app)

    if settings.docs:

        @app.get(DOCS_URL, include_in_schema=False)
        async def docs() -> HTMLResponse:
            return HTMLResponse(_SWAGGER_PAGE)

        app.mount(SWAGGER_UI_URL, StaticFiles(directory=SWAGGER_UI_DIR), name="swagger-ui")

    for path, page in PAGES.items():
        app.add_api_route(path, _serve(page), methods=["GET"], include_in_schema=False)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # Added last = outermost: even the Host guard's refusals carry the security headers.
    if settings.token is not None:
        app.add_middleware(TokenMiddleware, token=settings.token)
    app.add_middleware(HostGuardMiddleware, allowed_hosts=settings.effective_allowed_hosts())
    app.add_middleware(SecurityHeadersMiddleware, docs_paths=frozenset({DOCS_URL}))
    return app


def _serve(page: Page) -> Callable[[], Awaitable[HTMLResponse]]:
    async def serve() -> HTMLResponse:
        return HTMLResponse(page.render())  # read each time, as a static file is: edit, reload

    return serve


ERROR_STATUS: dict[type[Exception], int] = {
    errors.BadRequest: 400,
    errors.Refused: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Unprocessable: 422,
    errors.ProxyUnreachable: 502,
    errors.NotConfigured: 503,
    errors.TimedOut: 504,
    storage_errors.NotFound: 404,
    storage_errors.Gone: 410,
    storage_errors.Invalid: 422,
}
"""The status each error a request can end with is answered with (as inspector_ui.problems.problem);
a bad search, parameters that do not validate and the database's errors have handlers of their own."""


def _answer_errors(app: FastAPI) -> None:
    def refusal(status: int) -> Callable[[Request, Exception], Awaitable[Response]]:
        async def answer(request: Request, exc: Exception) -> Response:
            return problem(status, str(exc))

        return answer

    # Starlette picks the handler of the most specific class: QueryError's over Invalid's.
    for kind, status in ERROR_STATUS.items():
        app.add_exception_handler(kind, refusal(status))

    @app.exception_handler(QueryError)
    async def bad_search(request: Request, exc: QueryError) -> Response:
        return search_problem(exc)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        return invalid_request(exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return problem(exc.status_code, exc.detail, headers=exc.headers)

    @app.exception_handler(storage_errors.Unavailable)
    async def database_down(request: Request, exc: storage_errors.Unavailable) -> Response:
        log.warning("database unavailable on %s: %s", request.url.path, exc)
        return problem(503, f"database unavailable: {exc}"[:500])

    @app.exception_handler(storage_errors.StorageError)
    async def storage_error(request: Request, exc: storage_errors.StorageError) -> Response:
        log.error("storage error on %s: %s", request.url.path, exc, exc_info=exc)  # a bug: keep the traceback
        return problem(500, f"storage error: {exc}"[:500])


_SWAGGER_PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Passageway inspector API</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{SWAGGER_UI_URL}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{OPENAPI_URL}"></div>
<script src="{SWAGGER_UI_URL}/swagger-ui-bundle.js"></script>
<script src="/static/swagger-init.js"></script>
</body>
</html>
"""
