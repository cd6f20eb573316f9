from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given, strategies as st

from passageway.retry import IDEMPOTENT_METHODS, RetryPolicy, parse_retry_after

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
unit = st.floats(0, 1, exclude_max=True)


def test_defaults():
    policy = RetryPolicy()
    assert (policy.attempts, policy.backoff, policy.max_backoff) == (3, 0.1, 2.0)
    assert policy.statuses == {502, 503, 504}
    assert policy.methods == {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"}


@pytest.mark.parametrize("method", sorted(IDEMPOTENT_METHODS) + ["get", "Delete"])
def test_idempotent_methods_get_every_attempt(method):
    assert RetryPolicy().attempts_for(method, None) == 3


@pytest.mark.parametrize("method", ["POST", "PATCH", "CONNECT", "PROPFIND"])
def test_other_methods_get_one(method):
    assert RetryPolicy().attempts_for(method, None) == 1


def test_the_request_s_own_say_wins():
    policy = RetryPolicy(attempts=4)
    assert (policy.attempts_for("POST", True), policy.attempts_for("GET", False)) == (4, 1)


@given(retry=st.integers(1, 200), backoff=st.floats(0, 10), extra=st.floats(0, 10), random=unit)
def test_backoff_is_full_jitter_under_an_exponential_bound(retry, backoff, extra, random):
    policy = RetryPolicy(backoff=backoff, max_backoff=backoff + extra)
    bound = min(policy.max_backoff, backoff * 2.0 ** min(retry - 1, 64))
    delay = policy.backoff_delay(retry, lambda: random)
    assert 0 <= delay <= policy.max_backoff
    assert delay == pytest.approx(random * bound)


def test_backoff_bounds_double_then_cap():
    policy = RetryPolicy()
    assert [policy.backoff_delay(n, lambda: 0.999999) for n in range(1, 8)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0], rel=1e-5)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 120 ", 120.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        ("Sat, 28 Nov 2026 11:00:00 GMT", 0.0),  # in the past: no wait
        ("-1", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("٣", None),  # a digit, but not an ASCII one
        ("Sat, 28 Nov 2026 12:00:30 -0000", None),  # no zone: not an HTTP date
    ],
)
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value, NOW) == seconds


def test_retry_after_replaces_the_backoff_up_to_the_cap():
    policy = RetryPolicy(backoff=0.1, max_backoff=2.0)
    assert policy.delay(1, retry_after="1", now=NOW, random=lambda: 0.5) == 1.0
    assert policy.delay(1, retry_after="3600", now=NOW, random=lambda: 0.5) == 2.0
    assert policy.delay(1, retry_after="nonsense", now=NOW, random=lambda: 0.5) == pytest.approx(0.05)
    assert policy.delay(2, retry_after=None, now=NOW, random=lambda: 0.5) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempts": 0}, "attempts must be an integer >= 1"),
        ({"attempts": 2.0}, "attempts must be an integer >= 1"),
        ({"attempts": True}, "attempts must be an integer >= 1"),
        ({"backoff": -1}, "backoff must be a finite number"),
        ({"max_backoff": float("inf")}, "max_backoff must be a finite number"),
        ({"backoff": float("nan")}, "backoff must be a finite number"),
        ({"backoff": 3, "max_backoff": 1}, "max_backoff .* is less than backoff"),
        ({"statuses": [503, 99]}, "statuses must be HTTP status codes"),
        ({"statuses": 503}, "statuses must be a collection"),
        ({"methods": "GET"}, "methods must be a collection"),
        ({"methods": ["GET", "G E T"]}, "methods must be HTTP method names"),
    ],
)
def test_policy_mistakes_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)


def test_collections_are_frozen_and_methods_upper_cased():
    policy = RetryPolicy(statuses=[429, 503], methods=["get", "post"])
    assert policy.statuses == frozenset({429, 503}) and policy.methods == frozenset({"GET", "POST"})
