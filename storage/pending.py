"""Pending exchanges in the store: calls still in progress (storage.pure.pending).

A proxy's writer thread upserts its notices (upsert_pending: only those whose exchange is not
stored yet) and the transaction that stores a finished exchange deletes its notice
(storage.sink). The inspector lists them (list_pending, as summaries with "pending": true) and
streams them. A notice its proxy no longer refreshes (killed mid-call) expires (expire_pending,
the maintenance role): it becomes an exchange with error kind unknown_outcome, status null.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from storage.models import Exchange, PendingExchange
from storage.pure.pending import (
    UNKNOWN_OUTCOME,
    PendingNotice,
    pending_matches,
    unknown_outcome_record,
)
from storage.pure.search import Query
from storage.queries import exchange_url, iso_utc
from storage.rollups import SOURCE_COLUMNS
from storage.store import Store

__all__ = [
    "PENDING_EXPIRY",
    "PENDING_REFRESH",
    "PendingRow",
    "delete_pending",
    "expire_pending",
    "list_pending",
    "pending_summaries",
    "pending_summary",
    "unknown_outcomes",
    "upsert_pending",
]

PENDING_REFRESH = 3.0
"""Seconds between two writes of a notice whose progress did not change: its proxy is alive."""
PENDING_EXPIRY = 30.0
"""Seconds without a refresh after which a notice expires (its proxy was killed or lost the database)."""
EXPIRED_MESSAGE = (
    "the proxy stopped reporting on this call before it finished (killed, or it lost the database): "
    "its outcome is unknown"
)

_COLUMNS = [
    column.name
    for column in PendingExchange.__table__.columns
    if column.name != "updated_at"
]


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


@dataclass(frozen=True, slots=True)
class PendingRow:
    """A notice as stored, with when it was last refreshed."""

    notice: PendingNotice
    updated_at: dt.datetime


def upsert_pending(
    conn: Connection,
    notices: Sequence[PendingNotice],
    *,
    now: dt.datetime | None = None,
) -> int:
    """Insert or refresh `notices`, leaving out those whose exchange is stored already (a notice
    taken before its exchange finished and written after it). Returns how many were written."""
    if not notices:
        return 0
    now = now or dt.datetime.now(dt.UTC)
    stored = set(
        conn.execute(
            select(Exchange.uuid).where(
                or_(
                    *(
                        and_(
                            Exchange.captured_at == _utc(n.started_at),
                            Exchange.uuid == n.uuid,
                        )
                        for n in notices
                    )
                )
            )
        ).scalars()
    )
    rows = [
        {**{name: getattr(n, name) for name in _COLUMNS if name != "started_at"}, "started_at": _utc(n.started_at),
         "updated_at": now}
        for n in notices
        if n.uuid not in stored
    ]  # fmt: skip
    if not rows:
        return 0
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(PendingExchange)
    statement = statement.on_conflict_do_update(
        index_elements=["uuid"],
        set_={
            name: statement.excluded[name]
            for name in (
                "state",
                "status",
                "request_size",
                "response_size",
                "updated_at",
            )
        },
    )
    conn.execute(statement, rows)
    return len(rows)


def delete_pending(conn: Connection, uuids: Sequence[str]) -> None:
    if uuids:
        conn.execute(
            delete(PendingExchange).where(PendingExchange.uuid.in_(list(uuids)))
        )


def _notice(row) -> PendingNotice:  # type: ignore[no-untyped-def]
    return PendingNotice(
        uuid=row.uuid, proxy=row.proxy, started_at=row.started_at.timestamp(), method=row.method, scheme=row.scheme,
        host=row.host, port=row.port, path=row.path, query=row.query, state=row.state,
        request_size=row.request_size, response_size=row.response_size, status=row.status, service=row.service,
        realm=row.realm, trace_id=row.trace_id, http_version=row.http_version,
    )  # fmt: skip


def list_pending(store: Store) -> list[PendingRow]:
    """Every pending notice, newest first."""
    with store.connect() as conn:
        rows = conn.execute(
            select(*PendingExchange.__table__.columns).order_by(
                PendingExchange.started_at.desc()
            )
        ).all()
    return [PendingRow(_notice(row), row.updated_at) for row in rows]


def pending_summary(row: PendingRow, *, now: dt.datetime | None = None) -> dict:
    """A pending exchange in the shape of an exchange summary (storage.queries), with "pending":
    true, id null, status null until a streaming response's head came, sizes so far, its state,
    and how long it has run (elapsed_ms, at `now`)."""
    n = row.notice
    now = now or dt.datetime.now(dt.UTC)
    return {
        "id": None,
        "uuid": n.uuid,
        "captured_at": iso_utc(n.started_at),
        "proxy": n.proxy,
        "service": n.service,
        "realm": n.realm,
        "method": n.method,
        "scheme": n.scheme,
        "host": n.host,
        "port": n.port,
        "path": n.path,
        "query": n.query,
        "url": exchange_url(n.scheme, n.host, n.port, n.path, n.query),
        "http_version": n.http_version,
        "status": n.status,
        "reason": None,
        "duration_ms": None,
        "request_size": n.request_size,
        "response_size": n.response_size,
        "request_content_type": None,
        "response_content_type": None,
        "error": None,
        "trace_id": n.trace_id,
        "replay_of": None,
        "websocket": False,
        "test_name": None,
        "pending": True,
        "state": n.state,
        "elapsed_ms": max(0.0, (now.timestamp() - n.started_at) * 1000),
        "updated_at": iso_utc(row.updated_at),
    }


def pending_summaries(
    store: Store,
    *,
    query: Query | None = None,
    service: str | None = None,
    method: str | None = None,
) -> list[dict]:
    """The pending exchanges that `query` (and the exact service and method) can match, as
    summaries, newest first (storage.pure.pending.pending_matches)."""
    now = dt.datetime.now(dt.UTC)
    return [
        pending_summary(row, now=now)
        for row in list_pending(store)
        if (service is None or row.notice.service == service)
        and (method is None or row.notice.method == method.upper())
        and pending_matches(query, row.notice, now=now)
    ]


def expire_pending(
    store: Store, *, older_than: float = PENDING_EXPIRY, now: dt.datetime | None = None
) -> list[str]:
    """Turn each notice not refreshed for `older_than` seconds into an exchange with error kind
    unknown_outcome (status null). Claimed by DELETE .. RETURNING, so two maintenance runners
    never both write one. The exchange is inserted with ON CONFLICT DO NOTHING on (captured_at,
    uuid): a real exchange stored meanwhile stays as it is; one stored later replaces this one
    (storage.sink). Returns the uuids that expired."""
    from storage.sink import write_records  # the sink imports this module

    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(seconds=older_than)
    with store.engine.begin() as conn:
        rows = conn.execute(
            delete(PendingExchange)
            .where(PendingExchange.updated_at < cutoff)
            .returning(*PendingExchange.__table__.columns)
        ).all()
    if not rows:
        return []
    write_records(
        store,
        [unknown_outcome_record(_notice(row), message=EXPIRED_MESSAGE) for row in rows],
    )
    return [row.uuid for row in rows]


def unknown_outcomes(
    conn: Connection, keys: Sequence[tuple[dt.datetime, str]]
) -> list[tuple]:
    """The unknown_outcome exchanges stored under these (captured_at, uuid) keys: their id and
    what the traffic rollups counted of them (storage.rollups.SOURCE_COLUMNS)."""
    if not keys:
        return []
    columns = [Exchange.id, *(getattr(Exchange, name) for name in SOURCE_COLUMNS)]
    return [
        tuple(row)
        for row in conn.execute(
            select(*columns).where(
                Exchange.error_kind == UNKNOWN_OUTCOME,
                or_(
                    *(
                        and_(Exchange.captured_at == at, Exchange.uuid == uuid)
                        for at, uuid in keys
                    )
                ),
            )
        )
    ]
