"""Traffic out: GET /api/har (HAR 1.2, redacted unless raw=true) and GET /api/exchanges/{id}/snippet
(the request as curl, HTTPie, Python httpx or JavaScript fetch)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from storage.exports import MAX_EXPORT, har_of, search_ids
from storage.outgoing import out_exchange
from storage.pure.har import har_text
from storage.pure.redaction import redact_outgoing
from storage.pure.search import parse_query
from storage.pure.snippets import (
    SnippetRequest,
    SnippetTarget,
    as_curl,
    as_fetch,
    as_httpie,
    as_python_httpx,
    snippet_target,
)
from storage.queries import get_body, get_exchange
from storage.search_sql import is_text_content_type
from storage.shares import redaction_key
from storage.traces import trace_exchange_ids

from ..deps import SettingsDep, StoreDep
from ..errors import NotFound, Unprocessable
from ..params import MAX_ROW_ID, ExchangeId, parse_row_ids
from ..security import BODY_CSP

router = APIRouter(prefix="/api", tags=["export"])

SNIPPETS = {"curl": as_curl, "httpie": as_httpie, "python": as_python_httpx, "fetch": as_fetch}


@router.get("/har", summary="Export exchanges as HAR 1.2 (redacted unless raw=true)")
async def har(
    store: StoreDep,
    settings: SettingsDep,
    q: Annotated[str | None, Query(description="A search: its matches (at most 10,000, the newest).")] = None,
    ids: Annotated[str | None, Query(description="Exchange ids, comma-separated.")] = None,
    trace: Annotated[str | None, Query(max_length=128, description="Every exchange of one trace.")] = None,
    raw: Annotated[bool, Query(description="Leave secrets in (default: redacted as share links are).")] = False,
) -> Any:
    """An attachment: import it in Chrome or Firefox DevTools, or `passageway import`."""
    q = q or None  # a blank search is no search, as everywhere else
    if sum(value is not None for value in (q, ids, trace)) > 1:
        raise Unprocessable("give at most one of q, ids or trace")
    if trace is not None and (not trace or any(c.isspace() or c == '"' for c in trace)):
        raise Unprocessable(f"bad trace id {trace!r}")
    try:
        wanted = parse_row_ids(ids) if ids is not None else None
    except ValueError:
        raise Unprocessable(f"ids must be comma-separated exchange ids (1 to {MAX_ROW_ID})") from None
    query = parse_query(q) if q else None
    rules = None if raw else settings.redaction_rules()

    def build() -> dict:
        if wanted is not None:
            chosen = wanted
        elif trace is not None:  # exactly this trace: the search's trace: is a prefix
            chosen, _ = trace_exchange_ids(store, trace_id=trace, limit=MAX_EXPORT)
        else:
            chosen = search_ids(store, query)
        return har_of(store, chosen, rules=rules, decode_limit=settings.max_decoded_body)

    log = await run_in_threadpool(build)
    name = f"passageway-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}{'-raw' if raw else ''}.har"
    return Response(
        har_text(log),
        media_type="application/json",
        headers={"content-disposition": f'attachment; filename="{name}"', "content-security-policy": BODY_CSP},
    )


@router.get(
    "/exchanges/{exchange_id}/snippet",
    response_class=PlainTextResponse,
    summary="The request as a curl, HTTPie, Python (httpx) or JavaScript (fetch) snippet",
)
async def snippet(
    store: StoreDep,
    settings: SettingsDep,
    exchange_id: ExchangeId,
    format: Annotated[Literal["curl", "httpie", "python", "fetch"], Query(description="Which tool.")] = "curl",  # noqa: A002
    redact: Annotated[bool, Query(description="Replace secrets by markers (for pasting elsewhere).")] = False,
    target: Annotated[
        Literal["gateway", "upstream"],
        Query(description="Send to the proxy's gateway (captured too) or straight to the upstream."),
    ] = "gateway",
) -> Any:
    """The request goes to the proxy's gateway (`http://gateway/<service>/path`), so a pasted
    command is captured too; with target=upstream, or when the gateway cannot carry it (its
    address unknown, not a configured service), to the captured URL, with a comment saying why.
    The X-Passageway-Snippet-Target response header says which (`gateway` or `upstream`), and
    X-Passageway-Snippet-Note why not the gateway. The body goes in decoded (its Content-Encoding
    header dropped); a binary body is read from a file the snippet names (download it with the
    body endpoint). With redact=true, the exchange is redacted as a share link is, and a body
    redaction cannot read (binary, an unknown charset) is left out with a comment saying why."""
    chosen: list[SnippetTarget] = []

    def where(url: str, service: str | None) -> SnippetTarget:
        found = snippet_target(
            url, service=service, services=settings.replay_services, gateway=settings.replay_gateway,
            via_gateway=target == "gateway",
        )  # fmt: skip
        chosen.append(found)
        return found

    def build() -> str:
        if redact:
            return redacted_snippet()
        exchange = get_exchange(store, exchange_id=exchange_id)
        if exchange is None:
            raise NotFound(f"exchange {exchange_id} not found")
        headers = [(name, value) for name, value in exchange["request_headers"]]
        body = None
        stored = get_body(store, exchange_id=exchange_id, side="request")
        if stored is not None:
            body = stored.decoded(limit=settings.max_decoded_body)
            if body is None:
                body = stored.data  # sent as stored, with its encoding header
            elif stored.encoding:
                headers = [(n, v) for n, v in headers if n.lower() != "content-encoding"]
        content_type = stored.content_type if stored else None
        sent_to = where(exchange["url"], exchange.get("service"))
        return SNIPPETS[format](
            SnippetRequest(
                method=exchange["method"], url=sent_to.url, headers=headers, body=body,
                body_is_text=_is_text(body, content_type), target_note=sent_to.note,
            )
        )  # fmt: skip

    def redacted_snippet() -> str:
        found = out_exchange(store, exchange_id, decode_limit=settings.max_decoded_body)
        if found is None:
            raise NotFound(f"exchange {exchange_id} not found")
        [exchange] = redact_outgoing([found[0]], settings.redaction_rules(), redaction_key(store))
        headers = [tuple(pair) for pair in exchange.detail["request_headers"]]
        body = exchange.request_body
        if body is not None and found[1]["request"] and found[1]["request"].encoding:
            headers = [(n, v) for n, v in headers if n.lower() != "content-encoding"]  # the body goes decoded
        sent_to = where(exchange.detail["url"], exchange.detail.get("service"))
        return SNIPPETS[format](
            SnippetRequest(
                method=exchange.detail["method"], url=sent_to.url, headers=headers,
                body=None if body is None else body.data,
                body_is_text=body is not None and _is_text(body.data, body.content_type),
                body_note=None if body is None else body.note, target_note=sent_to.note,
            )
        )  # fmt: skip

    text = await run_in_threadpool(build)
    [sent_to] = chosen
    headers = {"x-passageway-snippet-target": "gateway" if sent_to.via_gateway else "upstream"}
    if sent_to.note:
        headers["x-passageway-snippet-note"] = sent_to.note
    return PlainTextResponse(text, headers=headers)


def _is_text(body: bytes | None, content_type: str | None) -> bool:
    """Whether a snippet may write the body as text: a text type, and UTF-8."""
    if body is None or not is_text_content_type(content_type):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
