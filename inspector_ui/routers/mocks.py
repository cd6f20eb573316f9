"""Simulations (issue 18 §3): a service answered from its recordings instead of forwarded.

GET /api/mocks (every simulation), GET/PUT/DELETE /api/services/{name}/mock, and
GET /api/services/{name}/mock/recordings.har (the recordings as HAR, redacted unless raw=true).

PUT takes JSON: {"query": SEARCH, "latency": bool, "passthrough": bool} simulates the service from
the exchanges the search finds (default: all of the service's, the newest 1000), or
{"har": {...a HAR log...}, ...} from a HAR document's entries. Writes follow the inspector's rules
(JSON, same origin, its token when one is set). `realm`: absent, the inspector's realm (--realm);
empty, no realm. The proxies of that realm pick a change up within a few seconds (proxy.mocks).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from storage import mocks
from storage.pure.har import har_text

from ..deps import SettingsDep, StoreDep
from ..errors import NotFound
from ..security import BODY_CSP

router = APIRouter(tags=["mocks"])

ServiceName = Annotated[str, Path(max_length=63, pattern=r"^[A-Za-z0-9_.-]+$", description="The service's name.")]
RealmParam = Annotated[
    str | None, Query(max_length=200, description="The realm (absent: the inspector's; empty: no realm).")
]


class MockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Annotated[str, Field(max_length=2000)] | None = Field(
        None, description="The recordings: the service's exchanges this search finds (default: all, the newest 1000)."
    )
    har: dict[str, Any] | None = Field(None, description="The recordings: a HAR log's entries, instead of a search.")
    latency: bool = Field(False, description="Answer after each recording's own duration.")
    passthrough: bool = Field(False, description="Forward a request no recording matches (default: a 404 naming the closest).")
    realm: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="The realm whose proxies simulate it (absent: the inspector's; empty: no realm)."
    )


def _realm(realm: str | None, settings: Any) -> str:
    return (settings.monitor_realm or "") if realm is None else realm


async def _stored(store: Any, name: str, realm: str) -> mocks.StoredSimulation:
    found = await run_in_threadpool(lambda: mocks.get_simulation(store, service=name, realm=realm))
    if found is None:
        raise NotFound(f"{name!r} is not simulated" + (f" in realm {realm!r}" if realm else ""))
    return found


@router.get("/api/mocks", summary="Every simulated service, by name")
async def list_mocks(store: StoreDep, realm: Annotated[str | None, Query(max_length=200, description="Only this realm (empty: no realm).")] = None) -> Any:
    found = await run_in_threadpool(lambda: mocks.list_simulations(store, realm=realm))
    return {"mocks": [simulation.to_json() for simulation in found]}


@router.get(
    "/api/services/{name}/mock",
    summary="Whether a service is simulated: its simulation, with how many recordings it answers from",
)
async def get_mock(store: StoreDep, settings: SettingsDep, name: ServiceName, realm: RealmParam = None) -> Any:
    """`simulated` false (and nothing else) when its requests are forwarded: a state, never a 404."""
    chosen = _realm(realm, settings)

    def read() -> dict[str, Any]:
        stored = mocks.get_simulation(store, service=name, realm=chosen)
        if stored is None:
            return {"service": name, "realm": chosen or None, "simulated": False}
        return {"simulated": True, **stored.to_json(), "recordings": len(mocks.load_recordings(store, stored.spec))}

    return await run_in_threadpool(read)


@router.put("/api/services/{name}/mock", summary="Simulate a service from its recordings (a search, or a HAR document)")
async def put_mock(store: StoreDep, settings: SettingsDep, name: ServiceName, body: MockIn) -> Any:
    spec = mocks.SimulationSpec(
        service=name, realm=_realm(body.realm, settings), query=body.query or None,
        har=None if body.har is None else json.dumps(body.har), latency=body.latency, passthrough=body.passthrough,
    )  # fmt: skip

    def put() -> dict[str, Any]:
        stored = mocks.put_simulation(store, spec, origin="api")  # Invalid -> 422 naming the problem
        return {"simulated": True, **stored.to_json(), "recordings": len(mocks.load_recordings(store, stored.spec))}

    return await run_in_threadpool(put)


@router.delete("/api/services/{name}/mock", summary="Stop simulating a service: its requests are forwarded again")
async def delete_mock(store: StoreDep, settings: SettingsDep, name: ServiceName, realm: RealmParam = None) -> Any:
    chosen = _realm(realm, settings)
    if not await run_in_threadpool(lambda: mocks.delete_simulation(store, service=name, realm=chosen)):
        raise NotFound(f"{name!r} is not simulated" + (f" in realm {chosen!r}" if chosen else ""))
    return {"deleted": name, "realm": chosen or None}


@router.get(
    "/api/services/{name}/mock/recordings.har",
    summary="A simulation's recordings as HAR 1.2 (redacted unless raw=true): commit it, then `up --mock NAME=FILE`",
)
async def export_mock(
    store: StoreDep,
    settings: SettingsDep,
    name: ServiceName,
    realm: RealmParam = None,
    raw: Annotated[bool, Query(description="Leave secrets in (default: redacted as share links are).")] = False,
) -> Any:
    stored = await _stored(store, name, _realm(realm, settings))
    rules = None if raw else settings.redaction_rules()
    log = await run_in_threadpool(
        lambda: mocks.export_recordings(store, stored, rules=rules, decode_limit=settings.max_decoded_body)
    )
    filename = f"{name}-recordings-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}{'-raw' if raw else ''}.har"
    return Response(
        har_text(log),
        media_type="application/json",
        headers={"content-disposition": f'attachment; filename="{filename}"', "content-security-policy": BODY_CSP},
    )
