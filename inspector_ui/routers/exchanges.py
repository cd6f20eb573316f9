"""GET /api/exchanges...: pages of summaries, one exchange's detail, its bodies and WebSocket messages."""

from __future__ import annotations

import functools
import mimetypes
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from storage.pending import pending_summaries
from storage.pure.decoding import DecodeError, decode_body
from storage.pure.search import parse_query
from storage.queries import (
    get_body,
    get_exchange,
    list_exchanges,
    list_websocket_messages,
)

from ..deps import SettingsDep, StoreDep
from ..errors import NotFound, Unprocessable
from ..models import (
    ExchangeDetail,
    ExchangePage,
    Problem,
    SearchProblem,
    WebSocketMessages,
)
from ..params import Blankable, ExchangeId, RowId
from ..security import BODY_CSP

router = APIRouter(prefix="/api/exchanges", tags=["exchanges"])

MAX_PAGE = 1000
NOT_FOUND = {404: {"model": Problem, "description": "No such exchange."}}


@router.get(
    "",
    response_model=ExchangePage,
    responses={400: {"model": SearchProblem, "description": "`q` is not a valid search."}},
    summary="List exchanges, newest first (or sorted by time, duration, size or status)",
)
async def list_(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 100,
    before: Annotated[
        RowId | None,
        Blankable,
        Query(description="Cursor: only exchanges with a smaller id (a page's `next`)."),
    ] = None,
    service: Annotated[
        Annotated[str, Field(max_length=200)] | None, Blankable, Query(description="Exact service name.")
    ] = None,
    method: Annotated[
        Annotated[str, Field(max_length=32, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")] | None,
        Blankable,
        Query(description="Exact HTTP method (case-sensitive, as sent)."),
    ] = None,
    status: Annotated[
        Annotated[int, Field(ge=100, le=599)] | None, Blankable, Query(description="Exact response status.")
    ] = None,
    q: Annotated[
        str | None,
        Blankable,
        Query(
            description='Search, e.g. `status:5xx service:identity "connection reset"` (see README, Search); '
            "at most 2000 characters."
        ),
    ] = None,
    sort: Annotated[
        Literal["time", "duration", "size", "status"],
        Query(
            description="Order by capture time (default), duration, response body size or status (a failed call "
            "without a response sorts above 599; a missing duration or size as -1); ties by id."
        ),
    ] = "time",
    order: Annotated[Literal["desc", "asc"], Query(description="Largest (newest) first, or smallest first.")] = "desc",
    cursor: Annotated[
        Annotated[str, Field(max_length=64)] | None,
        Blankable,
        Query(description="Any order but time/desc: where to continue (the previous page's `next`)."),
    ] = None,
) -> Any:
    query = parse_query(q) if q is not None else None
    page = await run_in_threadpool(
        functools.partial(
            list_exchanges,
            store,
            limit=limit,
            before=before,
            service=service,
            method=method,
            status=status,
            q=query,
            sort=sort,
            order=order,
            cursor=cursor,
        )
    )
    if before is None and cursor is None and status is None and (sort, order) == ("time", "desc"):
        # The first page of the live (newest-first) order starts with the calls in progress.
        pending = await run_in_threadpool(
            functools.partial(pending_summaries, store, query=query, service=service, method=method)
        )
        return {"data": pending + page.data, "next": page.next}
    return {"data": page.data, "next": page.next}


@router.get("/{exchange_id}", response_model=ExchangeDetail, responses=NOT_FOUND, summary="One exchange")
async def detail(store: StoreDep, exchange_id: ExchangeId) -> Any:
    exchange = await run_in_threadpool(get_exchange, store, exchange_id=exchange_id)
    if exchange is None:
        raise NotFound(f"exchange {exchange_id} not found")
    return exchange


@router.get(
    "/{exchange_id}/websocket",
    response_model=WebSocketMessages,
    responses=NOT_FOUND,
    summary="Messages of a captured WebSocket connection",
)
async def websocket_messages(store: StoreDep, exchange_id: ExchangeId) -> Any:
    messages = await run_in_threadpool(list_websocket_messages, store, exchange_id=exchange_id)
    if messages is None:
        raise NotFound(f"exchange {exchange_id} not found")
    return {"data": messages}


BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": (
            "The body bytes as captured (still Content-Encoded unless `decoded=true`), always as an "
            "octet-stream attachment. Headers: X-Passageway-Truncated (true|false), "
            "X-Passageway-Decoded, X-Passageway-Content-Encoding, X-Passageway-Content-Type, "
            "X-Passageway-Body-Size (bytes on the wire), X-Passageway-Sha256 (of the stored bytes)."
        ),
    },
    404: {"model": Problem, "description": "No such exchange, or it has no such body."},
    422: {"model": Problem, "description": "`decoded=true` but the Content-Encoding cannot be undone."},
}


@router.get(
    "/{exchange_id}/{side}/body",
    response_class=Response,
    responses=BODY_RESPONSES,
    summary="Download a request or response body",
)
async def body(
    store: StoreDep,
    settings: SettingsDep,
    exchange_id: ExchangeId,
    side: Literal["request", "response"],
    decoded: Annotated[bool, Query(description="Undo Content-Encoding (partially, for a truncated body).")] = False,
) -> Response:
    stored = await run_in_threadpool(get_body, store, exchange_id=exchange_id, side=side)
    if stored is None:
        exists = await run_in_threadpool(get_exchange, store, exchange_id=exchange_id)
        if exists is None:
            raise NotFound(f"exchange {exchange_id} not found")
        raise NotFound(f"exchange {exchange_id} has no {side} body")
    data = stored.data
    if decoded and stored.encoding:
        try:
            data = await run_in_threadpool(
                functools.partial(
                    decode_body,
                    data,
                    stored.encoding,
                    partial=stored.truncated,
                    limit=settings.max_decoded_body,
                )
            )
        except DecodeError as exc:
            raise Unprocessable(f"cannot decode the {side} body ({stored.encoding}): {exc}") from None
    filename = _filename(exchange_id, side, stored.content_type, None if decoded else stored.encoding)
    headers = {
        # The captured Content-Type is never used: the body is hostile and must not render.
        "content-disposition": f'attachment; filename="{filename}"',
        "content-security-policy": BODY_CSP,
        "x-passageway-truncated": "true" if stored.truncated else "false",
        "x-passageway-decoded": "true" if decoded and stored.encoding else "false",
        "x-passageway-body-size": str(stored.size),
        "x-passageway-sha256": stored.sha256,
    }
    if stored.encoding:
        headers["x-passageway-content-encoding"] = _header_safe(stored.encoding)
    if stored.content_type:
        headers["x-passageway-content-type"] = _header_safe(stored.content_type)
    return Response(content=data, media_type="application/octet-stream", headers=headers)


_ENCODING_SUFFIX = {"gzip": ".gz", "x-gzip": ".gz", "br": ".br", "zstd": ".zst", "deflate": ".zz"}
_UNSAFE = re.compile(r"[^\x20-\x7e]")


def _filename(exchange_id: int, side: str, content_type: str | None, encoding: str | None) -> str:
    """exchange-42-response.json(.gz): built only from our own ids and a fixed table, never captured text."""
    extension = ".bin"
    if content_type:
        guessed = mimetypes.guess_extension(content_type.split(";", 1)[0].strip().lower(), strict=False)
        if guessed and re.fullmatch(r"\.[a-z0-9]{1,8}", guessed):
            extension = guessed
    suffix = ""
    if encoding:
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip() and c.strip().lower() != "identity"]
        suffix = "".join(_ENCODING_SUFFIX.get(c, ".enc") for c in codings)
    return f"exchange-{exchange_id}-{side}{extension}{suffix}"


def _header_safe(value: str) -> str:
    """Captured text may hold control or non-ASCII characters that would break the header block."""
    return _UNSAFE.sub("?", value)[:500]
