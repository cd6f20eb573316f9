"""Fault rules, pure: what a user may write, which rule touches a request, and what it does.

Used by storage.faults (validation before a row is written), the API and the CLI (the same
checks and units), and proxy.faults (matching on the event loop: no I/O here, and the random
source is passed in so the decision can be tested).

A rule names a service in a realm and, optionally, narrows it by method, path (an endpoint
template `/orders/{id}`, where `{name}` is one path segment, or a glob `/orders/*`, where `*` is
any run of characters) and a header NAME=VALUE (name case-insensitive, value exact). Its effects:
a delay (fixed, or uniform between two bounds), then one outcome at most: an error status, a
connection reset, or a stalled body. It fires for a fraction `rate` of the requests it matches.

At most one rule touches an exchange: the matching rules are tried most specific first (a
method, a path, a header each count; then the newest), each at its own rate, and the first that
fires applies. So "20% of billing's requests get 503" holds whatever else matches less often.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from storage.errors import Invalid

__all__ = [
    "DEFAULT_FOR",
    "MAX_DELAY_MS",
    "MAX_FOR",
    "STALL_MAX_S",
    "ActiveRule",
    "FaultDecision",
    "InvalidFault",
    "RuleFields",
    "check_rule",
    "ordered",
    "decide",
    "parse_delay",
    "parse_duration_ms",
    "parse_for",
    "parse_header",
    "parse_rate",
    "path_pattern",
]

DEFAULT_FOR = dt.timedelta(minutes=10)
"""How long a rule lasts when its author does not say: a forgotten rule ends by itself."""
MAX_FOR = dt.timedelta(days=7)
MAX_DELAY_MS = 120_000.0
"""Longest added latency (2 minutes): beyond it a delay is an outage, which `stall` or `reset` says better."""
STALL_MAX_S = 30.0
"""A stalled body is held at most this long (and never past its rule's expiry), then the proxy closes the connection."""
MAX_TEXT = 500
"""Longest path, header or note a rule may carry."""

_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_METHOD = re.compile(r"[A-Z]{1,20}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
_NUMBER_UNIT = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*")
_DELAY_UNITS = {"": 1.0, "ms": 1.0, "s": 1000.0}
_FOR_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TEMPLATE_PART = re.compile(r"(\{[^{}/]*\})")


class InvalidFault(Invalid):
    """A fault rule that cannot be accepted; `field` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_duration_ms(text: str, *, field: str = "delay") -> float:
    """`300ms`, `2s`, `1.5s`, `250` (milliseconds) -> milliseconds."""
    match = _NUMBER_UNIT.fullmatch(text.lower()) if isinstance(text, str) else None
    if match is None or match[2] not in _DELAY_UNITS:
        raise InvalidFault(field, f"{text!r} is not a duration such as 300ms or 2s")
    return float(match[1]) * _DELAY_UNITS[match[2]]


def parse_delay(text: str) -> tuple[float, float | None]:
    """`300ms` -> (300, None); `100ms-2s` -> (100, 2000): a uniform range."""
    low, sep, high = text.partition("-")
    if not sep:
        return parse_duration_ms(low), None
    return parse_duration_ms(low), parse_duration_ms(high)


def parse_rate(text: str) -> float:
    """`20%` or `20` -> 20.0 (a percentage, 0-100)."""
    raw = text.strip().removesuffix("%").strip() if isinstance(text, str) else ""
    try:
        value = float(raw)
    except ValueError:
        raise InvalidFault("rate", f"{text!r} is not a percentage such as 20%") from None
    if not 0 <= value <= 100:  # also refuses nan
        raise InvalidFault("rate", "must be between 0% and 100%")
    return value


def parse_for(text: str) -> dt.timedelta:
    """`10m`, `2h`, `90s`, `1d` -> how long a rule lasts."""
    match = _NUMBER_UNIT.fullmatch(text.lower()) if isinstance(text, str) else None
    if match is None or match[2] not in _FOR_UNITS:
        raise InvalidFault("for", f"{text!r} is not a duration such as 90s, 10m, 2h or 1d")
    seconds = float(match[1]) * _FOR_UNITS[match[2]]
    if seconds > MAX_FOR.total_seconds():
        raise InvalidFault("for", f"at most {MAX_FOR.days} days")
    return dt.timedelta(seconds=seconds)


def parse_header(text: str) -> tuple[str, str]:
    """`X-Env=canary` -> ("x-env", "canary")."""
    name, sep, value = text.partition("=") if isinstance(text, str) else ("", "", "")
    name = name.strip()
    if not sep or not _HEADER_NAME.fullmatch(name):
        raise InvalidFault("header", f"{text!r} is not NAME=VALUE")
    if len(text) > MAX_TEXT or not value.isprintable():
        raise InvalidFault("header", f"the value must be printable, at most {MAX_TEXT} characters")
    return name.lower(), value


class PathPattern:
    """An endpoint template or glob, matched against a request path (without its query):
    `{name}` one non-empty segment, `*` any run of characters, the rest literal.

    Not one regular expression: `/*a*a*a*b` as a regex backtracks polynomially on a long path,
    and paths are the client's to choose. Split at each `*`, the pieces are matched in order,
    each at its leftmost place and as short as it can be (which leaves the most to the rest, so
    it finds a match whenever there is one), the last one anchored at the end: linear in the
    path for each piece."""

    __slots__ = ("first", "last", "middle", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        first, *middle, last = [_piece(part) for part in text.split("*")] + ([] if "*" in text else [None])
        self.first = re.compile(first, re.DOTALL)
        self.middle = tuple(re.compile(piece, re.DOTALL) for piece in middle)
        self.last = None if last is None else re.compile(f"(?:{last})\\Z", re.DOTALL)

    def fullmatch(self, path: str) -> bool:
        if self.last is None:
            return self.first.fullmatch(path) is not None
        match = self.first.match(path)
        if match is None:
            return False
        pos = match.end()
        for piece in self.middle:
            match = piece.search(path, pos)
            if match is None:
                return False
            pos = match.end()
        return self.last.search(path, pos) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PathPattern) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"PathPattern({self.text!r})"


def _piece(text: str) -> str:
    """A piece between two `*`: literals and `{name}` (lazily: as short as it can be)."""
    return "".join("[^/]+?" if part.startswith("{") else re.escape(part) for part in _TEMPLATE_PART.split(text) if part)


def path_pattern(path: str) -> PathPattern:
    """An endpoint template or glob -> its matcher (see PathPattern)."""
    return PathPattern(path)


@dataclass(frozen=True, slots=True)
class RuleFields:
    """A rule's fields, checked and normalised: what storage.faults writes (rate as a fraction)."""

    service: str
    realm: str
    method: str | None
    path: str | None
    header: str | None
    delay_ms: float | None
    delay_max_ms: float | None
    status: int | None
    reset: bool
    stall: bool
    rate: float
    starts_at: dt.datetime
    expires_at: dt.datetime
    note: str | None


def _aware(value: dt.datetime, field: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise InvalidFault(field, "a time with its UTC offset")
    return value.astimezone(dt.UTC)


def check_rule(
    *,
    service: str,
    realm: str | None = None,
    method: str | None = None,
    path: str | None = None,
    header: str | None = None,
    delay_ms: float | None = None,
    delay_max_ms: float | None = None,
    status: int | None = None,
    reset: bool = False,
    stall: bool = False,
    rate_percent: float = 100.0,
    starts_at: dt.datetime | None = None,
    expires_at: dt.datetime | None = None,
    lasts: dt.timedelta | None = None,
    note: str | None = None,
    now: dt.datetime,
) -> RuleFields:
    """Check a rule as a user wrote it; InvalidFault names the first field at fault.

    The expiry is `expires_at`, or `lasts` (default DEFAULT_FOR) after the start; either way
    it is in the future and at most MAX_FOR after now."""
    if not isinstance(service, str) or not _SERVICE.fullmatch(service):
        raise InvalidFault("service", "a service name: letters, digits, '_', '.' or '-' (at most 63)")
    realm = realm or ""
    if len(realm) > 200 or not realm.isprintable():
        raise InvalidFault("realm", "printable, at most 200 characters")
    if method is not None:
        method = method.strip().upper()
        if not _METHOD.fullmatch(method):
            raise InvalidFault("method", f"{method!r} is not an HTTP method")
    if path is not None:
        if not path.startswith("/") or len(path) > MAX_TEXT or not path.isprintable() or " " in path or "?" in path:
            raise InvalidFault("path", "a path from '/' without query, e.g. /orders/{id} or /orders/*")
    if header is not None:
        name, value = parse_header(header)
        header = f"{name}={value}"
    for field, value in (("delay_ms", delay_ms), ("delay_max_ms", delay_max_ms)):
        if value is not None and not (isinstance(value, int | float) and 0 <= value <= MAX_DELAY_MS):
            raise InvalidFault(field, f"between 0 and {MAX_DELAY_MS:g} ms")
    if delay_max_ms is not None:
        if delay_ms is None:
            raise InvalidFault("delay_max_ms", "a range needs its low end, delay_ms")
        if delay_max_ms < delay_ms:
            raise InvalidFault("delay_max_ms", "the range's high end is below its low end")
        if delay_max_ms == delay_ms:
            delay_max_ms = None
    if status is not None and not (isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599):
        raise InvalidFault("status", "an HTTP status between 100 and 599")
    outcomes = [name for name, on in (("status", status is not None), ("reset", reset), ("stall", stall)) if on]
    if len(outcomes) > 1:
        raise InvalidFault(outcomes[1], f"one outcome per rule: {' and '.join(outcomes)} exclude each other")
    if not outcomes and not delay_ms and not delay_max_ms:
        raise InvalidFault("effect", "no effect: give a delay, a status, reset or stall")
    if not isinstance(rate_percent, int | float) or isinstance(rate_percent, bool) or not 0 <= rate_percent <= 100:
        raise InvalidFault("rate", "must be between 0% and 100%")
    starts_at = now if starts_at is None else _aware(starts_at, "starts_at")
    if starts_at > now + MAX_FOR:
        raise InvalidFault("starts_at", f"at most {MAX_FOR.days} days ahead")
    if expires_at is not None:
        if lasts is not None:
            raise InvalidFault("expires_at", "give an expiry or a duration, not both")
        expires_at = _aware(expires_at, "expires_at")
    else:
        if lasts is not None and not (isinstance(lasts, dt.timedelta) and lasts > dt.timedelta(0)):
            raise InvalidFault("for", "a positive duration")
        expires_at = max(starts_at, now) + (lasts or DEFAULT_FOR)
    if expires_at <= now or expires_at <= starts_at:
        raise InvalidFault("expires_at", "must be after the start, in the future")
    if expires_at > now + MAX_FOR + dt.timedelta(seconds=1):
        raise InvalidFault("expires_at", f"at most {MAX_FOR.days} days from now: a forgotten rule must end by itself")
    if note is not None and (len(note) > MAX_TEXT or not note.isprintable()):
        raise InvalidFault("note", f"printable, at most {MAX_TEXT} characters")
    return RuleFields(
        service=service, realm=realm, method=method, path=path, header=header,
        delay_ms=float(delay_ms) if delay_ms is not None else None,
        delay_max_ms=float(delay_max_ms) if delay_max_ms is not None else None,
        status=status, reset=bool(reset), stall=bool(stall), rate=rate_percent / 100.0,
        starts_at=starts_at, expires_at=expires_at, note=note,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ActiveRule:
    """A rule as a proxy holds it in memory: times as epoch seconds, the path compiled."""

    id: int
    service: str
    method: str | None
    path: PathPattern | None
    header: tuple[str, str] | None
    delay_ms: float | None
    delay_max_ms: float | None
    status: int | None
    reset: bool
    stall: bool
    rate: float
    starts_at: float
    expires_at: float

    @classmethod
    def of(cls, id: int, fields: RuleFields) -> ActiveRule:
        header = None
        if fields.header is not None:
            name, _, value = fields.header.partition("=")
            header = (name.lower(), value)
        return cls(
            id=id, service=fields.service, method=fields.method,
            path=path_pattern(fields.path) if fields.path else None, header=header,
            delay_ms=fields.delay_ms, delay_max_ms=fields.delay_max_ms, status=fields.status,
            reset=fields.reset, stall=fields.stall, rate=fields.rate,
            starts_at=fields.starts_at.timestamp(), expires_at=fields.expires_at.timestamp(),
        )  # fmt: skip

    @property
    def specificity(self) -> int:
        return (self.method is not None) + (self.path is not None) + (self.header is not None)

    def live(self, now: float) -> bool:
        return self.starts_at <= now < self.expires_at

    def matches(self, service: str, method: str, path: str, headers: Callable[[str], Iterable[str]]) -> bool:
        """`headers(name)`: the request's values of a (lower-case) header name."""
        if service != self.service or (self.method is not None and method.upper() != self.method):
            return False
        if self.path is not None and not self.path.fullmatch(path):
            return False
        return self.header is None or self.header[1] in headers(self.header[0])


def ordered(rules: Iterable[ActiveRule]) -> tuple[ActiveRule, ...]:
    """Most specific first, then newest: the order `decide` tries them in."""
    return tuple(sorted(rules, key=lambda rule: (-rule.specificity, -rule.id)))


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What one rule does to one exchange."""

    rule_id: int
    delay_ms: float
    status: int | None
    reset: bool
    stall: bool
    stall_s: float
    """How long a stall holds the body: STALL_MAX_S, or less when the rule expires sooner."""

    def describe(self) -> str:
        """The record's `fault` mark: `#3 status 503`, `#4 delay 300 ms`, `#5 delay 120 ms, reset`."""
        effects = []
        if self.delay_ms:
            effects.append(f"delay {self.delay_ms:.0f} ms")
        if self.status is not None:
            effects.append(f"status {self.status}")
        if self.reset:
            effects.append("reset")
        if self.stall:
            effects.append("stall")
        return f"#{self.rule_id} " + ", ".join(effects or ["delay 0 ms"])


def decide(
    rules: Sequence[ActiveRule],
    *,
    service: str,
    method: str,
    path: str,
    headers: Callable[[str], Iterable[str]],
    now: float,
    random: Callable[[], float],
) -> FaultDecision | None:
    """The fault for one request, or None. `rules` in `ordered` order; `random()` in [0, 1)."""
    for rule in rules:
        if not rule.live(now) or not rule.matches(service, method, path, headers):
            continue
        if not random() < rule.rate:
            continue
        delay = rule.delay_ms or 0.0
        if rule.delay_max_ms is not None:
            delay += (rule.delay_max_ms - delay) * random()
        stall_s = max(0.0, min(STALL_MAX_S, rule.expires_at - now)) if rule.stall else 0.0
        return FaultDecision(rule.id, delay, rule.status, rule.reset, rule.stall, stall_s)
    return None
