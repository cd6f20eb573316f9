"""Traces: GET /api/traces (the recent ones, a page at a time) and GET /api/traces/{trace_id} (one, assembled into
its tree of calls). The pages /traces (traces.html) and /traces/{trace_id} (trace.html) show them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from storage.pure.search import QueryError, parse_query
from storage.traces import get_trace, list_traces

from ..deps import StoreDep
from ..errors import BadRequest, NotFound, Unprocessable
from ..params import Blankable, RowId
from ..trace_models import TraceDetail, TraceList

router = APIRouter(tags=["traces"])

TRACE_ID_MAX = 128
MAX_TRACE_EXCHANGES = 2000


@router.get(
    "/api/traces",
    response_model=TraceList,
    responses={400: {"description": "`since` is not a duration such as 15m, 1h or 7d, or a filter is not valid."}},
    summary="The newest traces, each with its root call, duration, services and errors; `next_before` pages back",
)
async def traces(
    store: StoreDep,
    since: Annotated[str, Query(description="How far back: a number and a unit (s, m, h, d, w), e.g. 1h.")] = "1h",
    service: Annotated[str | None, Query(max_length=200, description="Only traces that call or are called by it.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    min_calls: Annotated[
        int,
        Query(
            ge=1,
            le=10_000,
            description="Only traces with at least this many calls (replays kept in a trace not counted), e.g. 2.",
        ),
    ] = 1,
    failed: Annotated[
        bool, Query(description="Only traces with a failed call: an error (no response) or a 5xx.")
    ] = False,
    before: Annotated[
        RowId | None,
        Blankable,
        Query(
            description="Cursor: a page's `next_before`, to list the traces older than that page's "
            "(those whose newest exchange that counts has a smaller id)."
        ),
    ] = None,
) -> Any:
    try:
        (term,) = parse_query(f"since:{since.strip()}").terms
    except (QueryError, ValueError):
        raise BadRequest(f"since must be a number and a unit (s, m, h, d, w), e.g. 1h, not {since!r}") from None
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=int(term.value))
    return await run_in_threadpool(
        lambda: list_traces(
            store,
            since=cutoff,
            service=service or None,
            limit=limit,
            min_calls=min_calls,
            failed=failed,
            before=before,
        )
    )


@router.get(
    "/api/traces/{trace_id}",
    response_model=TraceDetail,
    responses={404: {"description": "No exchange carries this trace id."}},
    summary="One trace: its exchanges as a tree of calls, with timing, failures and who called whom",
)
async def trace(store: StoreDep, trace_id: str) -> Any:
    if not 1 <= len(trace_id) <= TRACE_ID_MAX or any(c.isspace() for c in trace_id):
        raise Unprocessable(f"not a trace id: {trace_id[:TRACE_ID_MAX]!r}")
    found = await run_in_threadpool(lambda: get_trace(store, trace_id=trace_id, limit=MAX_TRACE_EXCHANGES))
    if found is None:
        raise NotFound(f"no exchange has trace id {trace_id!r}")
    return found
