"""Records <-> bytes, for the spool (storage.spool). Pure: no I/O.

msgpack arrays of the fields in the dataclasses' order, tagged with the record kind and
format version, so a proxy can read a spool an older version left behind. Strings
pass surrogates through (mitmproxy decodes odd paths with surrogateescape), and
bytes stay bytes. Never pickle: a spool file is data, not code.
"""

from __future__ import annotations

from dataclasses import fields

import msgpack

from .errors import StorageError
from storage.pure.record import CapturedBody, ExchangeRecord, Timings, WebSocketMessageRecord

__all__ = ["RecordDecodeError", "decode_record", "encode_record"]

_EXCHANGE_V1 = 1
_WEBSOCKET_V1 = 2
_EXCHANGE_FIELDS = len(fields(ExchangeRecord))
# A spool written before parent_span_id and caller existed lacks them; `har`, `test_name`,
# `fault` and `mock` (the last fields) are left out when None from the end, those before a set
# one written as None. Missing fields take their defaults.
_EXCHANGE_FIELDS_OLDEST = _EXCHANGE_FIELDS - 6


class RecordDecodeError(StorageError, ValueError):
    """The bytes are not a record this version can read."""


def _body(body: CapturedBody | None) -> list | None:
    if body is None:
        return None
    return [bytes(body.data), body.size, body.truncated, body.encoding, body.content_type]


def _timings(t: Timings) -> list:
    return [t.request_start, t.connect_start, t.connect_end, t.tls_end, t.request_end, t.response_start,
            t.response_end]  # fmt: skip


def _values(record: ExchangeRecord | WebSocketMessageRecord) -> list:
    if isinstance(record, ExchangeRecord):
        r = record
        values = [
            _EXCHANGE_V1, r.uuid, r.captured_at, r.proxy, r.scheme, r.method, r.host, r.port, r.path, r.query,
            r.http_version, r.request_headers, _body(r.request_body), _timings(r.timings), r.service, r.realm,
            r.client_addr, r.status, r.reason, r.response_headers, _body(r.response_body), r.duration_ms,
            r.error_kind, r.error_message, r.trace_id, r.span_id, r.request_id, r.replay_of, r.tags, r.websocket,
            r.parent_span_id, r.caller,
        ]  # fmt: skip
        # Only imports have `har`, only test traffic a test name, only faulted exchanges a fault, only
        # simulated ones a mock: other records stay readable by older versions.
        trailing = [r.har, r.test_name, r.fault, r.mock]
        while trailing and trailing[-1] is None:
            trailing.pop()
        values.extend(trailing)
        return values
    if isinstance(record, WebSocketMessageRecord):
        m = record
        return [_WEBSOCKET_V1, m.exchange_uuid, m.seq, m.timestamp, m.from_client, m.kind, bytes(m.data), m.size,
                m.truncated, m.close_code]  # fmt: skip
    raise TypeError(f"cannot encode {type(record).__name__}")


def encode_record(record: ExchangeRecord | WebSocketMessageRecord) -> bytes:
    return msgpack.packb(_values(record), use_bin_type=True, unicode_errors="surrogatepass")


def decode_record(data: bytes) -> ExchangeRecord | WebSocketMessageRecord:
    try:
        decoded = msgpack.unpackb(data, raw=False, unicode_errors="surrogatepass")
        kind = decoded[0]
        if kind == _EXCHANGE_V1:
            # The fields are in the dataclass's order: positional construction is the fast path.
            _, *values = decoded
            if not _EXCHANGE_FIELDS_OLDEST <= len(values) <= _EXCHANGE_FIELDS:
                raise RecordDecodeError(f"an exchange record has {_EXCHANGE_FIELDS} fields, not {len(values)}")
            values[10] = list(map(tuple, values[10]))
            if values[11] is not None:
                values[11] = CapturedBody(*values[11])
            values[12] = Timings(*values[12])
            if values[18] is not None:
                values[18] = list(map(tuple, values[18]))
            if values[19] is not None:
                values[19] = CapturedBody(*values[19])
            return ExchangeRecord(*values)
        if kind == _WEBSOCKET_V1:
            _, *values = decoded
            return WebSocketMessageRecord(*values)
    except RecordDecodeError:
        raise
    except Exception as exc:  # malformed msgpack, wrong shapes: one kind of error for the caller
        raise RecordDecodeError(f"not a spooled record: {exc}") from None
    raise RecordDecodeError(f"unknown record kind {kind!r}")
