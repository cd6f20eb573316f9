"""Read side: query functions returning JSON-ready plain data.

All functions take the Store first and keyword-only arguments after it.
Pagination is keyset on id, newest first: `before` is the id to continue from. Other orders
(list_exchanges' `sort`) page on (sort key, id) with an opaque cursor (SortCursor).
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import zstandard
from sqlalchemy import Connection, Row, and_, func, or_, select

from storage.errors import Invalid
from storage.models import (
    Body,
    Exchange,
    ProxyStat,
    SearchPending,
    WebSocketMessage,
    unescape_json_strings,
    unescape_text,
)  # fmt: skip
from storage.pure.decoding import DecodeError, decode_body
from storage.pure.search import Query, parse_query
from storage.search_sql import FTS, compile_query, fts_required_match, required_text_ids
from storage.store import Store, one_line

__all__ = [
    "MAX_PAGE",
    "SORTS",
    "ExchangePage",
    "SortCursor",
    "StoredBody",
    "database_health",
    "exchange_id_for_uuid",
    "exchange_ids_for_uuids",
    "get_body",
    "get_exchange",
    "index_backlog",
    "list_exchanges",
    "list_websocket_messages",
    "match_ids",
    "proxy_stats",
    "summaries_for_ids",
    "unpack_body",
]

MAX_PAGE = 1000

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_TIMING_FIELDS = (
    "request_start",
    "connect_start",
    "connect_end",
    "tls_end",
    "request_end",
    "response_start",
    "response_end",
)


@dataclass(slots=True)
class ExchangePage:
    data: list[dict]
    next: int | str | None
    """The newest-first order: the id to pass as `before` for the next (older) page. Any other
    order: a SortCursor's text to pass as `cursor`. None when there is no next page."""


SORTS = ("time", "duration", "size", "status")
"""The orders list_exchanges knows; "time" is capture order (by id)."""

_NO_STATUS = 600
"""A failed call without a response sorts by status above every real one (599): the worst first."""


def _sort_key(sort: str) -> Any:
    """The value `sort` orders by, never NULL (keyset comparisons need one): a call without a
    duration or a response size sorts as -1 (first when ascending), one without a status as 600."""
    if sort == "duration":
        return func.coalesce(Exchange.duration_ms, -1.0)
    if sort == "size":
        return func.coalesce(Exchange.response_body_size, -1)
    if sort == "status":
        return func.coalesce(Exchange.status, _NO_STATUS)
    if sort == "time":
        return Exchange.id
    raise Invalid(f"unknown sort {sort!r}: expected one of {', '.join(SORTS)}")


@dataclass(frozen=True, slots=True)
class SortCursor:
    """Where a page in a sorted order (anything but the default, newest first) continues:
    after the row with this sort value and id. Its text is `<value>~<id>`."""

    value: float | int
    id: int

    def text(self) -> str:
        return f"{self.value!r}~{self.id}"

    @classmethod
    def parse(cls, text: str, *, sort: str) -> SortCursor:
        """Invalid (one line) for text that is not a cursor of `sort`."""
        value, sep, ident = text.partition("~")
        try:
            if not sep or not ident.isdigit() or not 1 <= int(ident) <= 2**63 - 1:
                raise ValueError
            number: float | int = float(value) if sort == "duration" else int(value)
            if not math.isfinite(number):  # NaN compares with nothing
                raise ValueError
        except ValueError:
            raise Invalid(f"cursor {text[:40]!r} is not a page cursor of sort={sort} (pass a page's `next`)") from None
        return cls(number, int(ident))


def _row_sort_value(row: Row[Any], sort: str) -> float | int:
    if sort == "duration":
        return row.duration_ms if row.duration_ms is not None else -1.0
    if sort == "size":
        return row.response_body_size if row.response_body_size is not None else -1
    if sort == "status":
        return row.status if row.status is not None else _NO_STATUS
    return row.id


@dataclass(slots=True)
class StoredBody:
    data: bytes
    """As received: still Content-Encoded; the first `len(data)` bytes when truncated."""
    size: int
    """Full wire size."""
    truncated: bool
    encoding: str | None
    content_type: str | None
    sha256: str

    def decoded(self, *, limit: int) -> bytes | None:
        """The bytes with their Content-Encoding undone (what a truncated prefix decodes to, when
        cut); None when they cannot be decoded or would exceed `limit` bytes."""
        if not self.encoding:
            return self.data
        try:
            return decode_body(self.data, self.encoding, partial=self.truncated, limit=limit)
        except DecodeError:
            return None


_SUMMARY_COLUMNS = (
    Exchange.id,
    Exchange.uuid,
    Exchange.captured_at,
    Exchange.proxy,
    Exchange.service,
    Exchange.realm,
    Exchange.method,
    Exchange.scheme,
    Exchange.host,
    Exchange.port,
    Exchange.path,
    Exchange.query,
    Exchange.http_version,
    Exchange.status,
    Exchange.reason,
    Exchange.duration_ms,
    Exchange.request_body_size,
    Exchange.response_body_size,
    Exchange.request_content_type,
    Exchange.response_content_type,
    Exchange.error_kind,
    Exchange.error_message,
    Exchange.trace_id,
    Exchange.replay_of,
    Exchange.websocket,
    Exchange.test_name,
    Exchange.fault,
    Exchange.mock,
)


def iso_utc(value: dt.datetime | float | None) -> str | None:
    """ISO 8601 UTC with microseconds and a Z, e.g. 2026-11-28T01:02:03.123456Z."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def exchange_url(scheme: str, host: str, port: int, path: str, query: str) -> str:
    """scheme://host[:port]/path[?query]; default port omitted, IPv6 bracketed."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    netloc = host if _DEFAULT_PORTS.get(scheme.lower()) == port else f"{host}:{port}"
    if not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def _summary(row: Row[Any]) -> dict:
    return {
        "id": row.id,
        "uuid": row.uuid,
        "captured_at": iso_utc(row.captured_at),
        "proxy": row.proxy,
        "service": row.service,
        "realm": row.realm,
        "method": row.method,
        "scheme": row.scheme,
        "host": row.host,
        "port": row.port,
        "path": row.path,
        "query": row.query,
        "url": exchange_url(row.scheme, row.host, row.port, row.path, row.query),
        "http_version": row.http_version,
        "status": row.status,
        "reason": row.reason,
        "duration_ms": row.duration_ms,
        "request_size": row.request_body_size,
        "response_size": row.response_body_size,
        "request_content_type": row.request_content_type,
        "response_content_type": row.response_content_type,
        "error": {"kind": row.error_kind, "message": row.error_message or ""} if row.error_kind else None,
        "trace_id": row.trace_id,
        "replay_of": row.replay_of,
        "websocket": bool(row.websocket),
        "test_name": row.test_name,
        "fault": row.fault,
        "mock": row.mock,
    }


def list_exchanges(
    store: Store,
    *,
    limit: int = 100,
    before: int | None = None,
    service: str | None = None,
    method: str | None = None,
    status: int | None = None,
    q: str | Query | None = None,
    now: dt.datetime | None = None,
    sort: str = "time",
    order: str = "desc",
    cursor: str | None = None,
) -> ExchangePage:
    """Newest first; at most `limit` (1..MAX_PAGE) summaries with id < before.

    `q`: a search (storage.pure.search); a str is parsed here and raises QueryError
    when invalid. `now` anchors since: (default: the current time).

    `sort` (SORTS) and `order` ("desc" or "asc") choose another order, ties broken by id in the
    same direction; any order but time/desc pages with `cursor` (the previous page's `next`, a
    SortCursor's text) instead of `before`. Invalid for an unknown sort or order, or a cursor
    that does not fit them."""
    limit = max(1, min(int(limit), MAX_PAGE))
    now = now or dt.datetime.now(dt.UTC)
    if order not in ("desc", "asc"):
        raise Invalid(f"unknown order {order!r}: expected desc or asc")
    key = _sort_key(sort)
    keyset = sort != "time" or order != "desc"
    if keyset and before is not None:
        raise Invalid(
            f"before= pages the newest-first list only; with sort={sort}&order={order} pass a page's `next` as cursor="
        )
    if not keyset and cursor is not None:
        raise Invalid("cursor= pages a sorted list (sort= or order=asc); the newest-first list pages with before=")
    parsed = parse_query(q) if isinstance(q, str) else q
    filters = []
    if before is not None:
        filters.append(Exchange.id < before)
    if service is not None:
        filters.append(Exchange.service == service)
    if method is not None:
        filters.append(Exchange.method == method.upper())
    if status is not None:
        filters.append(Exchange.status == status)
    if keyset and cursor is not None:
        after = SortCursor.parse(cursor, sort=sort)
        if order == "desc":
            filters.append(or_(key < after.value, and_(key == after.value, Exchange.id < after.id)))
        else:
            filters.append(or_(key > after.value, and_(key == after.value, Exchange.id > after.id)))
    match = fts_required_match(parsed) if parsed is not None and store.dialect == "sqlite" and not keyset else None
    with store.connect() as conn:
        if match is not None:
            rows = _text_first(conn, parsed, match, filters, before, limit + 1, now)
        else:
            if parsed is not None:
                filters.append(_search_filter(conn, store.dialect, parsed, now))
            if keyset:
                rows = conn.execute(_sorted(filters, key, order, limit + 1)).all()
            else:
                rows = conn.execute(_newest(filters, limit + 1)).all()
    more = len(rows) > limit
    data = [_summary(row) for row in rows[:limit]]
    if not more:
        return ExchangePage(data=data, next=None)
    if not keyset:
        return ExchangePage(data=data, next=data[-1]["id"])
    last = rows[limit - 1]
    return ExchangePage(data=data, next=SortCursor(_row_sort_value(last, sort), last.id).text())


def _sorted(filters: Sequence[Any], key: Any, order: str, count: int) -> Any:
    """`count` summaries by `key` then id, both descending or both ascending. The whole match is
    sorted (no index holds these keys with the search's filters): a top-N sort, one pass."""
    by = (key.desc(), Exchange.id.desc()) if order == "desc" else (key.asc(), Exchange.id.asc())
    return select(*_SUMMARY_COLUMNS).where(*filters).order_by(*by).limit(count)


_TEXT_SET_MAX = 5000
"""PostgreSQL: required text with at most this many matches becomes a list of ids."""


def _search_filter(conn: Connection, dialect: str, query: Query, now: dt.datetime) -> Any:
    """The WHERE clause for `query`; on PostgreSQL, rare required text as its ids.

    A rare word's few ids, looked up first through the GIN index, make a plan no estimate
    can spoil: the rows by primary key, then the rest of the query. Common text (more
    than _TEXT_SET_MAX matches) stays a semi-join, which the planner runs newest first
    against the text index's rows in step (a merge join), stopping at the page."""
    text_ids = required_text_ids(query) if dialect == "postgresql" else None
    if text_ids is not None:
        found = conn.execute(text_ids.limit(_TEXT_SET_MAX + 1)).scalars().all()
        if len(found) <= _TEXT_SET_MAX:
            rest = compile_query(query, dialect=dialect, now=now, without_required_text=True)
            return and_(Exchange.id.in_(found), rest)
    return compile_query(query, dialect=dialect, now=now)


def _newest(filters: Sequence[Any], count: int) -> Any:
    # The ids first, then their rows: the id scan can then run in an index alone
    # (ix_exchanges_id_filters on PostgreSQL), visiting only the rows it returns.
    ids = select(Exchange.id).where(*filters).order_by(Exchange.id.desc()).limit(count)
    return select(*_SUMMARY_COLUMNS).where(Exchange.id.in_(ids)).order_by(Exchange.id.desc())


_TEXT_WALK_IDS = 50_000
"""How many of the newest ids the text-first plan walks before it hands over (see _text_first)."""


def _text_first(
    conn: Connection, query: Query, match: str, filters: list[Any], before: int | None, count: int, now: dt.datetime
) -> list[Row[Any]]:
    """SQLite, a search with free text every result must contain: read the text index's
    matches newest first (FTS5 yields them in rowid = id order), join each to its
    exchange, check the rest of the query, stop at `count` rows.

    The plain plan puts every match of the text into a temporary set before the first
    row comes out (a common word, 300k matches: 0.2-0.5 s on a million exchanges). The
    walk is bounded to the newest _TEXT_WALK_IDS ids; when they hold fewer than `count`
    results (rare text, or a rare rest of the query), the plain plan carries on below."""
    fts = FTS
    top = before if before is not None else (conn.execute(select(func.max(Exchange.id))).scalar() or 0) + 1
    floor = top - _TEXT_WALK_IDS
    walk = (
        select(*_SUMMARY_COLUMNS)
        .select_from(fts.join(Exchange.__table__, Exchange.id == fts.c.rowid))
        .where(
            fts.c.exchange_fts.op("MATCH")(match),
            fts.c.rowid < top,
            fts.c.rowid >= floor,
            compile_query(query, dialect="sqlite", now=now, without_required_text=True),
            *filters,
        )
        .order_by(fts.c.rowid.desc())
        .limit(count)
    )
    rows = conn.execute(walk).all()
    if len(rows) < count and floor > 1:
        whole = compile_query(query, dialect="sqlite", now=now)
        rows += conn.execute(_newest([*filters, whole, Exchange.id < floor], count - len(rows))).all()
    return rows


def _search_clause(store: Store, q: str | Query, now: dt.datetime | None) -> Any:
    parsed = parse_query(q) if isinstance(q, str) else q
    return compile_query(parsed, dialect=store.dialect, now=now)


def match_ids(store: Store, *, ids: Sequence[int], q: str | Query, now: dt.datetime | None = None) -> list[int]:
    """The ids among `ids` whose exchanges match `q`, ascending: one query per 500 ids,
    for the live stream (one call per batch of new ids and distinct query)."""
    clause = _search_clause(store, q, now)
    wanted = sorted({int(i) for i in ids})
    out: list[int] = []
    with store.connect() as conn:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            out.extend(conn.execute(select(Exchange.id).where(Exchange.id.in_(chunk), clause).order_by(Exchange.id)).scalars())
    return out


def exchange_id_for_uuid(store: Store, *, uuid: str, since: dt.datetime) -> int | None:
    """The id of the exchange stored under `uuid` and captured at or after `since` (which
    keeps the lookup on the (captured_at, uuid) index); None when there is none yet."""
    return exchange_ids_for_uuids(store, uuids=[uuid], since=since).get(uuid)


def exchange_ids_for_uuids(store: Store, *, uuids: Sequence[str], since: dt.datetime) -> dict[str, int]:
    """uuid -> id of those of `uuids` stored and captured at or after `since` (the newest,
    should a client have reused a uuid)."""
    if not uuids:
        return {}
    query = (
        select(Exchange.uuid, Exchange.id)
        .where(Exchange.captured_at >= since, Exchange.uuid.in_(list(uuids)))
        .order_by(Exchange.id)
    )
    with store.connect() as conn:
        return {uuid: id_ for uuid, id_ in conn.execute(query)}


def summaries_for_ids(store: Store, *, ids: Sequence[int]) -> list[dict]:
    """Summaries of the exchanges among `ids` that exist, ascending id."""
    wanted = sorted({int(i) for i in ids})
    out: list[dict] = []
    with store.connect() as conn:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = conn.execute(select(*_SUMMARY_COLUMNS).where(Exchange.id.in_(chunk)).order_by(Exchange.id))
            out.extend(_summary(row) for row in rows)
    return out


def _headers(value: list[list[str]] | None) -> list[list[str]] | None:
    if value is None:
        return None
    return [[unescape_text(name), unescape_text(val)] for name, val in value]


def _ms(end: float | None, start: float | None) -> float | None:
    if end is None or start is None:
        return None
    return round((end - start) * 1000.0, 3)


def timings_dict(stored: dict[str, Any]) -> dict:
    """Epoch timings -> ISO instants plus phase durations in ms (null when unknown).

    blocked_ms and dns_ms are known only for an imported exchange whose HAR had them; its
    send_ms, wait_ms and receive_ms are the HAR's own (a HAR's phases run connect, then send,
    and a tool's time need not be their sum)."""
    t = {name: stored.get(name) for name in _TIMING_FIELDS}
    out: dict[str, Any] = {name: iso_utc(t[name]) for name in _TIMING_FIELDS}
    # The proxy connects upstream once it has the request (lazily), so the phases are:
    # send (request in from the client), connect, TLS, wait (for the upstream's first
    # byte, from when both the request and the connection were ready), receive.
    ready = max((x for x in (t["request_end"], t["tls_end"] or t["connect_end"]) if x is not None), default=None)
    out["connect_ms"] = _ms(t["connect_end"], t["connect_start"])
    out["tls_ms"] = _ms(t["tls_end"], t["connect_end"])
    out["send_ms"] = _ms(t["request_end"], t["request_start"])
    out["wait_ms"] = _ms(t["response_start"], ready)
    out["receive_ms"] = _ms(t["response_end"], t["response_start"])
    har = stored.get("har")
    written = har.get("timings") if isinstance(har, dict) else None
    written = written if isinstance(written, dict) else {}
    out["blocked_ms"], out["dns_ms"] = _written_ms(written, "blocked"), _written_ms(written, "dns")
    for phase in ("send", "wait", "receive"):
        if phase in written:
            out[f"{phase}_ms"] = _written_ms(written, phase)
    return out


def _written_ms(timings: dict, phase: str) -> float | None:
    value = timings.get(phase)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


def _body_meta(ex: Row[Any], side: str) -> dict | None:
    sha = getattr(ex, f"{side}_body_sha256")
    if sha is None:
        return None
    return {
        "size": getattr(ex, f"{side}_body_size"),
        "stored_size": getattr(ex, f"{side}_body_stored_size"),
        "truncated": bool(getattr(ex, f"{side}_body_truncated")),
        "encoding": getattr(ex, f"{side}_body_encoding"),
        "content_type": getattr(ex, f"{side}_content_type"),
        "sha256": sha,
        "decoded_size": getattr(ex, f"{side}_body_decoded_size"),
    }


def get_exchange(store: Store, *, exchange_id: int, har: bool = False) -> dict | None:
    """The detail dict of one exchange, or None. With `har`, also "har": what an imported
    HAR said that has no column (storage.pure.record.ExchangeRecord.har), None for captured
    traffic; only HAR export asks for it (a page title may hold a URL's secrets)."""
    with store.connect() as conn:
        ex = conn.execute(select(Exchange.__table__).where(Exchange.id == exchange_id)).one_or_none()
        if ex is None:
            return None
        messages = conn.execute(
            select(func.count()).select_from(WebSocketMessage).where(WebSocketMessage.exchange_uuid == ex.uuid)
        ).scalar_one()
    detail = _summary(ex)
    detail.update(
        client_addr=ex.client_addr,
        span_id=ex.span_id,
        parent_span_id=ex.parent_span_id,
        caller=ex.caller,
        request_id=ex.request_id,
        tags=[unescape_text(tag) for tag in ex.tags or []],
        request_headers=_headers(ex.request_headers) or [],
        response_headers=_headers(ex.response_headers),
        timings=timings_dict(ex.timings or {}),
        request_body=_body_meta(ex, "request"),
        response_body=_body_meta(ex, "response"),
        websocket_messages=messages,
    )
    if har:
        facts = (ex.timings or {}).get("har")
        detail["har"] = unescape_json_strings(facts) if isinstance(facts, dict) else None
    return detail


def unpack_body(compression: str, data: bytes) -> bytes:
    """A stored body's bytes as received, from its `compression` ("zstd" or "none") and stored data."""
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompress(data)
    return bytes(data)


def get_body(store: Store, *, exchange_id: int, side: str) -> StoredBody | None:
    """The stored bytes of one body; None when there is no such exchange or body."""
    if side not in ("request", "response"):
        raise ValueError(f"side must be 'request' or 'response', not {side!r}")
    sha_col = getattr(Exchange, f"{side}_body_sha256")
    query = (
        select(
            sha_col.label("sha256"),
            getattr(Exchange, f"{side}_body_size").label("size"),
            getattr(Exchange, f"{side}_body_truncated").label("truncated"),
            getattr(Exchange, f"{side}_body_encoding").label("encoding"),
            getattr(Exchange, f"{side}_content_type").label("content_type"),
            Body.compression,
            Body.data,
        )
        .join(Body, Body.sha256 == sha_col)
        .where(Exchange.id == exchange_id)
    )
    with store.connect() as conn:
        row = conn.execute(query).one_or_none()
    if row is None:
        return None
    return StoredBody(
        data=unpack_body(row.compression, row.data),
        size=row.size,
        truncated=bool(row.truncated),
        encoding=row.encoding,
        content_type=row.content_type,
        sha256=row.sha256,
    )


def list_websocket_messages(store: Store, *, exchange_id: int) -> list[dict] | None:
    """Messages of a WebSocket exchange in order; None when the exchange does not exist.

    Each: id, seq, timestamp (ISO), from_client, kind, size, truncated, close_code,
    text (UTF-8 payload for text/close, invalid bytes replaced; else null), data_b64.
    """
    with store.connect() as conn:
        uuid = conn.execute(select(Exchange.uuid).where(Exchange.id == exchange_id)).scalar_one_or_none()
        if uuid is None:
            return None
        rows = conn.execute(
            select(WebSocketMessage.__table__)
            .where(WebSocketMessage.exchange_uuid == uuid)
            .order_by(WebSocketMessage.seq)
        )
        return [
            {
                "id": m.id,
                "seq": m.seq,
                "timestamp": iso_utc(m.timestamp),
                "from_client": bool(m.from_client),
                "kind": m.kind,
                "size": m.size,
                "truncated": bool(m.truncated),
                "close_code": m.close_code,
                "text": bytes(m.data).decode("utf-8", "replace") if m.kind in ("text", "close") else None,
                "data_b64": base64.b64encode(bytes(m.data)).decode("ascii"),
            }
            for m in rows
        ]


def proxy_stats(store: Store) -> list[dict]:
    """Every proxy's last reported writer counters (storage.writer), by name, with the
    seconds since it reported; and how many exchanges wait for the search indexer."""
    with store.connect() as conn:
        rows = conn.execute(select(ProxyStat.__table__).order_by(ProxyStat.proxy)).all()
    now = dt.datetime.now(dt.UTC)
    return [
        {
            **{key: value for key, value in row._asdict().items() if key not in ("started_at", "updated_at", "stopped_at")},
            "started_at": iso_utc(row.started_at),
            "updated_at": iso_utc(row.updated_at),
            "stopped_at": iso_utc(row.stopped_at),
            "age_seconds": round((now - row.updated_at).total_seconds(), 3),
        }
        for row in rows
    ]


def index_backlog(store: Store) -> int:
    """Exchanges stored but not yet indexed for search."""
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(SearchPending)).scalar_one())


def database_health(store: Store) -> dict:
    """{"ok", "dialect", "exchanges", "error"}; never raises."""
    try:
        with store.connect() as conn:
            count = conn.execute(select(func.count()).select_from(Exchange)).scalar_one()
        return {"ok": True, "dialect": store.dialect, "exchanges": int(count), "error": None}
    except Exception as exc:  # noqa: BLE001 - health must never raise
        return {"ok": False, "dialect": store.dialect, "exchanges": 0, "error": one_line(exc)}
