"""storage.shares on both databases: snapshot, list, revoke, expiry, one key per installation."""

from __future__ import annotations

import datetime as dt

import pytest

from storage.errors import Gone, Invalid
from storage.indexer import index_pending
from storage.pure.redaction import DEFAULT_RULES
from storage.shares import create_share, list_shares, open_share, redaction_key, revoke_share
from storage.sink import write_records
from tests.support.records import make_record


def test_share_lifecycle(store):
    ids = write_records(store, [make_record(request_headers=[("Authorization", "Bearer s3cr3t-canary")]), make_record()])
    created = create_share(store, kind="search", selector="service:users", note="two calls", rules=DEFAULT_RULES)
    snapshot = open_share(store, token=created.token)
    assert [x["id"] for x in snapshot["exchanges"]] == ids and snapshot["note"] == "two calls"
    assert "s3cr3t-canary" not in str(snapshot) and "[redacted:" in str(snapshot)
    assert [s["id"] for s in list_shares(store)] == [created.info["id"]]
    assert revoke_share(store, share_id=created.info["id"])["revoked_at"] is not None
    with pytest.raises(Gone, match="revoked"):
        open_share(store, token=created.token)
    assert list_shares(store) == [] and revoke_share(store, share_id=12345) is None
    assert open_share(store, token="x" * 43) is None


def test_expiry(store):
    (exchange_id,) = write_records(store, [make_record()])
    now = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    created = create_share(store, kind="exchange", selector=str(exchange_id), ttl=dt.timedelta(hours=1), rules=DEFAULT_RULES, now=now)
    assert open_share(store, token=created.token, now=now + dt.timedelta(minutes=59))
    with pytest.raises(Gone, match="expired"):
        open_share(store, token=created.token, now=now + dt.timedelta(hours=1))
    assert list_shares(store, now=now + dt.timedelta(hours=2)) == []
    with pytest.raises(Invalid, match="expiry"):
        create_share(store, kind="exchange", selector=str(exchange_id), ttl=dt.timedelta(days=400), rules=DEFAULT_RULES)


def test_one_redaction_key_per_database(store):
    first = redaction_key(store)
    assert len(first) == 32 and redaction_key(store) == first


def test_a_search_share_says_when_it_was_cut(store, monkeypatch):
    import storage.shares

    monkeypatch.setattr(storage.shares, "MAX_SHARED_EXCHANGES", 3)
    ids = write_records(store, [make_record() for _ in range(5)])
    created = create_share(store, kind="search", selector="service:users", rules=DEFAULT_RULES)
    snapshot = open_share(store, token=created.token)
    assert created.info["cut"] is True and snapshot["cut"] is True
    assert [x["id"] for x in snapshot["exchanges"]] == ids[-3:]  # the newest, oldest first
    monkeypatch.setattr(storage.shares, "MAX_SHARED_EXCHANGES", 5)
    assert create_share(store, kind="search", selector="service:users", rules=DEFAULT_RULES).info["cut"] is False


def test_a_trace_share_holds_exactly_that_trace(store):
    # A B3 trace id has 16 hex digits; `trace:` in a search is a prefix, so a share by it could
    # take in another trace that starts with the same digits.
    short, longer = "80f198ee56343ba8", "80f198ee56343ba864fe8b2a57d3eff7"
    ids = write_records(store, [make_record(trace_id=short), make_record(trace_id=longer), make_record(trace_id=short)])
    created = create_share(store, kind="trace", selector=short, rules=DEFAULT_RULES)
    snapshot = open_share(store, token=created.token)
    assert [x["id"] for x in snapshot["exchanges"]] == [ids[0], ids[2]]
    assert snapshot["trace"]["exchange_count"] == 2


def test_a_search_share_redacts_its_secret_header_terms(store):
    ids = write_records(store, [make_record(request_headers=[("X-Api-Key", "k3y-canary-1234")])])
    index_pending(store, ids=ids)  # header terms and free text read the search index
    made = create_share(store, kind="search", selector="header:x-api-key=k3y-canary-1234 OR k3y-canary-1234",
                        rules=DEFAULT_RULES)  # fmt: skip
    snapshot = open_share(store, token=made.token)
    assert "k3y-canary" not in snapshot["selector"] and "k3y-canary" not in str(list_shares(store))
    assert snapshot["selector"].startswith("header:x-api-key=[redacted:")


def test_a_body_that_inflates_past_the_limit_is_withheld_with_a_note(store):
    import gzip

    from storage.pure.record import CapturedBody

    wire = gzip.compress(b'{"a": "' + b"x" * 10_000 + b'"}')
    body = CapturedBody(wire, len(wire), False, encoding="gzip", content_type="application/json")
    (exchange_id,) = write_records(store, [make_record(response_body=body)])
    made = create_share(store, kind="exchange", selector=str(exchange_id), rules=DEFAULT_RULES, decode_limit=1000)
    shared = open_share(store, token=made.token)["exchanges"][0]["response_body"]
    assert shared["withheld"] and "could not be undone within 1000 bytes" in shared["note"]
    whole = create_share(store, kind="exchange", selector=str(exchange_id), rules=DEFAULT_RULES)
    assert open_share(store, token=whole.token)["exchanges"][0]["response_body"]["text"].startswith('{"a": "xxx')


def test_the_list_says_what_an_exchange_share_holds(store):
    from sqlalchemy import delete

    from storage.models import Exchange

    first, second = write_records(store, [
        make_record(method="POST", service="billing", host="billing.internal", path="/orders", status=502),
        make_record(),
    ])  # fmt: skip
    for exchange_id in (first, second):
        create_share(store, kind="exchange", selector=str(exchange_id), rules=DEFAULT_RULES)
    create_share(store, kind="search", selector="service:users", rules=DEFAULT_RULES)
    with store.begin() as conn:  # retention took the second exchange; its share still says what it holds
        conn.execute(delete(Exchange).where(Exchange.id == second))
    listed = list_shares(store)
    assert [(s["kind"], s["selector"]) for s in listed] == [("search", "service:users"), ("exchange", str(second)),
                                                           ("exchange", str(first))]  # fmt: skip
    assert "exchange" not in listed[0]
    assert listed[1]["exchange"] == {"method": "GET", "service": "users", "host": "users.internal", "path": "/users/42",
                                     "status": 200}  # fmt: skip
    assert listed[2]["exchange"] == {"method": "POST", "service": "billing", "host": "billing.internal",
                                     "path": "/orders", "status": 502}  # fmt: skip
