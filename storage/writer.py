"""The one write path: records in, rows out, in batched transactions.

    proxy event loop --submit()--> bounded deque --writer thread--> DatabaseSink.write()

submit() only appends to a deque (no hashing, no I/O). The writer thread takes
up to `batch_size` records (or what arrived within `flush_interval`), prepares
rows (SHA-256, zstd, decoded sizes) once, and writes them in one transaction,
retrying with capped backoff while the database is away.

With a spool (the proxy's default), a second thread sits between the two:

    deque --appender thread--> storage.spool (disk, fdatasync'd) --writer thread--> DatabaseSink

The appender writes whatever was queued every `append_interval` (50 ms), so a
killed proxy loses at most those records, and fdatasyncs at most every
SYNC_INTERVAL (100 ms), which bounds what a machine crash loses. (At 20 ms with a
sync per append, the spool cost the proxy ~80 µs of CPU per record at 400
records/s; at 50 ms, ~30.) The writer reads the spool in order, writes, and
acknowledges. A database that is away only lengthens the
spool; records left in it at exit are written at the next start.

Search indexing is not done here: it cost the writer three quarters of its
throughput. The same transaction only queues the id of each exchange it inserts
in search_pending; storage.indexer builds the search indexes from the stored rows
later, in the inspector process.
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import json
import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import zstandard
from sqlalchemy import Connection, Dialect, Insert, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import psycopg as _psycopg_dialect  # noqa: F401 - registers postgresql.psycopg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from storage.decoding import decoded_size
from storage.models import (
    CAPTURE_BLOCK_IDS, Body, Exchange, ProxyStat, WebSocketMessage, escape_json_strings, escape_text,
)  # fmt: skip
from storage.record import CapturedBody, ExchangeRecord, Timings, WebSocketMessageRecord
from storage.record_codec import RecordDecodeError, decode_record, encode_record
from storage.spool import Spool
from storage.store import Store, one_line

__all__ = [
    "DatabaseSink", "ExchangeWriter", "PreparedBatch", "WriterStats", "array_columns", "capture_blocks", "is_transient",
    "unnest_insert", "write_records", "NOTIFY_CHANNEL",
]  # fmt: skip

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "passageway_exchanges"
_NOTIFY_MAX = 7900  # PostgreSQL rejects payloads of 8000 bytes or more
_ZSTD_LEVEL = 3
_MIN_COMPRESS = 64  # smaller bodies never shrink under zstd's frame overhead
_DECODED_LIMIT = 256 * 1024 * 1024  # beyond this the decoded size is recorded as unknown
_BACKOFF_START = 0.05
_BACKOFF_MAX = 5.0
_DROP_LOG_INTERVAL = 10.0
_APPEND_MAX = 1000
SYNC_INTERVAL = 0.1
"""Seconds between two fdatasyncs of the spool while records keep coming."""
REPORT_INTERVAL = 5.0
"""Seconds between two reports of a writer's counters to proxy_stats."""

Record = ExchangeRecord | WebSocketMessageRecord

_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    # Compressors are not thread-safe; write_records may run beside the writer thread.
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
    return compressor


@dataclass(slots=True)
class PreparedBatch:
    """Rows ready to insert: the work that is done once, however often it is retried."""

    exchanges: list[tuple] = field(default_factory=list)
    """Parameter tuples in EXCHANGE_COLUMNS order."""
    bodies: dict[bytes, tuple] = field(default_factory=dict)
    """sha256 digest -> tuple in BODY_COLUMNS order (each distinct body once)."""
    websocket_messages: list[tuple] = field(default_factory=list)
    uuids: list[str] = field(default_factory=list)
    """uuid of each ExchangeRecord, in input order (duplicates kept)."""

    def __len__(self) -> int:
        return len(self.exchanges) + len(self.websocket_messages)


_json = json.JSONEncoder(separators=(",", ":")).encode  # one encoder: json.dumps(**kw) builds one per call
_SUSPECT_JSON = ("\\u0000", "\\ud", "\\ue000")  # NUL, surrogates (and some innocent chars), MARK
_quote = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]  # the C string encoder json uses


def _headers_json(headers: Sequence[tuple[str, str]] | None) -> str | None:
    """[[name, value], ...] as JSON, each string escape_text'ed (checked on the JSON, cheaply).

    Spelled out with json's own C string encoder: the same text as _json(headers),
    at a third of the cost (JSONEncoder builds a C encoder object per call)."""
    if headers is None:
        return None
    if not headers:
        return "[]"
    try:
        encoded = "[[" + "],[".join([_quote(name) + "," + _quote(value) for name, value in headers]) + "]]"
    except TypeError:  # not (str, str) pairs: let json say what it makes of them
        encoded = _json(headers)
    if "\\u" in encoded and any(marker in encoded for marker in _SUSPECT_JSON):
        encoded = _json([[escape_text(name), escape_text(value)] for name, value in headers])
    return encoded


_TIMING_FIELDS = ("request_start", "connect_start", "connect_end", "tls_end", "request_end", "response_start",
                  "response_end")  # fmt: skip
_TIMINGS_JSON = "{" + ",".join(f'"{name}":%s' for name in _TIMING_FIELDS) + "}"


_TIMING_TYPES = {float, int, type(None)}


def _timings_json(t: Timings) -> str:
    """The Timings as a JSON object (float repr is what json writes for finite floats)."""
    values = (t.request_start, t.connect_start, t.connect_end, t.tls_end, t.request_end, t.response_start,
              t.response_end)  # fmt: skip
    encoded = _TIMINGS_JSON % tuple(["null" if v is None else repr(v) for v in values])
    # No field name holds "inf" or "nan"; json writes Infinity/NaN, and bools/others its own way.
    if "inf" in encoded or "nan" in encoded or not _TIMING_TYPES.issuperset(map(type, values)):
        return _json(dict(zip(_TIMING_FIELDS, values, strict=True)))
    return encoded


class _SqliteTimestamps:
    """Epoch seconds -> SQLAlchemy's SQLite DATETIME text ("YYYY-MM-DD HH:MM:SS.ffffff", naive UTC),
    equal to datetime.fromtimestamp(epoch, UTC).isoformat(" ", "microseconds") without building
    a datetime per row: the date-and-seconds prefix is cached (records arrive in time order)."""

    __slots__ = ("_cached",)

    def __init__(self) -> None:
        self._cached: tuple[int, str] = (-(2**62), "")  # (second, prefix): one attribute, so thread-safe

    def __call__(self, epoch: float) -> str:
        frac, whole = math.modf(epoch)
        micro = round(frac * 1e6)  # as datetime.fromtimestamp: round half even
        second = int(whole)
        if micro >= 1_000_000:
            second += 1
            micro -= 1_000_000
        elif micro < 0:
            second -= 1
            micro += 1_000_000
        cached_second, prefix = self._cached
        if second != cached_second:
            prefix = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.")
            self._cached = (second, prefix)
        return f"{prefix}{micro:06d}"


class _BodyCache:
    """Per-batch: each distinct body is hashed once and compressed once."""

    __slots__ = ("bodies", "decoded")

    def __init__(self, bodies: dict[bytes, tuple]) -> None:
        self.bodies = bodies
        self.decoded: dict[tuple[bytes, str | None, bool], int | None] = {}

    def add(self, body: CapturedBody) -> tuple[bytes, int | None]:
        data = bytes(body.data)
        sha = hashlib.sha256(data).digest()
        if sha not in self.bodies:
            compression, stored = "none", data
            if len(data) >= _MIN_COMPRESS:
                packed = _compressor().compress(data)
                if len(packed) < len(data):
                    compression, stored = "zstd", packed
            self.bodies[sha] = (sha, len(data), compression, stored)
        if not body.encoding:
            return sha, len(data)
        key = (sha, body.encoding, body.truncated)
        if key not in self.decoded:
            self.decoded[key] = decoded_size(data, body.encoding, partial=body.truncated, limit=_DECODED_LIMIT)
        return sha, self.decoded[key]


_NO_BODY = (None,) * 7


def _body_values(body: CapturedBody | None, cache: _BodyCache) -> tuple:
    if body is None:
        return _NO_BODY
    sha, decoded = cache.add(body)
    return (sha, body.size, len(body.data), body.truncated, _text(body.encoding), _text(body.content_type), decoded)


def _text(value: str | None) -> str | None:
    if value is None or (value.isascii() and "\x00" not in value):
        return value
    return escape_text(value)


# Column order of the tuples built below: the table's order, which the compiled INSERT follows.
EXCHANGE_COLUMNS = (
    "uuid", "captured_at", "proxy", "service", "realm", "client_addr", "scheme", "method", "host", "port",
    "path", "query", "http_version", "status", "reason", "duration_ms", "request_headers", "response_headers",
    "request_body_sha256", "request_body_size", "request_body_stored_size", "request_body_truncated",
    "request_body_encoding", "request_content_type", "request_body_decoded_size",
    "response_body_sha256", "response_body_size", "response_body_stored_size", "response_body_truncated",
    "response_body_encoding", "response_content_type", "response_body_decoded_size",
    "timings", "error_kind", "error_message", "trace_id", "span_id", "request_id", "replay_of", "tags",
    "websocket", "parent_span_id", "caller",
)  # fmt: skip
BODY_COLUMNS = ("sha256", "size", "compression", "data")
WEBSOCKET_COLUMNS = (
    "exchange_uuid", "seq", "timestamp", "from_client", "kind", "data", "size", "truncated", "close_code",
)  # fmt: skip


class _RowBuilder:
    """Records -> parameter tuples, converted the way the column types would
    convert them (SafeText escaping, JSON text, UTC datetimes), but without
    SQLAlchemy's per-value bind processing, which cost more than the inserts."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self._sqlite_timestamp = _SqliteTimestamps()

    def timestamp(self, epoch: float) -> dt.datetime | str:
        if self.sqlite:  # SQLAlchemy's SQLite DATETIME text format: naive UTC, always 6 fraction digits
            return self._sqlite_timestamp(epoch)
        return dt.datetime.fromtimestamp(epoch, dt.UTC)

    def exchange(self, rec: ExchangeRecord, cache: _BodyCache) -> tuple:
        scalars = (rec.proxy, rec.service, rec.realm, rec.client_addr, rec.scheme, rec.method, rec.host, rec.path,
                   rec.query, rec.http_version, rec.reason, rec.error_message, rec.trace_id, rec.span_id,
                   rec.request_id, rec.parent_span_id, rec.caller)  # fmt: skip
        probe = "".join([v for v in scalars if v])
        if not probe.isascii() or "\x00" in probe:  # rare: escape field by field
            scalars = tuple(_text(v) for v in scalars)
        (proxy, service, realm, client_addr, scheme, method, host, path, query, http_version, reason,
         error_message, trace_id, span_id, request_id, parent_span_id, caller) = scalars  # fmt: skip
        timings = _timings_json(rec.timings)
        if rec.har:  # an import's own facts ride in the timings column (storage.models.Exchange.timings)
            timings = f'{timings[:-1]},"har":{_json(escape_json_strings(rec.har))}}}'
        return (
            rec.uuid, self.timestamp(rec.captured_at), proxy, service, realm, client_addr, scheme, method, host,
            rec.port, path, query, http_version, rec.status, reason, rec.duration_ms,
            _headers_json(rec.request_headers), _headers_json(rec.response_headers),
            *_body_values(rec.request_body, cache), *_body_values(rec.response_body, cache),
            timings, rec.error_kind, error_message, trace_id, span_id, request_id, rec.replay_of,
            _json([escape_text(tag) for tag in rec.tags]) if rec.tags else "[]", rec.websocket, parent_span_id,
            caller,
        )  # fmt: skip

    def websocket(self, rec: WebSocketMessageRecord) -> tuple:
        return (rec.exchange_uuid, rec.seq, self.timestamp(rec.timestamp), rec.from_client, rec.kind,
                bytes(rec.data), rec.size, rec.truncated, rec.close_code)  # fmt: skip

    def prepare(self, records: Sequence[Record]) -> PreparedBatch:
        """Turn records into rows (CPU work only: hashing, compression, decoding)."""
        batch = PreparedBatch()
        cache = _BodyCache(batch.bodies)
        for rec in records:
            if isinstance(rec, ExchangeRecord):
                batch.exchanges.append(self.exchange(rec, cache))
                batch.uuids.append(rec.uuid)
            elif isinstance(rec, WebSocketMessageRecord):
                batch.websocket_messages.append(self.websocket(rec))
            else:
                raise TypeError(f"cannot store {type(rec).__name__}")
        return batch


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

    def __init__(self, store: Store) -> None:
        self.store = store
        self._postgres = store.dialect == "postgresql"
        self.rows = _RowBuilder(store.dialect)
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
            Exchange.__table__, EXCHANGE_COLUMNS, ["captured_at", "uuid"], "id, captured_at"
        )
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

    def write(self, batch: PreparedBatch, *, return_ids: bool = False) -> list[int] | None:
        """Insert `batch` in one transaction; with return_ids, the id of each exchange record."""
        with self.store.engine.begin() as conn:
            new_ids: list[int] = []
            inserted: list[tuple[int, int]] = []  # SQLite: (row index in batch, new exchange id)
            if self._postgres:
                if batch.bodies:
                    conn.exec_driver_sql(self._pg_bodies, array_columns(batch.bodies.values(), len(BODY_COLUMNS)))
                if batch.exchanges:
                    result = conn.exec_driver_sql(self._pg_exchanges, array_columns(batch.exchanges, len(EXCHANGE_COLUMNS)))
                    stored = result.all()
                    new_ids = [id_ for id_, _ in stored]
                    if stored:
                        conn.exec_driver_sql(self._pg_blocks, array_columns(capture_blocks(stored), 3))
            else:
                if batch.bodies:
                    conn.exec_driver_sql(self._sql_bodies, list(batch.bodies.values()))
                if batch.exchanges:
                    inserted = self._sqlite_insert_exchanges(conn, batch.exchanges)
                    if inserted:
                        stored = [(id_, batch.exchanges[index][1]) for index, id_ in inserted]
                        conn.exec_driver_sql(self._sql_blocks, capture_blocks(stored))
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


def capture_blocks(stored: Iterable[tuple[int, Any]]) -> list[tuple[int, Any, Any]]:
    """(exchange id, captured_at) pairs -> (block, earliest, latest) per CaptureBlock, ascending."""
    ranges: dict[int, list] = {}
    for id_, captured_at in stored:
        block = id_ // CAPTURE_BLOCK_IDS
        span = ranges.get(block)
        if span is None:
            ranges[block] = [captured_at, captured_at]
        elif captured_at < span[0]:
            span[0] = captured_at
        elif captured_at > span[1]:
            span[1] = captured_at
    return [(block, earliest, latest) for block, (earliest, latest) in sorted(ranges.items())]


def _match_rows(rows: Sequence[tuple], found: Sequence[tuple]) -> list[tuple[int, int]]:
    """(row index, id) for each found (captured_at, uuid, id), matched on the rows' key, in row order."""
    by_key = {(captured_at, uuid): id_ for captured_at, uuid, id_ in found}
    out = []
    for index, row in enumerate(rows):
        id_ = by_key.pop((row[1], row[0]), None)
        if id_ is not None:
            out.append((index, id_))
    return out


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


@dataclass(frozen=True, slots=True)
class WriterStats:
    submitted: int
    written: int
    """Records committed (or found already committed, for a retried batch)."""
    dropped: int
    """Refused by submit(): queue full or writer closed."""
    failed_batches: int
    """Write attempts that failed (each retry counts)."""
    queue_depth: int
    last_error: str | None
    lost: int = 0
    """Accepted but never written: the database stayed away until close() (without a
    spool), the record itself could not be stored, or the spool held damaged records."""
    spooled: int = 0
    """Records on disk in the spool that the database does not have yet."""
    spool_bytes: int = 0


class _GiveUp(Exception):
    pass


class ExchangeWriter:
    """Owns the one writer thread. submit() from anywhere; close() to flush."""

    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.05,
        queue_size: int = 20000,
        transform: Callable[[Record], Record] | None = None,
        report_as: str | None = None,
        spool: Spool | None = None,
        append_interval: float = 0.05,
    ) -> None:
        """`transform` rewrites each record in a writer thread before it is stored or spooled
        (the proxy's redact_at_capture); a record it fails on is rejected (counted, logged),
        never stored as it was. `report_as`: the proxy name under which the writer keeps its
        counters in proxy_stats, every REPORT_INTERVAL seconds while the database is up.
        `spool`: records pass through it (see the module's docstring); the writer owns it
        from here on and closes it."""
        if batch_size < 1 or queue_size < 1 or flush_interval < 0 or append_interval < 0:
            raise ValueError("batch_size and queue_size must be >= 1, flush_interval and append_interval >= 0")
        self.store = store
        self._transform = transform
        self._spool = spool
        self._append_interval = append_interval
        self._appender: threading.Thread | None = None
        self._appended_all = threading.Event()  # the appender has spooled its last record
        self._spool_ready = threading.Event()  # the appender has spooled something
        self._last_sync = 0.0
        self._report_as = report_as
        self._started_at = dt.datetime.now(dt.UTC)
        self._last_report = 0.0
        self._report_failure_logged = float("-inf")
        self._write_seconds = 0.0
        self._write_batches = 0
        self.sink = DatabaseSink(store)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._queue_size = queue_size
        self._queue: deque[Record] = deque()
        self._wake = threading.Event()  # something was queued
        self._full = threading.Event()  # a whole batch is queued (or closing)
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._deadline = float("inf")
        self._submitted = 0
        self._written = 0
        self._dropped = 0
        self._failed_batches = 0
        self._lost = spool.lost_on_open if spool is not None else 0
        self._last_error: str | None = None
        self._drops_unlogged = 0
        self._last_drop_log = 0.0
        self._outage_since: float | None = None

    # -- producer side (the proxy's event loop) ---------------------------------------

    def submit(self, record: Record) -> bool:
        """Queue `record`; False (dropped, counted) when the queue is full or closed."""
        queue = self._queue
        if len(queue) >= self._queue_size or self._closed:
            self._drop()
            return False
        queue.append(record)
        self._submitted += 1
        # Writer: clear() then check the deque; here: append then check the flag.
        # Either the writer sees the record or we see the cleared flag.
        if not self._wake.is_set():
            self._wake.set()
        if len(queue) >= self._batch_size and not self._full.is_set():
            self._full.set()
        return True

    def _drop(self, count: int = 1, reason: str | None = None) -> None:
        self._dropped += count
        self._drops_unlogged += count
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_INTERVAL or reason is not None:
            reason = reason or ("writer closed" if self._closed else f"queue full ({self._queue_size} records)")
            log.error("DROPPED %d exchange record(s): %s", self._drops_unlogged, reason)
            self._drops_unlogged = 0
            self._last_drop_log = now

    @property
    def stats(self) -> WriterStats:
        return WriterStats(
            submitted=self._submitted,
            written=self._written,
            dropped=self._dropped,
            failed_batches=self._failed_batches,
            queue_depth=len(self._queue),
            last_error=self._last_error,
            lost=self._lost,
            spooled=self._spool.pending_records if self._spool is not None else 0,
            spool_bytes=self._spool.pending_bytes if self._spool is not None else 0,
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            if self._spool is not None:
                self._appender = threading.Thread(target=self._append_loop, name="passageway-spool", daemon=True)
                self._appender.start()
            self._thread = threading.Thread(
                target=self._run if self._spool is None else self._drain_loop, name="passageway-writer", daemon=True
            )
            self._thread.start()
        atexit.register(self.close)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (retrying until `timeout`), then stop. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._deadline = time.monotonic() + timeout
            thread = self._thread
        atexit.unregister(self.close)
        self._closing.set()
        self._wake.set()
        self._full.set()
        if thread is None:  # never started: flush on the caller's thread
            if self._spool is not None:
                self._append_loop()
                self._drain_loop()
            else:
                self._run()
        else:
            thread.join(timeout + 1.0)
            if thread.is_alive():
                log.error(
                    "exchange writer did not stop within %.1fs (stuck in a database call); "
                    "%d queued record(s) may be lost",
                    timeout,
                    len(self._queue),
                )
        if self._appender is not None:
            self._appender.join(timeout + 1.0)
        if self._spool is not None and not any(t is not None and t.is_alive() for t in (thread, self._appender)):
            if self._spool.pending_records:
                log.warning(
                    "%d record(s) stay in the spool %s: the database %s did not take them before the proxy "
                    "stopped; they are written at its next start",
                    self._spool.pending_records,
                    self._spool.directory,
                    self.store.display_url,
                )
            self._maybe_report(stopping=True)
            self._spool.close()

    # -- writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        queue = self._queue
        while True:
            self._maybe_report()
            if not queue:
                if self._closing.is_set():
                    self._maybe_report(stopping=True)
                    return
                self._wake.clear()
                if not queue:
                    self._wake.wait(0.5)
                    continue
            if len(queue) < self._batch_size and not self._closing.is_set():
                deadline = time.monotonic() + self._flush_interval
                while len(queue) < self._batch_size and not self._closing.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._full.clear()
                    if len(queue) >= self._batch_size:
                        break
                    self._full.wait(remaining)
            batch = [queue.popleft() for _ in range(min(self._batch_size, len(queue)))]
            try:
                self._write(batch)
            except _GiveUp:
                lost = len(batch) + len(queue)
                queue.clear()
                self._lost += lost
                log.error(
                    "LOST %d exchange record(s): the database %s stayed unavailable until the writer was "
                    "closed (last error: %s)",
                    lost,
                    self.store.display_url,
                    self._last_error,
                )
                return
            except Exception:  # a bug in preparing rows must not kill the writer
                self._lost += len(batch)
                log.exception("LOST %d exchange record(s): unexpected error in the writer", len(batch))

    def _append_loop(self) -> None:
        """Queue -> spool, every append_interval: one write and one fdatasync for all."""
        queue = self._queue
        while True:
            if not queue:
                if self._closing.is_set():
                    break
                self._sync_spool()  # idle: nothing is left unsynced while nothing happens
                self._wake.clear()
                if not queue:
                    self._wake.wait(0.5)
                    continue
            if len(queue) < _APPEND_MAX and not self._closing.is_set():
                self._closing.wait(self._append_interval)  # gather some records: one append for all
            # A bounded append: a burst is written in slices the database writer can start on.
            records = [queue.popleft() for _ in range(min(len(queue), _APPEND_MAX))]
            try:
                self._append(records)
            except Exception:  # a bug in encoding must not kill the appender
                self._lost += len(records)
                log.exception("LOST %d exchange record(s): unexpected error in the spool appender", len(records))
        self._sync_spool()
        self._appended_all.set()
        self._spool_ready.set()

    def _sync_spool(self) -> None:
        assert self._spool is not None
        try:
            self._spool.sync()
            self._last_sync = time.monotonic()
        except OSError as exc:
            log.error("could not sync the spool %s: %s", self._spool.directory, one_line(exc))

    def _append(self, records: list[Record]) -> None:
        assert self._spool is not None
        payloads, kept = [], []
        for record in records:
            try:
                stored = self._transform(record) if self._transform else record
                payloads.append(encode_record(stored))
                kept.append(stored)
            except Exception as exc:
                self._reject([record], exc)
        now = time.monotonic()
        sync = now - self._last_sync >= SYNC_INTERVAL
        try:
            taken = self._spool.append(payloads, kept, sync=sync)
        except OSError as exc:
            self._drop(len(payloads), f"the spool {self._spool.directory} could not be written: {one_line(exc)}")
            return
        if taken < len(payloads):
            self._drop(
                len(payloads) - taken,
                f"the spool {self._spool.directory} is full ({self._spool.max_bytes} bytes) while the database "
                f"{self.store.display_url} does not keep up",
            )
        if sync:
            self._last_sync = now
        if taken:
            self._spool_ready.set()

    def _drain_loop(self) -> None:
        """Spool -> database, in order; acknowledged once committed."""
        spool = self._spool
        assert spool is not None
        while True:
            self._maybe_report()
            appended_all = self._appended_all.is_set()  # read before reading the spool: then nothing follows
            self._spool_ready.clear()
            frames, end = spool.read(self._batch_size)
            if not frames:
                if appended_all:
                    return
                self._spool_ready.wait(0.5)
                continue
            deadline = time.monotonic() + self._flush_interval
            while len(frames) < self._batch_size and not self._closing.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._spool_ready.wait(remaining):
                    break
                self._spool_ready.clear()
                more, more_end = spool.read(self._batch_size - len(frames))
                if more:
                    frames += more
                    end = more_end
            records = []
            for entry in frames:  # records still in memory, or payloads read back from disk
                if not isinstance(entry, bytes):
                    records.append(entry)
                    continue
                try:
                    records.append(decode_record(entry))
                except RecordDecodeError as exc:
                    self._reject([entry], exc)
            try:
                if records:
                    self._write(records)
            except _GiveUp:
                return  # closing with the database away: the records stay in the spool
            spool.ack(end, len(frames))

    def _maybe_report(self, *, stopping: bool = False) -> None:
        """Keep this writer's counters in proxy_stats (never while the database is away:
        the records come first, and a report would only wait for the same timeout)."""
        now = time.monotonic()
        if self._report_as is None or self._outage_since is not None:
            return
        if not stopping and now - self._last_report < REPORT_INTERVAL:
            return
        self._last_report = now
        stats = self.stats
        try:
            self.sink.report(
                self._report_as,
                started_at=self._started_at,
                values=dict(
                    submitted=stats.submitted, written=stats.written, dropped=stats.dropped, lost=stats.lost,
                    failed_batches=stats.failed_batches, queue_depth=stats.queue_depth, spooled=stats.spooled,
                    spool_bytes=stats.spool_bytes, write_seconds=self._write_seconds, write_batches=self._write_batches, last_error=stats.last_error,
                    stopped_at=dt.datetime.now(dt.UTC) if stopping else None,
                ),
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - counters only; the next report tries again
            if now - self._report_failure_logged > 60:
                self._report_failure_logged = now
                log.warning("could not report the writer's counters to proxy_stats: %s", one_line(exc))

    def _write(self, records: list[Record]) -> None:
        try:
            transform = self._transform if self._spool is None else None  # with a spool, the appender did it
            prepared = [transform(record) for record in records] if transform else records
            batch = self.sink.prepare(prepared)
        except Exception as exc:
            if len(records) == 1:
                self._reject(records, exc)
                return
            for record in records:  # find the record that cannot be prepared
                self._write([record])
            return
        try:
            self._write_prepared(batch)
        except _GiveUp:
            raise
        except Exception as exc:
            # Not a connectivity problem: some record is unstorable. Isolate it.
            if len(records) == 1:
                self._reject(records, exc)
                return
            for record in records:
                self._write([record])
            return
        self._written += len(records)

    def _reject(self, records: list[Record], exc: BaseException) -> None:
        self._lost += len(records)
        self._last_error = one_line(exc)
        log.error("LOST 1 exchange record that cannot be stored: %s", self._last_error, exc_info=exc)

    def _write_prepared(self, batch: PreparedBatch) -> None:
        delay = _BACKOFF_START
        while True:
            started = time.perf_counter()
            try:
                self.sink.write(batch)
                self._write_seconds += time.perf_counter() - started
                self._write_batches += 1
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._failed_batches += 1
                self._last_error = one_line(exc)
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    log.warning(
                        "database %s unavailable, holding records and retrying: %s",
                        self.store.display_url,
                        self._last_error,
                    )
                if self._closing.is_set():
                    remaining = self._deadline - time.monotonic()
                    if remaining <= 0:
                        raise _GiveUp from exc
                    time.sleep(min(delay, remaining))
                else:
                    self._closing.wait(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            if self._outage_since is not None:
                log.warning(
                    "database %s available again after %.1fs", self.store.display_url, time.monotonic() - self._outage_since
                )
                self._outage_since = None
            return
