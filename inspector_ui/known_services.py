"""Whether a name is a service here, for the routes about one service (routers/services.py's
/health, routers/service_stats.py's /stats): a name that is none answers 404 in one line, so
/services/NAME can say "unknown service" instead of drawing an empty dashboard. Here, not in a
router: routers do not import one another."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from storage.services import service_known

from .errors import NotFound
from .models import Problem
from .settings import InspectorSettings

__all__ = ["UNKNOWN_SERVICE", "require_service"]

UNKNOWN_SERVICE: dict[int | str, dict[str, Any]] = {
    404: {
        "model": Problem,
        "description": "No proxy registers this service, no instance of it registered itself, and none of its "
        "traffic or probes were stored.",
    }
}
"""The 404 as the routes document it (`responses=`)."""


async def require_service(store: Any, settings: InspectorSettings, name: str) -> None:
    """NotFound (404, one line) unless `name` is a service here: configured (the inspector's
    services, or any proxy's registry, stale or not: a service with no traffic yet is not
    unknown), self-registered (any instance, gone or not), or seen in stored traffic or probes
    (storage.services.service_known)."""
    if name in settings.replay_services:
        return
    if not await run_in_threadpool(lambda: service_known(store, service=name)):
        raise NotFound(f"unknown service {name!r}: no proxy serves it, none of it registered itself and no traffic of it was captured")
