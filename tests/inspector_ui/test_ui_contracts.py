"""The contracts API on real SQLite and PostgreSQL stores: PUT (validated), GET, DELETE, "accept
current as contract" from the inferred document, violations per service and per exchange, the
metrics, and the windowed changelog of the inferred API (/openapi/diff)."""

from __future__ import annotations

import json
import time

import pytest

from storage.api_shapes import summarise_new
from storage.contracts import check_new
from storage.pure.record import CapturedBody
from storage.sink import write_records
from tests.support.records import make_record

DAY = 86400.0
DOC = {
    "openapi": "3.0.3",
    "info": {"title": "users", "version": "1"},
    "paths": {"/users/{id}": {"get": {
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
            "type": "object", "required": ["id", "name"],
            "properties": {"id": {"type": "integer"}, "name": {"type": "string", "nullable": True}},
        }}}}},
    }}},
}  # fmt: skip


def user(body: dict, **overrides):  # type: ignore[no-untyped-def]
    data = json.dumps(body).encode()
    return make_record(response_body=CapturedBody(data=data, size=len(data), truncated=False,
                                                  content_type="application/json"), **overrides)  # fmt: skip


@pytest.fixture
def api(make_client, any_store):
    return make_client(app_store=any_store, maintenance=False)


def test_put_get_delete_and_violations(api, any_store):
    assert api.get("/api/services/users/contract", params={"realm": "dev"}).status_code == 404
    bad = api.put("/api/services/users/contract", params={"realm": "dev"}, json={"openapi": "3.1.0", "paths": {}})
    assert bad.status_code == 422
    assert bad.json()["detail"] == 'invalid OpenAPI document: "info" is a required property'
    assert api.put("/api/services/users/contract", json={"swagger": "2.0"}).json()["detail"] == (
        "not an OpenAPI 3.0 or 3.1 document (openapi: missing)")
    put = api.put("/api/services/users/contract", params={"realm": "dev", "label": "team file"}, json=DOC)
    assert put.status_code == 200, put.text
    assert put.json()["origin"] == "api" and put.json()["label"] == "team file" and put.json()["operations"] == 1
    assert api.get("/api/services/users/contract", params={"realm": "dev"}).json()["document"] == DOC

    check_new(any_store)
    good, missing, typed, odd = write_records(any_store, [
        user({"id": 1, "name": None}, path="/users/1"),
        user({"id": 2}, path="/users/2"),
        user({"id": 3, "name": 3}, path="/users/3"),
        user({}, path="/users/4", status=418),
    ])  # fmt: skip
    assert check_new(any_store).violations == 3
    assert api.get(f"/api/exchanges/{good}/violations").json() == {"exchange_id": good, "violations": []}
    (violation,) = api.get(f"/api/exchanges/{missing}/violations").json()["violations"]
    assert {k: violation[k] for k in ("rule", "side", "json_path", "template", "method")} == {
        "rule": "missing-field", "side": "response", "json_path": "$.name", "template": "/users/{id}", "method": "GET"}
    assert api.get("/api/exchanges/999999/violations").status_code == 404

    answer = api.get("/api/services/users/violations", params={"realm": "dev", "since": "1h"}).json()
    assert answer["contract"]["label"] == "team file"
    assert sorted((c["rule"], c["count"]) for c in answer["counts"]) == [
        ("missing-field", 1), ("unexpected-status", 1), ("wrong-type", 1)]
    assert [v["exchange_id"] for v in answer["newest"]] == [odd, typed, missing]
    assert api.get("/api/services/users/violations", params={"since": "soon"}).status_code == 422

    metrics = api.get("/api/metrics").text
    assert "# TYPE passageway_contract_violations gauge" in metrics
    assert 'passageway_contract_violations{service="users",realm="dev",rule="missing-field"} 1\n' in metrics

    assert api.delete("/api/services/users/contract", params={"realm": "dev"}).json() == {"deleted": "users"}
    assert api.delete("/api/services/users/contract", params={"realm": "dev"}).status_code == 404


def test_accept_current_as_contract_freezes_the_inferred_document(api, any_store):
    check_new(any_store)
    write_records(any_store, [user({"id": i, "name": f"n{i}", "role": "admin"}, path=f"/users/{i}") for i in range(1, 6)])
    summarise_new(any_store)
    accepted = api.post("/api/services/users/contract/accept", params={"realm": "dev"}, json={})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["origin"] == "inferred" and accepted.json()["label"].startswith("inferred ")
    document = api.get("/api/services/users/contract", params={"realm": "dev"}).json()["document"]
    assert "/users/{id}" in document["paths"]
    (missing,) = write_records(any_store, [user({"id": 9, "role": "admin"}, path="/users/9")])
    check_new(any_store)
    assert [v["rule"] for v in api.get(f"/api/exchanges/{missing}/violations").json()["violations"]] == ["missing-field"]
    nothing = api.post("/api/services/users/contract/accept", params={"realm": "nowhere"}, json={})
    assert nothing.status_code == 422 and "no exchange of 'users'" in nothing.json()["detail"]
    assert api.post("/api/services/ghost/contract/accept", json={}).status_code == 404


def test_the_windowed_changelog(api, any_store):
    now = time.time()
    write_records(any_store, [
        *(user({"id": i, "name": "a", "legacy": True}, path=f"/users/{i}", captured_at=now - 31 * DAY) for i in range(3)),
        *(user({"id": i, "name": "a"}, path=f"/users/{i}", captured_at=now - 2 * DAY) for i in range(3)),
        *(make_record(method="POST", path="/users", captured_at=now - 2 * DAY) for _ in range(2)),
    ])  # fmt: skip
    summarise_new(any_store)
    answer = api.get("/api/services/users/openapi/diff", params={"since": "30d", "until": "1d"})
    assert answer.status_code == 200, answer.text
    changes = answer.json()["changes"]
    assert {(c["kind"], c["breaking"], c["method"], c["name"]) for c in changes} >= {
        ("endpoint-added", False, "POST", None), ("field-removed", True, "GET", "$.legacy")}
    assert answer.json()["breaking"] >= 1
    assert api.get("/api/services/users/openapi/diff", params={"since": "1d", "until": "30d"}).status_code == 422
    assert api.get("/api/services/users/openapi/diff", params={"since": "30d", "window": "x"}).status_code == 422
    assert api.get("/api/services/users/openapi/diff", params={"contract": "true", "realm": "dev"}).status_code == 404
