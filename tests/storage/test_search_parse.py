"""storage.pure.search.parse_query: the language, its errors, and properties (hypothesis)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.pure.search import FIELDS, Query, QueryError, Term, parse_query, text_tokens, words_only


def one(text: str) -> Term:
    (group,) = parse_query(text).groups
    (term,) = group
    return term


def test_empty():
    assert parse_query("") == Query(()) and parse_query("   ") == Query(())


@pytest.mark.parametrize(
    ("text", "field", "op", "value"),
    [
        ("method:post", "method", "=", "POST"),
        ("status:404", "status", "range", (404, 404)),
        ("status:5xx", "status", "range", (500, 599)),
        ("status:>=400", "status", "range", (400, None)),
        ("status:>400", "status", "range", (401, None)),
        ("status:<500", "status", "range", (None, 499)),
        ("status:<=499", "status", "range", (None, 499)),
        ("service:identity", "service", "=", "identity"),
        ("host:API.local", "host", "=", "api.local"),
        ("host:*.local", "host", "glob", "*.local"),
        ("path:/users/*", "path", "glob", "/users/*"),
        ("path:/users/42", "path", "=", "/users/42"),
        ('path:"/a b"', "path", "=", "/a b"),
        ("header:X-Request-Id=abc", "header", "=", ("x-request-id", "abc")),
        ("header:x-request-id=a=b", "header", "=", ("x-request-id", "a=b")),
        ("header:x-debug", "header", "present", "x-debug"),
        ("req.header:x-debug", "req.header", "present", "x-debug"),
        (
            "res.header:content-type=text/html",
            "res.header",
            "=",
            ("content-type", "text/html"),
        ),
        ("duration:>250ms", "duration", ">", 250.0),
        ("duration:>=1.5s", "duration", ">=", 1500.0),
        ("duration:<20", "duration", "<", 20.0),
        ("size:>1mb", "size", ">", 1024 * 1024),
        ("size:<=2kb", "size", "<=", 2048),
        ("size:10b", "size", "=", 10),
        ("since:1h", "since", ">=", 3600),
        ("since:2w", "since", ">=", 14 * 86400),
        ("after:2026-11-01", "after", ">=", dt.datetime(2026, 11, 1, tzinfo=dt.UTC)),
        (
            "before:2026-11-01T10:00:00+02:00",
            "before",
            "<",
            dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC),
        ),
        (
            "before:2026-11-01T10:00Z",
            "before",
            "<",
            dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC),
        ),
        ("trace:4BF92F35", "trace", "=", "4bf92f35"),
        ("trace:Req-AB12", "trace", "=", "Req-AB12"),  # an X-Request-ID keeps its case
        ("is:error", "is", "=", "error"),
        ("is:Replay", "is", "=", "replay"),
        ("has:body", "has", "=", "body"),
        ('body:"Not Found"', "body", "phrase", ("not", "found")),
        ("users/42", "text", "word", ("users", "42")),
        ('"connection reset"', "text", "phrase", ("connection", "reset")),
        ("http://api.local/x", "text", "word", ("http", "api", "local", "x")),
    ],
)
def test_terms(text, field, op, value):
    term = one(text)
    assert (term.field, term.op, term.value, term.negated) == (field, op, value, False)


def test_negation_and_positions():
    query = parse_query('method:GET -status:2xx  -"a b"')
    assert [(t.field, t.negated, t.position) for t in query.terms] == [
        ("method", False, 0), ("status", True, 11), ("text", True, 24),
    ]  # fmt: skip


def test_or_binds_tighter_than_and():
    query = parse_query("status:5xx service:a OR service:b OR -c")
    assert [[t.field for t in group] for group in query.groups] == [
        ["status"],
        ["service", "service", "text"],
    ]


def test_lowercase_or_is_a_word():
    assert one("or").value == ("or",)


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("stauts:404", 0, 'unknown field "stauts" (did you mean "status"?)'),
        ("method:GET  bogus:1", 12, 'unknown field "bogus"'),
        ("status:abc", 0, "status: expected"),
        ("status:", 0, "needs a value"),
        ("duration:fast", 0, "duration: expected"),
        ("size:>1tb", 0, "size: expected"),
        ("since:yesterday", 0, "since: expected"),
        ("after:2026-13-01", 0, "after: expected an ISO 8601"),
        ("is:broken", 0, "is: expected one of error, replay, websocket"),
        ("has:head", 0, "has: expected one of body"),
        ("header:=x", 0, "header: expected a header name"),
        ("a OR", 2, "OR needs a term on each side"),
        ("OR a", 0, "OR needs a term on each side"),
        ("a OR OR b", 5, "OR needs a term on each side"),
        ('x "unterminated', 2, "unterminated quote"),
        ('path:"/a', 5, "unterminated quote"),
        ('"a"b', 3, "followed by a space"),
        ('ab"c"', 2, "quote in the middle"),
        ("---", 0, "nothing to search for"),
        ('body:"!!"', 0, "body: needs letters or digits"),
    ],
)
def test_errors(text, position, fragment):
    with pytest.raises(QueryError) as info:
        parse_query(text)
    assert fragment in info.value.message
    assert info.value.position == position
    assert "\n" not in info.value.message


def test_canonical_round_trip_examples():
    for text in [
        'method:POST status:5xx -path:/health* "conn reset" OR timeout',
        "status:>=400 duration:>0.25s size:>1.5kb since:90m after:2026-11-01 before:2026-11-02T10:00+02:00",
        'header:x-request-id="a b" res.header:x-debug is:error has:body body:"not found" trace:4bf9 -or',
    ]:
        query = parse_query(text)
        assert parse_query(str(query)) == query


# -- properties ----------------------------------------------------------------------------

_pieces = st.sampled_from(
    [
        *(f"{f}:" for f in FIELDS),
        "-",
        '"',
        " ",
        "OR",
        "*",
        "=",
        ">",
        "<",
        ">=",
        "5xx",
        "1h",
        "ms",
        "kb",
        "\\",
        "2026-11-01",
        "T10:00",
        "abc",
        "x-id",
        "é",
        "\x00",
        "\udcff",
        ":",
        "/",
        "_",
    ]
)
query_text = st.one_of(
    st.text(max_size=60),
    st.lists(st.one_of(_pieces, st.text(max_size=5)), max_size=12).map("".join),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query_text)
def test_never_crashes_and_positions_are_inside(text):
    try:
        query = parse_query(text)
    except QueryError as exc:
        assert 0 <= exc.position < max(len(text), 1)
        assert exc.message and "\n" not in exc.message
        return
    for term in query.terms:
        assert 0 <= term.position < len(text)
    assert parse_query(str(query)) == query  # the canonical form round-trips


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=30).filter(lambda s: text_tokens(s)))
def test_quoted_phrase_is_its_tokens(value):
    quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    assert one(quoted).value == text_tokens(value)


@pytest.mark.parametrize(
    ("text", "needs_index"),
    [
        ("status:5xx method:GET", False),
        ("since:1h -is:error", False),
        ("orders", True),
        ('body:"x"', True),
        ("header:x-debug", True),
        ("status:500 OR res.header:x-a=1", True),
    ],
)
def test_needs_index(text, needs_index):
    assert parse_query(text).needs_index is needs_index


@given(st.text(max_size=200))
def test_words_only_keeps_exactly_the_words(text):
    spaced = words_only(text)
    assert text_tokens(spaced) == text_tokens(text)
    # Nothing but words and single spaces between them is left for PostgreSQL's parser.
    assert all(ch == " " or ch.isalnum() for ch in spaced)
    assert len(spaced) == len(text) or not text.isascii()


def test_words_only_splits_what_postgresql_would_keep_whole():
    assert words_only("GET /users/42?x=a-b_c me@x.io 3.14").split() == [
        "GET", "users", "42", "x", "a", "b", "c", "me", "x", "io", "3", "14",
    ]  # fmt: skip
    assert words_only("naïve—café_ok").split() == ["naïve", "café", "ok"]
