"""radar.generate and radar.hurl_text: Hurl tests made from captured exchanges."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from radar.generate import (
    CapturedExchange,
    Endpoint,
    captured_exchange,
    duration_budget,
    endpoint_of,
    test_from_exchange,
    test_from_exchanges,
)
from radar.hurl_text import Var, json_body, key_string, multiline_body, quoted, value_string

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNlY3JldA"
API_KEY = "k-9f8e7d6c5b4a"
PASSWORD = "hunter2-very-secret"
SESSION = "sess-0c1d2e3f4a5b"


def exchange(**fields) -> CapturedExchange:
    defaults = dict(
        method="GET", url="http://orders.internal:8080/", path="/", service="orders",
        status=200, duration_ms=30.0,
    )  # fmt: skip
    defaults.update(fields)
    return CapturedExchange(**defaults)


def json_bytes(value) -> bytes:
    return json.dumps(value).encode()


CREATE_ORDER = exchange(
    method="POST",
    url="http://orders.internal:8080/orders",
    path="/orders",
    request_headers=(
        ("Host", "orders.internal:8080"),
        ("User-Agent", "python-httpx/0.28"),
        ("Accept-Encoding", "gzip"),
        ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("X-Passageway-Caller", "checkout"),
        ("Content-Type", "application/json"),
        ("Content-Length", "31"),
        ("Authorization", f"Bearer {TOKEN}"),
    ),
    request_body=json_bytes({"item": "book", "quantity": 2}),
    status=201,
    response_headers=(("Content-Type", "application/json; charset=utf-8"),),
    response_body=json_bytes(
        {"id": 4711, "item": "book", "quantity": 2, "status": "new", "created_at": "2026-11-28T01:02:03Z"}
    ),
    duration_ms=42.0,
)

GET_ORDER = exchange(
    url="http://orders.internal:8080/orders/4711",
    path="/orders/4711",
    request_headers=(("Accept", "application/json"), ("Authorization", f"Bearer {TOKEN}")),
    response_headers=(("Content-Type", "application/json"),),
    response_body=json_bytes({"id": 4711, "item": "book", "lines": [{"sku": "B-1", "price": 12.5}], "paid": False}),
    duration_ms=120.0,
)


# --- one exchange: the exact text ------------------------------------------------


def test_a_json_post_becomes_a_service_request_with_shape_echoes_and_budget():
    generated = test_from_exchange(CREATE_ORDER, latency_p95_ms=90.0)
    assert generated.text == (
        "POST service://orders/orders\n"
        "Content-Type: application/json\n"
        "Authorization: Bearer {{token}}\n"
        "{\n"
        '  "item": "book",\n'
        '  "quantity": 2\n'
        "}\n"
        "HTTP 201\n"
        "[Asserts]\n"
        'header "Content-Type" contains "application/json"\n'
        'jsonpath "$.id" isInteger\n'
        'jsonpath "$.item" == "book"\n'
        'jsonpath "$.quantity" == 2\n'
        'jsonpath "$.status" isString\n'
        'jsonpath "$.created_at" isString\n'
        "duration < 300\n"
    )
    assert generated.secrets == ("token",)
    assert generated.captures == ()


def test_a_get_without_service_keeps_its_url_and_asserts_nested_shape():
    plain = exchange(
        service=None,
        url="https://api.example.com/orders/4711?expand=lines",
        path="/orders/4711",
        query="expand=lines",
        response_headers=(("Content-Type", "application/json"),),
        response_body=json_bytes({"id": 4711, "lines": [{"sku": "B-1", "price": 12.5}], "note": None, "tags": []}),
        duration_ms=None,
    )
    assert test_from_exchange(plain).text == (
        "GET https://api.example.com/orders/4711?expand=lines\n"
        "HTTP 200\n"
        "[Asserts]\n"
        'header "Content-Type" contains "application/json"\n'
        'jsonpath "$.id" == 4711\n'
        'jsonpath "$.lines" isCollection\n'
        'jsonpath "$.lines[0]" isCollection\n'
        'jsonpath "$.lines[0].sku" isString\n'
        'jsonpath "$.lines[0].price" isFloat\n'
        'jsonpath "$.note" == null\n'
        'jsonpath "$.tags" isCollection\n'
    )


def test_a_form_post_writes_a_form_section_with_its_secret_field_as_a_variable():
    login = exchange(
        method="POST",
        url="http://identity.internal/login",
        path="/login",
        service="identity",
        request_headers=(("Content-Type", "application/x-www-form-urlencoded"),),
        request_body=f"user=alice&password={PASSWORD}&next=%2Fhome".encode(),
        status=303,
        response_headers=(("Location", "/home"),),
        duration_ms=100.0,
    )
    generated = test_from_exchange(login)
    assert generated.text == (
        "POST service://identity/login\n"
        "Content-Type: application/x-www-form-urlencoded\n"
        "[Form]\n"
        "user: alice\n"
        "password: {{password}}\n"
        "next: /home\n"
        "HTTP 303\n"
        "[Asserts]\n"
        "duration < 300\n"
    )
    assert generated.secrets == ("password",)


def test_a_binary_body_is_written_as_base64():
    upload = exchange(
        method="PUT",
        url="http://files.internal/files/logo.png",
        path="/files/logo.png",
        service="files",
        request_headers=(("Content-Type", "image/png"),),
        request_body=b"\x89PNG\r\n\x1a\n\x00\xff",
        status=204,
        duration_ms=10.0,
    )
    assert test_from_exchange(upload).text == (
        "PUT service://files/files/logo.png\n"
        "Content-Type: image/png\n"
        f"base64,{base64.b64encode(b'\x89PNG\r\n\x1a\n\x00\xff').decode()};\n"
        "HTTP 204\n"
        "[Asserts]\n"
        "duration < 200\n"
    )


def test_a_text_body_is_a_multiline_string_with_backquotes_and_braces_escaped():
    post = exchange(
        method="POST",
        url="http://notes.internal/notes",
        path="/notes",
        service="notes",
        request_headers=(("Content-Type", "text/plain"),),
        request_body=b"```code```\n{{not a variable}}\n",
        status=201,
        duration_ms=None,
    )
    assert test_from_exchange(post).text == (
        "POST service://notes/notes\n"
        "Content-Type: text/plain\n"
        "```\n"
        "\\`\\`\\`code\\`\\`\\`\n"
        "\\u{7b}{not a variable}}\n"
        "```\n"
        "HTTP 201\n"
    )


def test_secrets_in_headers_query_and_json_never_reach_the_text():
    call = exchange(
        method="POST",
        url=f"http://billing.internal/charges?api_key={API_KEY}&currency=EUR",
        path="/charges",
        query=f"api_key={API_KEY}&currency=EUR",
        service="billing",
        request_headers=(
            ("Content-Type", "application/json"),
            ("X-Api-Key", API_KEY),
            ("Cookie", f"session={SESSION}; theme=dark"),
            ("X-Debug", f"caller token {TOKEN}"),
        ),
        request_body=json_bytes({"card": {"number": "4242", "password": PASSWORD}, "echo": API_KEY}),
        response_headers=(("Content-Type", "application/json"),),
        response_body=json_bytes({"charged": True, "echo": API_KEY}),
    )
    generated = test_from_exchange(call)
    for secret in (API_KEY, PASSWORD, SESSION, TOKEN, TOKEN.rsplit(".", 1)[1]):
        assert secret not in generated.text
    # one variable per value: the key sent in the header and the query is one secret
    assert generated.secrets == ("x_debug", "x_api_key", "cookie", "password")
    assert "X-Api-Key: {{x_api_key}}\n" in generated.text
    assert "X-Debug: caller token {{x_debug}}\n" in generated.text
    assert "[Query]\napi_key: {{x_api_key}}\ncurrency: EUR\n" in generated.text
    assert '"password": "{{password}}"' in generated.text
    assert '"echo": "{{x_api_key}}"' in generated.text
    assert 'jsonpath "$.echo" == "{{x_api_key}}"' in generated.text
    assert "Cookie: {{cookie}}\n" in generated.text


def test_an_exchange_without_a_response_is_refused_with_the_reason():
    failed = exchange(id=7, status=None, error="connect_failed: connection refused")
    with pytest.raises(ValueError, match=r"exchange 7 has no response \(connect_failed: connection refused\)"):
        test_from_exchange(failed)
    with pytest.raises(ValueError, match="no exchanges"):
        test_from_exchanges([])


# --- several exchanges: chaining ------------------------------------------------


def test_an_id_from_a_create_is_captured_and_used_by_the_later_get():
    generated = test_from_exchanges([CREATE_ORDER, GET_ORDER])
    first, second = generated.text.split("\n\n")
    assert '[Captures]\norder_id: jsonpath "$.id"\n' in first
    assert second.startswith("GET service://orders/orders/{{order_id}}\n")
    assert 'jsonpath "$.id" == {{order_id}}\n' in second
    assert "4711" not in second
    assert generated.captures == ("order_id",)
    assert generated.secrets == ("token",)
    assert TOKEN not in generated.text


def test_a_token_from_a_login_response_is_captured_not_asked_for():
    login = exchange(
        method="POST",
        url="http://identity.internal/sessions",
        path="/sessions",
        service="identity",
        request_headers=(("Content-Type", "application/json"),),
        request_body=json_bytes({"user": "alice", "password": PASSWORD}),
        status=201,
        response_headers=(("Content-Type", "application/json"),),
        response_body=json_bytes({"session": {"token": TOKEN, "expires_in": 3600}}),
    )
    me = exchange(
        url="http://identity.internal/me",
        path="/me",
        service="identity",
        request_headers=(("Authorization", f"Bearer {TOKEN}"),),
        response_headers=(("Content-Type", "application/json"),),
        response_body=json_bytes({"user": "alice"}),
    )
    generated = test_from_exchanges([login, me])
    assert 'token: jsonpath "$.session.token"\n' in generated.text
    assert "Authorization: Bearer {{token}}\n" in generated.text
    assert generated.secrets == ("password",)
    assert generated.captures == ("token",)
    assert TOKEN not in generated.text and PASSWORD not in generated.text
    # the later step's response echoes nothing it did not send
    assert 'jsonpath "$.user" isString' in generated.text.split("\n\n")[1]


def test_a_location_header_is_captured_and_followed():
    create = exchange(
        method="POST",
        url="http://docs.internal/documents",
        path="/documents",
        service="docs",
        request_headers=(("Content-Type", "text/plain"),),
        request_body=b"hello",
        status=201,
        response_headers=(("Location", "/documents/a1b2c3"),),
    )
    fetch = exchange(url="http://docs.internal/documents/a1b2c3", path="/documents/a1b2c3", service="docs")
    generated = test_from_exchanges([create, fetch])
    assert '[Captures]\ndocument_location: header "Location"\n' in generated.text
    assert "GET service://docs{{document_location}}\n" in generated.text
    assert "a1b2c3" not in generated.text


def test_cookies_an_earlier_response_set_are_left_to_the_cookie_jar():
    login = exchange(
        method="POST", url="http://web.internal/login", path="/login", service="web", status=204,
        response_headers=(("Set-Cookie", f"session={SESSION}; Path=/; HttpOnly"),),
    )  # fmt: skip
    cart = exchange(
        url="http://web.internal/cart", path="/cart", service="web",
        request_headers=(("Cookie", f"session={SESSION}"),),
    )  # fmt: skip
    generated = test_from_exchanges([login, cart])
    assert "Cookie" not in generated.text
    assert SESSION not in generated.text
    assert generated.secrets == ()


@pytest.mark.parametrize("order_id", [1000, 10, 42])
def test_a_round_or_small_id_is_still_the_servers_and_is_chained(order_id):
    def renumbered(exchange_, path):
        body = json.loads(exchange_.response_body)
        return replace(exchange_, path=path, url=f"http://orders.internal:8080{path}",
                       response_body=json_bytes({**body, "id": order_id}))  # fmt: skip

    create, get = renumbered(CREATE_ORDER, "/orders"), renumbered(GET_ORDER, f"/orders/{order_id}")
    second = test_from_exchanges([create, get]).text.split("\n\n")[1]
    assert second.startswith("GET service://orders/orders/{{order_id}}\n")


def test_a_small_number_under_another_key_is_not_chained():
    create = replace(CREATE_ORDER, response_body=json_bytes({"id": 4711, "quantity": 2, "page": 1}))
    get = replace(GET_ORDER, query="page=1", url="http://orders.internal:8080/orders/4711?page=1")
    second = test_from_exchanges([create, get]).text.split("\n\n")[1]
    assert second.startswith("GET service://orders/orders/{{order_id}}?page=1\n")


def test_values_the_client_already_sent_are_not_chained():
    first = exchange(
        method="PUT", url="http://users.internal/users/12345", path="/users/12345", service="users",
        response_headers=(("Content-Type", "application/json"),), response_body=json_bytes({"id": 12345}),
    )  # fmt: skip
    second = exchange(url="http://users.internal/users/12345/orders", path="/users/12345/orders", service="users")
    generated = test_from_exchanges([first, second])
    assert "[Captures]" not in generated.text
    assert "GET service://users/users/12345/orders\n" in generated.text


def test_capture_names_are_unique_and_derive_from_the_field():
    create = exchange(
        method="POST", url="http://a.internal/carts", path="/carts", service="a", status=201,
        response_headers=(("Content-Type", "application/json"),),
        response_body=json_bytes({"id": 9001, "owner": {"id": 31337}, "items": [{"id": 555}]}),
    )  # fmt: skip
    use = exchange(
        method="POST", url="http://a.internal/carts/9001/items", path="/carts/9001/items", service="a",
        request_headers=(("Content-Type", "application/json"),),
        request_body=json_bytes({"owner": 31337, "item": 555}),
    )  # fmt: skip
    generated = test_from_exchanges([create, use])
    assert generated.captures == ("cart_id", "owner_id", "item_id")
    assert 'owner_id: jsonpath "$.owner.id"\n' in generated.text
    assert 'item_id: jsonpath "$.items[0].id"\n' in generated.text
    assert '"owner": {{owner_id}},\n  "item": {{item_id}}\n' in generated.text


def test_a_root_array_and_an_empty_object_are_asserted_as_collections():
    listing = exchange(
        url="http://orders.internal/orders", path="/orders",
        response_headers=(("Content-Type", "application/json"),), response_body=b'[{"id": 1}]', duration_ms=None,
    )  # fmt: skip
    assert test_from_exchange(listing).text.endswith(
        '[Asserts]\nheader "Content-Type" contains "application/json"\n'
        'jsonpath "$" isCollection\njsonpath "$[0]" isCollection\njsonpath "$[0].id" isInteger\n'
    )
    empty = exchange(response_body=b"{}", duration_ms=None)
    assert test_from_exchange(empty).text == 'GET service://orders/\nHTTP 200\n[Asserts]\njsonpath "$" isCollection\n'


# --- the pieces ------------------------------------------------------------------


def test_duration_budget_is_three_times_p95_rounded_up_and_at_least_200():
    assert duration_budget(None, 10.0) == 200
    assert duration_budget(90.0, 5000.0) == 300
    assert duration_budget(137.0, None) == 500
    assert duration_budget(1000.0, None) == 3000
    assert duration_budget(None, None) is None


def test_the_endpoint_is_the_service_method_and_template():
    assert endpoint_of(GET_ORDER) == Endpoint("orders", "GET", "/orders/{id}")
    assert endpoint_of(exchange(service=None, url="https://h.example/x", path="/x")) == Endpoint("h.example", "GET", "/x")
    p95 = {Endpoint("orders", "GET", "/orders/{id}"): 1000.0}
    assert "duration < 3000\n" in test_from_exchanges([GET_ORDER], latency_p95_ms=p95).text


def test_captured_exchange_reads_the_store_detail():
    detail = {
        "id": 42, "method": "post", "scheme": "http", "host": "10.0.0.5", "port": 9000, "path": "/api/orders",
        "query": "x=1", "url": "http://10.0.0.5:9000/api/orders?x=1", "service": "orders", "status": 201,
        "duration_ms": 12.5, "error": None,
        "request_headers": [["Content-Type", "application/json"]],
        "response_headers": [["Content-Type", "application/json"], ["Location", "/orders/1"]],
    }  # fmt: skip
    captured = captured_exchange(detail, request_body=b"{}", response_body=b"{}", base_path="/api")
    assert captured == CapturedExchange(
        method="POST", url="http://10.0.0.5:9000/api/orders?x=1", path="/orders", query="x=1", service="orders",
        request_headers=(("Content-Type", "application/json"),), request_body=b"{}", status=201,
        response_headers=(("Content-Type", "application/json"), ("Location", "/orders/1")), response_body=b"{}",
        duration_ms=12.5, id=42,
    )  # fmt: skip
    failed = captured_exchange(
        {**detail, "status": None, "error": {"kind": "timeout", "message": "after 30 s"}},
        request_body=None, response_body=None,
    )  # fmt: skip
    assert failed.error == "timeout: after 30 s"


def test_hurl_text_escapes():
    assert quoted('say "hi"\n\\') == '"say \\"hi\\"\\n\\\\"'
    assert quoted(("id-", Var("order_id"))) == '"id-{{order_id}}"'
    assert quoted("{{x}}") == '"\\u{7b}{x}}"'
    assert quoted(("{", Var("x"))) == '"\\u{7b}{{x}}"'
    assert value_string(" a # b ") == "\\u{20}a \\# b\\u{20}"
    assert key_string("X-Odd:Name #1") == "X-Odd\\:Name\\u{20}\\#1"
    assert multiline_body("a`b") == "```\na\\`b```"
    assert json_body({"a": [1, {"b": Var("v")}], "s": ("x", Var("w")), "e": {}}) == (
        '{\n  "a": [\n    1,\n    {\n      "b": {{v}}\n    }\n  ],\n  "s": "x{{w}}",\n  "e": {}\n}'
    )
    assert json_body({"t": "{{no}}"}) == '{\n  "t": "\\u007b{no}}"\n}'
    with pytest.raises(ValueError):
        Var("1bad")


# --- hostile values: the text stays valid Hurl ---------------------------------------

_PLACEHOLDER = re.compile(r"\{\{([A-Za-z][A-Za-z0-9_-]*)\}\}")

_values = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from(['{', '}', '"', '\\', '#', '`']),
    max_size=30,
)


def _hostile_exchange(value: str, key: str) -> CapturedExchange:
    return exchange(
        method="POST",
        url="http://svc.internal/things",
        path="/things",
        service="svc",
        request_headers=(("Content-Type", "application/json"), ("X-Note", value)),
        request_body=json.dumps({key: value, "n": 1}).encode(),
        response_headers=(("Content-Type", "application/json"),),
        response_body=json.dumps({key: value, "copy": value}).encode(),
    )


@settings(max_examples=300, deadline=None)
@given(value=_values, key=_values.filter(bool))
def test_captured_values_never_make_placeholders_or_break_lines(value, key):
    assume(value != key)  # a secret-like value that is also its field's name cannot be told from it
    generated = test_from_exchange(_hostile_exchange(value, key))
    text = generated.text
    # the only placeholders are the secrets' (a key may be secret-like); none comes from a value
    assert set(_PLACEHOLDER.findall(text)) == set(generated.secrets), text
    assert text.splitlines() == text.split("\n")[:-1]  # no line break but "\n", even invisible ones
    # each assert line keeps its quotes balanced once escapes are removed
    for line in text.split("\n"):
        if line.startswith(("jsonpath ", "header ")):
            unescaped = re.sub(r"\\.", "", line)
            assert unescaped.count('"') % 2 == 0, line


@settings(max_examples=200, deadline=None)
@given(value=_values, key=_values.filter(bool))
def test_generated_text_parses_back_to_the_captured_values(value, key):
    hurl = pytest.importorskip("radar.hurl")
    assume(value != key)
    generated = test_from_exchange(_hostile_exchange(value, key))
    assume(not generated.secrets)  # a secret-like key or value is a placeholder, tested above
    parsed = hurl.parse_hurl(generated.text)
    [entry] = parsed.entries
    headers = {"".join(kv.name.parts): kv.value for kv in entry.request.headers}
    note = headers["X-Note"]
    assert note.parts == ((value,) if value else ())
    assert entry.request.body is not None and entry.request.body.kind == "json"
    [json_text] = entry.request.body.text.parts
    assert json.loads(json_text) == {key: value, "n": 1}


def test_generated_chained_test_parses_back():
    hurl = pytest.importorskip("radar.hurl")
    generated = test_from_exchanges([CREATE_ORDER, GET_ORDER])
    parsed = hurl.parse_hurl(generated.text, "orders.hurl")
    first, second = parsed.entries
    assert [capture.name for capture in first.response.captures] == ["order_id"]
    assert second.request.url.variables == ("order_id",)
    assert first.response.status == 201 and second.response.status == 200
