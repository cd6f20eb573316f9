"""Bad input is answered with a 4xx, never a 500: ids past what a database row can hold, blank
optional fields, and the token link's redirect (which must stay on this site)."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient
from ui_support import settings_for

from inspector_ui import create_app
from inspector_ui.models import Invalid
from inspector_ui.params import MAX_ROW_ID
from inspector_ui.security import same_site_path
from storage.sink import write_records

from tests.support.records import make_record

TOO_BIG = MAX_ROW_ID + 1  # 9223372036854775808: SQLite's driver and PostgreSQL's bigint both overflow


@pytest.fixture
def any_client(any_store):
    """A client on SQLite and on PostgreSQL: each overflowed differently (a 500 and a 503)."""
    write_records(any_store, [make_record()])
    with TestClient(create_app(settings_for(any_store), store=any_store), base_url="http://127.0.0.1") as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/exchanges/{id}", None),
        ("GET", "/api/exchanges/{id}/websocket", None),
        ("GET", "/api/exchanges/{id}/response/body", None),
        ("GET", "/api/exchanges/{id}/snippet", None),
        ("GET", "/api/exchanges/{id}/replay", None),
        ("POST", "/api/exchanges/{id}/replay", {}),
        ("GET", "/api/exchanges?before={id}", None),
        ("DELETE", "/api/shares/{id}", None),
        ("GET", "/api/diff?a={id}&b=1", None),
        ("GET", "/api/diff?a=1&b={id}", None),
        ("GET", "/api/har?ids=1,{id}", None),
        ("POST", "/api/shares", {"exchange_id": "{id}"}),
    ],
)
def test_an_id_too_big_for_a_row_is_invalid_not_a_server_error(any_client, method, path, body):
    for too_big in (TOO_BIG, 99999999999999999999999):
        json = {key: too_big for key in body} if body else body
        response = any_client.request(method, path.format(id=too_big), json=json)
        assert response.status_code == 422, response.text
        assert str(MAX_ROW_ID) in response.text  # says what the limit is


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/api/exchanges/{id}", None, 404),
        ("GET", "/api/exchanges?before={id}", None, 200),
        ("DELETE", "/api/shares/{id}", None, 404),
        ("GET", "/api/diff?a={id}&b=1", None, 404),
        ("GET", "/api/har?ids={id}", None, 200),
        ("POST", "/api/shares", {"exchange_id": MAX_ROW_ID}, 422),  # storage.shares: "no exchange ..."
    ],
)
def test_the_largest_row_id_is_looked_up(any_client, method, path, body, status):
    """The limit is the databases' own: the largest id is a valid one that does not exist (yet)."""
    response = any_client.request(method, path.format(id=MAX_ROW_ID), json=body)
    assert response.status_code == status, response.text
    assert status == 200 or str(MAX_ROW_ID) in response.json()["detail"]  # looked for, not found


def test_har_ids_must_be_row_ids(client):
    for ids in ("0", "-5", "1,x", "1" * 5000):
        response = client.get("/api/har", params={"ids": ids})
        assert response.status_code == 422 and "exchange ids" in response.json()["detail"]
    assert client.get("/api/har", params={"ids": " 2, ,1,2"}).status_code == 200


@pytest.mark.parametrize("path", ["/api/stats/services", "/api/services/users/stats"])
def test_a_blank_until_means_now(store, client, path):
    write_records(store, [make_record()])
    blank, absent = client.get(path, params={"until": ""}), client.get(path)
    assert blank.status_code == absent.status_code == 200, blank.text
    assert blank.json()["rows"] == absent.json()["rows"] == 1
    assert client.get(path, params={"until": "x" * 65}).status_code == 422  # still bounded


TOKEN = "t0ken-for-tests-0123456789"


@pytest.mark.parametrize(
    ("sent", "location"),
    [
        ("//evil.example/x", "/evil.example/x"),
        ("///evil.example/x", "/evil.example/x"),
        ("/%2F%2Fevil.example/x", "/%2F%2Fevil.example/x"),
        ("/services/a%2Fb", "/services/a%2Fb"),
    ],
)
def test_the_token_link_redirects_only_within_the_inspector(store, sent, location):
    settings = settings_for(store, host="0.0.0.0", token=TOKEN)
    with TestClient(create_app(settings, store=store), base_url="http://inspector.example") as client:
        answer = client.get(f"http://inspector.example{sent}?q=a&token={TOKEN}", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{location}?q=a"
    assert urlsplit(urljoin("http://inspector.example/", answer.headers["location"])).netloc == "inspector.example"


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/\\evil.example/x", "/%5Cevil.example/x"),  # browsers read a backslash as a slash
        ("/\t/evil.example", "/%09/evil.example"),  # and drop tabs and newlines
        ("/\x01x", "/%01x"),
        ("/caf\u00e9", "/caf%C3%A9"),
        ("/a b", "/a%20b"),
        ("/", "/"),
        ("", "/"),
    ],
)
def test_same_site_path_leaves_nothing_a_browser_reads_as_another_site(path, location):
    assert same_site_path(path) == location


def test_every_422_is_documented_with_the_shape_it_has(client):
    """A parameter that does not validate gets a list in `detail`, a route's own refusal a string:
    /api/openapi.json says both, for every route that can answer 422 (schemathesis checks it)."""
    document = client.get("/api/openapi.json").json()
    documented = [op["responses"]["422"] for ops in document["paths"].values() for op in ops.values()
                  if "422" in op["responses"]]  # fmt: skip
    assert len(documented) > 15
    assert all(answer["content"] == {"application/json": {"schema": {"$ref": "#/components/schemas/Invalid"}}}
               for answer in documented)  # fmt: skip
    not_valid, refused = client.get("/api/exchanges/0"), client.get("/api/har", params={"q": "a", "ids": "1"})
    assert not_valid.status_code == refused.status_code == 422
    assert isinstance(Invalid.model_validate(not_valid.json()).detail, list)
    assert isinstance(Invalid.model_validate(refused.json()).detail, str)
