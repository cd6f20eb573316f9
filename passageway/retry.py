"""When the smart client tries a call again, and how long it waits first. Pure: no I/O, no clock.

Only idempotent requests are retried (GET, HEAD, PUT, DELETE, OPTIONS, TRACE by default, or any
request whose caller declared it idempotent), so a retry can never do a thing twice that should
happen once. Waits grow exponentially with full jitter (a random wait between 0 and the
exponential bound), so many clients failing together do not retry together.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

"""Sent on every attempt: 1 on the first, 2 on the first retry, ..."""

RETRY_EXTENSION = "passageway.retry"
"""Per-request override, e.g. `client.post(url, extensions={RETRY_EXTENSION: True})`: True
declares the request idempotent (an idempotency key, say) so it is retried like a GET; False
turns retries off for it."""

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
RETRY_STATUSES = frozenset({502, 503, 504})
BACKOFF_FACTOR = 2


@dataclass(frozen=True)
class RetryPolicy:
    """How the smart client retries. `RetryPolicy(attempts=1)` never retries."""

    attempts: int = 3
    """Tries in all, the first included."""
    backoff: float = 0.1
    """Seconds: the bound of the first wait, doubled for each later one."""
    max_backoff: float = 2.0
    """Seconds: no wait is longer, whatever Retry-After asks."""
    statuses: frozenset[int] = RETRY_STATUSES
    methods: frozenset[str] = field(default=IDEMPOTENT_METHODS)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"RetryPolicy attempts must be an integer >= 1, not {self.attempts!r}")
        for name in ("backoff", "max_backoff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise ValueError(f"RetryPolicy {name} must be a finite number of seconds >= 0, not {value!r}")
        if self.max_backoff < self.backoff:
            raise ValueError(f"RetryPolicy max_backoff ({self.max_backoff}) is less than backoff ({self.backoff})")
        statuses = _frozen(self.statuses, "statuses")
        if not all(isinstance(s, int) and 100 <= s <= 599 for s in statuses):
            raise ValueError(f"RetryPolicy statuses must be HTTP status codes (100-599), not {sorted(statuses)!r}")
        methods = _frozen(self.methods, "methods")
        if not all(isinstance(m, str) and m.isalpha() for m in methods):
            raise ValueError(f"RetryPolicy methods must be HTTP method names, not {sorted(methods)!r}")
        object.__setattr__(self, "statuses", statuses)
        object.__setattr__(self, "methods", frozenset(m.upper() for m in methods))

    def attempts_for(self, method: str, declared_idempotent: bool | None) -> int:
        """How many tries a request gets: `declared_idempotent` (the request's own say) wins over its method."""
        retryable = method.upper() in self.methods if declared_idempotent is None else declared_idempotent
        return self.attempts if retryable else 1

    def backoff_delay(self, retry: int, random: Callable[[], float]) -> float:
        """Seconds to wait before retry number `retry` (1 for the first): full jitter over
        `min(max_backoff, backoff * 2 ** (retry - 1))`. `random()` is uniform in [0, 1)."""
        exponent = min(retry - 1, 64)  # beyond this the bound is max_backoff anyway
        return random() * min(self.max_backoff, self.backoff * BACKOFF_FACTOR ** exponent)

    def delay(self, retry: int, *, retry_after: str | None, now: datetime, random: Callable[[], float]) -> float:
        """The wait before retry `retry`: the response's Retry-After when it has a valid one (at most
        max_backoff), else the jittered backoff."""
        asked = parse_retry_after(retry_after, now) if retry_after is not None else None
        if asked is not None:
            return min(asked, self.max_backoff)
        return self.backoff_delay(retry, random)


def parse_retry_after(value: str, now: datetime) -> float | None:
    """Seconds a Retry-After value asks for (delay-seconds or an HTTP date, past dates are 0), or None if invalid."""
    value = value.strip()
    if value.isdigit() and value.isascii():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": the spec's dates are GMT
        return None
    return max(0.0, (when - now).total_seconds())


def _frozen(values: Iterable[object], name: str) -> frozenset:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValueError(f"RetryPolicy {name} must be a collection, not {values!r}")
    return frozenset(values)
