"""storage.pure.redaction: canary secrets in every spot vanish, everything else survives (hypothesis)."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.pure.decoding import decode_body
from storage.pure.record import CapturedBody, ExchangeRecord, Timings, WebSocketMessageRecord
from storage.pure.redaction import (
    DEFAULT_RULES,
    MARKER_RE,
    OutExchange,
    RedactionRules,
    redact_body,
    redact_headers,
    redact_outgoing,
    redact_record,
    redact_text,
    redact_url,
    redact_websocket_message,
    rules_from_config,
)

KEY = b"k" * 32
R = DEFAULT_RULES
CANARY = "CANARY"
JWT_HEAD = "eyJhbGciOiJIUzI1NiJ9"
JWT_BODY = "eyJzdWIiOiI0MiJ9"


def canary(n: int | str) -> str:
    return f"{CANARY}{n}x"


def jwt(n: int | str) -> str:
    return f"{JWT_HEAD}.{JWT_BODY}.SIG{canary(n)}"


def assert_clean(text: str | bytes) -> None:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    assert CANARY not in text, text


def markers(text: str) -> list[str]:
    return MARKER_RE.findall(text)


# --- headers ------------------------------------------------------------------


def test_headers_every_kind() -> None:
    headers = [
        ["Authorization", f"Bearer {canary(1)}"],
        ["Proxy-Authorization", f"Basic {canary(2)}"],
        ["Cookie", f"session={canary(3)}; theme={canary(4)}"],
        ["Set-Cookie", f"sid={canary(5)}; Path=/; Expires=Wed, 21 Oct 2026 07:28:00 GMT; HttpOnly; SameSite=Lax"],
        ["X-Api-Key", canary(6)],
        ["X-Auth-Token", canary(7)],
        ["X-Client-Secret", canary(8)],
        ["X-Password", canary(9)],
        ["X-Goog-Api-Key", canary(10)],
        ["x_api_key", canary(11)],
        ["X-Forwarded-Jwt", jwt(12)],
        ["Referer", f"https://app.local/cb?state=ok&access_token={canary(13)}"],
        ["Accept", "application/json"],
        ["Accept", "text/html"],
    ]
    out = redact_headers(headers, R, KEY)
    assert_clean(json.dumps(out))
    assert [h[0] for h in out] == [h[0] for h in headers]
    values = dict((name, value) for name, value in out)
    assert values["Authorization"].startswith("Bearer [redacted:")
    assert values["Proxy-Authorization"].startswith("Basic [redacted:")
    assert re.fullmatch(r"session=\[redacted:\w{8}\]; theme=\[redacted:\w{8}\]", values["Cookie"])
    assert re.fullmatch(
        r"sid=\[redacted:\w{8}\]; Path=/; Expires=Wed, 21 Oct 2026 07:28:00 GMT; HttpOnly; SameSite=Lax",
        values["Set-Cookie"],
    )
    assert values["X-Forwarded-Jwt"].startswith(f"{JWT_HEAD}.{JWT_BODY}.[redacted:")
    assert values["Referer"].startswith("https://app.local/cb?state=ok&access_token=[redacted:")
    assert out[-2:] == [["Accept", "application/json"], ["Accept", "text/html"]]


def test_headers_keep_pair_types_and_blank_values() -> None:
    out = redact_headers([("Authorization", ""), ["Cookie", "a="], ("X-Token", "  ")], R, KEY)
    assert out == [("Authorization", ""), ["Cookie", "a="], ("X-Token", "  ")]
    assert redact_headers(None, R, KEY) == []


def test_authorization_without_scheme_or_with_digits_is_whole() -> None:
    out = redact_headers([["Authorization", f"sk_live_{canary(1)}"], ["Authorization", f"AKIA123 {canary(2)}"]], R, KEY)
    assert all(MARKER_RE.fullmatch(value) for _, value in out)


def test_folded_set_cookie_redacts_each_cookie() -> None:
    [(_, value)] = redact_headers([("Set-Cookie", f"a={canary(1)}; Path=/, b={canary(2)}; weird={canary(3)}")], R, KEY)
    assert_clean(value)
    assert value.count("[redacted:") == 3 and "; Path=/, b=" in value


def test_malformed_header_items_do_not_raise() -> None:
    out = redact_headers([("only-one",), (b"Cookie", b"a=" + canary(1).encode()), 5], R, KEY)  # type: ignore[list-item]
    assert_clean(json.dumps(out))
    assert len(out) == 3


# --- URLs -----------------------------------------------------------------------


def test_url_query_params() -> None:
    url = (
        f"https://api.local/v1/items/{jwt(0)}?page=2&&empty=&token={canary(1)}&API_KEY={canary(2)}"
        f"&client%5Fsecret={canary(3)}&user[pwd]={canary(4)}&sig={canary(5)}&id_token={jwt(6)}&q=a%20b+c&flag"
        f"&note={jwt(7)}#access_token={canary(8)}"
    )
    out = redact_url(url, R, KEY)
    assert_clean(out)
    assert out.startswith(f"https://api.local/v1/items/{JWT_HEAD}.{JWT_BODY}.[redacted:")
    assert "?page=2&&empty=&token=[redacted:" in out
    assert "&q=a%20b+c&flag&note=" + f"{JWT_HEAD}.{JWT_BODY}.[redacted:" in out
    assert out.count("[redacted:") == 9


def test_url_userinfo_is_redacted_whole() -> None:
    out = redact_url(f"https://{canary(1)}:{canary(2)}@git.local/repo.git", R, KEY)
    assert_clean(out)
    assert re.fullmatch(r"https://\[redacted:\w{8}\]@git\.local/repo\.git", out)


def test_url_without_secrets_is_unchanged() -> None:
    url = "https://api.local/a%2Fb/c?x=1&y=%E2%9C%93&z=&&w#frag"
    assert redact_url(url, R, KEY) == url


# --- bodies --------------------------------------------------------------------------


def test_json_body_secrets_at_depth_and_in_arrays() -> None:
    doc = {
        "user": {"name": "ada", "Password": canary(1), "profile": {"deep": [{"access_token": canary(2)}]}},
        "items": [{"id": 1, "apiKey": canary(3)}, {"id": 2, "secret": {"a": canary(4), "b": [canary(5), 42], "c": None}}],
        "refresh_token": 123456,
        "tokens": [canary(6), True],
        "text": f"see {jwt(7)} there",
        "credentials": "",
        "pass\u0077ord": canary(8),
    }
    raw = json.dumps(doc, indent=2).replace('"password"', '"pass\\u0077ord"').encode()
    out = redact_body(raw, "application/json; charset=utf-8", R, KEY)
    assert_clean(out)
    parsed = json.loads(out)
    assert list(parsed) == list(doc)
    assert parsed["user"]["name"] == "ada" and parsed["items"][0]["id"] == 1
    assert parsed["items"][1]["secret"]["c"] is None and parsed["items"][1]["secret"]["b"][1].startswith("[redacted:")
    assert parsed["tokens"][1] is True and parsed["credentials"] == ""
    assert parsed["text"].startswith(f"see {JWT_HEAD}.{JWT_BODY}.[redacted:")
    assert out.count(b"\n") == raw.count(b"\n")  # formatting kept


def test_json_duplicate_keys_and_deep_nesting() -> None:
    raw = b'{"token": "' + canary(1).encode() + b'", "token": "' + canary(2).encode() + b'"}'
    assert_clean(redact_body(raw, "application/json", R, KEY))
    depth = 100_000
    deep = ("[" * depth + '{"secret": "' + canary(3) + '"}' + "]" * depth).encode()
    started = time.monotonic()
    out = redact_body(deep, "application/json", R, KEY)
    assert time.monotonic() - started < 1.0
    assert_clean(out)
    assert out.startswith(b"[" * depth) and out.endswith(b"]" * depth)


def test_json_truncated_and_invalid_bodies_still_redact_members() -> None:
    cut = f'{{"a": 1, "password": "{canary(1)}", "b": {{"token": "{canary(2)}'.encode()
    out = redact_body(cut, "application/json", R, KEY)
    assert_clean(out)
    assert out.startswith(b'{"a": 1, "password": "[redacted:')
    broken = f'{{"password": "{canary(3)}", oops, "x": {jwt(4)}'.encode()
    assert_clean(redact_body(broken, "application/json", R, KEY))
    # A text body that is JSON is treated as JSON.
    assert_clean(redact_body(f'  {{"secret": "{canary(5)}"}}'.encode(), "text/plain", R, KEY))


def test_form_body() -> None:
    raw = f"username=ada&password={canary(1)}&remember=on&api_key={canary(2)}&next=%2Fhome".encode()
    out = redact_body(raw, "application/x-www-form-urlencoded", R, KEY)
    assert_clean(out)
    assert out.startswith(b"username=ada&password=[redacted:") and out.endswith(b"&next=%2Fhome")


def test_text_and_binary_bodies() -> None:
    text = f"log line: got {jwt(1)} from client, password={canary(3)}, user=ada; see https://u:{canary(4)}@h/\n"
    out = redact_body(text.encode(), "text/plain", R, KEY)
    assert_clean(out)  # free text: JWT signatures, secret name=value pairs, URL userinfo
    assert out.startswith(f"log line: got {JWT_HEAD}.{JWT_BODY}.[redacted:".encode())
    assert b", password=[redacted:" in out and b" user=ada; see https://[redacted:" in out  # the comma went with it
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    assert redact_body(png, "image/png", R, KEY) is png
    proto = b"\x0a\x80" + jwt(2).encode() + b"\xff\xfe"
    out = redact_body(proto, "application/grpc", R, KEY)
    assert_clean(out)
    assert out.startswith(b"\x0a\x80" + f"{JWT_HEAD}.{JWT_BODY}.[redacted:".encode()) and out.endswith(b"\xff\xfe")


def test_invalid_utf8_text_keeps_every_other_byte() -> None:
    raw = b'{"name": "\xff\xfe caf\xc3", "secret": "' + canary(1).encode() + b'\xff"}'
    out = redact_body(raw, "application/json", R, KEY)
    assert_clean(out)
    assert out.startswith(b'{"name": "\xff\xfe caf\xc3", "secret": "[redacted:')


def test_large_body_is_fast() -> None:
    doc = [{"id": i, "name": f"item {i}", "tags": ["a", "b"], "price": i * 1.5} for i in range(40_000)]
    doc[20_000]["token"] = canary(1)
    raw = json.dumps(doc).encode()
    assert len(raw) > 2_500_000
    started = time.monotonic()
    out = redact_body(raw, "application/json", R, KEY)
    assert time.monotonic() - started < 2.5
    assert_clean(out)
    assert len(json.loads(out)) == 40_000


# --- markers ----------------------------------------------------------------------------


def test_equal_secrets_equal_markers_and_keys_differ() -> None:
    a = redact_headers([["X-Api-Key", "same"], ["Authorization", "Bearer same"]], R, KEY)
    body = redact_body(b'{"token": "same"}', "application/json", R, KEY)
    url = redact_url("https://h/?token=same", R, KEY)
    marker = markers(a[0][1])[0]
    assert marker == f"[redacted:{hmac.new(KEY, b'same', hashlib.sha256).digest()[:4].hex()}]"
    assert markers(a[1][1]) == [marker] and markers(body.decode()) == [marker] and markers(url) == [marker]
    other = redact_headers([["X-Api-Key", "same"]], R, b"another key")
    assert markers(other[0][1]) != [marker]
    assert markers(redact_headers([["X-Api-Key", "different"]], R, KEY)[0][1]) != [marker]


def test_bad_key_raises() -> None:
    with pytest.raises(ValueError, match="non-empty bytes"):
        redact_text("x", R, b"")
    with pytest.raises(ValueError):
        redact_text("x", R, "text-key")  # type: ignore[arg-type]


# --- rules and config ------------------------------------------------------------


def test_config_add_and_remove() -> None:
    rules = rules_from_config(["x-session", "*tenant-ref*"], ["cookie", "jwt"])
    out = redact_headers(
        [["X-Session", canary(1)], ["X-Tenant-Ref-Id", canary(2)], ["Cookie", "a=keep"], ["X-Jwt", jwt(3)]], rules, KEY
    )
    assert out[2] == ["Cookie", "a=keep"] and out[3] == ["X-Jwt", jwt(3)]
    assert_clean(out[0][1] + out[1][1])
    assert_clean(redact_url(f"https://h/?x_session={canary(4)}", rules, KEY))
    assert rules == DEFAULT_RULES.with_added("X-Session", "*tenant-ref*").without("Cookie", "jwt")
    assert rules.without("*token*") != rules
    assert redact_headers([["X-Auth-Token", "keep"]], rules.without("*token*"), KEY) == [["X-Auth-Token", "keep"]]


@pytest.mark.parametrize(
    ("add", "remove", "message"),
    [
        ([""], [], "empty"),
        (["   "], [], "empty"),
        (["*a*"], [], "at least 3"),
        (["tok*"], [], "only"),
        (["x" * 500], [], "longer than"),
        (["bad\nname"], [], "control"),
        (["---"], [], "no letters"),
        ([], ["cookies"], "not redacted by name"),
        ([], ["token"], "'\\*token\\*' instead"),
        ([], ["*nothing*"], "no rule"),
        (["x-a"], ["X-A"], "both"),
        ([5], [], "must be a string"),
    ],
)
def test_config_rejects_absurd_entries(add: list, remove: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rules_from_config(add, remove)


def test_rules_dataclass_normalizes_and_is_frozen() -> None:
    rules = RedactionRules(header_names={"X-A"}, field_names=["B"], name_substrings=(), jwt=False)  # type: ignore[arg-type]
    assert rules.header_names == frozenset({"x-a"}) and rules.field_names == frozenset({"b"})
    with pytest.raises(AttributeError):
        rules.jwt = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        RedactionRules(header_names="abc", field_names=(), name_substrings=())  # type: ignore[arg-type]


# --- exchanges and records ---------------------------------------------------------------


def test_redact_exchange_detail() -> None:
    detail = {
        "id": 7,
        "url": f"https://api.local/login?user=ada&token={canary(1)}",
        "path": "/login",
        "query": f"user=ada&token={canary(1)}",
        "request_headers": [["Authorization", f"Bearer {canary(2)}"], ["Host", "api.local"]],
        "response_headers": None,
        "error": {"kind": "timeout", "message": f"timed out sending {jwt(3)}"},
        "tags": ["a"],
        "request_body": {"size": 10, "sha256": "ab"},
    }
    [redacted] = redact_outgoing([OutExchange(detail)], R, KEY)
    out = redacted.detail
    assert_clean(json.dumps(out))
    assert "CANARY" in json.dumps(detail)  # the input is untouched
    assert out["response_headers"] is None and out["tags"] == ["a"] and out["request_body"] == detail["request_body"]
    assert out["query"] == out["url"].split("?", 1)[1]
    assert out["request_headers"][1] == ["Host", "api.local"]


def record(**overrides: object) -> ExchangeRecord:
    base: dict = dict(
        uuid="u1",
        captured_at=1.0,
        proxy="p",
        scheme="https",
        method="POST",
        host="api.local",
        port=443,
        path=f"/reset/{jwt(1)}",
        query=f"a=1&access_token={canary(2)}",
        http_version="HTTP/1.1",
        request_headers=[("Authorization", f"Bearer {canary(3)}"), ("Content-Encoding", "gzip")],
        request_body=None,
        timings=Timings(request_start=1.0),
        response_headers=[("Set-Cookie", f"sid={canary(4)}; Path=/")],
        error_message=f"upstream said {jwt(5)}",
    )
    return ExchangeRecord(**(base | overrides))


def test_redact_record_gzip_json_body() -> None:
    plain = json.dumps({"user": "ada", "password": canary(6), "n": 1}).encode()
    wire = gzip.compress(plain)
    body = CapturedBody(data=wire, size=len(wire), truncated=False, encoding="gzip", content_type="application/json")
    rec = record(request_body=body)
    out = redact_record(rec, R, KEY)
    assert rec.request_body is body and body.data == wire  # the input is untouched
    for text in (out.path, out.query, str(out.request_headers), str(out.response_headers), out.error_message):
        assert_clean(text)
    assert out.request_body is not None
    assert out.request_body.encoding is None and out.request_body.size == len(wire) and not out.request_body.truncated
    assert_clean(out.request_body.data)
    assert json.loads(out.request_body.data)["user"] == "ada"
    assert ("Content-Encoding", "gzip") in out.request_headers  # headers as captured
    # A body with nothing to redact stays as captured, still encoded.
    clean = gzip.compress(b'{"user": "ada"}')
    kept = CapturedBody(data=clean, size=len(clean), truncated=False, encoding="gzip", content_type="application/json")
    assert redact_record(record(request_body=kept), R, KEY).request_body is kept
    assert redact_record(out, R, KEY) == out  # idempotent


def test_redact_record_truncated_and_undecodable_bodies() -> None:
    plain = b'{"items": [' + (b'{"x": "' + b"y" * 50 + b'"},') * 2000 + b'{"secret": "' + canary(7).encode() + b'"}]}'
    wire = gzip.compress(plain)
    cut = wire[: len(wire) - 10]
    assert canary(7).encode() in decode_body(cut, "gzip", partial=True)  # the cut leaves the secret readable
    truncated = CapturedBody(data=cut, size=len(wire), truncated=True, encoding="gzip", content_type="application/json")
    out = redact_record(record(response_body=truncated), R, KEY).response_body
    assert out is not None and out.truncated and out.encoding is None and out.size == len(wire)
    assert_clean(out.data)
    assert out.data.startswith(b'{"items": [{"x": "yyy')
    assert len(out.data) <= len(decode_body(cut, "gzip", partial=True)) + 20
    # Plain truncated text: redacted in place.
    raw = f"token={canary(8)}&x=".encode()
    plain_body = CapturedBody(data=raw, size=10_000, truncated=True, content_type="application/x-www-form-urlencoded")
    out = redact_record(record(request_body=plain_body), R, KEY).request_body
    assert out is not None and out.size == 10_000 and out.truncated
    assert_clean(out.data)
    # Undecodable: the bytes could not be scanned, so they are not kept.
    for encoding, data in (("gzip", b"not gzip " + canary(9).encode()), ("compress", canary(10).encode())):
        bad = CapturedBody(data=data, size=len(data), truncated=False, encoding=encoding, content_type="image/png")
        out = redact_record(record(request_body=bad), R, KEY).request_body
        assert out == CapturedBody(data=b"", size=len(data), truncated=True, encoding=None, content_type="image/png")


def test_redact_websocket_message() -> None:
    msg = WebSocketMessageRecord(
        exchange_uuid="u", seq=0, timestamp=1.0, from_client=True, kind="text",
        data=f'{{"type": "auth", "token": "{canary(1)}"}}'.encode(), size=40, truncated=False,
    )  # fmt: skip
    out = redact_websocket_message(msg, R, KEY)
    assert_clean(out.data) and out.size == 40 and json.loads(out.data)["type"] == "auth"
    plain = WebSocketMessageRecord("u", 1, 1.0, False, "binary", b"\x00\x01", 2, False)
    assert redact_websocket_message(plain, R, KEY) is plain


# --- properties ---------------------------------------------------------------------------

_SECRETLESS_CHARS = st.characters(codec="utf-8", exclude_characters="[]")
_plain_text = st.text(_SECRETLESS_CHARS, max_size=200).filter(lambda s: "eyJ" not in s)


@settings(max_examples=150, deadline=None)
@given(_plain_text)
def test_text_without_secrets_is_identity(text: str) -> None:
    assert redact_text(text, R, KEY) == text
    assert redact_body(text.encode(), "text/plain", R, KEY) == text.encode()


_names = st.sampled_from(["id", "name", "token", "Password", "api_key", "items", "nested", "x", "sig", "Auth"])
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20), st.sampled_from([jwt(1), "[redacted:0123abcd]", ""]),
)  # fmt: skip
_json = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_names, children, max_size=4),
    max_leaves=30,
)


def _keys(value: object) -> list:
    if isinstance(value, dict):
        return [(k, _keys(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_keys(v) for v in value]
    return []


_SECRET_NAMES = {"token", "Password", "api_key", "sig", "Auth"}


def _assert_secret_leaves_redacted(value: object, secret: bool) -> None:
    if isinstance(value, dict):
        for name, child in value.items():
            _assert_secret_leaves_redacted(child, secret or name in _SECRET_NAMES)
    elif isinstance(value, list):
        for child in value:
            _assert_secret_leaves_redacted(child, secret)
    elif secret and not isinstance(value, bool) and value is not None:
        assert value == "" or (isinstance(value, str) and MARKER_RE.fullmatch(value)), value


@settings(max_examples=200, deadline=None)
@given(_json, st.sampled_from([None, 2]))
def test_json_stays_parseable_same_keys_idempotent(doc: object, indent: int | None) -> None:
    raw = json.dumps(doc, indent=indent).encode()
    once = redact_body(raw, "application/json", R, KEY)
    parsed = json.loads(once)
    assert _keys(parsed) == _keys(doc)
    _assert_secret_leaves_redacted(parsed, False)
    assert redact_body(once, "application/json", R, KEY) == once
    assert "SIG" + CANARY not in once.decode()


_header_names = st.sampled_from(["Authorization", "Cookie", "Set-Cookie", "X-Api-Key", "Accept", "X-Token", "Referer"])
_header_values = st.text(st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=40) | st.sampled_from(
    ["Bearer abc", "a=1; b=2", f"x={jwt(2)}", "https://h/?token=1&b=2", "sid=1; Path=/, b=2; Expires=Wed, 21 Oct 2026"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_header_names, _header_values), max_size=8))
def test_headers_idempotent(headers: list) -> None:
    once = redact_headers(headers, R, KEY)
    assert redact_headers(once, R, KEY) == once
    assert [n for n, _ in once] == [n for n, _ in headers]


_query = st.lists(
    st.tuples(st.sampled_from(["a", "token", "user[pwd]", "Q", ""]), st.sampled_from(["", "=", "=1", "=a%20b", f"={jwt(3)}"])),
    max_size=6,
).map(lambda parts: "&".join(n + v for n, v in parts))


@settings(max_examples=200, deadline=None)
@given(_query, st.sampled_from(["", "#x", "#access_token=q"]))
def test_url_idempotent(query: str, fragment: str) -> None:
    url = f"https://h/p?{query}{fragment}"
    once = redact_url(url, R, KEY)
    assert redact_url(once, R, KEY) == once
    assert "SIG" + CANARY not in once


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([None, "application/json", "text/plain", "application/octet-stream",
                                                  "application/x-www-form-urlencoded"]))  # fmt: skip
def test_any_body_never_raises_and_is_idempotent(data: bytes, content_type: str | None) -> None:
    once = redact_body(data, content_type, R, KEY)
    assert redact_body(once, content_type, R, KEY) == once
