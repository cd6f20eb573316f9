"""storage.api_shapes on SQLite and PostgreSQL: the incremental summary job and the documents made of it."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
import time

import pytest
from openapi_spec_validator import validate
from sqlalchemy import func, select, update

from storage.api_shapes import JOB, inferred_openapi, parse_window, prune_shapes, summarise_new
from storage.errors import Invalid, NotFound
from storage.models import ApiShape, Exchange, JobCursor
from storage.pure.record import CapturedBody
from storage.sink import write_records
from storage.store import Store
from tests.support.records import make_record


def json_body(value: object, *, encoding: str | None = None, content_type: str = "application/json") -> CapturedBody:
    data = json.dumps(value).encode()
    if encoding == "gzip":
        data = gzip.compress(data)
    return CapturedBody(data=data, size=len(data), truncated=False, encoding=encoding, content_type=content_type)


def user(i: int, **overrides: object):  # type: ignore[no-untyped-def]
    fields = dict(
        path=f"/users/{i}",
        query=f"limit={i}",
        response_body=json_body({"id": i, "name": f"user {i}", "role": ["admin", "guest"][i % 2], "manager": None if i % 2 else i}),
    )
    fields.update(overrides)
    return make_record(**fields)


def operation(doc: dict, path: str, method: str = "get") -> dict:
    return doc["paths"][path][method]


def response_schema(doc: dict, path: str, status: str = "200", method: str = "get") -> dict:
    return operation(doc, path, method)["responses"][status]["content"]["application/json"]["schema"]


def test_summarises_the_services_own_exchanges_once_and_leaves_out_the_rest(store: Store) -> None:
    ids = write_records(store, [
        *[user(i) for i in range(20)],
        user(100, service=None),  # no service
        user(101, status=None, error_kind="connect_failed", response_body=None),  # no response
        user(102, fault="#1 status 503", status=503),  # a fault rule's doing
        user(103, websocket=True),
        user(104, status=418),  # about to become a mock's answer
        user(105, response_body=json_body({"id": 5}, encoding="gzip")),  # decoded before it is read
    ])  # fmt: skip
    with store.begin() as conn:
        conn.execute(update(Exchange).where(Exchange.id == ids[-2]).values(mock="recording 7"))
    first = summarise_new(store)
    assert (first.exchanges, first.operations, first.position) == (21, 1, max(ids))
    assert summarise_new(store).exchanges == 0  # the cursor moved past everything
    doc = inferred_openapi(store, "users")
    validate(doc)
    assert list(doc["paths"]) == ["/users/{id}"]
    get = operation(doc, "/users/{id}")
    assert get["x-passageway-exchanges"] == 21
    assert set(get["responses"]) == {"200"}  # no 503 (fault), 418 (mock) or error
    schema = response_schema(doc, "/users/{id}")
    assert schema["required"] == ["id"]  # the gzip'd body had only id
    assert schema["properties"]["manager"]["type"] == ["integer", "null"]
    assert schema["properties"]["role"] == {"type": "string", "enum": ["admin", "guest"]}
    assert [p["name"] for p in get["parameters"]] == ["id", "limit"]
    with store.connect() as conn:
        assert conn.execute(select(JobCursor.position).where(JobCursor.job == JOB)).scalar() == max(ids)


def test_chunks_and_days_merge_to_the_same_document(store: Store) -> None:
    now = time.time()
    records = [user(i, captured_at=now - 86400 * (i % 3)) for i in range(30)]
    write_records(store, records)
    summarise_new(store, chunk=4)
    with store.connect() as conn:
        days = conn.execute(select(func.count()).select_from(ApiShape)).scalar()
    assert days == 3
    in_small_chunks = inferred_openapi(store, "users")
    with store.begin() as conn:
        conn.execute(ApiShape.__table__.delete())
        conn.execute(JobCursor.__table__.delete())
    summarise_new(store)
    assert inferred_openapi(store, "users")["paths"] == in_small_chunks["paths"]
    recent = inferred_openapi(store, "users", since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert operation(recent, "/users/{id}")["x-passageway-exchanges"] == 10
    assert inferred_openapi(store, "users", realm="prod")["paths"] == {}  # a realm without its traffic


def test_secrets_never_reach_the_document(store: Store) -> None:
    secret = "s3cr3t-Passw0rd-value"
    records = [
        make_record(
            method="POST",
            path="/login",
            query=f"access_token={secret}&next=home",
            request_headers=[("Authorization", f"Bearer {secret}"), ("Content-Type", "application/json")],
            request_body=json_body({"user": "ann", "password": secret}),
            response_body=json_body({"echo": secret, "session": {"api_key": secret}, "user": "ann"}),
        )
        for _ in range(12)
    ]
    write_records(store, records)
    summarise_new(store)
    doc = inferred_openapi(store, "users")
    validate(doc)
    text = json.dumps(doc)
    assert secret not in text
    post = operation(doc, "/login", "post")
    assert post["requestBody"]["content"]["application/json"]["example"]["password"].startswith("[redacted:")
    assert "[redacted:" in post["responses"]["200"]["content"]["application/json"]["example"]["echo"]
    token = next(p for p in post["parameters"] if p["name"] == "access_token")
    assert "enum" not in token["schema"]


def test_bodies_it_cannot_read_are_counted_without_a_schema(store: Store) -> None:
    big = {"items": ["x" * 1000] * 400}
    write_records(store, [
        user(1, response_body=json_body(big)),
        user(2, response_body=CapturedBody(data=b"{not json", size=9, truncated=False, content_type="application/json")),
        user(3, response_body=CapturedBody(data=b"plain", size=5, truncated=False, content_type="text/plain; charset=utf-8")),
    ])  # fmt: skip
    summarise_new(store)
    doc = inferred_openapi(store, "users")
    validate(doc)
    content = operation(doc, "/users/{id}")["responses"]["200"]["content"]
    assert content["application/json"]["schema"] == {}
    assert content["text/plain"]["schema"] == {"type": "string"}


def test_an_unknown_service_is_not_found_and_a_bad_window_is_invalid(store: Store) -> None:
    with pytest.raises(NotFound, match="unknown service 'nobody'"):
        inferred_openapi(store, "nobody")
    write_records(store, [user(1)])
    assert inferred_openapi(store, "users")["paths"] == {}  # known (its traffic is stored), not summarised yet
    with pytest.raises(Invalid):
        parse_window("soon", None)
    with pytest.raises(Invalid, match="empty"):
        parse_window("1d", "7d")


def test_old_day_rows_are_pruned(store: Store) -> None:
    now = dt.datetime.now(dt.UTC)
    write_records(store, [user(1, captured_at=(now - dt.timedelta(days=200)).timestamp()), user(2)])
    summarise_new(store)
    assert prune_shapes(store, now=now) == 1
    assert prune_shapes(store, max_age=3600, now=now + dt.timedelta(days=2)) == 1
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ApiShape)).scalar() == 0


def test_two_runners_at_once_count_each_exchange_once(store: Store) -> None:
    write_records(store, [user(i) for i in range(300)])
    errors: list[BaseException] = []

    def run() -> None:
        try:
            summarise_new(store, chunk=7)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert operation(inferred_openapi(store, "users"), "/users/{id}")["x-passageway-exchanges"] == 300
