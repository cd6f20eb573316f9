"""storage.contracts on SQLite and PostgreSQL: contracts stored and replaced, the incremental check
(cursor, bodies decoded, realms, two runners racing), counts, search terms, retention."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
import time

import pytest

from storage.contracts import (
    InvalidContract,
    check_document,
    check_new,
    delete_contract,
    exchange_violations,
    get_contract,
    newest_violations,
    set_contract,
    sync_config_contracts,
    violation_counts,
    violation_totals,
)
from storage.pure.record import CapturedBody
from storage.queries import list_exchanges
from storage.retention import RetentionPolicy, prune
from storage.sink import write_records
from tests.support.records import make_record

DOC = {
    "openapi": "3.1.0",
    "info": {"title": "users", "version": "1"},
    "paths": {"/users/{id}": {"get": {
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
            "type": "object", "required": ["id", "name"],
            "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                           "role": {"type": "string", "enum": ["admin", "user"]}},
        }}}}},
    }}},
}  # fmt: skip


def body(value: object, *, encoding: str | None = None) -> CapturedBody:
    data = json.dumps(value).encode()
    if encoding == "gzip":
        data = gzip.compress(data)
    return CapturedBody(data=data, size=len(data), truncated=False, content_type="application/json", encoding=encoding)


def write(store, **overrides):  # type: ignore[no-untyped-def]
    return write_records(store, [make_record(**overrides)])[0]


def test_contracts_are_stored_replaced_and_removed(store):
    assert get_contract(store, service="users", realm="dev") is None
    first = set_contract(store, service="users", realm="dev", document=DOC, origin="api", label="v1")
    assert first.origin == "api" and first.document == DOC and first.realm == "dev"
    second = set_contract(store, service="users", realm="dev", document=DOC, origin="inferred", label="v2")
    assert get_contract(store, service="users", realm="dev") == second and second.label == "v2"
    assert get_contract(store, service="users") is None  # another realm
    assert second.to_json(document=False) == {"service": "users", "realm": "dev", "origin": "inferred",
                                               "label": "v2", "created_at": second.to_json()["created_at"],
                                               "operations": 1}  # fmt: skip
    assert delete_contract(store, service="users", realm="dev") is True
    assert delete_contract(store, service="users", realm="dev") is False


def test_config_contracts_are_synced_only_when_they_change(store):
    sync_config_contracts(store, [("users", "dev", DOC, "openapi.yaml")])
    first = get_contract(store, service="users", realm="dev")
    sync_config_contracts(store, [("users", "dev", DOC, "openapi.yaml")])
    assert get_contract(store, service="users", realm="dev") == first
    sync_config_contracts(store, [("users", "dev", {**DOC, "info": {"title": "u", "version": "2"}}, "openapi.yaml")])
    assert get_contract(store, service="users", realm="dev").document["info"]["version"] == "2"


@pytest.mark.parametrize(("document", "message"), [
    ([], "an OpenAPI document is a JSON object"),
    ({"swagger": "2.0"}, "not an OpenAPI 3.0 or 3.1 document (openapi: missing)"),
    ({"openapi": "3.1.0", "info": {"title": "x"}, "paths": {}}, 'invalid OpenAPI document: "version" is a required property (at info)'),
])  # fmt: skip
def test_invalid_documents_are_refused_in_one_line(document, message):
    with pytest.raises(InvalidContract) as caught:
        check_document(document)
    assert str(caught.value) == message


def test_check_new_finds_violations_once_and_advances_its_cursor(store):
    write(store, path="/users/1")  # before the first run: history is not checked
    assert check_new(store).exchanges == 0
    set_contract(store, service="users", realm="dev", document=DOC, origin="api")
    good = write(store, path="/users/1", response_body=body({"id": 1, "name": "a"}))
    missing = write(store, path="/users/2", response_body=body({"id": 2}, encoding="gzip"),
                    response_headers=[("Content-Encoding", "gzip")])  # fmt: skip
    typed = write(store, path="/users/3", response_body=body({"id": "3", "name": "c", "role": "root"}))
    undocumented = write(store, path="/teams/3", method="DELETE")
    unexpected = write(store, path="/users/4", status=500, response_body=None)
    other_realm = write(store, path="/teams/4", realm="prod")
    other_service = write(store, path="/teams/4", service="teams")
    checked = check_new(store)
    assert checked.exchanges == 5 and checked.violations == 5
    assert check_new(store).exchanges == 0  # nothing twice
    assert exchange_violations(store, exchange_id=good) == []
    assert [(v["rule"], v["json_path"]) for v in exchange_violations(store, exchange_id=missing)] == [("missing-field", "$.name")]
    assert sorted((v["rule"], v["json_path"]) for v in exchange_violations(store, exchange_id=typed)) == [
        ("unknown-enum", "$.role"), ("wrong-type", "$.id")]
    (v,) = exchange_violations(store, exchange_id=undocumented)
    assert (v["rule"], v["method"], v["template"], v["message"]) == (
        "undocumented-endpoint", "DELETE", "/teams/{id}", "DELETE /teams/{id} is not in the contract")
    assert [v["rule"] for v in exchange_violations(store, exchange_id=unexpected)] == ["unexpected-status"]
    assert exchange_violations(store, exchange_id=other_realm) == exchange_violations(store, exchange_id=other_service) == []

    counts = violation_counts(store, service="users", realm="dev")
    assert {(c["method"], c["template"], c["rule"]): c["count"] for c in counts} == {
        ("GET", "/users/{id}", "missing-field"): 1, ("GET", "/users/{id}", "wrong-type"): 1,
        ("GET", "/users/{id}", "unknown-enum"): 1, ("GET", "/users/{id}", "unexpected-status"): 1,
        ("DELETE", "/teams/{id}", "undocumented-endpoint"): 1,
    }  # fmt: skip
    assert violation_counts(store, service="users", realm="dev", since=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)) == []
    assert [v["exchange_id"] for v in newest_violations(store, service="users", realm="dev", limit=2)] == [unexpected, undocumented]
    assert ("users", "dev", "wrong-type", 1) in violation_totals(store)

    # the search terms the foundation compiled
    def found(q: str) -> list[int]:
        return sorted(row["id"] for row in list_exchanges(store, q=q, limit=50).data)

    assert found("is:violation") == sorted([missing, typed, undocumented, unexpected])
    assert found("violation:missing-field") == [missing]
    assert found("violation:*enum*") == [typed]


def test_retention_removes_the_violations_of_pruned_exchanges(store):
    check_new(store)
    set_contract(store, service="users", realm="dev", document=DOC, origin="api")
    old = write(store, path="/nope", captured_at=time.time() - 7200)
    new = write(store, path="/nope")
    check_new(store)
    prune(store, RetentionPolicy(max_age=3600))
    assert exchange_violations(store, exchange_id=old) is None  # gone, its violations with it
    assert [v for v in newest_violations(store, service="users", realm="dev") if v["exchange_id"] == old] == []
    assert len(exchange_violations(store, exchange_id=new)) == 1


def test_two_runners_check_each_exchange_once(store):
    check_new(store)
    set_contract(store, service="users", realm="dev", document=DOC, origin="api")
    ids = write_records(store, [make_record(path=f"/nope/{i}") for i in range(120)])
    results: list = []
    errors: list = []

    def run() -> None:
        try:
            while True:
                checked = check_new(store, limit=7)
                results.append(checked)
                if not checked.more and checked.exchanges == 0:
                    return
        except Exception as e:  # noqa: BLE001 - SQLite's busy lock is a retry, as for the maintenance job
            errors.append(e)

    runners = [threading.Thread(target=run) for _ in range(2)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    while check_new(store, limit=50).exchanges:  # what a runner that gave up on a lock left
        pass
    assert sorted(v for i in ids for v in [len(exchange_violations(store, exchange_id=i))]) == [1] * 120


def test_postgresql_never_passes_an_exchange_whose_transaction_is_still_open(pg_store):
    """A writer that took a lower id and has not committed yet holds the cursor back, however
    long it takes; its exchange is checked once it commits."""
    from storage.models import Exchange
    from tests.support.stores import reset_store

    store = reset_store(pg_store)
    check_new(store)
    set_contract(store, service="users", realm="dev", document=DOC, origin="api")
    first = write(store, path="/nope/1")
    assert check_new(store).violations == 1
    columns = [column.name for column in Exchange.__table__.columns if column.name != "id"]
    copied = ", ".join("md5(random()::text)" if name == "uuid" else name for name in columns)
    with store.engine.connect() as writer:
        open_transaction = writer.begin()
        held = writer.exec_driver_sql(
            f"INSERT INTO exchanges ({', '.join(columns)}) SELECT {copied} FROM exchanges WHERE id = %s RETURNING id",
            (first,),
        ).scalar_one()
        later = write(store, path="/nope/3")
        assert held < later
        waiting = check_new(store)
        assert (waiting.exchanges, waiting.behind) == (0, True)
        assert exchange_violations(store, exchange_id=later) == []
        open_transaction.commit()
    assert check_new(store).exchanges == 2
    assert len(exchange_violations(store, exchange_id=held)) == len(exchange_violations(store, exchange_id=later)) == 1


def test_a_contract_whose_check_fails_does_not_stop_the_job(store):
    broken = {**DOC, "paths": {"/users/{id}": {"get": {"responses": {"200": {"description": "ok", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Missing"}}}}}}}}}  # fmt: skip
    check_new(store)
    set_contract(store, service="users", realm="dev", document=broken, origin="api")
    skipped = write(store, path="/users/1")
    undocumented = write(store, path="/nope")
    assert check_new(store).position == undocumented  # past both
    assert exchange_violations(store, exchange_id=skipped) == []
    assert [v["rule"] for v in exchange_violations(store, exchange_id=undocumented)] == ["undocumented-endpoint"]


def test_hostile_field_names_are_stored_and_read_back(store):
    strict = {**DOC, "paths": {"/users/{id}": {"get": {"responses": {"200": {"description": "ok", "content": {
        "application/json": {"schema": {"type": "object", "additionalProperties": False}}}}}}}}}  # fmt: skip
    check_new(store)
    set_contract(store, service="users", realm="dev", document=strict, origin="api")
    data = b'{"nul\\u0000here": 1, "lone\\ud800": 2, "<script>alert(1)</script>": 3}'
    hostile = write(store, path="/users/1",
                    response_body=CapturedBody(data=data, size=len(data), truncated=False, content_type="application/json"))
    check_new(store)
    paths = sorted(v["json_path"] for v in exchange_violations(store, exchange_id=hostile))
    assert paths == sorted(['$["nul\\u0000here"]', '$["lone\\ud800"]', '$["<script>alert(1)</script>"]'])
