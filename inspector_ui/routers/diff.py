"""GET /api/diff?a=ID&b=ID: what changed between two exchanges (storage.diff does the comparing)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from storage.diff import DEFAULT_NOISE_HEADERS, DiffBody, diff_exchanges
from storage.queries import get_body, get_exchange

from ..deps import StoreDep
from ..params import RowId

router = APIRouter(prefix="/api", tags=["diff"])

DIFF_DECODE_LIMIT = 16 * 1024 * 1024
"""Decoded bytes of one body a diff compares at most (a decompression-bomb guard)."""


def _body(store: Any, exchange_id: int, side: str, limit: int) -> DiffBody | None:
    stored = get_body(store, exchange_id=exchange_id, side=side)
    if stored is None:
        return None
    data = stored.decoded(limit=limit)
    if data is None:
        data = stored.data  # compared as stored: size and hash still tell same from different
    return DiffBody(
        data=data, content_type=stored.content_type, truncated=stored.truncated, size=stored.size, sha256=stored.sha256
    )


def _load(store: Any, exchange_id: int, limit: int) -> tuple[dict, DiffBody | None, DiffBody | None]:
    exchange = get_exchange(store, exchange_id=exchange_id)
    if exchange is None:
        raise HTTPException(404, f"exchange {exchange_id} not found")
    return exchange, _body(store, exchange_id, "request", limit), _body(store, exchange_id, "response", limit)


def compare_exchanges(
    store: Any,
    a: int,
    b: int,
    *,
    ignore: list[str] | tuple[str, ...] = (),
    noise: frozenset[str] = DEFAULT_NOISE_HEADERS,
    decode_limit: int = DIFF_DECODE_LIMIT,
) -> dict:
    """storage.diff.diff_exchanges of two stored exchanges (blocking: call from a thread).
    HTTPException(404) when either is gone."""
    old, old_request, old_response = _load(store, a, decode_limit)
    new, new_request, new_response = _load(store, b, decode_limit)
    return diff_exchanges(
        old,
        new,
        a_request_body=old_request,
        a_response_body=old_response,
        b_request_body=new_request,
        b_response_body=new_response,
        ignore_keys=ignore,
        noise_headers=noise,
    )


def _names(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


@router.get("/diff", summary="Compare two exchanges")
async def diff(
    store: StoreDep,
    request: Request,
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
            decode_limit=min(DIFF_DECODE_LIMIT, request.app.state.settings.max_decoded_body),
        )
    )
