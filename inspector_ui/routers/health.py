"""GET /api/health: 200 when the database answers, 503 when it does not."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from storage.queries import database_health

from ..deps import BroadcasterDep, StoreDep
from ..models import Health

router = APIRouter(prefix="/api/health", tags=["health"])


@router.get(
    "",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database cannot be reached."}},
    summary="Is the inspector able to read the store?",
)
async def health(store: StoreDep, broadcaster: BroadcasterDep) -> JSONResponse:
    database = await run_in_threadpool(database_health, store)
    ok = bool(database.get("ok"))
    body = Health.model_validate(
        {
            "status": "ok" if ok else "unavailable",
            "database": database,
            "stream": {"running": broadcaster.running, "clients": broadcaster.clients},
        }
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)
