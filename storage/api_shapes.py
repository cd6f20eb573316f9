"""Inferred OpenAPI: the running summaries of each service's operations, and the documents made of them.

`summarise_new` (the maintenance role's "api_shapes" job) reads the exchanges past its cursor
(job_cursors) a chunk at a time, summarises each (storage.pure.shapes: parameters, JSON bodies,
statuses) under its operation (method + endpoint template, storage.pure.endpoints.template_path)
and merges the chunk into `api_shapes`, one row per realm, service, UTC day and operation, advancing
the cursor in the same transaction. Its cost per exchange is constant (a body is read only when it
is JSON and at most BODY_LIMIT bytes), and a window's document (`inferred_openapi`) merges day rows,
never exchanges: a service with a million exchanges answers from a few hundred rows.

Left out, as not the service's own behaviour: exchanges with no service or no response (an error,
an expired pending call), a fault rule's doing (`fault`), a recording's answer (`mock`), WebSockets.

Secrets: enum candidates never keep a secret member's or parameter's values (the redaction rules'
names), and each operation's example is redacted (storage.pure.redaction.Redaction, as shares and
HAR exports are) before it is stored: nothing secret is written to api_shapes.

Several maintenance roles may run on one database: on PostgreSQL the cursor row is locked (FOR
UPDATE) for the whole chunk; on SQLite the chunk is read and summarised first, and written under
the write lock (BEGIN IMMEDIATE) only if the cursor has not moved meanwhile. PostgreSQL may commit
exchange ids out of order: a run reads only up to the settled position
(storage.job_cursors.settled_position), so an id committed late is not stepped over.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from storage.errors import Invalid, NotFound
from storage.job_cursors import settled_position
from storage.models import ApiShape, Body, Exchange, JobCursor, escape_json_strings, unescape_json_strings
from storage.pure.decoding import decode_body
from storage.pure.endpoints import template_path
from storage.pure.openapi import build_document
from storage.pure.redaction import DEFAULT_RULES, OutBody, OutExchange, Redaction, RedactionRules, is_secret_name
from storage.pure.shapes import EXAMPLE_MAX_CHARS, Body as ShapeBody, add_exchange, bound_operation, merge_operations
from storage.queries import iso_utc, unpack_body
from storage.services import service_known
from storage.shares import redaction_key
from storage.store import Store
from storage.traffic_stats import parse_since

__all__ = [
    "BODY_LIMIT",
    "CHUNK",
    "JOB",
    "MAX_AGE_DAYS",
    "Summarised",
    "inferred_openapi",
    "known_operations",
    "parse_window",
    "prune_shapes",
    "summarise_new",
]

log = logging.getLogger(__name__)

JOB = "api_shapes"
"""The job's name in job_cursors and in the maintenance role's JobStats."""
CHUNK = 2000
"""Exchanges read per transaction (each operation's row is merged once per chunk: fewer, larger
chunks are cheaper; SQLite's write lock is held only while the rows are written)."""
BODY_LIMIT = 256 * 1024
"""Bodies larger than this (stored or decoded) count by media type only, without a schema."""
MAX_AGE_DAYS = 90
"""Day rows older than this are pruned (sooner when the retention policy's max_age is shorter)."""

_COLUMNS = (
    Exchange.id, Exchange.captured_at, Exchange.service, Exchange.realm, Exchange.method, Exchange.path,
    Exchange.query, Exchange.status, Exchange.fault, Exchange.mock, Exchange.websocket,
    Exchange.request_content_type, Exchange.request_body_sha256, Exchange.request_body_encoding,
    Exchange.request_body_truncated, Exchange.request_body_stored_size,
    Exchange.response_content_type, Exchange.response_body_sha256, Exchange.response_body_encoding,
    Exchange.response_body_truncated, Exchange.response_body_stored_size,
)  # fmt: skip
_Key = tuple[str, str, dt.date, str, str]
"""(realm, service, day, method, template): one api_shapes row."""


@dataclass(frozen=True, slots=True)
class Summarised:
    """What one summarise_new call did."""

    exchanges: int
    """Exchanges read past the cursor (summarised or left out)."""
    operations: int
    """Day rows inserted or updated."""
    position: int
    """The cursor afterwards."""
    more: bool = False
    """Stopped at `max_chunks` with the cursor still moving: there may be more to read."""


def _media(content_type: str | None) -> str | None:
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    return media or None


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def _read_json(data: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return False, None


class _Chunk:
    """The exchanges of one chunk summarised per operation and day."""

    def __init__(self, conn: Connection, rows: Sequence[Any], rules: RedactionRules) -> None:
        self.rules = rules
        self.secret = functools.lru_cache(maxsize=4096)(functools.partial(is_secret_name, rules=rules))
        self.bodies = self._bodies(conn, rows)
        self.operations: dict[_Key, dict[str, Any]] = {}
        self.seen: dict[_Key, tuple[dt.datetime, dt.datetime]] = {}
        self.newest: dict[_Key, Any] = {}

    @staticmethod
    def _wanted(row: Any, side: str) -> bool:
        media = _media(getattr(row, f"{side}_content_type"))
        return bool(
            media
            and _is_json(media)
            and getattr(row, f"{side}_body_sha256")
            and not getattr(row, f"{side}_body_truncated")
            and (getattr(row, f"{side}_body_stored_size") or 0) <= BODY_LIMIT
        )

    def _bodies(self, conn: Connection, rows: Sequence[Any]) -> dict[str, tuple[str, bytes]]:
        digests = {
            getattr(row, f"{side}_body_sha256") for row in rows for side in ("request", "response") if self._wanted(row, side)
        }
        if not digests:
            return {}
        found = conn.execute(select(Body.sha256, Body.compression, Body.data).where(Body.sha256.in_(sorted(digests))))
        return {sha: (compression, data) for sha, compression, data in found}

    def _body(self, row: Any, side: str) -> tuple[ShapeBody | None, bytes | None]:
        """The body as the summary sees it, and its decoded bytes when it was read."""
        sha = getattr(row, f"{side}_body_sha256")
        if sha is None:
            return None, None
        media = _media(getattr(row, f"{side}_content_type")) or "application/octet-stream"
        stored = self.bodies.get(sha) if self._wanted(row, side) else None
        if stored is None:
            return ShapeBody(media), None
        try:
            data = decode_body(unpack_body(*stored), getattr(row, f"{side}_body_encoding"), limit=BODY_LIMIT)
        except Exception:  # noqa: BLE001 - hostile bytes (a bad zstd frame, an encoding bomb): counted without a schema
            return ShapeBody(media), None
        parsed, value = _read_json(data)
        return ShapeBody(media, parsed=parsed, json=value), data if parsed else None

    def add(self, row: Any) -> None:
        day = row.captured_at.astimezone(dt.UTC).date()
        key: _Key = (row.realm or "", row.service, day, row.method.upper(), template_path(row.path))
        request, _ = self._body(row, "request")
        response, _ = self._body(row, "response")
        add_exchange(
            self.operations.setdefault(key, {}),
            template=key[4],
            path=row.path,
            query=parse_qsl(row.query or "", keep_blank_values=True),
            request=request,
            status=row.status,
            response=response,
            secret=self.secret,
        )
        first, last = self.seen.get(key, (row.captured_at, row.captured_at))
        self.seen[key] = (min(first, row.captured_at), max(last, row.captured_at))
        if key not in self.newest or _example_rank(row) > _example_rank(self.newest[key]):
            self.newest[key] = row

    def finish(self, key_bytes: bytes) -> None:
        """Each operation within its bounds, with the chunk's newest exchange (the newest accepted
        one, when there is one: the document's schemas describe those) as its redacted example
        (one Redaction, so a secret of one example is scrubbed from all of them)."""
        for operation in self.operations.values():
            bound_operation(operation)
        redaction = Redaction(self.rules, key_bytes)
        keys = sorted(self.newest, key=lambda key: self.newest[key].id)
        for key in keys:
            row = self.newest[key]
            bodies = {}
            for side in ("request", "response"):
                _, data = self._body(row, side)
                bodies[side] = None if data is None else OutBody(data, getattr(row, f"{side}_content_type"))
            redaction.add(OutExchange({"path": row.path, "query": row.query or ""}, bodies["request"], bodies["response"]))
        for key, out in zip(keys, redaction.finish(), strict=True):
            row = self.newest[key]
            request: dict[str, Any] = {
                "path": out.detail["path"][:EXAMPLE_MAX_CHARS], "query": out.detail["query"][:EXAMPLE_MAX_CHARS]
            }
            response: dict[str, Any] = {"status": row.status}
            for side, part, body in (("request", request, out.request_body), ("response", response, out.response_body)):
                part["type"] = _media(getattr(row, f"{side}_content_type"))
                if body is not None and body.data is not None and len(body.data) <= EXAMPLE_MAX_CHARS:
                    parsed, value = _read_json(body.data)
                    if parsed:
                        part["body"] = value
            self.operations[key]["ex"] = {"id": row.id, "request": request, "response": response}


def _example_rank(row: Any) -> tuple[bool, int]:
    """Which exchange of an operation is its example: an accepted one (status < 400), the newest
    (storage.pure.shapes.merge_operations ranks the examples it merges the same way)."""
    return row.status < 400, row.id


def _eligible(row: Any) -> bool:
    return bool(row.service) and row.status is not None and row.fault is None and row.mock is None and not row.websocket


def _cursor_position(conn: Connection, *, lock: bool) -> int:
    query = select(JobCursor.position).where(JobCursor.job == JOB)
    if lock:
        query = query.with_for_update()
    return int(conn.execute(query).scalar() or 0)


def _read(conn: Connection, position: int, until: int, chunk: int) -> tuple[list[Any], int]:
    """(the eligible rows, the new cursor position) of the next chunk, up to the settled `until`."""
    rows = list(conn.execute(
        select(*_COLUMNS).where(Exchange.id > position, Exchange.id <= until).order_by(Exchange.id).limit(chunk)
    ))  # fmt: skip
    end = rows[-1].id if rows else position
    return [row for row in rows if _eligible(row)], end


_ESCAPED = "escaped"
"""A stored summary's key saying some of its strings are escape_text'ed (NUL, lone surrogates):
reading the others need not walk them (the walk was most of a document's time)."""


def _stored(summary: dict[str, Any]) -> dict[str, Any]:
    escaped = escape_json_strings(summary)
    if escaped != summary:
        escaped[_ESCAPED] = True
    return escaped


def _loaded(stored: dict[str, Any]) -> dict[str, Any]:
    if not stored.get(_ESCAPED):
        return stored
    summary = unescape_json_strings(stored)
    del summary[_ESCAPED]
    return summary


def _write(conn: Connection, chunk: _Chunk, position: int, dialect: str) -> int:
    now = dt.datetime.now(dt.UTC)
    table = ApiShape.__table__
    for key, summary in chunk.operations.items():
        realm, service, day, method, template = key
        first, last = chunk.seen[key]
        where = (
            (table.c.realm == realm) & (table.c.service == service) & (table.c.day == day)
            & (table.c.method == method) & (table.c.template == template)
        )  # fmt: skip
        existing = conn.execute(
            select(table.c.id, table.c.summary, table.c.exchanges, table.c.first_seen, table.c.last_seen).where(where)
        ).first()
        if existing is None:
            conn.execute(
                table.insert().values(
                    realm=realm, service=service, day=day, method=method, template=template, exchanges=summary["n"],
                    summary=_stored(summary), first_seen=first, last_seen=last,
                )
            )  # fmt: skip
        else:
            merged = merge_operations(_loaded(existing.summary), summary)
            conn.execute(
                table.update()
                .where(table.c.id == existing.id)
                .values(
                    exchanges=merged["n"], summary=_stored(merged),
                    first_seen=min(existing.first_seen, first), last_seen=max(existing.last_seen, last),
                )
            )  # fmt: skip
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    cursor = JobCursor.__table__
    conn.execute(
        insert(cursor)
        .values(job=JOB, position=position, updated_at=now)
        .on_conflict_do_update(index_elements=["job"], set_={"position": position, "updated_at": now})
    )
    return len(chunk.operations)


def _summarise_chunk(
    store: Store, rules: RedactionRules, key_bytes: bytes, chunk: int, until: int
) -> Summarised | None:
    """One chunk, up to the settled id `until`, in one transaction; None when another runner moved
    the cursor first (SQLite)."""
    if store.dialect == "postgresql":
        with store.begin() as conn:
            conn.execute(
                postgresql.insert(JobCursor.__table__)
                .values(job=JOB, position=0, updated_at=dt.datetime.now(dt.UTC))
                .on_conflict_do_nothing(index_elements=["job"])
            )
            position = _cursor_position(conn, lock=True)
            rows, end = _read(conn, position, until, chunk)
            work = _Chunk(conn, rows, rules)
            for row in rows:
                work.add(row)
            work.finish(key_bytes)
            written = _write(conn, work, end, store.dialect) if end != position else 0
            return Summarised(len(rows), written, end)
    with store.connect() as conn:
        # The reading and the CPU work happen before SQLite's one write lock is taken (the
        # capture writer needs it too); the cursor is checked again under the lock.
        position = _cursor_position(conn, lock=False)
        rows, end = _read(conn, position, until, chunk)
        work = _Chunk(conn, rows, rules)
        for row in rows:
            work.add(row)
        work.finish(key_bytes)
        conn.commit()
        if end == position:
            return Summarised(0, 0, position)
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            if _cursor_position(conn, lock=False) != position:
                conn.rollback()
                return None
            written = _write(conn, work, end, store.dialect)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return Summarised(len(rows), written, end)


def summarise_new(
    store: Store, *, rules: RedactionRules = DEFAULT_RULES, chunk: int = CHUNK, max_chunks: int | None = None
) -> Summarised:
    """Summarise the exchanges captured since the last run, a chunk per transaction, until none are
    left (or `max_chunks` were done). Safe to run in several processes at once."""
    key_bytes = redaction_key(store)
    exchanges = operations = done = 0
    position: int | None = None
    until = settled_position(store)
    if until is None:  # a transaction that may hold lower ids is still running: the next run reads on
        with store.connect() as conn:
            return Summarised(0, 0, _cursor_position(conn, lock=False))
    while True:
        if max_chunks is not None and done >= max_chunks:
            return Summarised(exchanges, operations, position or 0, more=True)
        done += 1
        result = _summarise_chunk(store, rules, key_bytes, chunk, until)
        if result is None:
            continue  # another runner took this chunk: read on from where it left the cursor
        exchanges += result.exchanges
        operations += result.operations
        if result.position == position:
            return Summarised(exchanges, operations, result.position)
        position = result.position


def prune_shapes(store: Store, *, max_age: float | None = None, now: dt.datetime | None = None) -> int:
    """Delete day rows older than MAX_AGE_DAYS (or `max_age` seconds, the retention policy's, when
    shorter); how many went."""
    now = now or dt.datetime.now(dt.UTC)
    age = dt.timedelta(days=MAX_AGE_DAYS)
    if max_age is not None:
        age = min(age, dt.timedelta(seconds=max_age))
    cutoff = (now - age).date()
    with store.begin() as conn:
        return conn.execute(delete(ApiShape).where(ApiShape.day < cutoff)).rowcount or 0


def _moment(text: str, name: str, now: dt.datetime) -> dt.datetime:
    """`7d` (that long before now) or an ISO 8601 date-time (naive: UTC)."""
    try:
        return now - dt.timedelta(seconds=parse_since(text))
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{name}: expected a duration before now (7d, 12h) or an ISO 8601 date-time, not {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def parse_window(
    since: str | None, until: str | None, *, now: dt.datetime | None = None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The `since` and `until` of the API and the CLI (`7d`, `1d`: that long ago; or ISO 8601) as
    times; None stays None (no bound). Invalid (one line) for anything else or an empty window."""
    now = now or dt.datetime.now(dt.UTC)
    start = _moment(since, "since", now) if since else None
    end = _moment(until, "until", now) if until else None
    if start is not None and end is not None and start > end:
        raise Invalid(f"since ({since}) is after until ({until}): the window is empty")
    return start, end


def known_operations(store: Store, *, service: str, realm: str | None = None) -> bool:
    """Whether any day row of `service` (in `realm`, when given) exists."""
    query = select(ApiShape.id).where(ApiShape.service == service)
    if realm is not None:
        query = query.where(ApiShape.realm == realm)
    with store.connect() as conn:
        return conn.execute(query.limit(1)).first() is not None


def inferred_openapi(
    store: Store,
    service: str,
    *,
    realm: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `service`'s exchanges in [since, until] (whole UTC days: the
    summaries are kept per day), in `realm` (None: every realm merged; "": the exchanges without
    one). Examples are redacted. NotFound for a service never seen."""
    table = ApiShape.__table__
    query = select(table.c.method, table.c.template, table.c.summary).where(table.c.service == service)
    if realm is not None:
        query = query.where(table.c.realm == realm)
    if since is not None:
        query = query.where(table.c.day >= since.astimezone(dt.UTC).date())
    if until is not None:
        query = query.where(table.c.day <= until.astimezone(dt.UTC).date())
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    with store.connect() as conn:
        for method, template, summary in conn.execute(query.order_by(table.c.day)):
            summary = _loaded(summary)
            current = merged.get((method, template))
            merged[(method, template)] = summary if current is None else merge_operations(current, summary)
    if not merged and not known_operations(store, service=service) and not service_known(store, service=service):
        raise NotFound(f"unknown service {service!r}: none of its traffic was captured")
    operations = [(method, template, summary) for (method, template), summary in sorted(merged.items())]
    return build_document(
        service,
        operations,
        realm=realm,
        since=iso_utc(since) if since is not None else None,
        until=iso_utc(until) if until is not None else None,
    )
