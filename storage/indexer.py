"""Search indexing, off the capture path: pending exchanges -> exchange_headers + full-text index.

The writer only queues the id of each exchange it inserts in `search_pending` (one
small row, same transaction). index_pending() takes up to `limit` queued ids, builds
what search needs (header: terms, the URL and decoded text bodies for free text; see
storage.search_sql) from the stored rows, inserts it and removes the ids from the
queue, all in one transaction, so an id is indexed exactly once however many indexers
run: on PostgreSQL the queue rows are claimed with FOR UPDATE SKIP LOCKED (concurrent
indexers take disjoint ids); on SQLite the claim is a DELETE .. RETURNING under the
database's single write lock, and only the ids it returns are indexed. A crash rolls
the claim back with the rest. Ids are never tracked as "greater than the last seen":
PostgreSQL commits them out of order.

The maintenance role runs it (storage.maintenance, in each inspector or in `passageway
maintain`): on every batch the change feed reports, and in sweeps of the whole queue for
what was captured while none ran.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Connection, select

from storage.models import Body, Exchange, ExchangeHeader, escape_text, has_surrogate, unescape_text
from storage.pure.decoding import DecodeError, decode_prefix
from storage.pure.search import HEADER_VALUE_MAX, words_only
from storage.queries import exchange_url, unpack_body
from storage.search_sql import is_text_content_type
from storage.sink import array_columns, unnest_insert
from storage.store import Store

__all__ = ["index_pending", "pending_ids", "refresh_statistics"]

log = logging.getLogger(__name__)

_INDEX_TEXT_LIMIT = 128 * 1024
"""Decoded characters of each text body that go into the full-text index. Bounded so one
batch stays cheap and a PostgreSQL tsvector stays far below its 1 MB limit."""

HEADER_COLUMNS = ("name", "value", "side", "exchange_id")
_SQL_HEADERS = "INSERT OR IGNORE INTO exchange_headers (name, value, side, exchange_id) VALUES (?, ?, ?, ?)"
_SQL_FTS = "INSERT INTO exchange_fts (rowid, url, body) VALUES (?, ?, ?)"
_PG_HEADERS = unnest_insert(ExchangeHeader.__table__, HEADER_COLUMNS, list(HEADER_COLUMNS), None)
# Each distinct body document of a batch is tokenized once (the same response body comes back
# again and again); the text arrives as words_only() text, so to_tsvector splits only at spaces.
_PG_SEARCH = (
    "WITH b AS MATERIALIZED (SELECT n, setweight(to_tsvector('simple', x), 'B') AS doc "
    "FROM unnest(%s::text[]) WITH ORDINALITY AS d(x, n)) "
    "INSERT INTO exchange_search (exchange_id, doc) "
    "SELECT t.i, setweight(to_tsvector('simple', t.u), 'A') || coalesce(b.doc, ''::tsvector) "
    "FROM unnest(%s::bigint[], %s::text[], %s::bigint[]) AS t(i, u, n) LEFT JOIN b ON b.n = t.n "
    "ON CONFLICT (exchange_id) DO NOTHING"
)
# Oldest first; an ids filter (the change feed's batch) goes in as one array / JSON text.
_PG_CLAIM = (
    "DELETE FROM search_pending WHERE exchange_id IN (SELECT exchange_id FROM search_pending {where} "
    "ORDER BY exchange_id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING exchange_id"
)
_SQLITE_CANDIDATES = "SELECT exchange_id FROM search_pending {where} ORDER BY exchange_id LIMIT ?"
_SQLITE_CLAIM = "DELETE FROM search_pending WHERE exchange_id IN (SELECT value FROM json_each(?)) RETURNING exchange_id"

_COLUMNS = (
    Exchange.id, Exchange.scheme, Exchange.host, Exchange.port, Exchange.path, Exchange.query,
    Exchange.request_headers, Exchange.response_headers,
    Exchange.request_body_sha256, Exchange.request_body_encoding, Exchange.request_content_type,
    Exchange.response_body_sha256, Exchange.response_body_encoding, Exchange.response_content_type,
)  # fmt: skip


def index_pending(store: Store, *, limit: int = 500, ids: Sequence[int] | None = None) -> list[int]:
    """Index up to `limit` queued exchanges (only those among `ids`, when given) in one
    transaction; their ids, ascending. [] when nothing was pending (or all of it is
    being indexed by another indexer right now)."""
    if limit < 1 or (ids is not None and not ids):
        return []
    with store.begin() as conn:
        if store.dialect == "postgresql":
            where, params = ("WHERE exchange_id = ANY(%s)", [list(ids)]) if ids is not None else ("", [])
            claimed = [row[0] for row in conn.exec_driver_sql(_PG_CLAIM.format(where=where), (*params, limit))]
            docs = _documents(conn, claimed)
        else:
            # pysqlite begins the transaction at the first write: the reads and the CPU work
            # run before this indexer takes SQLite's one write lock (which the capture writer
            # also needs); the DELETE then claims what no other indexer took meanwhile.
            where, params = ("WHERE exchange_id IN (SELECT value FROM json_each(?))", [_json_ids(ids)]) if ids is not None else ("", [])
            candidates = [row[0] for row in conn.exec_driver_sql(_SQLITE_CANDIDATES.format(where=where), (*params, limit))]
            if not candidates:
                return []
            docs = _documents(conn, candidates)
            claimed = [row[0] for row in conn.exec_driver_sql(_SQLITE_CLAIM, (_json_ids(candidates),))]
            kept = set(claimed)
            docs = [doc for doc in docs if doc[0] in kept]
        if docs:
            _write(conn, store.dialect == "postgresql", docs)
    return sorted(claimed)


def pending_ids(store: Store, *, ids: Sequence[int]) -> set[int]:
    """Which of `ids` are still queued for indexing (including ones another indexer holds)."""
    if not ids:
        return set()
    with store.connect() as conn:
        if store.dialect == "postgresql":
            rows = conn.exec_driver_sql("SELECT exchange_id FROM search_pending WHERE exchange_id = ANY(%s)", (list(ids),))
        else:
            rows = conn.exec_driver_sql(
                "SELECT exchange_id FROM search_pending WHERE exchange_id IN (SELECT value FROM json_each(?))", (_json_ids(ids),)
            )
        return {row[0] for row in rows}


def refresh_statistics(store: Store) -> bool:
    """SQLite: ANALYZE exchanges when it has no planner statistics yet or has doubled since
    they were taken; True when it ran. PostgreSQL's autovacuum keeps its own.

    Without statistics SQLite's planner takes any indexed equality as good as another,
    and `service:billing method:POST` may scan every POST for the few billing ones
    (100 ms on a million). ANALYZE of this one table reads only its indexes (0.4 s on a
    million rows, under the write lock); doubling bounds how often that is paid.

    Several maintenance runners may share the file: the decision is taken again under the
    write lock (BEGIN IMMEDIATE), so only the first of them pays for the ANALYZE."""
    if store.dialect != "sqlite":
        return False
    with store.connect() as conn:
        if not _statistics_stale(conn):
            return False
        conn.commit()  # end the read transaction the check began (pysqlite: no BEGIN was sent)
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            ran = _statistics_stale(conn)
            if ran:
                conn.exec_driver_sql("ANALYZE exchanges")
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    return ran


def _statistics_stale(conn: Connection) -> bool:
    """SQLite: exchanges is big enough to need statistics and has none, or has doubled since."""
    newest = conn.exec_driver_sql("SELECT max(id) FROM exchanges").scalar() or 0
    if newest < _STATISTICS_MIN_ROWS:
        return False
    if not conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'").scalar():
        return True
    stat = conn.exec_driver_sql(
        "SELECT stat FROM sqlite_stat1 WHERE tbl = 'exchanges' AND idx = 'ix_exchanges_service_id'"
    ).scalar()
    return stat is None or newest >= 2 * int(stat.split()[0])


_STATISTICS_MIN_ROWS = 10_000
"""Below this, any plan is fast: no statistics to keep."""


def _json_ids(ids: Sequence[int]) -> str:
    return "[" + ",".join(str(int(i)) for i in ids) + "]"


_Doc = tuple[int, set[tuple[str, str, int]], str, str]
"""(exchange id, its distinct (header name lowercased, value cut, side), URL text, body text)."""


def _documents(conn: Connection, ids: Sequence[int]) -> list[_Doc]:
    """What header: and free-text search index for each of `ids` (ids no longer stored are skipped)."""
    if not ids:
        return []
    rows = conn.execute(select(*_COLUMNS).where(Exchange.id.in_(ids)).order_by(Exchange.id)).all()
    shas = {sha for row in rows for sha, content_type in ((row[8], row[10]), (row[11], row[13]))
            if sha is not None and is_text_content_type(content_type)}  # fmt: skip
    stored: dict[str, bytes] = {}
    if shas:
        for sha, compression, data in conn.execute(
            select(Body.sha256, Body.compression, Body.data).where(Body.sha256.in_(sorted(shas)))
        ):
            stored[sha] = unpack_body(compression, data)
    texts: dict[tuple[str, str | None], str] = {}  # each distinct body decoded once

    def body_text(sha: str | None, encoding: str | None, content_type: str | None) -> str:
        if sha is None or sha not in stored or not is_text_content_type(content_type):
            return ""
        key = (sha, encoding)
        tokens = texts.get(key)
        if tokens is None:
            data = stored[sha]
            if encoding:
                try:
                    # Only what is indexed is inflated (a few bytes past it keep a cut character decodable).
                    data = decode_prefix(data, encoding, _INDEX_TEXT_LIMIT * 4)
                except DecodeError:
                    data = b""
            tokens = texts[key] = _index_safe(data[: _INDEX_TEXT_LIMIT * 4].decode("utf-8", "replace")[:_INDEX_TEXT_LIMIT])
        return tokens

    docs = []
    for (id_, scheme, host, port, path, query, request_headers, response_headers,
         req_sha, req_encoding, req_type, res_sha, res_encoding, res_type) in rows:  # fmt: skip
        headers = {_header(name, value, 0) for name, value in request_headers or ()}
        headers.update(_header(name, value, 1) for name, value in response_headers or ())
        url = _index_safe(exchange_url(scheme, host, port, path, query))
        request = body_text(req_sha, req_encoding, req_type)
        response = body_text(res_sha, res_encoding, res_type)
        docs.append((id_, headers, url, f"{request} {response}" if request and response else request or response))
    return docs


def _header(name: str, value: str, side: int) -> tuple[str, str, int]:
    # Stored headers are escape_text'ed as whole strings: lowercase and cut the real text.
    return escape_text(unescape_text(name).lower()), escape_text(unescape_text(value)[:HEADER_VALUE_MAX]), side


def _write(conn: Connection, postgres: bool, docs: list[_Doc]) -> None:
    headers = [(name, value, side, id_) for id_, pairs, _, _ in docs for name, value, side in pairs]
    if postgres:
        if headers:
            conn.exec_driver_sql(_PG_HEADERS, array_columns(headers, len(HEADER_COLUMNS)))
        bodies: dict[str, int] = {}  # distinct body document -> its 1-based position
        rows = [
            (id_, words_only(url), bodies.setdefault(words_only(body), len(bodies) + 1) if body else None)
            for id_, _, url, body in docs
        ]
        conn.exec_driver_sql(_PG_SEARCH, (list(bodies), *array_columns(rows, 3)))
    else:
        if headers:
            conn.exec_driver_sql(_SQL_HEADERS, headers)
        conn.exec_driver_sql(_SQL_FTS, [(id_, url, body) for id_, _, url, body in docs])


def _index_safe(text: str) -> str:
    """Text both databases accept (no NUL, no lone surrogates); only its words matter to the index.

    SQLite's FTS5 (unicode61) splits the text into words itself; for PostgreSQL _write
    first replaces what separates words with spaces (words_only)."""
    if "\x00" in text:
        text = text.replace("\x00", " ")
    if not text.isascii() and has_surrogate(text):
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text
