"""Share links: POST/GET/DELETE /api/shares, and the read-only share page at /s/{token}.

The share page needs no login and no inspector token: the unguessable link is the
capability. It shows only the redacted snapshot taken at creation (storage.shares), with
Referrer-Policy: no-referrer (the token must not leak through a Referer), no caching, no
indexing, and nothing from another origin. Revoked or expired: 410, an unknown token: 404,
each with a page in the share page's look saying which (SHARE_GONE_PAGE).
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from storage.errors import Gone
from storage.pure.surrogates import json_text
from storage.shares import (
    create_share,
    list_shares,
    open_share,
    revoke_share,
    share_exists,
)

from ..deps import SettingsDep, StoreDep
from ..errors import NotFound
from ..params import RowId
from ..problems import problem
from ..shell import SHARE_PAGE

router = APIRouter(tags=["shares"])

SHARE_HEADERS = {
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-robots-tag": "noindex, nofollow",
}


class ShareRequest(BaseModel):
    """Exactly one of exchange_id, q (a search, frozen now) or trace_id."""

    model_config = ConfigDict(extra="forbid")

    exchange_id: RowId | None = None
    q: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    trace_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    expires_in_hours: Annotated[float, Field(gt=0, le=24 * 365)] = 24 * 7
    note: Annotated[str, Field(max_length=2000)] = ""

    @model_validator(mode="after")
    def _one_selector(self) -> ShareRequest:
        if sum(value is not None for value in (self.exchange_id, self.q, self.trace_id)) != 1:
            raise ValueError("give exactly one of exchange_id, q or trace_id")
        return self


@router.post("/api/shares", status_code=201, summary="Share an exchange, a search or a trace as a read-only link")
async def share(store: StoreDep, settings: SettingsDep, wanted: ShareRequest) -> Any:
    """The answer's `url` (/s/<token>) is shown once: only a hash of the token is kept."""
    if wanted.exchange_id is not None:
        kind, selector = "exchange", str(wanted.exchange_id)
    elif wanted.q is not None:
        kind, selector = "search", wanted.q
    else:
        kind, selector = "trace", str(wanted.trace_id)
    rules = settings.redaction_rules()
    created = await run_in_threadpool(
        lambda: create_share(
            store,
            kind=kind,
            selector=selector,
            note=wanted.note,
            ttl=dt.timedelta(hours=wanted.expires_in_hours),
            rules=rules,
            decode_limit=settings.max_decoded_body,
        )
    )
    return {**created.info, "url": f"/s/{created.token}"}


@router.get("/api/shares", summary="The live shares (neither expired nor revoked)")
async def shares(store: StoreDep) -> Any:
    return {"data": await run_in_threadpool(lambda: list_shares(store))}


@router.delete("/api/shares/{share_id}", summary="Revoke a share: its link answers 410 from now on")
async def revoke(store: StoreDep, share_id: RowId) -> Any:
    info = await run_in_threadpool(lambda: revoke_share(store, share_id=share_id))
    if info is None:
        raise NotFound(f"no share {share_id}")
    return info


@router.get("/s/{token}", include_in_schema=False)
async def share_page(store: StoreDep, token: str) -> Any:
    problem = await _check(store, token)
    if problem is not None:
        return problem
    return HTMLResponse(SHARE_PAGE.render(), headers=SHARE_HEADERS)


@router.get("/s/{token}/snapshot.json", include_in_schema=False)
async def share_snapshot(store: StoreDep, token: str) -> Any:
    try:
        snapshot = await run_in_threadpool(lambda: open_share(store, token=token))
    except Gone as gone:
        return problem(410, f"this link has been {gone}", headers=SHARE_HEADERS)
    if snapshot is None:
        return problem(404, "no such link", headers=SHARE_HEADERS)
    # Captured text may hold lone surrogates: escaped, or the snapshot would not encode.
    return Response(json_text(snapshot, separators=(",", ":")), media_type="application/json", headers=SHARE_HEADERS)


async def _check(store: Any, token: str) -> HTMLResponse | None:
    try:
        found = await run_in_threadpool(lambda: share_exists(store, token=token))
    except Gone as gone:
        return _gone_page(410, str(gone))
    if not found:
        return _gone_page(404, "unknown")
    return None


SHARE_GONE_PAGE = replace(SHARE_PAGE, markup="share_gone.html", title="Link not available · Passageway")
"""The share page's shell (its stylesheet, its script, which only binds the theme button there)
around what happened to the link."""

GONE_TEXTS = {
    "revoked": (
        "This link was revoked",
        "Whoever shared it withdrew it: what it showed cannot be read here any more.",
        "If you still need it, ask them for a new link.",
    ),
    "expired": (
        "This link has expired",
        "A share link lasts as long as whoever made it chose; this one's time is up.",
        "If you still need it, ask whoever sent it for a new link.",
    ),
    "unknown": (
        "Unknown link",
        "No share has this address. A link is long: check that it was copied whole (mail and chat programs sometimes cut it).",
        "A link that was never made, or was mistyped, looks like this too.",
    ),
}


def _gone_page(status: int, reason: str) -> HTMLResponse:
    title, what, then = GONE_TEXTS.get(reason, GONE_TEXTS["unknown"])
    page = SHARE_GONE_PAGE.render()
    for name, text in (("reason", reason), ("title", title), ("what", what), ("next", then)):
        page = page.replace(f"{{{name}}}", html.escape(text))  # this module's own words, escaped anyway
    page = page.replace("<title>Link not available", f"<title>{html.escape(title)}", 1)
    return HTMLResponse(page, status_code=status, headers=SHARE_HEADERS)
