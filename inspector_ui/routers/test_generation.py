"""Tests made from traffic: GET /api/tests/new (the Hurl text, its suggested file name, the secrets
it needs and the values it captures) and GET /api/tests/new.hurl (the same text as a download),
from one exchange (`exchange=ID`) or a search's newest matches in capture order (`q=`, `limit=`).
The "Save as test" action of the exchange pane uses them (radar.from_store, radar.generate)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from radar.from_store import MAX_STEPS, exchange_details, suggested_filename, test_from_details
from storage.pure.search import parse_query

from ..deps import SettingsDep, StoreDep
from ..errors import BadRequest, NotFound, Unprocessable
from ..params import RowId
from ..security import BODY_CSP

router = APIRouter(prefix="/api/tests", tags=["tests"])


class NewTest(BaseModel):
    hurl: str = Field(description="The Hurl file: secrets are {{variables}}, never their captured values.")
    filename: str = Field(description="A suggested file name: <method>-<service>-<path>.hurl, or <service>-flow.hurl.")
    secrets: list[str] = Field(description="Variables standing for captured secrets: pass each with --secret NAME=VALUE.")
    captures: list[str] = Field(description="Variables the test captures from its own responses, in order.")


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Neither or both of exchange and q, or a search that does not parse."},
    404: {"description": "No such exchange, or nothing matches the search."},
    422: {"description": "An exchange that cannot be sent again: no response, or a request body cut at capture."},
}

ExchangeParam = Annotated[RowId | None, Query(description="A one-step test of this exchange.")]
SearchParam = Annotated[
    str | None, Query(max_length=2000, description="A multi-step test of this search's matches, chained.")
]
LimitParam = Annotated[int, Query(ge=1, le=MAX_STEPS, description="With q: its newest N matches.")]


async def _generate(store: Any, settings: Any, exchange: int | None, q: str | None, limit: int) -> NewTest:
    q = q if q and q.strip() else None  # a blank search is no search, as everywhere else
    if (exchange is None) == (q is None):
        raise BadRequest("give either exchange or q")
    if q is not None:
        parse_query(q)  # a QueryError is answered as every bad search is (400, with its position)

    def build() -> NewTest:
        try:
            details = exchange_details(store, exchange_id=exchange, query=q, limit=limit)
        except LookupError as e:
            raise NotFound(str(e)) from None
        try:
            generated = test_from_details(
                store, details, services=settings.replay_services, rules=settings.redaction_rules(),
                decode_limit=settings.max_decoded_body,
            )  # fmt: skip
        except ValueError as e:
            raise Unprocessable(str(e)) from None
        return NewTest(
            hurl=generated.text,
            filename=suggested_filename(details, search=q is not None),
            secrets=list(generated.secrets),
            captures=list(generated.captures),
        )

    return await run_in_threadpool(build)


@router.get("/new", response_model=NewTest, responses=_ERRORS, summary="A Hurl test made from captured traffic")
async def new_test(
    store: StoreDep, settings: SettingsDep, exchange: ExchangeParam = None, q: SearchParam = None, limit: LimitParam = 20
) -> Any:
    """From one exchange: its request (a service:// URL when it went through a service, secrets as
    {{variables}}), asserting its status, content type, JSON shape, echoed values and a duration
    budget (3 x the endpoint's p95 of the last 7 days, at least 200 ms). From a search: its newest
    `limit` matches in capture order, values that earlier responses produced captured and reused."""
    return await _generate(store, settings, exchange, q, limit)


@router.get(
    "/new.hurl",
    response_class=PlainTextResponse,
    responses=_ERRORS,
    summary="The same test as GET /api/tests/new, as a .hurl file to download",
)
async def new_test_file(
    store: StoreDep, settings: SettingsDep, exchange: ExchangeParam = None, q: SearchParam = None, limit: LimitParam = 20
) -> Any:
    made = await _generate(store, settings, exchange, q, limit)
    return PlainTextResponse(
        made.hurl,
        headers={"content-disposition": f'attachment; filename="{made.filename}"', "content-security-policy": BODY_CSP},
    )
