"""Fault rules (issue 17): POST /api/faults, GET /api/faults, DELETE /api/faults/{id},
DELETE /api/faults (clear, optionally one service's).

Writes follow the inspector's rules (JSON, its token when one is set). The checks are
storage.pure.faults.check_rule's, so the API, the CLI and passageway.toml accept the same rules;
a refusal is a 422 whose message starts with the field at fault. Rows live in storage.faults;
the proxies of the rule's realm pick a new rule up within about a second (proxy.faults)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from storage import faults
from storage.pure.faults import check_rule, parse_for

from ..deps import StoreDep
from ..errors import NotFound

router = APIRouter(prefix="/api/faults", tags=["faults"])


class FaultIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    service: Annotated[str, Field(max_length=63, description="The service whose requests the rule touches.")]
    realm: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="The realm whose proxies apply it; absent or empty for the proxies without a realm."
    )
    method: Annotated[str, Field(max_length=20)] | None = Field(None, description="Only requests of this method.")
    path: Annotated[str, Field(max_length=500)] | None = Field(
        None, description="Only requests whose path matches this template or glob: /orders/{id}, /orders/*."
    )
    header: Annotated[str, Field(max_length=500)] | None = Field(
        None, description="Only requests carrying this header: NAME=VALUE (name in any case, value exact)."
    )
    delay_ms: float | None = Field(None, description="Added latency, in milliseconds (the low end of a range).")
    delay_max_ms: float | None = Field(None, description="The high end of a uniformly random delay, in milliseconds.")
    status: int | None = Field(None, description="Answer with this status instead of forwarding (100-599).")
    reset: bool = Field(False, description="Close the client's connection without an answer.")
    stall: bool = Field(False, description="Send the response's headers, then no body; closed after at most 30 s.")
    rate: float = Field(100.0, description="Percentage of the matching requests the rule touches (0-100).")
    starts_at: dt.datetime | None = Field(None, description="When it starts (ISO 8601 with offset); default now.")
    expires_at: dt.datetime | None = Field(None, description="When it ends (ISO 8601 with offset), at most 7 days ahead.")
    lasts: Annotated[str, Field(max_length=20)] | None = Field(
        None, alias="for", description="How long it lasts instead of expires_at: 90s, 10m, 2h, 1d (default 10m)."
    )
    note: Annotated[str, Field(max_length=500)] | None = None


@router.post("", status_code=201, summary="Add a fault rule")
async def post_fault(store: StoreDep, body: FaultIn) -> Any:
    now = dt.datetime.now(dt.UTC)
    fields = body.model_dump(exclude={"lasts", "rate"})
    rule = check_rule(**fields, rate_percent=body.rate, lasts=parse_for(body.lasts) if body.lasts else None, now=now)
    stored = await run_in_threadpool(faults.create_rule, store, rule, now=now)
    return stored.to_json(now)


@router.get("", summary="Every fault rule, newest first, with its state (active, upcoming, expired)")
async def list_faults(
    store: StoreDep,
    realm: Annotated[str | None, Query(max_length=200, description="Only this realm (empty: no realm)")] = None,
    state: Annotated[str | None, Query(pattern="^(active|upcoming|expired)$", description="Only rules in this state")] = None,
) -> Any:
    now = dt.datetime.now(dt.UTC)
    found = await run_in_threadpool(lambda: faults.list_rules(store, realm=realm))
    rules = [rule.to_json(now) for rule in found]
    return {"faults": [rule for rule in rules if state is None or rule["state"] == state]}


@router.delete("/{rule_id}", summary="Remove a fault rule")
async def delete_fault(store: StoreDep, rule_id: Annotated[int, Path(ge=1, le=2**31 - 1, description="The rule's id.")]) -> Any:
    if not await run_in_threadpool(faults.delete_rule, store, rule_id):
        raise NotFound(f"no fault rule #{rule_id}")
    return {"deleted": rule_id}


@router.delete("", summary="Remove every fault rule (of one service, of one realm)")
async def clear_faults(
    store: StoreDep,
    service: Annotated[str | None, Query(max_length=63, description="Only this service's rules")] = None,
    realm: Annotated[str | None, Query(max_length=200, description="Only this realm's rules (empty: no realm)")] = None,
) -> Any:
    removed = await run_in_threadpool(lambda: faults.clear_rules(store, service=service, realm=realm))
    return {"deleted": removed}
