"""Contracts in the store (issue 18 §2): each service's OpenAPI document, and the incremental
check of its new exchanges against it.

A contract comes from a team's file (`[services.NAME] contract = "openapi.yaml"`, origin
"file", written when an inspector starts), from the API or the CLI ("api"), or is the inferred
document frozen ("inferred", `accept current as contract`). One per service and realm (realm ""
for none); check_document refuses what openapi-spec-validator refuses, in one line.

check_new, the maintenance role's "contracts" job, reads the exchanges past the job's cursor
(job_cursors "contracts") of the services that have a contract in their realm, checks each one
(storage.pure.contract_check; bodies decoded from the bodies table) and inserts the violations
with the cursor's advance in one transaction, so each exchange is checked exactly once however
many maintenance roles share the database:
- Both: a run reads only up to the settled position (storage.job_cursors.settled_position):
  on PostgreSQL concurrent writers commit ids out of order, and a cursor must not pass an id
  that may still be committed.
- PostgreSQL: the cursor row is read FOR UPDATE (a second runner waits, then reads the advanced
  cursor).
- SQLite: one writer at a time commits ids in order; the reads and the checks run before the
  write lock, and the cursor moves by compare-and-set under it (UPDATE .. WHERE position = the
  one read), so a runner that lost the race writes nothing.
Compiled contracts are cached by (id, created_at): one compilation per contract version.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.errors import Invalid, NotFound
from storage.job_cursors import settled_position
from storage.models import Body, Contract, ContractViolation, Exchange, JobCursor
from storage.pure.contract_check import MAX_BODY_BYTES, ContractError, compile_contract
from storage.pure.contract_check import Contract as CompiledContract
from storage.pure.contract_check import Exchange as CheckedExchange
from storage.pure.decoding import DecodeError, decode_body
from storage.pure.endpoints import template_path
from storage.pure.openapi_diff import Change, diff_documents
from storage.queries import iso_utc, unpack_body
from storage.store import Store

__all__ = [
    "CHECK_CHUNK",
    "CURSOR",
    "ORIGINS",
    "Checked",
    "DIFF_WINDOW",
    "InvalidContract",
    "StoredContract",
    "accept_inferred",
    "changelog",
    "check_document",
    "check_new",
    "delete_contract",
    "exchange_violations",
    "get_contract",
    "newest_violations",
    "set_contract",
    "sync_config_contracts",
    "violation_counts",
    "violation_totals",
]

log = logging.getLogger(__name__)

CURSOR = "contracts"
"""The job's row in job_cursors."""
CHECK_CHUNK = 200
"""Exchanges per check_new transaction."""
ORIGINS = ("file", "api", "inferred")
RETRY_UNSETTLED = 0.5
"""Seconds before the next run when exchanges past the cursor wait for older transactions (PostgreSQL)."""
_CACHE_SIZE = 64
DIFF_WINDOW = dt.timedelta(days=7)
"""The traffic each side of a windowed diff is inferred from: the week before its moment."""
ACCEPT_WINDOW = dt.timedelta(days=7)
""""Accept current as contract": the API observed over this long."""


class InvalidContract(Invalid):
    """The document is not a valid OpenAPI 3.0/3.1 document; the message is one line."""


@dataclass(frozen=True, slots=True)
class StoredContract:
    id: int
    service: str
    realm: str
    origin: str
    label: str | None
    document: dict[str, Any]
    created_at: dt.datetime

    def to_json(self, *, document: bool = True) -> dict[str, Any]:
        out = {
            "service": self.service, "realm": self.realm or None, "origin": self.origin, "label": self.label,
            "created_at": iso_utc(self.created_at),
            "operations": sum(1 for _ in _compiled(self).operations()) if _compiled(self) else 0,
        }  # fmt: skip
        if document:
            out["document"] = self.document
        return out


@dataclass(frozen=True, slots=True)
class Checked:
    """What one check_new run did."""

    exchanges: int
    """Exchanges of contracted services checked."""
    violations: int
    position: int
    """The cursor after the run."""
    behind: bool = False
    """Exchanges past the cursor wait for older transactions to end (PostgreSQL): run again soon."""
    more: bool = False
    """The run stopped at `limit`: run again now."""


def check_document(document: Any) -> dict[str, Any]:
    """The document, when it is a valid OpenAPI 3.0/3.1 document this check can use; else
    InvalidContract naming the problem (and where) in one line."""
    from openapi_spec_validator import validate

    if not isinstance(document, Mapping):
        raise InvalidContract("an OpenAPI document is a JSON object")
    try:
        compile_contract(document)
    except ContractError as e:
        raise InvalidContract(str(e)) from None
    try:
        validate(dict(document))
    except Exception as e:  # noqa: BLE001 - the validator raises several unrelated types
        message = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        where = "/".join(str(part) for part in getattr(e, "absolute_path", ()) or ())
        first = " ".join(str(message).split())[:200]
        raise InvalidContract(f"invalid OpenAPI document: {first}" + (f" (at {where})" if where else "")) from None
    return dict(document)


# --- the contracts table -------------------------------------------------------------------------


def set_contract(
    store: Store, *, service: str, realm: str | None = None, document: Mapping[str, Any], origin: str,
    label: str | None = None, now: dt.datetime | None = None,
) -> StoredContract:  # fmt: skip
    """Store (replace) the service's contract. The document must have passed check_document."""
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}")
    realm = realm or ""
    now = now or dt.datetime.now(dt.UTC)
    with store.begin() as conn:
        conn.execute(delete(Contract).where(Contract.service == service, Contract.realm == realm))
        conn.execute(insert(Contract).values(service=service, realm=realm, origin=origin, label=label,
                                             document=dict(document), created_at=now))  # fmt: skip
    stored = get_contract(store, service=service, realm=realm)
    assert stored is not None
    return stored


def get_contract(store: Store, *, service: str, realm: str | None = None) -> StoredContract | None:
    with store.connect() as conn:
        row = conn.execute(
            select(*_CONTRACT_COLUMNS).where(Contract.service == service, Contract.realm == (realm or ""))
        ).one_or_none()
        return _stored(row) if row is not None else None


def delete_contract(store: Store, *, service: str, realm: str | None = None) -> bool:
    """Remove the contract (its violations stay, as what was found while it held); False when none."""
    with store.begin() as conn:
        result = conn.execute(delete(Contract).where(Contract.service == service, Contract.realm == (realm or "")))
        return result.rowcount > 0


def sync_config_contracts(store: Store, contracts: Sequence[tuple[str, str | None, dict[str, Any], str]]) -> None:
    """The config file's contracts (service, realm, document, label) into the store, origin "file":
    each replaces the service's contract when its document or label differs."""
    for service, realm, document, label in contracts:
        current = get_contract(store, service=service, realm=realm)
        if current is None or current.document != document or current.label != label or current.origin != "file":
            set_contract(store, service=service, realm=realm, document=document, origin="file", label=label)


_CONTRACT_COLUMNS = tuple(Contract.__table__.columns)
_VIOLATION_COLUMNS = tuple(ContractViolation.__table__.columns)


def accept_inferred(
    store: Store, *, service: str, realm: str | None = None, window: dt.timedelta = ACCEPT_WINDOW,
    now: dt.datetime | None = None,
) -> StoredContract:  # fmt: skip
    """"Accept current as contract": the document inferred from the service's last `window` of
    traffic (storage.api_shapes, examples redacted) frozen as its contract, origin "inferred".
    InvalidContract when there is nothing to freeze."""
    from storage.api_shapes import inferred_openapi

    now = now or dt.datetime.now(dt.UTC)
    # The contract holds for the exchanges of `realm` ("": those without one), so it is inferred from them alone.
    document = inferred_openapi(store, service, realm=realm or "", since=now - window, until=now)
    if not document.get("paths"):
        raise InvalidContract(f"no exchange of {service!r} in the last {_days(window)} to infer a contract from")
    label = f"inferred {now:%Y-%m-%d} (last {_days(window)})"
    return set_contract(store, service=service, realm=realm, document=check_document(document), origin="inferred",
                        label=label, now=now)  # fmt: skip


def changelog(
    store: Store, *, service: str, realm: str | None = None, since: dt.datetime, until: dt.datetime | None = None,
    window: dt.timedelta = DIFF_WINDOW, contract: bool = False, now: dt.datetime | None = None,
) -> list[Change]:  # fmt: skip
    """How the service's inferred API changed from `since` to `until` (default now): the document
    inferred from the `window` before `since` against the one from the `window` before `until`.
    contract=True: the contract of `realm` (None: of none) against the document inferred from that
    realm's exchanges over [since, until] instead (NotFound without one). Invalid for an empty window.
    Otherwise `realm` None merges every realm's traffic."""
    from storage.api_shapes import inferred_openapi

    until = until or now or dt.datetime.now(dt.UTC)
    if since >= until:
        raise Invalid(f"since ({iso_utc(since)}) is not before until ({iso_utc(until)})")
    if contract:
        stored = get_contract(store, service=service, realm=realm)
        if stored is None:
            raise NotFound(f"{service!r} has no contract" + (f" in realm {realm!r}" if realm else ""))
        older = stored.document
        newer = inferred_openapi(store, service, realm=realm or "", since=since, until=until)
    else:
        older = inferred_openapi(store, service, realm=realm, since=since - window, until=since)
        newer = inferred_openapi(store, service, realm=realm, since=until - window, until=until)
    try:
        return diff_documents(older, newer)
    except ContractError as e:
        raise InvalidContract(str(e)) from None


def _days(window: dt.timedelta) -> str:
    return f"{window.days}d" if window.days and not window.seconds else f"{int(window.total_seconds())}s"


def _stored(row: Any) -> StoredContract:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=dt.UTC)
    return StoredContract(row.id, row.service, row.realm, row.origin, row.label, dict(row.document), created)


_compiled_cache: dict[tuple[int, dt.datetime], CompiledContract | None] = {}
_failed_checks: set[int] = set()
"""Compiled contracts whose check raised once (logged once each)."""
_cache_lock = threading.Lock()
_MISSING = object()


def _compiled(contract: StoredContract) -> CompiledContract | None:
    """The contract compiled (once per version); None when its document cannot be checked against."""
    key = (contract.id, contract.created_at)
    with _cache_lock:
        cached = _compiled_cache.get(key, _MISSING)
    if cached is not _MISSING:
        return cached  # type: ignore[return-value]
    try:
        compiled: CompiledContract | None = compile_contract(contract.document)
    except ContractError as e:
        log.warning("contract of %s cannot be checked against: %s", contract.service, e)
        compiled = None
    with _cache_lock:
        if len(_compiled_cache) >= _CACHE_SIZE:
            _compiled_cache.pop(next(iter(_compiled_cache)))
        _compiled_cache[key] = compiled
    return compiled


# --- the check job -------------------------------------------------------------------------------


_COLUMNS = (
    Exchange.id, Exchange.service, Exchange.realm, Exchange.method, Exchange.path, Exchange.query, Exchange.status,
    Exchange.captured_at,
    Exchange.request_content_type, Exchange.request_body_sha256, Exchange.request_body_size,
    Exchange.request_body_truncated, Exchange.request_body_encoding,
    Exchange.response_content_type, Exchange.response_body_sha256, Exchange.response_body_size,
    Exchange.response_body_truncated, Exchange.response_body_encoding,
)  # fmt: skip


def check_new(store: Store, *, limit: int = CHECK_CHUNK) -> Checked:
    """Check up to `limit` exchanges past the cursor; see the module's docstring."""
    contracts = _current_contracts(store)
    settled = settled_position(store)
    postgres = store.dialect == "postgresql"
    with store.begin() as conn:
        if postgres:
            # First run on this database: start from now, not from all of history.
            conn.exec_driver_sql(
                "INSERT INTO job_cursors (job, position, updated_at) SELECT %s, coalesce(max(id), 0), now() "
                "FROM exchanges ON CONFLICT (job) DO NOTHING",
                (CURSOR,),
            )
            position = conn.exec_driver_sql(
                "SELECT position FROM job_cursors WHERE job = %s FOR UPDATE", (CURSOR,)
            ).scalar_one()
        else:
            position = conn.execute(select(JobCursor.position).where(JobCursor.job == CURSOR)).scalar()
        newest = conn.execute(select(func.max(Exchange.id))).scalar() or 0
        # Up to the settled position only (storage.job_cursors): lower ids may still be uncommitted.
        until = min(newest, settled) if settled is not None else (position or 0)
        if position is None:  # first run (see PostgreSQL's above); a runner that lost the race inserts nothing
            conn.execute(
                sqlite_insert(JobCursor).values(job=CURSOR, position=newest, updated_at=dt.datetime.now(dt.UTC))
                .on_conflict_do_nothing()
            )  # fmt: skip
            return Checked(0, 0, newest)
        if until <= position:
            return Checked(0, 0, position, behind=newest > position)
        services = sorted({service for service, _ in contracts})
        rows = []
        if services:
            rows = conn.execute(
                select(*_COLUMNS)
                .where(Exchange.id > position, Exchange.id <= until, Exchange.service.in_(services))
                .order_by(Exchange.id)
                .limit(limit)
            ).all()
        reached = rows[-1].id if len(rows) == limit else until
        checked, found = _check_rows(conn, rows, contracts)
        moved = conn.execute(
            update(JobCursor)
            .where(JobCursor.job == CURSOR, JobCursor.position == position)
            .values(position=reached, updated_at=dt.datetime.now(dt.UTC))
        ).rowcount
        if moved != 1:
            conn.rollback()  # SQLite: another runner checked these meanwhile
            return Checked(0, 0, position)
        if found:
            conn.execute(insert(ContractViolation), found)
    return Checked(checked, len(found), reached, behind=newest > reached, more=len(rows) == limit)


def _current_contracts(store: Store) -> dict[tuple[str, str], CompiledContract | None]:
    """(service, realm) -> its compiled contract; a document is read only when its version is not
    compiled yet (a run reads the small columns only)."""
    with store.connect() as conn:
        keys = conn.execute(select(Contract.id, Contract.service, Contract.realm, Contract.created_at)).all()
    out = {}
    for id_, service, realm, created_at in keys:
        created = created_at if created_at.tzinfo else created_at.replace(tzinfo=dt.UTC)
        with _cache_lock:
            compiled = _compiled_cache.get((id_, created), _MISSING)
        if compiled is _MISSING:
            stored = get_contract(store, service=service, realm=realm)
            if stored is None or stored.id != id_:
                continue  # replaced meanwhile: the next run sees the new one
            compiled = _compiled(stored)
        out[(service, realm)] = compiled
    return out


def _check_rows(
    conn: Connection, rows: Sequence[Any], contracts: Mapping[tuple[str, str], CompiledContract | None]
) -> tuple[int, list[dict]]:
    candidates = []
    for row in rows:
        compiled = contracts.get((row.service, row.realm or ""))
        if compiled is not None:
            candidates.append((row, compiled))
    bodies = _bodies(conn, [row for row, _ in candidates])
    found: list[dict] = []
    for row, compiled in candidates:
        exchange = CheckedExchange(
            method=row.method, path=row.path, query=row.query or "", status=row.status,
            request_content_type=row.request_content_type, response_content_type=row.response_content_type,
            request_body=_body(bodies, row.request_body_sha256, row.request_body_size, row.request_body_truncated,
                               row.request_body_encoding),
            response_body=_body(bodies, row.response_body_sha256, row.response_body_size, row.response_body_truncated,
                                row.response_body_encoding),
        )  # fmt: skip
        try:
            violations = compiled.check(exchange)
        except Exception:  # noqa: BLE001 - a bug or a broken document must not stop the cursor on this exchange
            if id(compiled) not in _failed_checks:
                _failed_checks.add(id(compiled))
                log.exception("contract check of exchange %d (%s) failed; its exchanges are skipped", row.id, row.service)
            continue
        if not violations:
            continue
        template = compiled.template_for(row.method, row.path) or template_path(row.path)
        for violation in violations:
            found.append({
                "exchange_id": row.id, "realm": row.realm or "", "service": row.service, "method": row.method.upper(),
                "template": template, "rule": violation.rule, "side": violation.side,
                "json_path": violation.json_path, "message": violation.message, "captured_at": row.captured_at,
            })  # fmt: skip
    return len(candidates), found


def _bodies(conn: Connection, rows: Sequence[Any]) -> dict[str, bytes]:
    """The stored bytes of the JSON bodies worth checking, by SHA-256."""
    shas = set()
    for row in rows:
        for sha, content_type, truncated in (
            (row.request_body_sha256, row.request_content_type, row.request_body_truncated),
            (row.response_body_sha256, row.response_content_type, row.response_body_truncated),
        ):
            if sha is not None and not truncated and "json" in (content_type or "").lower():
                shas.add(sha)
    if not shas:
        return {}
    stored = conn.execute(
        select(Body.sha256, Body.compression, Body.data).where(Body.sha256.in_(sorted(shas)),
                                                                func.length(Body.data) <= MAX_BODY_BYTES)  # fmt: skip
    )
    return {sha: unpack_body(compression, data) for sha, compression, data in stored}


def _body(bodies: Mapping[str, bytes], sha: str | None, size: int | None, truncated: bool | None, encoding: str | None) -> bytes | None:
    """What check() gets: b"" for no body, None when unknown (truncated, too big, not JSON, undecodable)."""
    if sha is None:
        return b"" if not size else None
    if truncated or sha not in bodies:
        return None
    data = bodies[sha]
    if encoding:
        try:
            data = decode_body(data, encoding, limit=MAX_BODY_BYTES + 1)
        except DecodeError:
            return None
    return data


# --- reading the violations ----------------------------------------------------------------------


def violation_counts(
    store: Store, *, service: str, realm: str | None = None, since: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Violations per endpoint (method, template) and rule, most first."""
    v = ContractViolation
    query = (
        select(v.method, v.template, v.rule, func.count().label("count"), func.max(v.captured_at).label("last"))
        .where(v.service == service, v.realm == (realm or ""))
        .group_by(v.method, v.template, v.rule)
    )
    if since is not None:
        query = query.where(v.captured_at >= since)
    with store.connect() as conn:
        rows = conn.execute(query).all()
    out = [{"method": r.method, "template": r.template, "rule": r.rule, "count": r.count, "last": iso_utc(r.last)}
           for r in rows]  # fmt: skip
    return sorted(out, key=lambda r: (-r["count"], r["template"] or "", r["method"], r["rule"]))


def newest_violations(store: Store, *, service: str, realm: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    v = ContractViolation
    with store.connect() as conn:
        rows = conn.execute(
            select(*_VIOLATION_COLUMNS).where(v.service == service, v.realm == (realm or "")).order_by(v.id.desc()).limit(limit)
        )
        return [_violation_json(row) for row in rows]


def exchange_violations(store: Store, *, exchange_id: int) -> list[dict[str, Any]] | None:
    """The exchange's violations, in the order found; None when there is no such exchange."""
    v = ContractViolation
    with store.connect() as conn:
        rows = conn.execute(select(*_VIOLATION_COLUMNS).where(v.exchange_id == exchange_id).order_by(v.id)).all()
        if not rows and conn.execute(select(Exchange.id).where(Exchange.id == exchange_id)).first() is None:
            return None
        return [_violation_json(row) for row in rows]


def violation_totals(store: Store) -> list[tuple[str, str, str, int]]:
    """(service, realm, rule, violations stored) for /api/metrics."""
    v = ContractViolation
    with store.connect() as conn:
        rows = conn.execute(
            select(v.service, v.realm, v.rule, func.count()).group_by(v.service, v.realm, v.rule)
            .order_by(v.service, v.realm, v.rule)
        ).all()  # fmt: skip
    return [(service, realm, rule, count) for service, realm, rule, count in rows]


def _violation_json(row: Any) -> dict[str, Any]:
    return {
        "exchange_id": row.exchange_id, "method": row.method, "template": row.template, "rule": row.rule,
        "side": row.side, "json_path": row.json_path, "message": row.message, "captured_at": iso_utc(row.captured_at),
    }  # fmt: skip
