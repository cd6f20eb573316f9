"""The database side of the write path: batches of rows in, one transaction each.

DatabaseSink holds the dialect SQL (PostgreSQL: a whole batch per INSERT through
unnest_insert; SQLite: executemany), keyed so that a batch written twice adds
nothing, and announces what each commit added on NOTIFY_CHANNEL (PostgreSQL), which
storage.feed listens on. It also keeps a writer's counters in proxy_stats.
write_records() writes at once, on the caller's thread (imports, tests).

Search indexing is not done here: it cost the writer three quarters of its
throughput. The same transaction only queues the id of each exchange it inserts
in search_pending; storage.indexer builds the search indexes from the stored rows
later, in the inspector process.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Insert, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import psycopg as _psycopg_dialect  # noqa: F401 - registers postgresql.psycopg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from storage.models import Body, Exchange, ProxyStat, WebSocketMessage
from storage.pending import delete_pending, unknown_outcomes, upsert_pending
from storage.pure.decoding import DEFAULT_DECODE_LIMIT
from storage.pure.pending import PendingNotice
from storage.rollups import SOURCE_COLUMNS, RollupWriter, accumulate, uncount, with_hours
from storage.rows import (
    BODY_COLUMNS,
    EXCHANGE_COLUMNS,
    WEBSOCKET_COLUMNS,
    PreparedBatch,
    Record,
    RowBuilder,
    capture_blocks,
)  # fmt: skip
from storage.store import Store

_ROLLUP_FIELDS = tuple(EXCHANGE_COLUMNS.index(name) for name in SOURCE_COLUMNS)
_UUID = EXCHANGE_COLUMNS.index("uuid")

__all__ = ["NOTIFY_CHANNEL", "DatabaseSink", "array_columns", "is_transient", "unnest_insert", "write_records"]

NOTIFY_CHANNEL = "passageway_exchanges"
_NOTIFY_MAX = 7900  # PostgreSQL rejects payloads of 8000 bytes or more


def _notify_payloads(ids: Sequence[int]) -> list[str]:
    payloads, current, size = [], [], 0
    for value in ids:
        piece = str(value)
        if current and size + len(piece) + 1 > _NOTIFY_MAX:
            payloads.append(",".join(current))
            current, size = [], 0
        current.append(piece)
        size += len(piece) + 1
    if current:
        payloads.append(",".join(current))
    return payloads


def _compile(stmt: Insert, dialect: Dialect, columns: Sequence[str]) -> str:
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
    if tuple(compiled.positiontup or ()) != tuple(columns):
        raise RuntimeError(f"INSERT parameter order {compiled.positiontup} does not match {columns}")
    return str(compiled)


class DatabaseSink:
    """Writes batches, one transaction each, with Core INSERT .. ON CONFLICT DO
    NOTHING executemany. Idempotent: a batch written twice (a retry after a
    lost commit acknowledgement) adds no rows."""

    def __init__(self, store: Store, *, decode_limit: int = DEFAULT_DECODE_LIMIT) -> None:
        self.store = store
        self._postgres = store.dialect == "postgresql"
        self.rows = RowBuilder(store.dialect, decode_limit=decode_limit)
        if self._postgres:
            insert, dialect = postgresql.insert, postgresql.psycopg.dialect(paramstyle="format")
        else:
            insert, dialect = sqlite.insert, sqlite.dialect(paramstyle="qmark")
        self._sql_bodies = _compile(insert(Body).on_conflict_do_nothing(index_elements=["sha256"]), dialect, BODY_COLUMNS)
        self._sql_exchanges = _compile(
            insert(Exchange).inline().on_conflict_do_nothing(index_elements=["captured_at", "uuid"]), dialect, EXCHANGE_COLUMNS
        )
        self._sql_messages = _compile(
            insert(WebSocketMessage).inline().on_conflict_do_nothing(index_elements=["exchange_uuid", "seq"]),
            dialect,
            WEBSOCKET_COLUMNS,
        )
        self._pg_bodies = unnest_insert(Body.__table__, BODY_COLUMNS, ["sha256"], None)
        self._pg_exchanges = unnest_insert(
            Exchange.__table__, EXCHANGE_COLUMNS, ["captured_at", "uuid"], "id, captured_at, uuid"
        )
        self.rollups = RollupWriter(store.dialect)
        # The search queue: one small row per new exchange (storage.indexer takes them).
        self._sql_pending = "INSERT OR IGNORE INTO search_pending (exchange_id) VALUES (?)"
        self._pg_pending = "INSERT INTO search_pending (exchange_id) SELECT unnest(%s::bigint[]) ON CONFLICT DO NOTHING"
        # Widen each touched block's capture range (storage.models.CaptureBlock). Blocks in
        # ascending order, so concurrent writers lock the rows they share in the same order.
        self._sql_blocks = (
            "INSERT INTO capture_blocks (block, earliest, latest) VALUES (?, ?, ?) ON CONFLICT (block) DO UPDATE "
            "SET earliest = min(earliest, excluded.earliest), latest = max(latest, excluded.latest)"
        )
        self._pg_blocks = (
            "INSERT INTO capture_blocks (block, earliest, latest) SELECT * FROM unnest(%s::bigint[], "
            "%s::timestamptz[], %s::timestamptz[]) ON CONFLICT (block) DO UPDATE "
            "SET earliest = LEAST(capture_blocks.earliest, excluded.earliest), "
            "latest = GREATEST(capture_blocks.latest, excluded.latest)"
        )

    def prepare(self, records: Sequence[Record]) -> PreparedBatch:
        return self.rows.prepare(records)

    def report(self, proxy: str, *, started_at: dt.datetime, values: dict[str, Any]) -> None:
        """Upsert one proxy's counters (storage.models.ProxyStat)."""
        insert = postgresql.insert if self._postgres else sqlite.insert
        row = {"proxy": proxy, "started_at": started_at, "updated_at": dt.datetime.now(dt.UTC), **values}
        statement = insert(ProxyStat).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=["proxy"], set_={name: statement.excluded[name] for name in row if name != "proxy"}
        )
        with self.store.engine.begin() as conn:
            conn.execute(statement)

    def write_batch(self, records: Sequence[Record]) -> None:
        self.write(self.prepare(records))

    def announce(self, notices: Sequence[PendingNotice]) -> int:
        """Upsert pending notices (storage.pending) in a short transaction of their own."""
        with self.store.engine.begin() as conn:
            return upsert_pending(conn, notices)

    def write(
        self, batch: PreparedBatch, *, return_ids: bool = False, announced: Sequence[tuple[float, str]] = ()
    ) -> list[int] | None:
        """Insert `batch` in one transaction; with return_ids, the id of each exchange record.

        `announced`: the (captured_at, uuid) of the batch's exchanges that were announced as
        pending. Their notices go in the same transaction; an unknown_outcome exchange that
        maintenance made of one meanwhile is deleted first (its own transaction, before: if
        this one then fails, the record is still in the spool), so the real record wins."""
        if announced:
            self._replace_unknown_outcomes(announced)
        with self.store.engine.begin() as conn:
            if announced:
                delete_pending(conn, [uuid for _, uuid in announced])
            new_ids: list[int] = []
            inserted: list[tuple[int, int]] = []  # SQLite: (row index in batch, new exchange id)
            if self._postgres:
                if batch.bodies:
                    conn.exec_driver_sql(self._pg_bodies, array_columns(batch.bodies.values(), len(BODY_COLUMNS)))
                if batch.exchanges:
                    result = conn.exec_driver_sql(self._pg_exchanges, array_columns(batch.exchanges, len(EXCHANGE_COLUMNS)))
                    stored = result.all()
                    new_ids = [id_ for id_, _, _ in stored]
                    if stored:
                        blocks = capture_blocks((id_, captured_at) for id_, captured_at, _ in stored)
                        conn.exec_driver_sql(self._pg_blocks, array_columns(blocks, 3))
                        new_uuids = {uuid for _, _, uuid in stored}
                        self._roll_up(conn, [row for row in batch.exchanges if _take(new_uuids, row[_UUID])])
            else:
                if batch.bodies:
                    conn.exec_driver_sql(self._sql_bodies, list(batch.bodies.values()))
                if batch.exchanges:
                    inserted = self._sqlite_insert_exchanges(conn, batch.exchanges)
                    if inserted:
                        stored = [(id_, batch.exchanges[index][1]) for index, id_ in inserted]
                        conn.exec_driver_sql(self._sql_blocks, capture_blocks(stored))
                        self._roll_up(conn, [batch.exchanges[index] for index, _ in inserted])
            if new_ids:
                conn.exec_driver_sql(self._pg_pending, (new_ids,))
            elif inserted:
                conn.exec_driver_sql(self._sql_pending, [(id_,) for _, id_ in inserted])
            if batch.websocket_messages:
                conn.exec_driver_sql(self._sql_messages, batch.websocket_messages)
            if new_ids:
                # Delivered at commit, so listeners never see an id they cannot read yet. Only the
                # rows this batch inserted: a retried batch's rows were announced when first committed.
                for payload in _notify_payloads(sorted(new_ids)):
                    conn.exec_driver_sql("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, payload))
            return self._ids(conn, batch.exchanges) if return_ids else None

    def _roll_up(self, conn: Connection, new_rows: Sequence[tuple]) -> None:
        """Merge the exchanges this batch inserted (only those: a retried batch counts once) into
        the traffic rollups (storage.rollups), after capture_blocks: every writer locks in that order."""
        source = ([row[index] for index in _ROLLUP_FIELDS] for row in new_rows)
        self.rollups.merge(conn, with_hours(accumulate({}, source)))

    def _replace_unknown_outcomes(self, announced: Sequence[tuple[float, str]]) -> None:
        keys = [(dt.datetime.fromtimestamp(at, dt.UTC), uuid) for at, uuid in announced]
        with self.store.connect() as conn:
            placeholders = {row[0]: row for row in unknown_outcomes(conn, keys)}
            if placeholders:  # rare: a record outlived its notice
                from storage.retention import delete_exchanges  # retention imports this module (via indexer)

                def uncount_deleted(conn: Connection, deleted: list[int]) -> None:
                    # The real record is rolled up when it is inserted: the placeholder no longer counts.
                    uncount(conn, [placeholders[id_] for id_ in deleted])

                delete_exchanges(conn, list(placeholders), on_deleted=uncount_deleted)

    def _sqlite_insert_exchanges(self, conn: Connection, rows: list[tuple]) -> list[tuple[int, int]]:
        """Insert, and say which rows were new and their ids, without RETURNING (executemany).

        This connection holds the write lock from the first INSERT to the commit, and ids
        come from AUTOINCREMENT, so the n rows inserted got the n ids ending at
        last_insert_rowid(), in order. Only when some rows already existed (a retried
        batch) are they matched by key."""
        before = conn.exec_driver_sql("SELECT total_changes()").scalar_one()
        conn.exec_driver_sql(self._sql_exchanges, rows)
        after, last = conn.exec_driver_sql("SELECT total_changes(), last_insert_rowid()").one()
        count = after - before
        if count == len(rows):
            return list(enumerate(range(last - count + 1, last + 1)))
        if count == 0:
            return []
        found = conn.exec_driver_sql(
            "SELECT captured_at, uuid, id FROM exchanges WHERE id BETWEEN ? AND ?", (last - count + 1, last)
        ).all()
        return _match_rows(rows, [tuple(row) for row in found])

    def _ids(self, conn: Connection, rows: Sequence[tuple]) -> list[int]:
        """The id of each exchange row (inserted now or before), found by its (captured_at, uuid) key."""
        mark = "%s" if self._postgres else "?"
        by_key: dict[tuple, int] = {}
        keys = list(dict.fromkeys((row[1], row[0]) for row in rows))
        for start in range(0, len(keys), 400):
            chunk = keys[start : start + 400]
            times = list(dict.fromkeys(key[0] for key in chunk))
            uuids = list(dict.fromkeys(key[1] for key in chunk))
            sql = (
                f"SELECT captured_at, uuid, id FROM exchanges WHERE captured_at IN ({','.join([mark] * len(times))}) "
                f"AND uuid IN ({','.join([mark] * len(uuids))})"
            )
            for captured_at, uuid, id_ in conn.exec_driver_sql(sql, (*times, *uuids)):
                by_key[(captured_at, uuid)] = id_
        return [by_key[(row[1], row[0])] for row in rows]


def _match_rows(rows: Sequence[tuple], found: Sequence[tuple]) -> list[tuple[int, int]]:
    """(row index, id) for each found (captured_at, uuid, id), matched on the rows' key, in row order."""
    by_key = {(captured_at, uuid): id_ for captured_at, uuid, id_ in found}
    out = []
    for index, row in enumerate(rows):
        id_ = by_key.pop((row[1], row[0]), None)
        if id_ is not None:
            out.append((index, id_))
    return out


def _take(keys: set[str], key: str) -> bool:
    """Whether `key` is in `keys`, removing it: a record twice in one batch was inserted once."""
    if key in keys:
        keys.discard(key)
        return True
    return False


def array_columns(rows: Iterable[tuple], width: int) -> tuple[list, ...]:
    """Rows -> one list per column: the arrays for INSERT .. SELECT FROM unnest(...)."""
    columns = tuple(list(column) for column in zip(*rows, strict=True))
    return columns or tuple([] for _ in range(width))


def unnest_insert(table: Table, columns: Sequence[str], conflict: Sequence[str], returning: str | None) -> str:
    """PostgreSQL: one INSERT for a whole batch, each column passed as one array.

    Several times faster than executemany (one statement, one round trip), and unlike
    COPY it keeps ON CONFLICT DO NOTHING. Arrays are cast to the column types."""
    dialect = postgresql.psycopg.dialect()
    arrays = ", ".join(f"%b::{table.c[name].type.compile(dialect=dialect)}[]" for name in columns)
    names = ", ".join(dialect.identifier_preparer.quote(name) for name in columns)
    sql = (
        f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    )
    return sql + (f" RETURNING {returning}" if returning else "")


_sinks: weakref.WeakKeyDictionary[Store, DatabaseSink] = weakref.WeakKeyDictionary()


def _sink_for(store: Store) -> DatabaseSink:
    sink = _sinks.get(store)
    if sink is None:
        sink = _sinks[store] = DatabaseSink(store)
    return sink


def write_records(store: Store, records: Sequence[Record]) -> list[int]:
    """Write `records` now, in one transaction; the exchange ids in input order."""
    sink = _sink_for(store)
    return sink.write(sink.prepare(records), return_ids=True) or []


def is_transient(exc: BaseException) -> bool:
    """Would retrying help? (database away, locked, connection lost)."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeoutError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated

