"""GET /api/diff?a=ID&b=ID: what changed between two exchanges (storage.comparison does the comparing)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from storage.comparison import DIFF_DECODE_LIMIT, compare_exchanges
from storage.pure.diff import DEFAULT_NOISE_HEADERS

from ..deps import SettingsDep, StoreDep
from ..params import RowId

router = APIRouter(prefix="/api", tags=["diff"])


def _names(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


@router.get("/diff", summary="Compare two exchanges")
async def diff(
    store: StoreDep,
    settings: SettingsDep,
    a: Annotated[RowId, Query(description="The old exchange (e.g. the original).")],
    b: Annotated[RowId, Query(description="The new exchange (e.g. its replay).")],
    ignore: Annotated[
        str | None,
        Query(max_length=4000, description="JSON keys (at any depth) or paths like `$.meta.ts` to ignore, comma-separated."),
    ] = None,
    noise: Annotated[
        str | None,
        Query(
            max_length=4000,
            description="Extra header names to treat as noise, comma-separated (added to the defaults: Date, "
            "Content-Length, X-Request-Id, traceparent, ...).",
        ),
    ] = None,
) -> Any:
    """Request line, status, headers (added / removed / changed, noise apart), bodies (JSON by path,
    text by line, binary by size and hash) and timing deltas."""
    return await run_in_threadpool(
        lambda: compare_exchanges(
            store,
            a,
            b,
            ignore=_names(ignore),
            noise=DEFAULT_NOISE_HEADERS | {name.lower() for name in _names(noise)},
            decode_limit=min(DIFF_DECODE_LIMIT, settings.max_decoded_body),
        )
    )
