"""radar.judge: queries, filters, predicates, implicit asserts and captures on real response facts."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from radar.hurl import parse_hurl
from radar.judge import AssertResult, CaptureError, ResponseFacts, capture_value, check_assert, implicit_asserts

DOC = {
    "id": 42,
    "price": 1.0,
    "name": "widget",
    "ok": True,
    "none": None,
    "tags": ["a", "b", "c"],
    "items": [{"id": 1}, {"id": 2}],
    "empty": [],
    "obj": {"k": "v"},
}


def facts(body: bytes | str = json.dumps(DOC), headers=(("Content-Type", "application/json"),), **changes) -> ResponseFacts:
    values = {"status": 200, "version": "HTTP/1.1", "duration_ms": 12.4, "url": "http://api.test/items?x=1"}
    values.update(changes)
    return ResponseFacts(headers=tuple(headers), body=body.encode() if isinstance(body, str) else body, **values)


def asserts_of(lines: str):
    return parse_hurl(f"GET http://x\nHTTP 200\n[Asserts]\n{lines}\n").entries[0].response.asserts


def check(line: str, response: ResponseFacts | None = None, variables=None) -> AssertResult:
    (a,) = asserts_of(line)
    return check_assert(a, response or facts(), variables or {})


@pytest.mark.parametrize(
    "line",
    [
        "status == 200",
        "status < 300",
        "version == \"1.1\"",
        'url endsWith "?x=1"',
        "duration <= 12",
        'header "content-type" == "application/json"',
        'header "X-Missing" not exists',
        'jsonpath "$.id" == 42',
        'jsonpath "$.id" == 42.0',
        'jsonpath "$.price" == 1',
        'jsonpath "$.id" != "42"',
        'jsonpath "$.id" isInteger',
        'jsonpath "$.price" isFloat',
        'jsonpath "$.name" isString',
        'jsonpath "$.ok" isBoolean',
        'jsonpath "$.ok" == true',
        'jsonpath "$.none" == null',
        'jsonpath "$.none" exists',
        'jsonpath "$.missing" not exists',
        'jsonpath "$.tags" isCollection',
        'jsonpath "$.obj" isCollection',
        'jsonpath "$.tags" count == 3',
        'jsonpath "$.items[*].id" count == 2',
        'jsonpath "$.items[?@.id > 1].id" == 2',
        'jsonpath "$.empty" isEmpty',
        'jsonpath "$.tags" not isEmpty',
        'jsonpath "$.name" startsWith "wid"',
        'jsonpath "$.name" endsWith "get"',
        'jsonpath "$.name" contains "dge"',
        'jsonpath "$.name" matches /^w.d/',
        'jsonpath "$.name" matches "^w\\\\w+$"',
        'jsonpath "$.name" > "apple"',
        'jsonpath "$.id" >= 42',
        'jsonpath "$.id" == {{id}}',
        'jsonpath "$.name" == "{{name}}"',
        'regex "\\"id\\": (\\\\d+)" == "42"',
        'regex /"name": "\\w+"/ contains "widget"',
        'body contains "widget"',
        "bytes count > 10",
        f"sha256 == hex,{hashlib.sha256(json.dumps(DOC).encode()).hexdigest()};",
        f"md5 == hex,{hashlib.md5(json.dumps(DOC).encode()).hexdigest()};",
        'bytes startsWith hex,7b;',
    ],
)
def test_passing_asserts(line):
    result = check(line, variables={"id": 42, "name": "widget"})
    assert result.passed, result
    assert result.message is None


@pytest.mark.parametrize(
    "line, expected, actual",
    [
        ("status == 201", "201", "200"),
        ('jsonpath "$.id" == "42"', '"42"', "42"),
        ('jsonpath "$.id" not == 42', "not 42", "42"),
        ('jsonpath "$.tags" count > 5', "> 5", "3"),
        ('jsonpath "$.missing" exists', "a value", "none"),
        ('jsonpath "$.name" isInteger', "integer", '"widget"'),
        ('jsonpath "$.tags" == "a"', '"a"', '["a","b","c"]'),
        ('header "Content-Type" contains "xml"', 'contains "xml"', '"application/json"'),
    ],
)
def test_failing_asserts_show_expected_and_actual(line, expected, actual):
    result = check(line)
    assert not result.passed
    assert (result.expected, result.actual, result.message) == (expected, actual, None)
    assert (result.line, result.column, result.text) == (4, 1, line)


@pytest.mark.parametrize(
    "line, message",
    [
        ('jsonpath "$.name" > 3', "cannot compare string with integer"),
        ('jsonpath "$.name" not > 3', "cannot compare string with integer"),
        ('jsonpath "$.missing" == 1', "the query has no value"),
        ('jsonpath "$.id" count == 1', "count needs a collection, got integer"),
        ('jsonpath "$.id" contains "4"', "contains needs two strings or two byte strings, got integer and string"),
        ('jsonpath "$[" exists', "invalid JSONPath '$['"),
        ('regex "(" exists', "invalid regex '('"),
        ('jsonpath "$.id" == {{nope}}', "line 4, column 20: variable 'nope' is not defined"),
        ('header "{{nope}}" exists', "line 4, column 9: variable 'nope' is not defined"),
    ],
)
def test_undecidable_asserts_fail_with_a_message_instead_of_raising(line, message):
    result = check(line)
    assert not result.passed
    assert result.message.startswith(message), result.message


def test_body_that_is_not_json():
    result = check('jsonpath "$.a" exists', facts("<html>", headers=()))
    assert not result.passed
    assert result.message == "the body is not JSON (Expecting value at line 1, column 1)"


def test_repeated_headers_give_a_list():
    response = facts(headers=(("Set-Cookie", "a=1"), ("Set-Cookie", "b=2; Path=/; HttpOnly")))
    assert check('header "Set-Cookie" count == 2', response).passed
    assert check('header "Set-Cookie" == "a=1"', response).actual == '["a=1","b=2; Path=/; HttpOnly"]'


def test_cookie_values_and_attributes_from_set_cookie():
    response = facts(headers=(("Set-Cookie", "LSID=DQAAAK; Max-Age=3600; Path=/accounts; Secure; HttpOnly"),))
    assert check('cookie "LSID" == "DQAAAK"', response).passed
    assert check('cookie "LSID[Max-Age]" == 3600', response).passed
    assert check('cookie "LSID[Path]" == "/accounts"', response).passed
    assert check('cookie "LSID[Secure]" exists', response).passed
    assert check('cookie "LSID[Domain]" not exists', response).passed
    assert check('cookie "other" not exists', response).passed


def test_body_is_decoded_by_content_encoding_and_charset():
    text = "café €"
    response = facts(
        gzip.compress(text.encode("iso-8859-15")),
        headers=(("Content-Encoding", "gzip"), ("Content-Type", "text/plain; charset=ISO-8859-15")),
    )
    assert check('body == "café €"', response).passed
    assert check("bytes count == 6", response).passed


def test_body_in_a_wrong_charset_fails_with_a_message():
    result = check('body exists', facts(b"\xff\xfe", headers=(("Content-Type", "text/plain; charset=utf-8"),)))
    assert (result.passed, result.message) == (False, "the body is not valid utf-8 text")


def test_huge_actual_values_are_truncated():
    result = check('body == "x"', facts("y" * 5000, headers=()))
    assert len(result.actual) == 200 and result.actual.endswith("…")


def entry_response(text: str):
    return parse_hurl(text).entries[0].response


def test_implicit_asserts_status_version_headers_body():
    response = entry_response('GET http://x\nHTTP/1.1 200\nContent-Type: application/json\nX-Id: {{id}}\n{"id": {{id}}, "name": "widget"}\n')
    got = facts('{"name": "widget", "id": 42}', headers=(("Content-Type", "application/json"), ("X-Id", "42")))
    results = implicit_asserts(response, got, {"id": 42})
    assert [(r.line, r.text, r.passed) for r in results] == [
        (2, "HTTP/1.1 200", True),
        (2, "HTTP/1.1 200", True),
        (3, "Content-Type: application/json", True),
        (4, "X-Id: {{id}}", True),
        (5, "body", True),
    ]


def test_implicit_asserts_report_what_differs():
    response = entry_response("GET http://x\nHTTP/2 201\nX-Id: 7\n`hello`\n")
    results = implicit_asserts(response, facts("bye", headers=()), {})
    assert [(r.passed, r.expected, r.actual) for r in results] == [
        (False, "HTTP/2", "HTTP/1.1"),
        (False, "201", "200"),
        (False, '"7"', "none"),
        (False, '"hello"', '"bye"'),
    ]


def test_any_status_and_version_assert_nothing():
    assert implicit_asserts(entry_response("GET http://x\nHTTP *\n"), facts(), {}) == []


def test_implicit_header_with_undefined_variable_fails_with_message():
    (result,) = implicit_asserts(entry_response("GET http://x\nHTTP *\nX: {{who}}\n"), facts(), {})
    assert (result.passed, result.message) == (False, "line 3, column 4: variable 'who' is not defined")


def test_bytes_body_compared_exactly():
    response = entry_response("GET http://x\nHTTP 200\nhex,0001;\n")
    assert implicit_asserts(response, facts(b"\x00\x01", headers=()), {})[-1].passed


def captures_of(lines: str):
    return parse_hurl(f"GET http://x\nHTTP 200\n[Captures]\n{lines}\n").entries[0].response.captures


def test_captures_keep_their_types():
    response = facts(headers=(("Content-Type", "application/json"), ("Location", "/items/42"), ("Set-Cookie", "s=abc; Path=/")))
    lines = '\n'.join([
        "status: status", 'location: header "Location"', 'session: cookie "s"', 'id: jsonpath "$.id"',
        'tags: jsonpath "$.tags"', 'n: jsonpath "$.tags" count', 'num: regex /"id": (\\d+)/', "d: duration",
        "u: url", "v: version", "ok: jsonpath \"$.ok\"",
    ])  # fmt: skip
    values = {c.name: capture_value(c, response, {}) for c in captures_of(lines)}
    assert values == {
        "status": 200, "location": "/items/42", "session": "abc", "id": 42, "tags": ["a", "b", "c"], "n": 3,
        "num": "42", "d": 12, "u": "http://api.test/items?x=1", "v": "1.1", "ok": True,
    }  # fmt: skip


def test_capture_that_matches_nothing_is_an_error_with_position():
    (capture,) = captures_of('token: jsonpath "$.token"')
    with pytest.raises(CaptureError) as info:
        capture_value(capture, facts(), {})
    assert (info.value.line, info.value.column) == (4, 1)
    assert info.value.message == "capture token: the jsonpath query matched nothing"


def test_capture_on_a_body_that_is_not_json():
    (capture,) = captures_of('token: jsonpath "$.token"')
    with pytest.raises(CaptureError, match="capture token: the body is not JSON"):
        capture_value(capture, facts("nope"), {})
