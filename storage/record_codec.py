"""Records <-> bytes, for the spool (storage.spool). Pure: no I/O.

msgpack arrays of the fields in a fixed order, tagged with the record kind and
format version, so a proxy can read a spool an older version left behind. Strings
pass surrogates through (mitmproxy decodes odd paths with surrogateescape), and
bytes stay bytes. Never pickle: a spool file is data, not code.
"""

from __future__ import annotations

import msgpack

from .record import CapturedBody, ExchangeRecord, Timings, WebSocketMessageRecord

__all__ = ["RecordDecodeError", "decode_record", "encode_record"]

_EXCHANGE_V1 = 1
_WEBSOCKET_V1 = 2


class RecordDecodeError(ValueError):
    """The bytes are not a record this version can read."""


def _body(body: CapturedBody | None) -> list | None:
    if body is None:
        return None
    return [bytes(body.data), body.size, body.truncated, body.encoding, body.content_type]


def _timings(t: Timings) -> list:
    return [t.request_start, t.connect_start, t.connect_end, t.tls_end, t.request_end, t.response_start,
            t.response_end]  # fmt: skip


def _fields(record: ExchangeRecord | WebSocketMessageRecord) -> list:
    if isinstance(record, ExchangeRecord):
        r = record
        return [
            _EXCHANGE_V1, r.uuid, r.captured_at, r.proxy, r.scheme, r.method, r.host, r.port, r.path, r.query,
            r.http_version, r.request_headers, _body(r.request_body), _timings(r.timings), r.service, r.realm,
            r.client_addr, r.status, r.reason, r.response_headers, _body(r.response_body), r.duration_ms,
            r.error_kind, r.error_message, r.trace_id, r.span_id, r.request_id, r.replay_of, r.tags, r.websocket,
        ]  # fmt: skip
    if isinstance(record, WebSocketMessageRecord):
        m = record
        return [_WEBSOCKET_V1, m.exchange_uuid, m.seq, m.timestamp, m.from_client, m.kind, bytes(m.data), m.size,
                m.truncated, m.close_code]  # fmt: skip
    raise TypeError(f"cannot encode {type(record).__name__}")


def encode_record(record: ExchangeRecord | WebSocketMessageRecord) -> bytes:
    return msgpack.packb(_fields(record), use_bin_type=True, unicode_errors="surrogatepass")


def _headers(value: list | None) -> list[tuple[str, str]] | None:
    return None if value is None else [(name, text) for name, text in value]


def _captured(value: list | None) -> CapturedBody | None:
    return None if value is None else CapturedBody(*value)


def decode_record(data: bytes) -> ExchangeRecord | WebSocketMessageRecord:
    try:
        fields = msgpack.unpackb(data, raw=False, unicode_errors="surrogatepass", strict_map_key=True)
        kind = fields[0]
        if kind == _EXCHANGE_V1:
            (_, uuid, captured_at, proxy, scheme, method, host, port, path, query, http_version, request_headers,
             request_body, timings, service, realm, client_addr, status, reason, response_headers, response_body,
             duration_ms, error_kind, error_message, trace_id, span_id, request_id, replay_of, tags,
             websocket) = fields  # fmt: skip
            return ExchangeRecord(
                uuid=uuid, captured_at=captured_at, proxy=proxy, scheme=scheme, method=method, host=host, port=port,
                path=path, query=query, http_version=http_version, request_headers=_headers(request_headers),
                request_body=_captured(request_body), timings=Timings(*timings), service=service, realm=realm,
                client_addr=client_addr, status=status, reason=reason, response_headers=_headers(response_headers),
                response_body=_captured(response_body), duration_ms=duration_ms, error_kind=error_kind,
                error_message=error_message, trace_id=trace_id, span_id=span_id, request_id=request_id,
                replay_of=replay_of, tags=list(tags), websocket=websocket,
            )  # fmt: skip
        if kind == _WEBSOCKET_V1:
            _, *values = fields
            return WebSocketMessageRecord(*values)
    except Exception as exc:  # malformed msgpack, wrong shapes: one kind of error for the caller
        raise RecordDecodeError(f"not a spooled record: {exc}") from None
    raise RecordDecodeError(f"unknown record kind {kind!r}")
