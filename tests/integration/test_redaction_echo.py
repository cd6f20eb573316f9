"""Secrets never leave: real traffic through a real proxy to a real echoing service (httpbin),
then every way out counted for canaries.

Each canary is sent once, under a name Passageway redacts (a header, a query parameter, a
JSON member, a form and a multipart field, a cookie, Basic credentials, a JWT signature, a
token in a URL), and httpbin sends it back elsewhere: as the raw body in a JSON string, in
the echoed URL, in Set-Cookie and Location, in a path. Every output (share snapshots of an
exchange, a search and a trace; the share list; HAR from the API and from the CLI; every
snippet with redact=true; and a store written with redact_at_capture) must hold zero
occurrences of any canary in any form. The raw HAR must hold them all, so the test cannot
pass by sending nothing.
"""

from __future__ import annotations

import base64
import html
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

import httpx
import pytest

from storage.queries import get_body, get_exchange, list_exchanges
from storage.store import Store, open_store
from tests.support import fresh_postgres_database, free_port, require_or_skip_postgres, start_process, wait_for
from tests.support.httpbin import running_httpbin

PASSAGEWAY = [sys.executable, "-m", "cli"]
MARKER_RE = re.compile(r"\[redacted:[0-9a-f]{8}\]")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

CANARIES = {
    "bearer": "BearerCanary-a1b2c3d4e5",
    "api_key_header": "HdrKeyCanary-0f9e8d7c",
    "cookie": "CookieCanary-5a6b7c8d",
    "query": "Qry Canary/+\u00fc-77",
    "json": 'Json "Canary" /\u00fc-42',
    "nested": 'Nested\\Canary/"q-19',
    "form": "Form Canary&=+/\u00fc-31",
    "multipart": "MultipartCanary-88-pw",
    "set_cookie": "SetCookieCanary-64x",
    "basic": "BasicCanary-Pass-55",
    "jwt": "JwtSigCanary99xyzAB",
    "url_in_body": "UrlInBodyCanary-12",
}


def forms(secret: str) -> set[str]:
    once = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), html.escape(secret),
            json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}  # fmt: skip
    nested = once
    for _ in range(3):  # a JSON document in a JSON string, in a body that is itself a JSON string of a HAR
        nested = {json.dumps(form)[1:-1] for form in nested} | {json.dumps(form, ensure_ascii=False)[1:-1] for form in nested}
        once = once | nested
    return once | {base64.b64encode(secret.encode()).decode()}


def canaries_in(text: str) -> list[str]:
    """Each canary seen in `text`, in any form (markers neutralized first, so a canary cannot
    seem to appear across a marker's edge)."""
    text = MARKER_RE.sub("\x00", text)
    return sorted(name for name, secret in CANARIES.items() if any(form in text for form in forms(secret)))


def send_echo_traffic(gateway: str) -> int:
    """The corpus, through the gateway's `echo` service; how many requests were sent."""
    c = CANARIES
    jwt = f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.{c['jwt']}"
    callback = quote(f"http://app.local/cb?access_token={c['url_in_body']}", safe="")
    with httpx.Client(base_url=f"{gateway}/echo", headers={"traceparent": TRACEPARENT}, timeout=10) as client:
        responses = [
            client.get("/anything/headers", headers={"Authorization": f"Bearer {c['bearer']}",
                                                     "X-Api-Key": c["api_key_header"],
                                                     "Cookie": f"session={c['cookie']}; theme=dark"}),  # fmt: skip
            client.get(f"/anything/login?api_key={quote(c['query'], safe='')}&page=2"),
            client.post("/anything", json={"user": "ada", "password": c["json"]}),
            client.post("/anything", json={"payload": json.dumps({"token": c["nested"]})}),
            client.post("/anything", data={"user": "ada", "password": c["form"]}),
            client.post("/anything", data={"password": c["multipart"]}, files={"doc": ("a.bin", b"\x00\x01binary")}),
            client.get(f"/cookies/set?session_token={c['set_cookie']}"),
            client.get(f"/basic-auth/ada/{c['basic']}", auth=("ada", c["basic"])),
            client.post("/anything", content=f"token is {jwt}".encode(), headers={"Content-Type": "text/plain"}),
            client.get(f"/redirect-to?url={callback}"),
            client.get(f"/anything?next={callback}"),
        ]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 200, 200, 302, 200, 200, 302, 200]
    return len(responses)


@dataclass
class EchoStack:
    db_url: str
    store: Store
    inspector: str
    ids: list[int]


def wait_stored(store: Store, count: int) -> list[int]:
    def stored() -> list[int] | None:
        rows = list_exchanges(store, limit=100, service="echo").data
        return sorted(row["id"] for row in rows) if len(rows) >= count else None

    return wait_for(stored, timeout=20, message=f"{count} echo exchanges were not stored")


def proxy_args(db_url: str, port: int, upstream: str, tmp_path, *extra: str) -> list[str]:
    return [
        *PASSAGEWAY, "proxy", "--db", db_url, "--listen", f"127.0.0.1:{port}", "--route", f"echo={upstream}",
        "--certs-dir", str(tmp_path / "certs"), "--spool-dir", str(tmp_path / "spool"), *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def httpbin_url() -> Iterator[str]:
    with running_httpbin() as url:
        yield url


@pytest.fixture(scope="module")
def stack(db_url, httpbin_url, tmp_path_factory) -> Iterator[EchoStack]:
    tmp = tmp_path_factory.mktemp("echo")
    port, ui = free_port(), free_port()
    with start_process(proxy_args(db_url, port, httpbin_url, tmp), port=port, name="passageway proxy", timeout=30):
        sent = send_echo_traffic(f"http://127.0.0.1:{port}")
        store = open_store(db_url, migrate=False)
        ids = wait_stored(store, sent)
        inspector_args = [*PASSAGEWAY, "ui", "--db", db_url, "--ui", f"127.0.0.1:{ui}", "--listen", f"127.0.0.1:{port}"]
        try:
            with start_process(inspector_args, port=ui, name="passageway ui", timeout=30):
                yield EchoStack(db_url, store, f"http://127.0.0.1:{ui}", ids)
        finally:
            store.close()


def test_the_traffic_carried_every_canary(stack):
    raw = httpx.get(f"{stack.inspector}/api/har", params={"q": "service:echo", "raw": "true"}, timeout=30)
    assert raw.status_code == 200
    assert set(CANARIES) - set(canaries_in(raw.text)) == set()


def share(stack: EchoStack, **selector) -> str:
    made = httpx.post(f"{stack.inspector}/api/shares", json=selector, timeout=30)
    assert made.status_code == 201, made.text
    snapshot = httpx.get(f"{stack.inspector}{made.json()['url']}/snapshot.json", timeout=10)
    assert snapshot.status_code == 200
    return snapshot.text


def test_share_snapshots_hold_no_canary(stack):
    outputs = {f"exchange {i}": share(stack, exchange_id=i) for i in stack.ids}
    outputs["search"] = share(stack, q="service:echo")
    outputs["trace"] = share(stack, trace_id=TRACE_ID)
    by_header = f"header:x-api-key={CANARIES['api_key_header']}"
    wait_for(  # header terms read the search index, which the inspector builds as it starts
        lambda: httpx.get(f"{stack.inspector}/api/exchanges", params={"q": by_header}, timeout=10).json()["data"],
        timeout=20, message="the inspector did not index the headers",
    )  # fmt: skip
    outputs["search by a secret header"] = share(stack, q=by_header)
    outputs["share list"] = httpx.get(f"{stack.inspector}/api/shares", timeout=10).text
    assert {name: canaries_in(text) for name, text in outputs.items() if canaries_in(text)} == {}
    trace = json.loads(outputs["trace"])
    assert len(trace["exchanges"]) == len(stack.ids) == trace["trace"]["exchange_count"]
    search = json.loads(outputs["search"])
    assert len(search["exchanges"]) == len(stack.ids)
    multipart = next(x for x in search["exchanges"] if (x["request_content_type"] or "").startswith("multipart/"))
    assert "[binary (application/octet-stream, 8 bytes): redaction cannot read it]" in multipart["request_body"]["text"]


def test_har_from_the_api_and_the_cli_holds_no_canary(stack, tmp_path):
    for params in ({"q": "service:echo"}, {"trace": TRACE_ID}, {"ids": ",".join(map(str, stack.ids))}):
        har = httpx.get(f"{stack.inspector}/api/har", params=params, timeout=30)
        assert har.status_code == 200 and canaries_in(har.text) == [], params
        assert len(har.json()["log"]["entries"]) == len(stack.ids)
    out = tmp_path / "echo.har"
    done = subprocess.run(
        [*PASSAGEWAY, "export", "--db", stack.db_url, "--query", "service:echo", "--har", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert canaries_in(out.read_text(encoding="utf-8")) == []


def test_redacted_snippets_hold_no_canary(stack):
    leaks = {}
    for exchange_id in stack.ids:
        for fmt in ("curl", "httpie", "python", "fetch"):
            snippet = httpx.get(
                f"{stack.inspector}/api/exchanges/{exchange_id}/snippet", params={"format": fmt, "redact": "true"}, timeout=10
            )
            assert snippet.status_code == 200
            if found := canaries_in(snippet.text):
                leaks[(exchange_id, fmt)] = found
    assert leaks == {}


@pytest.fixture(scope="module")
def captured_redacted(httpbin_url, tmp_path_factory) -> Iterator[Store]:
    """The same traffic through a proxy with redact_at_capture, into a store of its own."""
    tmp = tmp_path_factory.mktemp("at-capture")
    config = tmp / "passageway.toml"
    config.write_text("redact_at_capture = true\n")
    require_or_skip_postgres()
    with fresh_postgres_database() as db_url:
        port = free_port()
        args = proxy_args(db_url, port, httpbin_url, tmp, "--config", str(config))
        with start_process(args, port=port, name="passageway proxy (redact_at_capture)", timeout=30):
            sent = send_echo_traffic(f"http://127.0.0.1:{port}")
            store = open_store(db_url, migrate=False)
            try:
                wait_stored(store, sent)
                yield store
            finally:
                store.close()


def test_redact_at_capture_stores_no_canary(captured_redacted):
    store = captured_redacted
    stored = []
    for row in list_exchanges(store, limit=100).data:
        stored.append(json.dumps(get_exchange(store, exchange_id=row["id"]), ensure_ascii=False))
        for side in ("request", "response"):
            body = get_body(store, exchange_id=row["id"], side=side)
            if body is not None:
                stored.append((body.decoded(limit=1 << 26) or body.data).decode("utf-8", "replace"))
    assert len(stored) > 11
    assert canaries_in("\n".join(stored)) == []
