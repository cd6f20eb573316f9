"""Contracts (issue 18 §2): GET/PUT/DELETE /api/services/{name}/contract, POST .../contract/accept
("accept current as contract"), GET /api/services/{name}/violations, GET /api/exchanges/{id}/violations
and GET /api/services/{name}/openapi/diff (the changelog of the inferred API, breaking changes marked).

A document sent with PUT is checked by openapi-spec-validator (storage.contracts.check_document);
an invalid one is a 422 naming the problem. Rows live in storage.contracts; the maintenance role
checks every new exchange of the service against the contract (the "contracts" job)."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from storage import contracts
from storage.api_shapes import parse_window
from storage.pure.openapi_diff import summary
from storage.traffic_stats import parse_since

from ..deps import SettingsDep, StoreDep
from ..errors import NotFound, Unprocessable
from ..known_services import UNKNOWN_SERVICE, require_service
from ..models import Problem
from ..params import Blankable, ExchangeId

router = APIRouter(tags=["contracts"])

Name = Annotated[str, Path(max_length=200, description="Service name, as captured.")]
Realm = Annotated[
    Annotated[str, Field(max_length=200)] | None,
    Blankable,
    Query(description="The realm whose contract (default: the exchanges without a realm)."),
]
Moment = Annotated[Annotated[str, Field(max_length=64)] | None, Blankable]
NO_CONTRACT = {404: {"model": Problem, "description": "The service has no contract (in that realm)."}}
INVALID = {422: {"model": Problem, "description": "Not a valid OpenAPI 3.0/3.1 document: the problem, in one line."}}


@router.get("/api/services/{name}/contract", responses=NO_CONTRACT, summary="A service's contract (OpenAPI document)")
async def get_contract(store: StoreDep, name: Name, realm: Realm = None) -> Any:
    stored = await run_in_threadpool(functools.partial(contracts.get_contract, store, service=name, realm=realm))
    if stored is None:
        raise NotFound(_none(name, realm))
    return stored.to_json()


@router.put(
    "/api/services/{name}/contract",
    responses=INVALID,
    summary="Set a service's contract: the body is an OpenAPI 3.0 or 3.1 document (JSON)",
)
async def put_contract(
    store: StoreDep,
    name: Name,
    document: Annotated[dict[str, Any], Body(description="The OpenAPI document.")],
    realm: Realm = None,
    label: Annotated[Annotated[str, Field(max_length=200)] | None, Blankable, Query(description="Where it came from, for people.")] = None,
) -> Any:
    checked = await run_in_threadpool(contracts.check_document, document)
    stored = await run_in_threadpool(functools.partial(
        contracts.set_contract, store, service=name, realm=realm, document=checked, origin="api", label=label,
    ))  # fmt: skip
    return stored.to_json(document=False)


@router.delete("/api/services/{name}/contract", responses=NO_CONTRACT, summary="Remove a service's contract")
async def delete_contract(store: StoreDep, name: Name, realm: Realm = None) -> Any:
    if not await run_in_threadpool(functools.partial(contracts.delete_contract, store, service=name, realm=realm)):
        raise NotFound(_none(name, realm))
    return {"deleted": name}


@router.post(
    "/api/services/{name}/contract/accept",
    responses={**UNKNOWN_SERVICE, 422: {"model": Problem, "description": "No traffic to infer a contract from."}},
    summary="Accept current as contract: freeze the document inferred from the last week of traffic",
)
async def accept_contract(store: StoreDep, settings: SettingsDep, name: Name, realm: Realm = None) -> Any:
    await require_service(store, settings, name)
    stored = await run_in_threadpool(functools.partial(contracts.accept_inferred, store, service=name, realm=realm))
    return stored.to_json(document=False)


@router.get(
    "/api/services/{name}/violations",
    summary="Contract violations of a service: counts per endpoint and rule, and the newest ones",
)
async def service_violations(
    store: StoreDep,
    name: Name,
    realm: Realm = None,
    since: Annotated[Annotated[str, Field(max_length=32)], Query(description="Counts over this long (15m, 24h, 7d).")] = "24h",
    limit: Annotated[int, Query(ge=1, le=500, description="How many of the newest violations.")] = 50,
) -> Any:
    try:
        start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=parse_since(since))
    except ValueError as e:
        raise Unprocessable(str(e)) from None

    def read() -> dict[str, Any]:
        stored = contracts.get_contract(store, service=name, realm=realm)
        return {
            "service": name,
            "realm": realm or None,
            "contract": stored.to_json(document=False) if stored is not None else None,
            "since": since,
            "counts": contracts.violation_counts(store, service=name, realm=realm, since=start),
            "newest": contracts.newest_violations(store, service=name, realm=realm, limit=limit),
        }

    return await run_in_threadpool(read)


@router.get(
    "/api/exchanges/{exchange_id}/violations",
    responses={404: {"model": Problem, "description": "No such exchange."}},
    summary="How one exchange broke its service's contract",
)
async def exchange_violations(store: StoreDep, exchange_id: ExchangeId) -> Any:
    found = await run_in_threadpool(functools.partial(contracts.exchange_violations, store, exchange_id=exchange_id))
    if found is None:
        raise NotFound(f"no exchange #{exchange_id}")
    return {"exchange_id": exchange_id, "violations": found}


@router.get(
    "/api/services/{name}/openapi/diff",
    responses={**UNKNOWN_SERVICE, 422: {"model": Problem, "description": "`since` or `until` is not valid."}},
    summary="The changelog of a service's inferred API between two moments, breaking changes marked",
)
async def openapi_diff(
    store: StoreDep,
    settings: SettingsDep,
    name: Name,
    since: Annotated[Moment, Query(description="The older moment: this long ago (30d) or ISO 8601 (default 30d).")] = None,
    until: Annotated[Moment, Query(description="The newer moment: this long ago (1d) or ISO 8601 (default: now).")] = None,
    window: Annotated[Annotated[str, Field(max_length=32)], Query(description="Traffic each side is inferred from: the window before its moment.")] = "7d",
    realm: Annotated[Annotated[str, Field(max_length=200)] | None, Blankable, Query(description="Only this realm (default: every realm).")] = None,
    contract: Annotated[bool, Query(description="Compare the service's contract with the API inferred over [since, until] instead.")] = False,
) -> Any:
    start, end = parse_window(since or "30d", until)
    try:
        length = dt.timedelta(seconds=parse_since(window))
    except ValueError:
        raise Unprocessable(f"window: expected a duration such as 7d or 24h, not {window!r}") from None
    await require_service(store, settings, name)
    assert start is not None
    changes = await run_in_threadpool(functools.partial(
        contracts.changelog, store, service=name, realm=realm, since=start, until=end, window=length, contract=contract,
    ))  # fmt: skip
    return {"service": name, "realm": realm, "since": since or "30d", "until": until, "window": window, **summary(changes)}


def _none(name: str, realm: str | None) -> str:
    return f"{name!r} has no contract" + (f" in realm {realm!r}" if realm else "")
