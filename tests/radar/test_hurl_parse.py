"""radar.hurl.parse_hurl: each supported construct, exact 1-based positions, and refusals by name."""

from __future__ import annotations

import pytest

from radar.hurl import HurlError, parse_hurl
from radar.model import NULL, Placeholder, Regex, Template


def only_entry(text: str):
    hurl = parse_hurl(text, "t.hurl")
    assert len(hurl.entries) == 1
    return hurl.entries[0]


def refused(text: str) -> HurlError:
    with pytest.raises(HurlError) as info:
        parse_hurl(text, "t.hurl")
    return info.value


# -- requests ----------------------------------------------------------------------------------------


def test_request_line_with_comments_and_blank_lines():
    hurl = parse_hurl("# a test\n\n  GET   https://example.org/a?b=1   # why\n", "f.hurl")
    assert hurl.filename == "f.hurl"
    request = hurl.entries[0].request
    assert request.method == "GET"
    assert request.url == Template(("https://example.org/a?b=1",), 3, 9)
    assert (request.line, request.column) == (3, 3)
    assert hurl.entries[0].response is None


def test_empty_file_has_no_entries():
    assert parse_hurl("\n# only a comment\n\n").entries == ()


def test_url_template_placeholders_keep_their_positions():
    request = only_entry("GET http://{{host}}:8080/users/{{ id }}\n").request
    assert request.url.parts == ("http://", Placeholder("host", 1, 12), ":8080/users/", Placeholder("id", 1, 32))
    assert request.url.variables == ("host", "id")


def test_headers_value_trimmed_comment_dropped_escapes_decoded():
    request = only_entry("GET http://x\nAccept: application/json  # json\nX-Tag: a\\#b\\u{e9}\nX-Empty:\n").request
    assert [(h.name.parts, h.value.parts, h.line, h.column) for h in request.headers] == [
        (("Accept",), ("application/json",), 2, 1),
        (("X-Tag",), ("a#bé",), 3, 1),
        (("X-Empty",), (), 4, 1),
    ]
    assert request.headers[0].value.column == 9


def test_sections_query_form_cookies_basic_auth():
    text = """POST http://x/login
[Query]
a: 1
[QueryStringParams]
b: {{two}}
[Form]
user: bob
[FormParams]
pass: s3cret
[Cookies]
session: abc
[BasicAuth]
bob: secret
"""
    request = only_entry(text).request
    assert [q.name.parts[0] for q in request.query] == ["a", "b"]
    assert request.query[1].value.parts == (Placeholder("two", 5, 4),)
    assert [f.name.parts[0] for f in request.form] == ["user", "pass"]
    assert request.cookies[0].value.parts == ("abc",)
    assert request.basic_auth is not None
    assert (request.basic_auth.name.parts, request.basic_auth.value.parts) == (("bob",), ("secret",))


def test_basic_auth_takes_a_single_line():
    error = refused("GET http://x\n[BasicAuth]\na: b\nc: d\n")
    assert (error.line, error.column) == (4, 1)


def test_options_retry_interval_delay_and_variables():
    text = """GET http://x
[Options]
retry: -1
retry-interval: 2s
delay: 1m
variable: host=example.org
variable: quoted="a b"
"""
    options = only_entry(text).request.options
    assert (options.retry, options.retry_interval_ms, options.delay_ms) == (-1, 2000, 60000)
    assert [(v.name.parts, v.value.parts) for v in options.variables] == [(("host",), ("example.org",)), (("quoted",), ("a b",))]


@pytest.mark.parametrize("value, expected", [("250", 250), ("250ms", 250), ("3s", 3000)])
def test_durations_default_to_milliseconds(value, expected):
    assert only_entry(f"GET http://x\n[Options]\nretry-interval: {value}\n").request.options.retry_interval_ms == expected


@pytest.mark.parametrize(
    "line, message",
    [
        ("retry: lots", "retry takes a count"),
        ("retry: -2", "retry takes a count"),
        ("delay: soon", "delay takes a duration"),
        ("variable: novalue", "variable takes `name=value`"),
    ],
)
def test_bad_option_values_are_named(line, message):
    error = refused(f"GET http://x\n[Options]\n{line}\n")
    assert error.line == 3
    assert message in error.message


# -- bodies ------------------------------------------------------------------------------------------


def test_json_body_over_lines_with_placeholders_as_values_and_in_strings():
    body = only_entry('POST http://x\n{\n  "n": {{n}},\n  "s": "hi {{name}}",\n  "l": [1, {"a": "}"}]\n}\nHTTP 200\n').request.body
    assert body.kind == "json" and (body.line, body.column) == (2, 1)
    assert body.text.parts == (
        '{\n  "n": ',
        Placeholder("n", 3, 8),
        ',\n  "s": "hi ',
        Placeholder("name", 4, 12),
        '",\n  "l": [1, {"a": "}"}]\n}',
    )


def test_json_array_body():
    assert only_entry("POST http://x\n[1, 2,\n 3]\n").request.body.text.parts == ("[1, 2,\n 3]",)


def test_invalid_json_body_points_at_the_problem():
    error = refused('POST http://x\n{\n  "a": 1,\n  "b": tru\n}\n')
    assert (error.line, error.column) == (4, 8)
    assert error.message.startswith("invalid JSON body")


def test_unterminated_json_body():
    error = refused('POST http://x\n{"a": 1\n')
    assert (error.line, error.column, error.message) == (2, 1, "unterminated JSON body: missing closing bracket")


@pytest.mark.parametrize("hint, kind", [("", "text"), ("json", "json"), ("xml", "xml"), ("raw", "text")])
def test_multiline_body_with_language_hint(hint, kind):
    body = only_entry(f"POST http://x\n```{hint}\nline {{{{a}}}}\n\\n stays\n```\nHTTP 200\n").request.body
    assert body.kind == kind
    assert body.text.parts == ("line ", Placeholder("a", 3, 6), "\n\\n stays\n")


def test_oneline_bodies_text_base64_hex():
    assert only_entry("POST http://x\n`hello \\`{{who}}\\``\n").request.body.text.parts == (
        "hello `",
        Placeholder("who", 2, 10),
        "`",
    )
    assert only_entry("POST http://x\nbase64,aGVsbG8=;\n").request.body.data == b"hello"
    body = only_entry("POST http://x\nhex, 68 65;\n").request.body
    assert (body.kind, body.data) == ("bytes", b"he")


def test_multiline_string_on_one_line():
    assert only_entry("POST http://x\n```hi there```\n").request.body.text.parts == ("hi there",)


def test_content_after_a_body_is_refused():
    error = refused("POST http://x\n`a`\nX-After: 1\n")
    assert (error.line, error.column) == (3, 1)


# -- responses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, version, status",
    [("HTTP 200", "HTTP", 200), ("HTTP/1.1 404", "HTTP/1.1", 404), ("HTTP/2 *", "HTTP/2", None), ("HTTP/* 201", "HTTP", 201)],
)
def test_response_line(line, version, status):
    response = only_entry(f"GET http://x\n\n{line}\n").response
    assert (response.version, response.status, response.line, response.column) == (version, status, 3, 1)


def test_response_headers_are_implicit_asserts_and_body_is_kept():
    response = only_entry('GET http://x\nHTTP 200\nContent-Type: text/plain; charset=utf-8\nX-Id: {{id}}\n`ok`\n').response
    assert [h.name.parts[0] for h in response.headers] == ["Content-Type", "X-Id"]
    assert response.headers[1].value.parts == (Placeholder("id", 4, 7),)
    assert response.body.text.parts == ("ok",)


def test_several_entries_in_order():
    hurl = parse_hurl("GET http://a\nHTTP 200\n\nPOST http://b\n\nPUT http://c\nHTTP 204\n")
    assert [(e.request.method, e.request.line, e.response and e.response.status) for e in hurl.entries] == [
        ("GET", 1, 200),
        ("POST", 4, None),
        ("PUT", 6, 204),
    ]


def test_captures():
    text = """GET http://x
HTTP 200
[Captures]
s: status
h: header "Location"
c: cookie "session"
b: body
j: jsonpath "$.data[0].id"
r1: regex "id=(\\\\d+)"
r2: regex /id=(\\d+)\\/x/
d: duration
u: url
v: version
n: jsonpath "$.items" count
"""
    captures = only_entry(text).response.captures
    assert [(c.name, c.query.kind) for c in captures] == [
        ("s", "status"), ("h", "header"), ("c", "cookie"), ("b", "body"), ("j", "jsonpath"), ("r1", "regex"),
        ("r2", "regex"), ("d", "duration"), ("u", "url"), ("v", "version"), ("n", "jsonpath"),
    ]  # fmt: skip
    assert captures[4].query.argument.parts == ("$.data[0].id",)
    assert (captures[4].query.line, captures[4].query.column) == (8, 4)
    assert captures[5].query.argument.parts == ("id=(\\d+)",)
    assert captures[6].query.argument == Regex("id=(\\d+)/x")
    assert [(f.name, f.line, f.column) for f in captures[10].filters] == [("count", 14, 23)]


def test_asserts_queries_predicates_and_positions():
    text = """GET http://x
HTTP 200
[Asserts]
status == 200
header "Content-Type" startsWith "application/json"
body contains "ok"   # why
jsonpath "$.price" >= 1.5
jsonpath "$.tags" count > 2
jsonpath "$.id" not exists
jsonpath "$.id" isInteger
jsonpath "$.n" == {{n}}
jsonpath "$.none" == null
jsonpath "$.ok" != false
regex /x(\\d)/ == "1"
duration < 500
bytes count == 12
sha256 == hex,00ff;
md5 == base64,AP8=;
version == "2"
url endsWith "/x"
body matches /^\\{/
body matches "^a"
jsonpath "$.s" == `raw`
jsonpath "$.a" isEmpty
"""
    asserts = only_entry(text).response.asserts
    summary = [(a.query.kind, [f.name for f in a.filters], a.predicate.name, a.predicate.negated, a.predicate.value) for a in asserts]
    assert summary[0] == ("status", [], "==", False, 200)
    assert summary[2][4] == Template(("ok",), 6, 15)
    assert summary[3][2:] == (">=", False, 1.5)
    assert summary[4][1:] == (["count"], ">", False, 2)
    assert summary[5][2:] == ("exists", True, None)
    assert summary[7][4] == Placeholder("n", 11, 19)
    assert summary[8][4] is NULL
    assert summary[9][4] is False
    assert summary[12][1:] == (["count"], "==", False, 12)
    assert summary[13][4] == b"\x00\xff"
    assert summary[14][4] == b"\x00\xff"
    assert summary[17][4] == Regex("^\\{")
    assert summary[18][4] == Template(("^a",), 22, 14)
    assert summary[19][4] == Template(("raw",), 23, 19)
    assert asserts[2].text == 'body contains "ok"'
    assert (asserts[5].line, asserts[5].column, asserts[5].predicate.column) == (9, 1, 17)


@pytest.mark.parametrize("number, value", [("0", 0), ("-3", -3), ("2.50", 2.5), ("1e3", 1000.0)])
def test_numbers(number, value):
    predicate = only_entry(f"GET http://x\nHTTP 200\n[Asserts]\njsonpath \"$.n\" == {number}\n").response.asserts[0].predicate
    assert predicate.value == value and type(predicate.value) is type(value)


def test_quoted_string_escapes_and_templates():
    value = only_entry('GET http://x\nHTTP 200\n[Asserts]\nbody == "a\\"b\\\\c\\n\\t{{v}}\\u{1F600}"\n').response.asserts[0].predicate.value
    assert value.parts == ('a"b\\c\n\t', Placeholder("v", 4, 21), "\U0001f600")


# -- errors and refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, line, column, message",
    [
        ("GET http://x\n[MultipartFormData]\nf: file,a.txt;\n", 2, 1, "unsupported: section [MultipartFormData]"),
        ("GET http://x\n[Multipart]\n", 2, 1, "unsupported: section [Multipart]"),
        ("GET http://x\n[Options]\ninsecure: true\n", 3, 1, "unsupported: option insecure"),
        ("GET http://x\n[Options]\nretry: {{n}}\n", 3, 8, "unsupported: template in option retry"),
        ("POST http://x\nfile,data.bin;\n", 2, 1, "unsupported: file body"),
        ("POST http://x\n<a/>\n", 2, 1, "unsupported: XML body"),
        ("POST http://x\n```graphql\n{ a }\n```\n", 2, 4, "unsupported: multi-line string graphql"),
        ("GET http://x/{{newUuid}}\n", 1, 14, "unsupported: function newUuid"),
        ("GET http://x/{{a | upper}}\n", 1, 14, "unsupported: filter in template {{a | upper}}"),
        ('GET http://x\nHTTP 200\n[Asserts]\nxpath "//a" exists\n', 4, 1, "unsupported: query xpath"),
        ('GET http://x\nHTTP 200\n[Asserts]\nvariable "a" exists\n', 4, 1, "unsupported: query variable"),
        ('GET http://x\nHTTP 200\n[Asserts]\ncertificate "Subject" exists\n', 4, 1, "unsupported: query certificate"),
        ('GET http://x\nHTTP 200\n[Asserts]\njsonpath "$.a" nth 0 == 1\n', 4, 16, "unsupported: filter nth"),
        ('GET http://x\nHTTP 200\n[Asserts]\nbody   toInt == 1\n', 4, 8, "unsupported: filter toInt"),
        ('GET http://x\nHTTP 200\n[Asserts]\njsonpath "$.a" isNumber\n', 4, 16, "unsupported: predicate isNumber"),
        ('GET http://x\nHTTP 200\n[Asserts]\njsonpath "$.a" not includes 1\n', 4, 20, "unsupported: predicate includes"),
        ('GET http://x\nHTTP 200\n[Asserts]\nbody == ```\na\n```\n', 4, 9, "unsupported: multi-line string value"),
        ('GET http://x\nHTTP 200\n[Asserts]\nbody == file,a.txt;\n', 4, 9, "unsupported: file value"),
        ('GET http://x\nHTTP 200\n[Captures]\na: header "X" redact\n', 4, 15, "unsupported: redact"),
        ('GET http://x\nHTTP 200\n[Captures]\na: body regex "x"\n', 4, 9, "unsupported: filter regex"),
    ],
)
def test_unsupported_constructs_are_refused_where_they_are(text, line, column, message):
    error = refused(text)
    assert (error.line, error.column, error.message) == (line, column, message)
    assert str(error) == f"t.hurl:{line}:{column}: {message}"
    assert error.filename == "t.hurl"


@pytest.mark.parametrize(
    "text, line, column, message",
    [
        ("get http://x\n", 1, 1, "expected a request line `METHOD URL`, got 'get http://x'"),
        ("HTTP 200\n", 1, 1, "a response `HTTP <status>` needs a request line before it"),
        ("GET\n", 1, 1, "expected a request line `METHOD URL`, got 'GET'"),
        ("GET   # no url\n", 1, 7, "expected a URL after the method"),
        ("GET http://x\nnot a header\n", 2, 5, "expected `name: value`, got 'not a header'"),
        ("GET http://x\n[Nope]\n", 2, 1, "unknown section [Nope]"),
        ("GET http://x\n[Asserts]\n", 2, 1, "section [Asserts] belongs to a response (after `HTTP <status>`)"),
        ("GET http://x\nHTTP 200\n[Query]\n", 3, 1, "section [Query] belongs to the request"),
        ("GET http://x\nHTTP abc\n", 2, 6, "expected a status code or `*`, got 'abc'"),
        ("GET http://x\nHTTP 200 OK\n", 2, 10, "unexpected 'OK'"),
        ("GET http://x/{{id\n", 1, 14, "unterminated template: `{{` without `}}`"),
        ("GET http://x/{{1}}\n", 1, 14, "expected a variable name in {{1}}"),
        ("GET http://x\nX: a\\qb\n", 2, 5, "invalid escape \\q"),
        ('GET http://x\nHTTP 200\n[Asserts]\nstatus\n', 4, 7, "expected a predicate such as `== value` or `exists`"),
        ('GET http://x\nHTTP 200\n[Asserts]\nstatus ==\n', 4, 10, "expected a value after =="),
        ('GET http://x\nHTTP 200\n[Asserts]\nstatus == OK\n', 4, 11, "expected a value (\"string\", number, true, false, null...), got 'OK'"),
        ('GET http://x\nHTTP 200\n[Asserts]\nbody == "open\n', 4, 9, 'unterminated string: missing closing `"`'),
        ('GET http://x\nHTTP 200\n[Asserts]\nbody contains /x/\n', 4, 15, "a /regex/ value only goes with matches, not contains"),
        ('GET http://x\nHTTP 200\n[Asserts]\nbody matches /(/\n', 4, 14, "invalid regex /(/: missing ), unterminated subpattern at position 0"),
        ('GET http://x\nHTTP 200\n[Asserts]\nbytes == hex,0g;\n', 4, 10, "invalid hex value"),
        ('GET http://x\nHTTP 200\n[Asserts]\nbody == base64,abc\n', 4, 9, "unterminated base64 value: missing `;`"),
        ('GET http://x\nHTTP 200\n[Asserts]\nfoo == 1\n', 4, 1, "expected a query (status, header, body, jsonpath...), got 'foo == 1'"),
        ('GET http://x\nHTTP 200\n[Asserts]\nheader X == 1\n', 4, 8, 'header takes a quoted argument "..."'),
        ('GET http://x\nHTTP 200\n[Asserts]\nstatus == 200 extra\n', 4, 15, "unexpected 'extra'"),
        ("GET http://x\nHTTP 200\n[Captures]\n: status\n", 4, 1, "expected `name: query`, got ': status'"),
        ("POST http://x\n```\nnever closed\n", 2, 1, "unterminated multi-line string: missing closing ```"),
    ],
)
def test_mistakes_get_one_line_errors_with_positions(text, line, column, message):
    error = refused(text)
    assert (error.line, error.column, error.message) == (line, column, message)


def test_crlf_line_endings():
    entry = only_entry("GET http://x\r\nAccept: a\r\n\r\nHTTP 200\r\n")
    assert entry.request.headers[0].value.parts == ("a",)
    assert entry.response.status == 200


def test_base64_body_may_wrap_over_lines():
    body = only_entry("GET http://x\nHTTP 200\nbase64,SGVs\nbG8g\nV29ybGQh;  # hello\n").response.body
    assert (body.data, body.line, body.column) == (b"Hello World!", 3, 1)


def test_text_after_a_wrapped_base64_body_is_refused():
    error = refused("GET http://x\nHTTP 200\nbase64,SGVs\nbG8=; extra\n")
    assert (error.line, error.column, error.message) == (4, 7, "unexpected 'extra'")
