"""/api/services/{name}/mock and /api/mocks on real SQLite and PostgreSQL stores: simulate from a
search or a HAR document, read, list, export (redacted unless raw), stop; a bad request is a 4xx
whose message says what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage import mocks
from storage.pure.record import CapturedBody
from storage.sink import write_records
from tests.support.records import make_record

REAL = Path(__file__).resolve().parents[1] / "data" / "har" / "real"


@pytest.fixture
def api(make_client, any_store):
    return make_client(app_store=any_store)


def test_simulate_read_list_export_stop(api, any_store):
    token = "Bearer 0123456789abcdef-secret"
    write_records(any_store, [
        make_record(service="orders", realm="", path="/orders/1", request_headers=[("Authorization", token)]),
        make_record(service="orders", realm="", method="POST", path="/orders", status=201),
    ])  # fmt: skip
    made = api.put("/api/services/orders/mock", json={"query": "method:GET", "latency": True})
    assert made.status_code == 200, made.text
    assert made.json() | {"created_at": None} == {
        "simulated": True, "service": "orders", "realm": None, "source": "store", "query": "method:GET", "har_entries": None,
        "latency": True, "passthrough": False, "origin": "api", "created_at": None, "recordings": 1,
    }  # fmt: skip
    assert api.get("/api/services/orders/mock").json()["recordings"] == 1
    har = json.loads((REAL / "insomnia.har").read_text())
    from_file = api.put("/api/services/mitm/mock", json={"har": har, "passthrough": True, "realm": "staging"})
    assert from_file.json()["source"] == "har" and from_file.json()["recordings"] == 1
    assert [m["service"] for m in api.get("/api/mocks").json()["mocks"]] == ["mitm", "orders"]
    assert [m["service"] for m in api.get("/api/mocks", params={"realm": "staging"}).json()["mocks"]] == ["mitm"]
    assert api.get("/api/services/mitm/mock").json() == {"service": "mitm", "realm": None, "simulated": False}
    assert api.get("/api/services/mitm/mock", params={"realm": "staging"}).json()["simulated"]

    exported = api.get("/api/services/orders/mock/recordings.har")
    assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
    assert "0123456789abcdef-secret" not in exported.text
    assert [e["request"]["url"] for e in exported.json()["log"]["entries"]] == ["http://users.internal:8000/orders/1?verbose=1"]
    raw = api.get("/api/services/orders/mock/recordings.har", params={"raw": "true"})
    assert "0123456789abcdef-secret" in raw.text and "-raw.har" in raw.headers["content-disposition"]
    # An export reads back as the same recordings: what a team commits and gives `up --mock`.
    assert [r.response_body for r in mocks.har_recordings(raw.text)] == [b'{"id": 42}']

    assert api.delete("/api/services/orders/mock").json() == {"deleted": "orders", "realm": None}
    assert api.delete("/api/services/orders/mock").status_code == 404
    assert api.get("/api/services/orders/mock/recordings.har").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"query": "status:>>"}, 400, "status"),  # a bad search is a 400 everywhere
        ({"har": {"log": {"entries": []}}}, 422, "no entry"),
        ({"har": {"nolog": 1}}, 422, "not a HAR log"),
        ({"query": "x", "har": {"log": {}}}, 422, "not both"),
        ({"latency": "sometimes"}, 422, "latency"),
        ({"unknown": 1}, 422, "unknown"),
    ],
)
def test_a_bad_simulation_is_a_4xx_that_says_why(api, body, status: int, says: str):
    answer = api.put("/api/services/orders/mock", json=body)
    assert answer.status_code == status and says in answer.text, answer.text
    assert api.put("/api/services/a%20b/mock", json={}).status_code == 422


def test_an_upload_keeps_response_bodies_whole(api, any_store):
    big = b'{"items": [' + b",".join(b'{"n": %d}' % i for i in range(2000)) + b"]}"
    write_records(any_store, [make_record(service="cart", realm="", response_body=CapturedBody(big, len(big), False, content_type="application/json"))])
    assert api.put("/api/services/cart/mock", json={}).json()["recordings"] == 1
    [recording] = mocks.load_recordings(any_store, mocks.get_simulation(any_store, service="cart").spec)
    assert recording.response_body == big
