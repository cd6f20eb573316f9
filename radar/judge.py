"""Judge a response against a Hurl entry: query values, captures and asserts (pure, no I/O).

Semantics follow Hurl's docs (https://hurl.dev/docs/asserting-response.html): a query gives a
value or "no value"; predicates are type-aware (1 == 1.0, "1" != 1); ordering across types,
a body that is not JSON or an invalid regex fail the assert with a message instead of raising.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import jsonpath

from radar.model import (
    NULL,
    Assert,
    Body,
    Capture,
    Filter,
    Placeholder,
    Predicate,
    Query,
    Regex,
    Response,
    Template,
)
from radar.template import UndefinedVariable, render, render_json_body
from storage.pure.decoding import DecodeError, decode_body

__all__ = ["AssertResult", "CaptureError", "ResponseFacts", "capture_value", "check_assert", "implicit_asserts"]

_SHOWN_LIMIT = 200
_JSONPATH = jsonpath.JSONPathEnvironment(strict=True)  # RFC 9535, as Hurl's queries are written


@functools.lru_cache(maxsize=4096)
def _compiled_jsonpath(expression: str) -> jsonpath.JSONPath:
    """Compiling is a third of judging a step (bench/README.md); a monitor runs the same ones again."""
    return _JSONPATH.compile(expression)


@dataclass(frozen=True)
class ResponseFacts:
    """What a step observed: `body` as received (still Content-Encoded), `version` like "HTTP/1.1"."""

    status: int
    version: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    duration_ms: float
    url: str

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    @cached_property
    def decoded_body(self) -> bytes:
        encodings = self.header_values("content-encoding")
        try:
            return decode_body(self.body, ", ".join(encodings) or None)
        except DecodeError as exc:
            raise _QueryError(f"cannot decode the body: {exc}") from None

    @cached_property
    def text(self) -> str:
        charset = "utf-8"
        for content_type in self.header_values("content-type"):
            match = re.search(r"charset\s*=\s*\"?([A-Za-z0-9._:-]+)", content_type, re.IGNORECASE)
            if match:
                charset = match.group(1)
        try:
            return self.decoded_body.decode(charset)
        except LookupError:
            raise _QueryError(f"unknown charset {charset!r} in Content-Type") from None
        except UnicodeDecodeError:
            raise _QueryError(f"the body is not valid {charset} text") from None

    @cached_property
    def json(self) -> object:
        try:
            return json.loads(self.text)
        except json.JSONDecodeError as exc:
            raise _QueryError(f"the body is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None


@dataclass(frozen=True)
class AssertResult:
    line: int
    column: int
    text: str
    passed: bool
    expected: str
    actual: str
    message: str | None = None


class CaptureError(ValueError):
    """A capture that cannot be taken: its query matched nothing or failed."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


class _QueryError(Exception):
    """Why a query or filter has no answer (the body is not JSON, an invalid regex...)."""


class _NoValue:
    def __repr__(self) -> str:
        return "none"


NO_VALUE = _NoValue()


# -- queries and filters ----------------------------------------------------------------------------


def _argument(query: Query, variables: Mapping[str, object]) -> str:
    assert isinstance(query.argument, Template)
    return render(query.argument, variables)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise _QueryError(f"invalid regex {pattern!r}: {exc}") from None


def _cookie(facts: ResponseFacts, spec: str) -> object:
    """`name` or `name[Attribute]` from the Set-Cookie headers (the last one of that name wins)."""
    match = re.fullmatch(r"(.+?)(?:\[([A-Za-z-]+)\])?", spec)
    if match is None:
        raise _QueryError("cookie needs a name")
    name, attribute = match.group(1), (match.group(2) or "Value").lower()
    found: dict[str, object] | None = None
    for header in facts.header_values("set-cookie"):
        pairs = [part.strip() for part in header.split(";")]
        cookie_name, _, value = pairs[0].partition("=")
        if cookie_name.strip() != name:
            continue
        found = {"value": value.strip()}
        for pair in pairs[1:]:
            key, has_value, attribute_value = pair.partition("=")
            found[key.strip().lower()] = attribute_value.strip() if has_value else True
    if found is None or attribute not in found:
        return NO_VALUE
    value = found[attribute]
    if attribute == "max-age" and isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


def _query_value(query: Query, facts: ResponseFacts, variables: Mapping[str, object]) -> object:
    kind = query.kind
    if kind == "status":
        return facts.status
    if kind == "version":
        return facts.version.removeprefix("HTTP/")
    if kind == "url":
        return facts.url
    if kind == "duration":
        return round(facts.duration_ms)
    if kind == "body":
        return facts.text
    if kind == "bytes":
        return facts.decoded_body
    if kind == "sha256":
        return hashlib.sha256(facts.decoded_body).digest()
    if kind == "md5":
        return hashlib.md5(facts.decoded_body).digest()
    if kind == "header":
        values = facts.header_values(_argument(query, variables))
        return NO_VALUE if not values else values[0] if len(values) == 1 else values
    if kind == "cookie":
        return _cookie(facts, _argument(query, variables))
    if kind == "jsonpath":
        expression = _argument(query, variables)
        try:
            path = _compiled_jsonpath(expression)
        except jsonpath.JSONPathError as exc:
            raise _QueryError(f"invalid JSONPath {expression!r}: {str(exc).splitlines()[0]}") from None
        matches = path.findall(facts.json)
        return NO_VALUE if not matches else matches[0] if len(matches) == 1 else matches
    if kind == "regex":
        pattern = query.argument.pattern if isinstance(query.argument, Regex) else _argument(query, variables)
        found = _compile(pattern).search(facts.text)
        if found is None:
            return NO_VALUE
        return found.group(1) if found.re.groups else found.group(0)
    raise _QueryError(f"unknown query {kind}")


def _apply_filter(filter_: Filter, value: object) -> object:
    if filter_.name == "count":
        if isinstance(value, (list, dict, bytes)):
            return len(value)
        raise _QueryError(f"count needs a collection, got {_type_name(value)}")
    raise _QueryError(f"unknown filter {filter_.name}")


def _evaluate(
    query: Query, filters: tuple[Filter, ...], facts: ResponseFacts, variables: Mapping[str, object]
) -> object:
    value = _query_value(query, facts, variables)
    for filter_ in filters:
        value = _apply_filter(filter_, value)
    return value


# -- values: types, equality, display ---------------------------------------------------------------


def _type_name(value: object) -> str:
    if value is NO_VALUE:
        return "no value"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(actual: object, expected: object) -> bool:
    """Type-aware equality: numbers compare by value (1 == 1.0), nothing else crosses types."""
    if _is_number(actual) and _is_number(expected):
        return actual == expected
    if isinstance(actual, list) and isinstance(expected, list):
        return len(actual) == len(expected) and all(_same(a, e) for a, e in zip(actual, expected))
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(_same(actual[k], expected[k]) for k in actual)
    return type(actual) is type(expected) and actual == expected


def _shown(value: object) -> str:
    """A value the way a result shows it: strings quoted, bytes as hex, none for no value."""
    if value is NO_VALUE:
        text = "none"
    elif isinstance(value, bytes):
        text = f"hex,{value.hex()};"
    elif isinstance(value, Regex):
        text = f"/{value.pattern}/"
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= _SHOWN_LIMIT else text[: _SHOWN_LIMIT - 1] + "…"


# -- predicates -------------------------------------------------------------------------------------

_ORDER = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}
_TYPE_CHECKS = {
    "isInteger": ("integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "isFloat": ("float", lambda v: isinstance(v, float)),
    "isString": ("string", lambda v: isinstance(v, str)),
    "isBoolean": ("boolean", lambda v: isinstance(v, bool)),
    "isCollection": ("collection", lambda v: isinstance(v, (list, dict))),
}


def _expected_value(predicate: Predicate, variables: Mapping[str, object]) -> object:
    value = predicate.value
    if isinstance(value, Template):
        return render(value, variables)
    if isinstance(value, Placeholder):
        if value.name not in variables:
            raise UndefinedVariable(value.name, value.line, value.column)
        return variables[value.name]
    if value is NULL:
        return None
    return value


def _expected_text(predicate: Predicate, expected: object) -> str:
    if predicate.name in _TYPE_CHECKS:
        text = _TYPE_CHECKS[predicate.name][0]
    elif predicate.name in ("exists", "isEmpty"):
        text = {"exists": "a value", "isEmpty": "empty"}[predicate.name]
    elif predicate.name == "==":
        text = _shown(expected)
    else:
        text = f"{predicate.name} {_shown(expected)}"
    return f"not {text}" if predicate.negated else text


def _holds(name: str, actual: object, expected: object) -> bool:
    """Whether the (un-negated) predicate holds; _QueryError when it cannot be decided."""
    if name == "exists":
        return actual is not NO_VALUE
    if actual is NO_VALUE:
        raise _QueryError("the query has no value")
    if name == "==":
        return _same(actual, expected)
    if name == "!=":
        return not _same(actual, expected)
    if name in _ORDER:
        if (_is_number(actual) and _is_number(expected)) or (isinstance(actual, str) and isinstance(expected, str)):
            return _ORDER[name](actual, expected)
        raise _QueryError(f"cannot compare {_type_name(actual)} with {_type_name(expected)}")
    if name in _TYPE_CHECKS:
        return _TYPE_CHECKS[name][1](actual)
    if name == "isEmpty":
        if isinstance(actual, (list, dict, str, bytes)):
            return len(actual) == 0
        raise _QueryError(f"isEmpty needs a collection or a string, got {_type_name(actual)}")
    if name in ("contains", "startsWith", "endsWith"):
        if not (isinstance(actual, (str, bytes)) and type(actual) is type(expected)):
            kinds = f"{_type_name(actual)} and {_type_name(expected)}"
            raise _QueryError(f"{name} needs two strings or two byte strings, got {kinds}")
        if name == "contains":
            return expected in actual  # type: ignore[operator]
        return actual.startswith(expected) if name == "startsWith" else actual.endswith(expected)  # type: ignore
    if name == "matches":
        if not isinstance(actual, str):
            raise _QueryError(f"matches needs a string, got {_type_name(actual)}")
        pattern = expected.pattern if isinstance(expected, Regex) else str(expected)
        return _compile(pattern).search(actual) is not None
    raise _QueryError(f"unknown predicate {name}")


def check_assert(a: Assert, facts: ResponseFacts, variables: Mapping[str, object]) -> AssertResult:
    """Evaluate one `[Asserts]` line. Never raises for what the response holds: a query that
    fails, an undefined variable or incomparable types give a failed result with a message."""
    text = a.text or f"{a.query.kind} {a.predicate.name}"
    predicate = a.predicate
    try:
        expected = _expected_value(predicate, variables)
    except UndefinedVariable as exc:
        return AssertResult(a.line, a.column, text, False, "", "", str(exc))
    expected_text = _expected_text(predicate, expected)
    actual: object = NO_VALUE
    try:
        actual = _evaluate(a.query, a.filters, facts, variables)
        passed = _holds(predicate.name, actual, expected) != predicate.negated
    except (_QueryError, UndefinedVariable) as exc:
        return AssertResult(a.line, a.column, text, False, expected_text, _shown(actual), str(exc))
    return AssertResult(a.line, a.column, text, passed, expected_text, _shown(actual), None)


def _source(template: Template) -> str:
    """A template as it would be written, for showing an implicit assert."""
    return "".join(part if isinstance(part, str) else "{{" + part.name + "}}" for part in template.parts)


def _body_result(body: Body, facts: ResponseFacts, variables: Mapping[str, object]) -> AssertResult:
    line, column = body.line, body.column
    try:
        if body.kind == "bytes":
            expected: object = body.data or b""
            actual: object = facts.decoded_body
            passed = actual == expected
        elif body.kind == "json":
            expected_text = render_json_body(body.text or Template(()), variables)
            expected = json.loads(expected_text)
            actual = facts.json
            passed = _same(actual, expected)
        else:
            expected = render(body.text or Template(()), variables)
            actual = facts.text
            passed = actual == expected
    except (UndefinedVariable, _QueryError, json.JSONDecodeError) as exc:
        return AssertResult(line, column, "body", False, "", "", str(exc))
    return AssertResult(line, column, "body", passed, _shown(expected), _shown(actual), None)


def implicit_asserts(response: Response, facts: ResponseFacts, variables: Mapping[str, object]) -> list[AssertResult]:
    """What `HTTP <status>`, the response's header lines and an explicit body assert."""
    results = []
    status_line = f"{response.version or 'HTTP'} {'*' if response.status is None else response.status}"
    if response.version not in (None, "HTTP"):
        wanted, got = response.version.removesuffix(".0"), facts.version.removesuffix(".0")
        results.append(AssertResult(response.line, response.column, status_line, wanted == got, wanted, got, None))
    if response.status is not None:
        results.append(
            AssertResult(
                response.line, response.column, status_line, facts.status == response.status,
                str(response.status), str(facts.status), None,
            )  # fmt: skip
        )
    for header in response.headers:
        text = f"{_source(header.name)}: {_source(header.value)}"
        try:
            name, value = render(header.name, variables), render(header.value, variables)
        except UndefinedVariable as exc:
            results.append(AssertResult(header.line, header.column, text, False, "", "", str(exc)))
            continue
        values = facts.header_values(name)
        actual = _shown(NO_VALUE if not values else values[0] if len(values) == 1 else values)
        results.append(AssertResult(header.line, header.column, text, value in values, _shown(value), actual, None))
    if response.body is not None:
        results.append(_body_result(response.body, facts, variables))
    return results


def capture_value(c: Capture, facts: ResponseFacts, variables: Mapping[str, object]) -> object:
    """The value a `[Captures]` line takes from the response."""
    try:
        value = _evaluate(c.query, c.filters, facts, variables)
    except (_QueryError, UndefinedVariable) as exc:
        raise CaptureError(f"capture {c.name}: {exc}", c.line, c.column) from None
    if value is NO_VALUE:
        raise CaptureError(f"capture {c.name}: the {c.query.kind} query matched nothing", c.line, c.column)
    return value
