"""Record builders for the storage tests."""

from __future__ import annotations

import time
import uuid

from storage.record import CapturedBody, ExchangeRecord, Timings


def make_record(**overrides: object) -> ExchangeRecord:
    now = time.time()
    fields: dict[str, object] = dict(
        uuid=uuid.uuid4().hex,
        captured_at=now,
        proxy="test",
        scheme="http",
        method="GET",
        host="users.internal",
        port=8080,
        path="/users/42",
        query="a=1",
        http_version="HTTP/1.1",
        request_headers=[("Host", "users.internal:8080"), ("Accept", "*/*")],
        request_body=None,
        timings=Timings(now, now + 0.001, now + 0.002, None, now + 0.003, now + 0.010, now + 0.012),
        service="users",
        status=200,
        reason="OK",
        response_headers=[("Content-Type", "application/json")],
        response_body=CapturedBody(b'{"id": 42}', 10, False, None, "application/json"),
        duration_ms=12.0,
    )
    fields.update(overrides)
    return ExchangeRecord(**fields)  # type: ignore[arg-type]
