"""Share links: the API, the read-only page, redaction of every secret, expiry and revocation."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re

import pytest

from storage.errors import Gone
from storage.pure.record import CapturedBody
from storage.pure.redaction import DEFAULT_RULES
from storage.shares import create_share, open_share
from storage.sink import write_records
from tests.support.records import make_record

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlLWNhbmFyeS0xMjM0NTY3ODkw"
CANARIES = {
    "authorization": "Bearer canary-authorization-7f3e",
    "cookie": "canary-cookie-1b2c",
    "set-cookie": "canary-setcookie-9a8b",
    "x-api-key": "canary-xapikey-5d6e",
    "x-auth-token": "canary-authtoken-3c4d",
    "query-api-key": "canary-query-apikey-7e8f",
    "query-password": "canary-query-password-0a1b",
    "json-password": "canary-json-password-2c3d",
    "json-token": "canary-json-token-4e5f",
    "form-secret": "canary-form-secret-6a7b",
    "jwt-signature": "c2lnbmF0dXJlLWNhbmFyeS0xMjM0NTY3ODkw",
}


def secret_exchange() -> object:
    json_body = json.dumps({"user": {"name": "Ada", "password": CANARIES["json-password"]},
                            "sessions": [{"refresh_token": CANARIES["json-token"]}], "note": f"jwt {JWT}"}).encode()  # fmt: skip
    return make_record(
        method="POST",
        path="/login",
        query=f"api_key={CANARIES['query-api-key']}&password={CANARIES['query-password']}&page=2",
        request_headers=[
            ("Host", "identity.internal"), ("Authorization", CANARIES["authorization"]),
            ("Cookie", f"session={CANARIES['cookie']}; theme=dark"), ("X-Api-Key", CANARIES["x-api-key"]),
            ("X-Auth-Token", CANARIES["x-auth-token"]), ("X-Forwarded-Jwt", JWT), ("Content-Type", "application/json"),
        ],  # fmt: skip
        request_body=CapturedBody(data=json_body, size=len(json_body), truncated=False, content_type="application/json"),
        response_headers=[
            ("Content-Type", "application/x-www-form-urlencoded"), ("Content-Encoding", "gzip"),
            ("Set-Cookie", f"sid={CANARIES['set-cookie']}; Path=/; HttpOnly"),
        ],  # fmt: skip
        response_body=CapturedBody(
            data=gzip.compress(f"client_secret={CANARIES['form-secret']}&ok=1".encode()), size=60, truncated=False,
            encoding="gzip", content_type="application/x-www-form-urlencoded",
        ),  # fmt: skip
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    )


def assert_no_canary(text: str) -> None:
    leaked = [name for name, value in CANARIES.items() if value in text]
    assert not leaked, f"secrets leaked: {leaked}"


def test_a_shared_exchange_shows_no_secret_anywhere(store, client):
    (exchange_id,) = write_records(store, [secret_exchange()])
    created = client.post("/api/shares", json={"exchange_id": exchange_id, "note": "login fails for Ada"})
    assert created.status_code == 201, created.text
    share = created.json()
    assert re.fullmatch(r"/s/[A-Za-z0-9_-]{43}", share["url"]) and share["kind"] == "exchange"
    page = client.get(share["url"])
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for response in (page, client.get(share["url"] + "/snapshot.json")):
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
        assert "noindex" in response.headers["x-robots-tag"]
        assert "default-src 'self'" in response.headers["content-security-policy"]
    snapshot = client.get(share["url"] + "/snapshot.json")
    assert_no_canary(snapshot.text)
    assert_no_canary(created.text)
    assert_no_canary(client.get("/api/shares").text)
    shared = snapshot.json()["exchanges"][0]
    assert "[redacted:" in json.dumps(shared) and "Ada" in shared["request_body"]["text"]
    assert shared["response_body"]["text"].endswith("&ok=1")  # decoded, then redacted
    assert "sha256" not in shared["request_body"]  # a hash of a small body confirms a guess


def test_a_search_and_a_trace_are_frozen_at_creation(store, client):
    ids = write_records(store, [secret_exchange(), make_record(path="/other", trace_id="4bf92f3577b34da6a3ce929d0e0e4736")])
    by_search = client.post("/api/shares", json={"q": "path:/login"}).json()
    by_trace = client.post("/api/shares", json={"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}).json()
    write_records(store, [secret_exchange()])  # later traffic does not join the frozen set
    assert by_search["exchange_count"] == 1 and by_trace["exchange_count"] == 2
    snapshot = client.get(by_trace["url"] + "/snapshot.json").json()
    assert [x["id"] for x in snapshot["exchanges"]] == ids
    assert_no_canary(json.dumps(snapshot))


def test_revoked_and_expired_links_are_gone(store, client):
    (exchange_id,) = write_records(store, [make_record()])
    share = client.post("/api/shares", json={"exchange_id": exchange_id}).json()
    assert [s["id"] for s in client.get("/api/shares").json()["data"]] == [share["id"]]
    revoked = client.delete(f"/api/shares/{share['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    for path in (share["url"], share["url"] + "/snapshot.json"):
        gone = client.get(path)
        assert gone.status_code == 410 and "revoked" in gone.text
    assert client.get("/api/shares").json()["data"] == []
    created = create_share(store, kind="exchange", selector=str(exchange_id), ttl=dt.timedelta(minutes=5), rules=DEFAULT_RULES)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)
    with pytest.raises(Gone, match="expired"):
        open_share(store, token=created.token, now=later)
    assert client.get("/s/" + "A" * 43).status_code == 404
    assert client.delete("/api/shares/999").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({}, 422, "exactly one of"),
        ({"exchange_id": 1, "q": "x"}, 422, "exactly one of"),
        ({"exchange_id": 999}, 422, "no exchange"),
        ({"q": "stauts:5"}, 400, "unknown field"),
        ({"q": "path:/nothing-here"}, 404, "nothing to share"),
        ({"exchange_id": 1, "expires_in_hours": 0}, 422, "expires_in_hours"),
    ],
)
def test_bad_share_requests(store, client, body, status, fragment):
    write_records(store, [make_record()])
    response = client.post("/api/shares", json=body)
    assert response.status_code == status and fragment in response.text


def test_tokens_are_not_derived_from_ids(store):
    (exchange_id,) = write_records(store, [make_record()])
    tokens = {create_share(store, kind="exchange", selector=str(exchange_id), rules=DEFAULT_RULES).token for _ in range(20)}
    assert len(tokens) == 20 and all(len(t) == 43 for t in tokens)
    with store.engine.connect() as conn:
        stored = [bytes(row[0]) for row in conn.exec_driver_sql("SELECT token_sha256 FROM shares")]
    assert all(len(h) == 32 for h in stored) and not any(t.encode() in h for t in tokens for h in stored)


def test_har_export_is_redacted_unless_raw_and_imports_back(store, client, tmp_path):
    from storage.pure.har import import_har
    from tests.storage.test_har_spec import problems as har_problems

    ids = write_records(store, [secret_exchange(), make_record(path="/plain")])
    redacted = client.get("/api/har", params={"ids": ",".join(map(str, ids))})
    assert redacted.status_code == 200 and "attachment" in redacted.headers["content-disposition"]
    assert_no_canary(redacted.text)
    log = redacted.json()["log"]
    assert len(log["entries"]) == 2 and har_problems(redacted.json()) == []
    raw = client.get("/api/har", params={"q": "path:/login", "raw": "true"})
    assert CANARIES["json-password"] in raw.text and CANARIES["authorization"] in raw.text
    records = import_har(raw.content, proxy_name="import")
    assert [(r.method, r.path) for r in records] == [("POST", "/login")]
    by_trace = client.get("/api/har", params={"trace": "4bf92f3577b34da6a3ce929d0e0e4736"}).json()["log"]["entries"]
    assert len(by_trace) == 1
    assert redacted.headers["content-security-policy"] == "default-src 'none'; sandbox"  # a download: nothing runs
    assert client.get("/api/har", params={"q": "x", "ids": "1"}).status_code == 422
    assert client.get("/api/har", params={"q": "", "ids": str(ids[0])}).status_code == 200  # blank is no search


def test_har_of_a_short_trace_id_holds_exactly_that_trace(store, client):
    # `trace:` in a search is a prefix; a download of one trace must not take in another that
    # starts with the same digits (a 16-digit B3 id here).
    short, longer = "80f198ee56343ba8", "80f198ee56343ba864fe8b2a57d3eff7"
    ids = write_records(store, [make_record(trace_id=short), make_record(trace_id=longer), make_record(trace_id=short)])
    entries = client.get("/api/har", params={"trace": short}).json()["log"]["entries"]
    assert sorted(e["_passageway"]["id"] for e in entries) == [ids[0], ids[2]]
    assert client.get("/api/har", params={"q": "stauts:1"}).json()["position"] == 0


@pytest.mark.parametrize("fmt", ["curl", "httpie", "python", "fetch"])
def test_snippets_raw_and_redacted(store, client, fmt):
    (exchange_id,) = write_records(store, [secret_exchange()])
    raw = client.get(f"/api/exchanges/{exchange_id}/snippet", params={"format": fmt})
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/plain")
    assert CANARIES["x-api-key"] in raw.text and "/login" in raw.text
    redacted = client.get(f"/api/exchanges/{exchange_id}/snippet", params={"format": fmt, "redact": "true"})
    assert_no_canary(redacted.text)
    assert client.get("/api/exchanges/999/snippet").status_code == 404


def test_links_that_cannot_be_shown_get_a_page_saying_why(store, client):
    """Issue 16: revoked, expired and unknown links answer 410/410/404 with a page in the share
    page's look (its stylesheet, no navigation) saying which, never a bare line of text."""
    (exchange_id,) = write_records(store, [make_record()])
    revoked = client.post("/api/shares", json={"exchange_id": exchange_id}).json()
    client.delete(f"/api/shares/{revoked['id']}")
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    expired = create_share(store, kind="exchange", selector=str(exchange_id), ttl=dt.timedelta(hours=1),
                           rules=DEFAULT_RULES, now=long_ago)  # fmt: skip
    cases = [
        (revoked["url"], 410, "revoked", "This link was revoked"),
        (f"/s/{expired.token}", 410, "expired", "This link has expired"),
        ("/s/" + "A" * 43, 404, "unknown", "Unknown link"),
        ("/s/short", 404, "unknown", "Unknown link"),
    ]
    for url, status, reason, title in cases:
        page = client.get(url)
        assert page.status_code == status, url
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
        text = page.text
        assert f"<title>{title} · Passageway</title>" in text and f"<h1>{title}</h1>" in text
        assert f'data-reason="{reason}"' in text and '<link rel="stylesheet" href="/static/share.css">' in text
        assert '<nav class="nav-links"' not in text and "{" not in text.split("<body", 1)[1]
