"""GET /api/services/{name}/openapi.json: the OpenAPI 3.1 document inferred from a service's
traffic (storage.api_shapes.inferred_openapi, from the summaries the maintenance role keeps).
A name that is no service here answers 404; a bad `since`/`until` 422."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from storage.api_shapes import inferred_openapi, parse_window

from ..deps import SettingsDep, StoreDep
from ..known_services import UNKNOWN_SERVICE, require_service
from ..models import Problem
from ..params import Blankable
from ..responses import SafeJSONResponse

router = APIRouter(tags=["services"])

Moment = Annotated[Annotated[str, Field(max_length=64)] | None, Blankable]


@router.get(
    "/api/services/{name:path}/openapi.json",
    response_class=SafeJSONResponse,
    responses={
        200: {"description": "An OpenAPI 3.1 document.", "content": {"application/json": {}}},
        **UNKNOWN_SERVICE,
        422: {"model": Problem, "description": "`since` or `until` is not valid."},
    },
    summary="The OpenAPI 3.1 document inferred from a service's observed exchanges",
)
async def service_openapi(
    store: StoreDep,
    settings: SettingsDep,
    name: Annotated[str, Path(max_length=200, description="Service name, as captured.")],
    realm: Annotated[
        Annotated[str, Field(max_length=200)] | None, Blankable, Query(description="Only this realm (default: every realm).")
    ] = None,
    since: Annotated[Moment, Query(description="From this long ago (7d, 12h) or an ISO 8601 time (default: all kept).")] = None,
    until: Annotated[Moment, Query(description="Up to this long ago (1d) or an ISO 8601 time (default: now).")] = None,
) -> Any:
    start, end = parse_window(since, until)
    await require_service(store, settings, name)
    document = await run_in_threadpool(
        functools.partial(inferred_openapi, store, name, realm=realm, since=start, until=end)
    )
    return SafeJSONResponse(document)
