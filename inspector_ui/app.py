"""create_app: the inspector's FastAPI application (REST under /api, WS /api/stream, static UI)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from storage.errors import DatabaseError, NotFound, Unavailable
from storage.retention import RetentionPolicy, RetentionTotals, prune
from storage.store import one_line, open_store
from storage.surrogates import json_text

from .broadcast import Broadcaster
from .models import Invalid
from .replay import ReplayClients, ReplayJobs, ReplayRoutes
from .routers import (
    diff,
    exchanges,
    health,
    metrics,
    replay,
    service_stats,
    services,
    shares,
    stream,
    traces,
    transfer,
)
from .security import HostGuardMiddleware, SecurityHeadersMiddleware, TokenMiddleware
from .settings import InspectorSettings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/docs"
SWAGGER_UI_URL = "/static/swagger-ui"
SWAGGER_UI_DIR = Path(str(importlib.resources.files("fastapi_offline") / "static"))
"""Swagger UI's bundle and stylesheet from the pinned fastapi-offline package: /docs loads nothing
from another site (and works offline), so its CSP can stay 'self'."""


class SafeJSONResponse(JSONResponse):
    """The app's JSON: as Starlette writes it, but a lone surrogate in captured text is a
    \\uXXXX escape (storage.surrogates) instead of an encoding error and a 500."""

    def render(self, content: Any) -> bytes:
        return json_text(content, allow_nan=False, separators=(",", ":")).encode("utf-8")


def create_app(settings: InspectorSettings, *, store: Any = None) -> FastAPI:
    """Build the app. Without `store`, the lifespan opens one from settings.db_url and closes it after."""

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
        # Also the search indexer: catches up at start, then indexes each batch the feed reports.
        feed_task = asyncio.create_task(broadcaster.run(), name="passageway-change-feed")
        policy = settings.retention_policy()
        app.state.retention = RetentionTotals() if policy.enabled else None  # /api/metrics shows it when set
        stop_pruning = threading.Event()
        retention_task = (
            asyncio.create_task(
                _prune_periodically(app.state.store, policy, settings.retention_interval, app.state.retention, stop_pruning),
                name="passageway-retention",
            )
            if policy.enabled
            else None
        )
        try:
            yield
        finally:
            stop_pruning.set()
            if retention_task is not None:
                retention_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await retention_task
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
    _add_error_handlers(app)
    _document_invalid_requests(app)

    if settings.docs:

        @app.get(DOCS_URL, include_in_schema=False)
        async def docs() -> HTMLResponse:
            return HTMLResponse(_SWAGGER_PAGE)

        app.mount(SWAGGER_UI_URL, StaticFiles(directory=SWAGGER_UI_DIR), name="swagger-ui")

    # The pages: static HTML whose script reads its name or id from the location.
    for path, page in PAGES.items():
        app.add_api_route(path, _page(STATIC_DIR / page), methods=["GET"], include_in_schema=False)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # Added last = outermost: even the Host guard's refusals carry the security headers.
    if settings.token is not None:
        app.add_middleware(TokenMiddleware, token=settings.token)
    app.add_middleware(HostGuardMiddleware, allowed_hosts=settings.effective_allowed_hosts())
    app.add_middleware(SecurityHeadersMiddleware, docs_paths=frozenset({DOCS_URL}))
    return app


async def _prune_periodically(
    store: Any, policy: RetentionPolicy, interval: float, totals: RetentionTotals, stop: threading.Event
) -> None:
    """A retention pass every `interval` seconds, in a worker thread (never on the event loop)."""
    while True:
        # Shielded: on shutdown the pass sees `stop` and ends after its current batch, and
        # the store is closed only after that.
        work = asyncio.ensure_future(asyncio.to_thread(prune, store, policy, stop=stop))
        try:
            pruned = await asyncio.shield(work)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await work
            raise
        except Exception as exc:  # noqa: BLE001 - the database may be away; the next pass tries again
            totals.failures += 1
            log.warning("retention pass failed: %s", one_line(exc))
        else:
            totals.record(pruned, at=time.time())
            if pruned.exchanges:
                log.info("retention: %s [%s]", pruned.summary(), policy.describe())
        await asyncio.sleep(interval)


PAGES = {
    "/": "index.html",
    "/services": "services.html",
    "/services/{name}": "service.html",
    "/traces": "traces.html",
    "/traces/{trace_id}": "trace.html",
}


def _page(file: Path) -> Callable[[], Awaitable[FileResponse]]:
    async def page() -> FileResponse:
        return FileResponse(file, media_type="text/html")

    return page


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return SafeJSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # One readable sentence in `message`; FastAPI's usual list stays in `detail` for tools.
        errors = exc.errors()
        parts = []
        for error in errors:
            loc = [str(p) for p in error.get("loc", ()) if p not in ("query", "path", "body")]
            parts.append(f"{'.'.join(loc) or 'request'}: {error.get('msg', 'invalid')}")
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors
        ]
        return SafeJSONResponse({"detail": detail, "message": "; ".join(parts)}, status_code=422)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return SafeJSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Unavailable)
    async def database_down(request: Request, exc: Unavailable) -> JSONResponse:
        log.warning("database unavailable on %s: %s", request.url.path, exc)
        return SafeJSONResponse({"detail": f"database unavailable: {exc}"[:500]}, status_code=503)

    @app.exception_handler(DatabaseError)
    async def database_error(request: Request, exc: DatabaseError) -> JSONResponse:
        log.error("database error on %s: %s", request.url.path, exc, exc_info=exc)  # a bug: keep the traceback
        return SafeJSONResponse({"detail": f"database error: {exc}"[:500]}, status_code=500)


def _document_invalid_requests(app: FastAPI) -> None:
    """Every 422 in /api/openapi.json is documented as Invalid, the shape the handlers above give
    it: FastAPI's default (a list in `detail`) misses the routes' own refusals (a string), and a
    route's own 422 model misses the validation errors; a plain-text route's, the JSON type."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = FastAPI.openapi(app)
            invalid = Invalid.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = document["components"]["schemas"]
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            schemas.update(invalid.pop("$defs"), Invalid=invalid)
            for operations in document["paths"].values():
                for operation in operations.values():
                    if "422" in operation["responses"]:
                        content = {"application/json": {"schema": {"$ref": "#/components/schemas/Invalid"}}}
                        operation["responses"]["422"]["content"] = content
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


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
