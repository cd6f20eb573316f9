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
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from storage.maintenance import Maintenance
from storage.store import StorageError, open_store
from storage.surrogates import json_text

from .broadcast import Broadcaster
from .models import Invalid
from .replay import ReplayClients, ReplayRoutes
from .replay_jobs import ReplayJobs
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
            )
            if settings.maintenance
            else None
        )
        maintenance_task = (
            asyncio.create_task(app.state.maintenance.run(), name="passageway-maintenance")
            if app.state.maintenance is not None
            else None
        )
        try:
            yield
        finally:
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

    @app.exception_handler(StorageError)
    @app.exception_handler(DBAPIError)
    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log.warning("database error on %s: %s", request.url.path, first_line)
        return SafeJSONResponse({"detail": f"database unavailable: {first_line}"[:500]}, status_code=503)


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
