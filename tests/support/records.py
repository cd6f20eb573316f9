"""Records as the proxy would hand them to storage, for tests that need data without traffic."""

from __future__ import annotations

import time
import uuid
from typing import Any

from storage.pure.record import CapturedBody, ExchangeRecord, Timings, WebSocketMessageRecord


def make_record(**overrides: Any) -> ExchangeRecord:
    """A complete, plausible exchange; override any field."""
    now = time.time()
    fields: dict[str, Any] = dict(
        uuid=uuid.uuid4().hex,
        captured_at=now,
        proxy="test-proxy",
        scheme="http",
        method="GET",
        host="users.internal",
        port=8000,
        path="/users/42",
        query="verbose=1",
        http_version="HTTP/1.1",
        request_headers=[("Host", "users.internal:8000"), ("Accept", "application/json"), ("X-Dup", "a"), ("X-Dup", "b")],
        request_body=None,
        timings=Timings(request_start=now, request_end=now + 0.001, response_start=now + 0.01, response_end=now + 0.012),
        service="users",
        realm="dev",
        client_addr="127.0.0.1:50000",
        status=200,
        reason="OK",
        response_headers=[("Content-Type", "application/json"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
        response_body=CapturedBody(data=b'{"id": 42}', size=10, truncated=False, content_type="application/json"),
        duration_ms=12.0,
    )
    fields.update(overrides)
    return ExchangeRecord(**fields)


def websocket_message(exchange_uuid: str, seq: int, **overrides: Any) -> WebSocketMessageRecord:
    fields: dict[str, Any] = dict(
        exchange_uuid=exchange_uuid, seq=seq, timestamp=time.time(), from_client=seq % 2 == 0,
        kind="text", data=f"message {seq}".encode(), size=len(f"message {seq}"), truncated=False,
    )
    fields.update(overrides)
    return WebSocketMessageRecord(**fields)
