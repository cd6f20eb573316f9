"""Records -> rows: the parameter tuples storage.sink inserts. Pure: no I/O.

A batch is prepared once (SHA-256, zstd, decoded sizes, JSON text), however often the
sink has to write it again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import zstandard

from storage.models import CAPTURE_BLOCK_IDS, escape_json_strings, escape_text
from storage.pure.decoding import DEFAULT_DECODE_LIMIT, decoded_size
from storage.pure.record import CapturedBody, ExchangeRecord, Timings, WebSocketMessageRecord

__all__ = [
    "BODY_COLUMNS", "EXCHANGE_COLUMNS", "WEBSOCKET_COLUMNS", "PreparedBatch", "Record", "RowBuilder", "capture_blocks",
]  # fmt: skip

_ZSTD_LEVEL = 3
_MIN_COMPRESS = 64  # smaller bodies never shrink under zstd's frame overhead

Record = ExchangeRecord | WebSocketMessageRecord
"""What the write path stores."""

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

    __slots__ = ("bodies", "decoded", "decode_limit")

    def __init__(self, bodies: dict[bytes, tuple], decode_limit: int) -> None:
        self.bodies = bodies
        self.decoded: dict[tuple[bytes, str | None, bool], int | None] = {}
        self.decode_limit = decode_limit
        """Beyond this the decoded size is recorded as unknown (the max_decoded_body setting)."""

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
            self.decoded[key] = decoded_size(data, body.encoding, partial=body.truncated, limit=self.decode_limit)
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
    "websocket", "parent_span_id", "caller", "test_name", "fault", "mock",
)  # fmt: skip
BODY_COLUMNS = ("sha256", "size", "compression", "data")
WEBSOCKET_COLUMNS = (
    "exchange_uuid", "seq", "timestamp", "from_client", "kind", "data", "size", "truncated", "close_code",
)  # fmt: skip


class RowBuilder:
    """Records -> parameter tuples, converted the way the column types would
    convert them (SafeText escaping, JSON text, UTC datetimes), but without
    SQLAlchemy's per-value bind processing, which cost more than the inserts."""

    def __init__(self, dialect: str, *, decode_limit: int = DEFAULT_DECODE_LIMIT) -> None:
        self.sqlite = dialect == "sqlite"
        self.decode_limit = decode_limit
        self._sqlite_timestamp = _SqliteTimestamps()

    def timestamp(self, epoch: float) -> dt.datetime | str:
        if self.sqlite:  # SQLAlchemy's SQLite DATETIME text format: naive UTC, always 6 fraction digits
            return self._sqlite_timestamp(epoch)
        return dt.datetime.fromtimestamp(epoch, dt.UTC)

    def exchange(self, rec: ExchangeRecord, cache: _BodyCache) -> tuple:
        scalars = (rec.proxy, rec.service, rec.realm, rec.client_addr, rec.scheme, rec.method, rec.host, rec.path,
                   rec.query, rec.http_version, rec.reason, rec.error_message, rec.trace_id, rec.span_id,
                   rec.request_id, rec.parent_span_id, rec.caller, rec.test_name, rec.fault, rec.mock)  # fmt: skip
        probe = "".join([v for v in scalars if v])
        if not probe.isascii() or "\x00" in probe:  # rare: escape field by field
            scalars = tuple(_text(v) for v in scalars)
        (proxy, service, realm, client_addr, scheme, method, host, path, query, http_version, reason,
         error_message, trace_id, span_id, request_id, parent_span_id, caller, test_name, fault, mock) = scalars  # fmt: skip
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
            caller, test_name, fault, mock,
        )  # fmt: skip

    def websocket(self, rec: WebSocketMessageRecord) -> tuple:
        return (rec.exchange_uuid, rec.seq, self.timestamp(rec.timestamp), rec.from_client, rec.kind,
                bytes(rec.data), rec.size, rec.truncated, rec.close_code)  # fmt: skip

    def prepare(self, records: Sequence[Record]) -> PreparedBatch:
        """Turn records into rows (CPU work only: hashing, compression, decoding)."""
        batch = PreparedBatch()
        cache = _BodyCache(batch.bodies, self.decode_limit)
        for rec in records:
            if isinstance(rec, ExchangeRecord):
                batch.exchanges.append(self.exchange(rec, cache))
                batch.uuids.append(rec.uuid)
            elif isinstance(rec, WebSocketMessageRecord):
                batch.websocket_messages.append(self.websocket(rec))
            else:
                raise TypeError(f"cannot store {type(rec).__name__}")
        return batch


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

