"""storage.pure.faults: what a user may write (units, ranges, the bounded expiry), which rule
touches a request (most specific first, each at its own rate) and what it does."""

from __future__ import annotations

import datetime as dt
import random
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.pure.faults import (
    DEFAULT_FOR,
    MAX_FOR,
    STALL_MAX_S,
    ActiveRule,
    InvalidFault,
    check_rule,
    decide,
    ordered,
    parse_delay,
    parse_duration_ms,
    parse_for,
    parse_header,
    parse_rate,
    path_pattern,
)

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
T = NOW.timestamp()


def rule(id: int = 1, **fields) -> ActiveRule:
    return ActiveRule.of(id, check_rule(**{"service": "billing", "status": 503, **fields}, now=NOW))


def no_headers(name: str) -> list[str]:
    return []


def test_units():
    assert parse_duration_ms("300ms") == 300 and parse_duration_ms("2s") == 2000 and parse_duration_ms("250") == 250
    assert parse_duration_ms("1.5s") == 1500
    assert parse_delay("100ms-2s") == (100, 2000) and parse_delay("300ms") == (300, None)
    assert parse_rate("20%") == 20 and parse_rate("7.5") == 7.5
    assert parse_for("10m") == dt.timedelta(minutes=10) and parse_for("1d") == dt.timedelta(days=1)
    assert parse_header("X-Env=can=ary") == ("x-env", "can=ary")


@pytest.mark.parametrize(
    ("parse", "text", "field"),
    [
        (parse_duration_ms, "fast", "delay"), (parse_duration_ms, "3h", "delay"), (parse_duration_ms, "-1s", "delay"),
        (parse_rate, "101%", "rate"), (parse_rate, "nan", "rate"), (parse_rate, "-1", "rate"), (parse_rate, "x%", "rate"),
        (parse_for, "10", "for"), (parse_for, "8d", "for"), (parse_for, "soon", "for"),
        (parse_header, "X-Env", "header"), (parse_header, "=v", "header"), (parse_header, "a b=c", "header"),
    ],
)  # fmt: skip
def test_bad_units_name_their_field(parse, text, field):
    with pytest.raises(InvalidFault) as caught:
        parse(text)
    assert caught.value.field == field and "\n" not in str(caught.value)


def test_expiry_defaults_and_is_bounded():
    assert check_rule(service="billing", reset=True, now=NOW).expires_at == NOW + DEFAULT_FOR
    later = NOW + dt.timedelta(hours=1)
    fields = check_rule(service="billing", reset=True, starts_at=later, lasts=dt.timedelta(minutes=5), now=NOW)
    assert (fields.starts_at, fields.expires_at) == (later, later + dt.timedelta(minutes=5))
    assert check_rule(service="b", delay_ms=5, delay_max_ms=5, now=NOW).delay_max_ms is None  # a range of one
    assert check_rule(service="b", delay_ms=5, rate_percent=20, now=NOW).rate == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"service": "no spaces", "reset": True}, "service"),
        ({"service": "b"}, "effect"),
        ({"service": "b", "delay_ms": 0}, "effect"),
        ({"service": "b", "status": 99}, "status"),
        ({"service": "b", "status": 600}, "status"),
        ({"service": "b", "status": True}, "status"),
        ({"service": "b", "status": 503, "reset": True}, "reset"),
        ({"service": "b", "reset": True, "stall": True}, "stall"),
        ({"service": "b", "delay_ms": -1}, "delay_ms"),
        ({"service": "b", "delay_ms": float("nan")}, "delay_ms"),
        ({"service": "b", "delay_ms": 10, "delay_max_ms": 5}, "delay_max_ms"),
        ({"service": "b", "delay_max_ms": 5}, "delay_max_ms"),
        ({"service": "b", "reset": True, "rate_percent": 100.5}, "rate"),
        ({"service": "b", "reset": True, "method": "GET /"}, "method"),
        ({"service": "b", "reset": True, "path": "orders"}, "path"),
        ({"service": "b", "reset": True, "path": "/a?b=c"}, "path"),
        ({"service": "b", "reset": True, "header": "nope"}, "header"),
        ({"service": "b", "reset": True, "realm": "a\nb"}, "realm"),
        ({"service": "b", "reset": True, "expires_at": NOW - dt.timedelta(seconds=1)}, "expires_at"),
        ({"service": "b", "reset": True, "expires_at": NOW + MAX_FOR + dt.timedelta(hours=1)}, "expires_at"),
        ({"service": "b", "reset": True, "expires_at": dt.datetime(2027, 1, 1)}, "expires_at"),
        ({"service": "b", "reset": True, "lasts": dt.timedelta(0)}, "for"),
        ({"service": "b", "reset": True, "starts_at": NOW + MAX_FOR * 2}, "starts_at"),
        ({"service": "b", "reset": True, "note": "a\x00b"}, "note"),
    ],
)
def test_bad_rules_name_their_field(fields, field):
    with pytest.raises(InvalidFault) as caught:
        check_rule(**fields, now=NOW)
    assert caught.value.field == field


def test_path_templates_and_globs():
    assert path_pattern("/orders/{id}").fullmatch("/orders/42")
    assert not path_pattern("/orders/{id}").fullmatch("/orders/42/items")
    assert not path_pattern("/orders/{id}").fullmatch("/orders/")
    assert path_pattern("/orders/*").fullmatch("/orders/42/items")
    assert path_pattern("/a.b+(c)").fullmatch("/a.b+(c)") and not path_pattern("/a.b").fullmatch("/aXb")


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_a_pattern_without_wildcards_is_literal(path):
    plain = "/" + path.replace("*", "").replace("{", "").replace("}", "")
    assert path_pattern(plain).fullmatch(plain)


def test_matching_by_method_path_header_and_service():
    r = rule(method="post", path="/orders/{id}", header="X-Env=canary")
    headers = {"x-env": ["canary"]}
    hit = dict(service="billing", method="POST", path="/orders/7", headers=lambda n: headers.get(n, []), now=T)
    assert decide((r,), **hit, random=lambda: 0.0) is not None
    for change in ({"service": "orders"}, {"method": "GET"}, {"path": "/orders"}, {"headers": no_headers}):
        assert decide((r,), **{**hit, **change}, random=lambda: 0.0) is None


def test_a_rule_applies_only_between_its_start_and_expiry():
    r = rule(starts_at=NOW + dt.timedelta(seconds=5), lasts=dt.timedelta(seconds=10))
    at = lambda t: decide((r,), service="billing", method="GET", path="/", headers=no_headers, now=t, random=lambda: 0)  # noqa: E731
    assert at(T + 4.9) is None and at(T + 5) is not None and at(T + 14.9) is not None and at(T + 15) is None


def test_most_specific_first_each_at_its_rate():
    broad, narrow = rule(1, status=500), rule(2, status=503, path="/pay", rate_percent=50)
    rules = ordered([broad, narrow])
    assert rules == (narrow, broad)
    rolls = iter([0.99, 0.0])  # the narrow rule does not fire, the broad one does
    decision = decide(rules, service="billing", method="GET", path="/pay", headers=no_headers, now=T, random=lambda: next(rolls))
    assert decision is not None and decision.rule_id == 1 and decision.describe() == "#1 status 500"


def test_describe_and_stall_bound():
    d = decide((rule(4, status=None, delay_ms=300),), service="billing", method="GET", path="/", headers=no_headers, now=T, random=lambda: 0)
    assert d is not None and d.describe() == "#4 delay 300 ms"
    stall = rule(5, status=None, stall=True, lasts=dt.timedelta(seconds=8))
    d = decide((stall,), service="billing", method="GET", path="/", headers=no_headers, now=T + 2, random=lambda: 0)
    assert d is not None and d.stall_s == pytest.approx(6) and d.describe() == "#5 stall"
    long = rule(6, status=None, stall=True, delay_ms=120, lasts=dt.timedelta(hours=1))
    d = decide((long,), service="billing", method="GET", path="/", headers=no_headers, now=T, random=lambda: 0)
    assert d is not None and d.stall_s == STALL_MAX_S and d.describe() == "#6 delay 120 ms, stall"


@settings(max_examples=200)
@given(low=st.floats(0, 5000), span=st.floats(0, 5000), roll=st.floats(0, 1, exclude_max=True))
def test_a_delay_range_stays_within_its_bounds(low, span, roll):
    r = rule(status=None, delay_ms=low, delay_max_ms=low + span) if low + span > 0 else None
    if r is None:
        return
    d = decide((r,), service="billing", method="GET", path="/", headers=no_headers, now=T, random=lambda: roll)
    assert d is not None and low <= d.delay_ms <= low + span


@settings(max_examples=50, deadline=None)
@given(rate=st.integers(0, 100), seed=st.integers(0, 2**32))
def test_the_rate_is_the_share_of_rolls_below_it(rate, seed):
    """With a seeded source, the decisions are exactly the rolls below the rate; and the
    share of 4000 stays within 5 sigma of the rate (binomial)."""
    r = rule(rate_percent=rate)
    source = random.Random(seed)
    rolls = [source.random() for _ in range(4000)]
    replay = iter(rolls)
    hits = sum(
        decide((r,), service="billing", method="GET", path="/", headers=no_headers, now=T, random=lambda: next(replay)) is not None
        for _ in rolls
    )
    assert hits == sum(roll < rate / 100 for roll in rolls)
    p = rate / 100
    assert abs(hits - 4000 * p) <= 5 * (4000 * p * (1 - p)) ** 0.5 + 1e-9


def test_a_hostile_pattern_on_a_long_path_is_fast():
    """A regex `.*a.*a...b` would backtrack for hours on this path; the pieces take milliseconds."""
    pattern = path_pattern("/" + "*a" * 30 + "*b")
    started = time.perf_counter()
    assert not pattern.fullmatch("/" + "a" * 60_000)
    assert pattern.fullmatch("/" + "a" * 60_000 + "b")
    assert time.perf_counter() - started < 2.0


def _glob_reference(pattern: str, path: str) -> bool:
    """The meaning, by brute force: a regex (fine on these short inputs)."""
    parts = re.split(r"(\{[^{}/]*\}|\*)", pattern)
    regex = "".join(".*" if p == "*" else "[^/]+" if p.startswith("{") else re.escape(p) for p in parts if p)
    return re.fullmatch(regex, path, re.DOTALL) is not None


@settings(max_examples=500)
@given(
    pattern=st.lists(st.sampled_from(["/", "a", "b", "*", "{id}", "ab"]), max_size=8).map("".join),
    path=st.lists(st.sampled_from(["/", "a", "b"]), max_size=12).map("".join),
)
def test_pieces_match_exactly_as_the_regex_would(pattern, path):
    assert path_pattern(pattern).fullmatch(path) == _glob_reference(pattern, path)
