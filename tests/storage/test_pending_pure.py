"""storage.pure.pending: which searches a pending exchange can match, and what an expired one becomes."""

from __future__ import annotations

import datetime as dt

import pytest

from storage.pure.pending import (
    UNKNOWN_OUTCOME,
    PendingNotice,
    pending_matches,
    unknown_outcome_record,
)
from storage.pure.search import parse_query

NOW = dt.datetime(2026, 12, 3, 18, 0, tzinfo=dt.UTC)
NOTICE = PendingNotice(
    uuid="ab" * 16, proxy="edge", started_at=NOW.timestamp() - 5, method="POST", scheme="http",
    host="Billing.Local", port=8080, path="/billing/orders/42", query="expand=items", state="waiting",
    request_size=10, service="billing", realm="staging", trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
)  # fmt: skip


def matches(q: str, notice: PendingNotice = NOTICE) -> bool:
    return pending_matches(parse_query(q), notice, now=NOW)


@pytest.mark.parametrize(
    "q",
    [
        "", "method:POST", "service:billing", "host:billing.local", "host:*.local", "path:/billing/*",
        "path:/billing/orders/42", "path:*/42", "trace:4bf92f35", "trace:4bf92f3577b34da6a3ce929d0e0e4736",
        "since:1h", "after:2026-12-03", "before:2026-12-04", "-method:GET", "-service:users", "-is:websocket",
        "method:GET OR service:billing", "orders", "billing ord", '"billing orders"', "-path:/users/*",
    ],
)  # fmt: skip
def test_terms_a_pending_exchange_has_can_list_it(q):
    assert matches(q)


@pytest.mark.parametrize(
    "q",
    [
        "method:GET", "service:users", "host:users.local", "path:/users/*", "path:/billing", "trace:ffff",
        "before:2026-12-01", "since:1s", "is:websocket", "-method:POST", "-service:billing",
        # what needs the response (or a body, a header, the duration) is not known yet: left out
        "status:200", "status:5xx", "-status:500", "duration:>1s", "-duration:>1s", "size:>1", "is:error",
        "-is:error", "has:body", "body:orders", "header:x-a", "res.header:x-a", "test:t", "is:replay",
        "nosuchword", "-orders", "method:GET OR status:200",
    ],
)  # fmt: skip
def test_terms_it_fails_or_cannot_answer_yet_leave_it_out(q):
    assert not matches(q)


def test_no_query_lists_everything_and_missing_fields_do_not_match():
    assert pending_matches(None, NOTICE)
    bare = PendingNotice(
        uuid="cd" * 16, proxy="edge", started_at=NOW.timestamp(), method="GET", scheme="https", host="x",
        port=443, path="/", query="", state="streaming",
    )  # fmt: skip
    assert not matches("service:billing", bare) and not matches("trace:4bf9", bare)
    assert matches("-service:billing", bare)


def test_the_glob_is_literal_apart_from_the_star_and_case_sensitive_on_paths():
    assert matches("path:/billing/*/42")
    assert not matches("path:/Billing/*")
    assert not matches("path:/billing/orders/4?")


def test_an_expired_notice_becomes_an_exchange_with_an_unknown_outcome():
    record = unknown_outcome_record(NOTICE, message="gone")
    assert record.uuid == NOTICE.uuid and record.captured_at == NOTICE.started_at
    assert (
        record.status is None
        and record.error_kind == UNKNOWN_OUTCOME
        and record.error_message == "gone"
    )
    assert (record.method, record.host, record.port, record.path, record.query) == (
        "POST", "Billing.Local", 8080, "/billing/orders/42", "expand=items"
    )  # fmt: skip
    assert (record.service, record.realm, record.trace_id, record.proxy) == (
        "billing",
        "staging",
        NOTICE.trace_id,
        "edge",
    )
    assert record.response_body is None and record.duration_ms is None
