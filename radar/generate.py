"""Hurl tests made from captured traffic. Pure: exchanges in, Hurl text out, no I/O.

One exchange makes a one-step test (`test_from_exchange`); several make a multi-step test in
capture order (`test_from_exchanges`), chained: a value that an earlier response produced (an
id, a token, a Location) and a later request sends is captured from that response
(`[Captures]`) and written as `{{name}}` in the later request, so the test creates its own
data instead of replaying the captured ids. Cookies that an earlier response set are left to
the test's cookie jar (one test shares its cookies, as in Hurl) and dropped from later
`Cookie` headers.

Each step asserts what a later run can expect to hold:

- the status (`HTTP 201`) and the response's media type (`header "Content-Type" contains`);
- the JSON body's shape: each field (nested objects up to `MAX_DEPTH`, the first element of
  arrays) with its type (`isString`, `isInteger`, `isFloat`, `isBoolean`, `isCollection`,
  `== null`); a type assert fails when the field is missing, so it also says "exists";
- values that echo the request (`"item": "book"` sent and returned) with `==`; no other
  value is asserted, so timestamps, generated ids and other volatile values get their type
  only;
- a duration budget: 3 x the endpoint's p95 (or this exchange's duration), at least 200 ms,
  rounded up to a round number.

Secrets never reach the text: what storage.pure.redaction would redact (by the same rules: the
Authorization and Cookie headers, API keys, tokens, passwords, JWTs...) becomes `{{name}}`,
everywhere the value appears in the request, and the names are listed in
`GeneratedTest.secrets` for the user to pass (`--secret NAME=VALUE`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from storage.pure.endpoints import template_path
from storage.pure.redaction import (
    DEFAULT_RULES,
    MARKER_RE,
    RedactionRules,
    redact_body,
    redact_headers,
    redact_url,
)

from .hurl_text import (
    Text,
    Var,
    base64_body,
    json_body,
    key_string,
    multiline_body,
    quoted,
    value_string,
)

__all__ = [
    "CapturedExchange",
    "Endpoint",
    "GeneratedTest",
    "MAX_DEPTH",
    "MIN_BUDGET_MS",
    "captured_exchange",
    "duration_budget",
    "endpoint_of",
    "test_from_exchange",
    "test_from_exchanges",
]

MAX_DEPTH = 4
"""Nesting levels of a JSON body whose fields are asserted ($.a.b.c.d)."""
MAX_SHAPE_ASSERTS = 60
"""Field asserts per step at most: enough to pin a response's shape, few enough to read."""
MIN_BUDGET_MS = 200
BUDGET_FACTOR = 3
MAX_ARRAY_SOURCES = 20
"""Elements of a response array searched for values a later request sends."""

# Requests headers a test does not repeat: the transport's (hop-by-hop, Host, lengths and
# codings, since the body is written decoded), tracing (each run has its own trace),
# Passageway's own, and client noise.
_DROPPED_HEADERS = frozenset(
    (
        "connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "content-length", "content-encoding", "accept-encoding",
        "traceparent", "tracestate", "b3", "user-agent", "via", "forwarded", "x-forwarded-for",
        "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-real-ip", "x-request-id", "referer",
        "upgrade-insecure-requests", "dnt", "priority",
    )
)  # fmt: skip
_DROPPED_PREFIXES = ("x-passageway-", "x-b3-", "sec-fetch-", "sec-ch-")

_REDACTION_KEY = b"radar.generate: markers never leave this module"
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_IDENTIFIER_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_WORD = re.compile(r"[A-Za-z]{1,15}")
_GENERIC_KEYS = frozenset(("id", "uuid", "guid", "key", "ref", "code", "number", "no", "href", "url", "uri", "slug"))


# --- input -------------------------------------------------------------------


@dataclass(frozen=True)
class CapturedExchange:
    """What a test is made from: one captured request and its response, bodies decoded."""

    method: str
    url: str
    """The captured URL, scheme://host[:port]/path[?query]."""
    path: str
    """The path as the service's routes see it (its upstream base path removed)."""
    query: str = ""
    """Raw query string, without '?'."""
    service: str | None = None
    request_headers: tuple[tuple[str, str], ...] = ()
    request_body: bytes | None = None
    status: int | None = None
    response_headers: tuple[tuple[str, str], ...] = ()
    response_body: bytes | None = None
    duration_ms: float | None = None
    endpoint_template: str | None = None
    """The endpoint's path template (`/orders/{id}`) when known; else the path's own."""
    id: int | None = None
    error: str | None = None
    """Why there is no response ("connect_failed: ..."), None when there is one."""


def captured_exchange(
    detail: Mapping[str, object],
    *,
    request_body: bytes | None,
    response_body: bytes | None,
    base_path: str = "",
    endpoint_template: str | None = None,
) -> CapturedExchange:
    """From the store's exchange detail (storage.queries.get_exchange) and its bodies DECODED
    (StoredBody.decoded). `base_path`: the service's upstream base path, which the proxy put
    in front of the path the client sent and a `service://` URL must not repeat."""
    path = str(detail.get("path") or "/")
    if base_path and base_path != "/" and path.startswith(base_path.rstrip("/")):
        path = path[len(base_path.rstrip("/")) :] or "/"
    error = detail.get("error")
    return CapturedExchange(
        method=str(detail["method"]).upper(),
        url=str(detail["url"]),
        path=path if path.startswith("/") else "/" + path,
        query=str(detail.get("query") or ""),
        service=detail.get("service") or None,  # type: ignore[arg-type]
        request_headers=_pairs(detail.get("request_headers")),
        request_body=request_body,
        status=detail.get("status"),  # type: ignore[arg-type]
        response_headers=_pairs(detail.get("response_headers")),
        response_body=response_body,
        duration_ms=detail.get("duration_ms"),  # type: ignore[arg-type]
        endpoint_template=endpoint_template,
        id=detail.get("id"),  # type: ignore[arg-type]
        error=f"{error['kind']}: {error['message']}" if isinstance(error, Mapping) else None,
    )


def _pairs(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, (list, tuple)):
        return ()
    return tuple((str(pair[0]), str(pair[1])) for pair in value)


class Endpoint(NamedTuple):
    """Which endpoint an exchange called: its service (or host), method and path template."""

    service: str
    method: str
    template: str


def endpoint_of(exchange: CapturedExchange) -> Endpoint:
    service = exchange.service or (urlsplit(exchange.url).hostname or "")
    return Endpoint(service, exchange.method, exchange.endpoint_template or template_path(exchange.path))


# --- output ------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedTest:
    text: str
    """The Hurl file."""
    secrets: tuple[str, ...]
    """Names of the `{{variables}}` that stand for captured secrets: pass each with
    `--secret NAME=VALUE` (or the realm's secrets)."""
    captures: tuple[str, ...] = ()
    """Names of the variables the test captures from its own responses, in order."""


def duration_budget(p95_ms: float | None, duration_ms: float | None) -> int | None:
    """3 x the endpoint's p95 (or, unknown, this exchange's duration), at least 200 ms, rounded
    up to a round number (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x a power of ten); None when neither
    is known."""
    basis = p95_ms if p95_ms is not None else duration_ms
    if basis is None or basis < 0 or math.isnan(basis):
        return None
    target = max(float(MIN_BUDGET_MS), BUDGET_FACTOR * basis)
    scale = 10 ** math.floor(math.log10(target))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * scale >= target:
            return int(math.ceil(step * scale))
    raise AssertionError("unreachable: 10 x scale exceeds target")


# --- request parts ---------------------------------------------------------


@dataclass
class _Leaf:
    """One value a request sends, where it sits, and what is written for it."""

    value: object  # str, or int/float/bool/None in a JSON body
    key: str  # the field, parameter or header name ("" for a path segment)
    written: Text | None = None  # decided by the passes below; None: the literal


@dataclass
class _Step:
    exchange: CapturedExchange
    index: int
    segments: list[_Leaf] = field(default_factory=list)
    query: list[_Leaf] = field(default_factory=list)  # decoded values
    headers: list[_Leaf] = field(default_factory=list)
    body_kind: str = "none"  # none, json, form, text, bytes
    json: object = None  # the parsed JSON body, leaves replaced by _Leaf
    form: list[_Leaf] = field(default_factory=list)
    text: str = ""
    text_written: Text | None = None
    response_json: object = None
    has_response_json: bool = False
    captures: list[tuple[str, str]] = field(default_factory=list)  # (name, query as written)
    url_location: Var | None = None  # the whole path and query came from an earlier Location
    location_absolute: bool = False  # that Location is a whole URL (else a path to join)

    def leaves(self) -> Iterator[_Leaf]:
        yield from self.segments
        yield from self.query
        yield from self.headers
        yield from self.form
        if self.body_kind == "json":
            yield from _json_leaves(self.json)


def _json_leaves(value: object) -> Iterator[_Leaf]:
    if isinstance(value, _Leaf):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _json_leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_leaves(item)


def _wrap_json(value: object, key: str = "") -> object:
    if isinstance(value, dict):
        return {k: _wrap_json(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_wrap_json(v, key) for v in value]
    return _Leaf(value, key)


def _header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name), None)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_json_type(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def _is_text_type(media: str) -> bool:
    return (
        media.startswith("text/")
        or _is_json_type(media)
        or media.endswith("+xml")
        or media in ("application/xml", "application/javascript", "application/x-www-form-urlencoded", "application/graphql")
    )


def _parse_json(data: bytes | None) -> tuple[bool, object]:
    """(True, value) for a JSON object or array; (False, None) otherwise."""
    if not data:
        return False, None
    try:
        text = data.decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False, None
    return isinstance(value, (dict, list)), value if isinstance(value, (dict, list)) else None


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _step(exchange: CapturedExchange, index: int) -> _Step:
    if exchange.status is None:
        why = exchange.error or "no response was captured"
        raise ValueError(f"exchange {exchange.id if exchange.id is not None else index + 1} has no response ({why})")
    step = _Step(exchange, index)
    step.segments = [_Leaf(segment, "") for segment in exchange.path.split("/")[1:]]
    step.query = [_Leaf(value, name) for name, value in parse_qsl(exchange.query, keep_blank_values=True)]
    step.headers = [
        _Leaf(value, name)
        for name, value in exchange.request_headers
        if name.lower() not in _DROPPED_HEADERS and not name.lower().startswith(_DROPPED_PREFIXES)
    ]
    body = exchange.request_body
    media = _media_type(_header(exchange.request_headers, "content-type"))
    if body:
        is_json, parsed = _parse_json(body)
        if is_json:
            step.body_kind, step.json = "json", _wrap_json(parsed)
        elif media == "application/x-www-form-urlencoded" and _utf8(body) is not None:
            step.body_kind = "form"
            step.form = [_Leaf(v, k) for k, v in parse_qsl(_utf8(body) or "", keep_blank_values=True)]
        elif _utf8(body) is not None and (_is_text_type(media) or not media):
            step.body_kind, step.text = "text", _utf8(body) or ""
        else:
            step.body_kind = "bytes"
    step.has_response_json, step.response_json = _parse_json(exchange.response_body)
    return step


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# --- values: substitution of secrets and chained values -------------------------


class _Values:
    """Values that must not be written literally, each with its variable, in priority order."""

    def __init__(self) -> None:
        self.variables: dict[str, Var] = {}  # str(value) -> Var
        self.names: set[str] = set()

    def name(self, wanted: str) -> str:
        base = _variable_name(wanted)
        name, n = base, 2
        while name in self.names:
            name, n = f"{base}_{n}", n + 1
        self.names.add(name)
        return name

    def add(self, value: str, var: Var) -> None:
        self.variables.setdefault(value, var)

    def exact(self, value: object) -> Var | None:
        if isinstance(value, bool) or value is None:
            return None
        return self.variables.get(str(value))

    def substitute(self, text: str) -> Text:
        """`text` with each known value inside it (bounded by non-alphanumerics when short)
        replaced by its variable."""
        if not self.variables or not text:
            return text
        exact = self.variables.get(text)
        if exact is not None:
            return (exact,)
        found: list[tuple[int, int, Var]] = []
        for value, var in sorted(self.variables.items(), key=lambda item: -len(item[0])):
            if len(value) < 3:
                continue
            for match in re.finditer(_bounded(value), text):
                if not any(start < match.end() and match.start() < end for start, end, _ in found):
                    found.append((match.start(), match.end(), var))
        if not found:
            return text
        parts: list[str | Var] = []
        position = 0
        for start, end, var in sorted(found, key=lambda item: item[0]):
            if start > position:
                parts.append(text[position:start])
            parts.append(var)
            position = end
        if position < len(text):
            parts.append(text[position:])
        return tuple(parts)


def _bounded(value: str) -> str:
    """A pattern for `value` inside text: anywhere when long, as a whole word when short (a
    short value inside a longer word is a coincidence, not the value)."""
    if len(value) >= 8:
        return re.escape(value)
    return rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])"


def _variable_name(wanted: str) -> str:
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", wanted)
    snake = re.sub(r"[^A-Za-z0-9]+", "_", snake).strip("_").lower()
    if not snake or not snake[0].isalpha():
        snake = "value_" + snake if snake else "value"
    return snake[:60]


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _resource(path: str) -> str:
    """The last literal segment of a path's template: /v1/orders/{id} -> order."""
    for segment in reversed(template_path(path).split("/")):
        if segment and "{" not in segment and re.fullmatch(r"[A-Za-z][A-Za-z_-]*", segment):
            return _singular(segment)
    return ""


# --- secrets -----------------------------------------------------------------


def _marked_spans(original: str, redacted: str) -> list[str | tuple[str, str]] | None:
    """`original` split where redaction put markers: literal strings and ("secret", context
    before it); None when redaction changed nothing or the two cannot be aligned."""
    pieces = MARKER_RE.split(redacted)
    if len(pieces) == 1:
        return None
    pattern = "(.*?)".join(re.escape(piece) for piece in pieces)
    match = re.fullmatch(pattern, original, re.S)
    if match is None:
        return None
    out: list[str | tuple[str, str]] = []
    for index, piece in enumerate(pieces):
        if piece:
            out.append(piece)
        if index < len(pieces) - 1:
            out.append((match.group(index + 1), piece))
    return out


def _secret_name(context: str, fallback: str) -> str:
    pair = re.search(r"([A-Za-z0-9_.\-\[\]]+)=\s*$", context)
    if pair:
        return pair.group(1)
    scheme = context.strip().lower()
    if scheme == "bearer":
        return "token"
    return fallback


def _find_secrets(step: _Step, rules: RedactionRules, secrets: _Values) -> None:
    """Mark each leaf of `step` that redaction would change as a secret, and register its value."""
    for leaf in step.leaves():
        # A JWT is a secret whole (a new token has a new payload too), wherever it is sent.
        for match in _JWT.finditer(str(leaf.value)):
            wanted = "token" if leaf.key.lower() == "authorization" else leaf.key or "token"
            _secret_var(match.group(), wanted, secrets)
    for leaf in step.headers:
        value = str(leaf.value)
        [(_, unjwt_redacted)] = redact_headers([(leaf.key, _JWT.sub("", value))], rules, _REDACTION_KEY)
        if unjwt_redacted == _JWT.sub("", value):
            continue  # nothing secret beyond JWTs, which substitution replaces
        [(_, redacted)] = redact_headers([(leaf.key, value)], rules, _REDACTION_KEY)
        spans = _marked_spans(value, redacted)
        if spans is None or leaf.key.lower() in ("cookie", "set-cookie"):
            _whole_secret(leaf, secrets, leaf.key)
            continue
        parts: list[str | Var] = []
        for span in spans:
            if isinstance(span, str):
                parts.append(span)
            elif span[0]:
                parts.append(_secret_var(span[0], _secret_name(span[1], leaf.key), secrets))
        leaf.written = tuple(parts)
    for group, url in ((step.query, "/?" + step.exchange.query), (step.form, None)):
        if not group:
            continue
        raw = url if url is not None else "/?" + (_utf8(step.exchange.request_body or b"") or "")
        redacted_parts = redact_url(raw, rules, _REDACTION_KEY)[2:].split("&")
        original_parts = raw[2:].split("&")
        changed = {
            unquote(original.partition("=")[0].replace("+", " "))
            for original, redacted in zip(original_parts, redacted_parts, strict=False)
            if original != redacted
        }
        for leaf in group:
            if leaf.key in changed or _JWT.search(str(leaf.value)):
                _whole_secret(leaf, secrets, leaf.key)
    for leaf in step.segments:
        if _JWT.search(str(leaf.value)):
            _whole_secret(leaf, secrets, "token")
    if step.body_kind == "json":
        data = step.exchange.request_body or b""
        redacted = redact_body(data, "application/json", rules, _REDACTION_KEY)
        if redacted != data:
            _, redacted_json = _parse_json(redacted)
            _mark_json_secrets(step.json, redacted_json, secrets)
    elif step.body_kind == "text":
        redacted = redact_body(step.exchange.request_body or b"", "text/plain", rules, _REDACTION_KEY)
        spans = _marked_spans(step.text, _utf8(redacted) or "")
        jwts = [match.span() for match in _JWT.finditer(step.text)]
        position = 0
        for span in spans or ():
            if isinstance(span, str):
                position += len(span)
                continue
            start, position = position, position + len(span[0])
            if span[0] and not any(a <= start and position <= b for a, b in jwts):
                _secret_var(span[0], _secret_name(span[1], "secret"), secrets)


def _mark_json_secrets(original: object, redacted: object, secrets: _Values) -> None:
    if isinstance(original, _Leaf):
        if original.value != redacted or _JWT.search(str(original.value)):
            _whole_secret(original, secrets, original.key or "secret")
    elif isinstance(original, dict) and isinstance(redacted, dict):
        for key, item in original.items():
            if key in redacted:
                _mark_json_secrets(item, redacted[key], secrets)
    elif isinstance(original, list) and isinstance(redacted, list):
        for item, other in zip(original, redacted, strict=False):
            _mark_json_secrets(item, other, secrets)


def _secret_var(value: str, wanted: str, secrets: _Values) -> Var:
    known = secrets.variables.get(value)
    if known is not None:
        return known
    var = Var(secrets.name(wanted))
    secrets.add(value, var)
    return var


def _whole_secret(leaf: _Leaf, secrets: _Values, wanted: str) -> None:
    if leaf.value is None or leaf.value == "" or isinstance(leaf.value, bool):
        return
    leaf.written = _secret_var(str(leaf.value), wanted, secrets)


# --- chaining ------------------------------------------------------------------


_ID_KEY = re.compile(r"(?i)(?:.*[_-])?(?:id|uuid|key|token)|.*[a-z](?:Id|ID|Uuid|Key|Token)")
"""A field that names an identifier: its value is the server's, whatever it looks like."""


def _chain_worthy(value: object, key: str | int | None = None) -> bool:
    """Values a later request could only know from this response: ids, tokens, paths. A round
    or small number is one only under an id-like key (`id`, `order_id`, `userId`)."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(key, str) and _ID_KEY.fullmatch(key) and isinstance(value, (int, str)) and str(value).strip():
        return abs(value) >= 10 if isinstance(value, int) else len(str(value).strip()) >= 2
    if isinstance(value, int):
        return abs(value) >= 100 and not (value % 100 == 0 and abs(value) <= 10_000) and value not in (128, 256, 512, 1024)
    if isinstance(value, str):
        return len(value) >= 4 and not value.isspace() and not _PLAIN_WORD.fullmatch(value)
    return False


def _response_sources(value: object, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], object]]:
    """(JSON path, value) of each chain-worthy value in a response body, shallow ones first."""
    if isinstance(value, dict):
        nested = []
        for key, item in value.items():
            if isinstance(item, (dict, list)):
                nested.append((key, item))
            elif _chain_worthy(item, key):
                yield path + (key,), item
        for key, item in nested:
            if len(path) < 2 * MAX_DEPTH:
                yield from _response_sources(item, path + (key,))
    elif isinstance(value, list):
        for position, item in enumerate(value[:MAX_ARRAY_SOURCES]):
            if isinstance(item, (dict, list)):
                if len(path) < 2 * MAX_DEPTH:
                    yield from _response_sources(item, path + (position,))
            elif _chain_worthy(item):
                yield path + (position,), item


def _occurs(value: object, leaf: _Leaf) -> bool:
    if isinstance(leaf.value, bool) or leaf.value is None or isinstance(value, bool):
        return False
    text, needle = str(leaf.value), str(value)
    if text == needle:
        return True
    return isinstance(leaf.value, str) and re.search(
        rf"(?<![A-Za-z0-9]){re.escape(needle)}(?![A-Za-z0-9])", text
    ) is not None


def _capture_name(path: tuple[str | int, ...], step: _Step, chained: _Values) -> str:
    keys = [key for key in path if isinstance(key, str)]
    key = keys[-1] if keys else "value"
    if _variable_name(key) in _GENERIC_KEYS:
        owner = _singular(keys[-2]) if len(keys) >= 2 else _resource(step.exchange.path)
        key = f"{owner}_{key}" if owner else key
    return chained.name(key)


def _chain(steps: Sequence[_Step], chained: _Values) -> None:
    """Register captures for values that earlier responses produced and later requests send."""
    for source in steps:
        sent_so_far = [leaf.value for step in steps[: source.index + 1] for leaf in step.leaves()]
        if source.has_response_json:
            for path, value in _response_sources(source.response_json):
                if str(value) in chained.variables or any(_occurs(value, _Leaf(sent, "")) for sent in sent_so_far):
                    continue
                later = [leaf for step in steps[source.index + 1 :] for leaf in step.leaves()]
                if any(_occurs(value, leaf) for leaf in later):
                    name = _capture_name(path, source, chained)
                    source.captures.append((name, f"jsonpath {quoted(_jsonpath(path))}"))
                    chained.add(str(value), Var(name))
        location = _header(source.exchange.response_headers, "location")
        if location:
            _chain_location(location, source, steps, chained)


def _chain_location(location: str, source: _Step, steps: Sequence[_Step], chained: _Values) -> None:
    """A later request to exactly the URL a Location header named gets that header's value."""
    target = urlsplit(location)
    name: str | None = None
    for later in steps[source.index + 1 :]:
        exchange = later.exchange
        path_and_query = exchange.path + (f"?{exchange.query}" if exchange.query else "")
        same = (
            target.path + (f"?{target.query}" if target.query else "") == path_and_query
            if not target.scheme
            else location == exchange.url and exchange.service is None
        )
        if not same or not location.startswith(("/", "http://", "https://")):
            continue
        if name is None:
            name = chained.name(f"{_resource(target.path) or 'resource'}_location")
            source.captures.append((name, 'header "Location"'))
        later.url_location, later.location_absolute = Var(name), bool(target.scheme)


def _sends_set_cookies(steps: Sequence[_Step]) -> None:
    """Drop from each request the cookies an earlier response set: the test's jar sends them."""
    set_names: set[str] = set()
    for step in steps:
        for leaf in step.headers:
            if leaf.key.lower() == "cookie" and set_names:
                kept = [
                    part.strip()
                    for part in str(leaf.value).split(";")
                    if part.strip() and part.split("=", 1)[0].strip() not in set_names
                ]
                leaf.value = "; ".join(kept)
        step.headers = [leaf for leaf in step.headers if not (leaf.key.lower() == "cookie" and not leaf.value)]
        for name, value in step.exchange.response_headers:
            if name.lower() == "set-cookie":
                set_names.add(value.split(";", 1)[0].split("=", 1)[0].strip())


def _jsonpath(path: Sequence[str | int]) -> str:
    out = "$"
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        elif _IDENTIFIER_KEY.fullmatch(key):
            out += f".{key}"
        else:
            escaped = key.replace("\\", "\\\\").replace("'", "\\'")
            escaped = re.sub(r"[\x00-\x1f]", lambda m: f"\\u{ord(m.group()):04x}", escaped)
            out += f"['{escaped}']"
    return out


# --- writing -------------------------------------------------------------------


def _written(leaf: _Leaf, values: _Values) -> Text:
    if leaf.written is not None:
        return leaf.written
    return values.substitute(str(leaf.value))


def _json_written(value: object, values: _Values) -> object:
    if isinstance(value, dict):
        return {k: _json_written(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_written(v, values) for v in value]
    assert isinstance(value, _Leaf)
    if value.written is not None:
        written = value.written
    elif isinstance(value.value, str):
        written = values.substitute(value.value)
    else:
        written = values.exact(value.value) or value.value
    if isinstance(value.value, str) and isinstance(written, Var):
        return (written,)  # a string stays a string: "{{name}}"
    return written


def _request_lines(step: _Step, values: _Values) -> list[str]:
    exchange = step.exchange
    base = f"service://{exchange.service}" if exchange.service else _origin(exchange.url)
    query_in_url = not any(isinstance(_written(leaf, values), tuple) or leaf.written for leaf in step.query)
    if step.url_location is not None:
        url: list[str | Var] = [step.url_location] if step.location_absolute else [base, step.url_location]
        query_in_url = True
    else:
        url = [base]
        for leaf in step.segments:
            url.append("/")
            url.extend(_as_parts(_written(leaf, values)))
        if not step.segments:
            url.append("/")
        if query_in_url and exchange.query:
            url.append("?" + exchange.query)
    out = [f"{exchange.method} {value_string(_merge(url))}"]
    for leaf in step.headers:
        out.append(f"{key_string(leaf.key)}: {value_string(_written(leaf, values))}")
    if step.query and not query_in_url:
        out.append("[Query]")
        out.extend(f"{key_string(leaf.key)}: {value_string(_written(leaf, values))}" for leaf in step.query)
    if step.body_kind == "form":
        out.append("[Form]")
        out.extend(f"{key_string(leaf.key)}: {value_string(_written(leaf, values))}" for leaf in step.form)
    elif step.body_kind == "json":
        out.append(json_body(_json_written(step.json, values)))
    elif step.body_kind == "text":
        out.append(multiline_body(values.substitute(step.text)))
    elif step.body_kind == "bytes":
        out.append(base64_body(exchange.request_body or b""))
    return out


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _as_parts(text: Text) -> list[str | Var]:
    if isinstance(text, (str, Var)):
        return [text]
    return list(text)


def _merge(parts: Sequence[str | Var]) -> tuple[str | Var, ...]:
    merged: list[str | Var] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    return tuple(merged)


def _echoes(step: _Step, values: _Values) -> tuple[dict[str, Text | object], dict[tuple[str, str], object]]:
    """What the request sent, for echo asserts: by value (non-trivial values anywhere) and by
    (field name, value) (any value sent in a field of the same name)."""
    anywhere: dict[str, Text | object] = {}
    by_key: dict[tuple[str, str], object] = {}
    leaves = [*step.segments, *step.query, *step.form]
    if step.body_kind == "json":
        leaves.extend(_json_leaves(step.json))
    for leaf in leaves:
        written = leaf.written if leaf.written is not None else None
        if isinstance(leaf.value, str):
            written = written if written is not None else values.substitute(leaf.value)
        else:
            written = written if written is not None else (values.exact(leaf.value) or leaf.value)
        value = leaf.value if not isinstance(leaf.value, str) else unquote(leaf.value) if leaf.key == "" else leaf.value
        if leaf.key:
            by_key[(leaf.key, json.dumps(value))] = written
        if _chain_worthy(value) or isinstance(written, (Var, tuple)):
            anywhere.setdefault(str(value), written)
    return anywhere, by_key


def _predicate_value(response_value: object, written: object) -> str:
    if isinstance(written, tuple) and len(written) == 1 and isinstance(written[0], Var):
        written = written[0]
    if isinstance(written, Var):
        var = "{{" + written.name + "}}"
        return var if isinstance(response_value, (int, float)) else f'"{var}"'
    if isinstance(written, tuple):
        return quoted(written)
    if isinstance(response_value, str):
        return quoted(response_value)
    return json.dumps(response_value)


def _shape_asserts(value: object, step: _Step, values: _Values) -> list[str]:
    anywhere, by_key = _echoes(step, values)
    out: list[str] = []

    def visit(item: object, path: tuple[str | int, ...], key: str) -> None:
        if len(out) >= MAX_SHAPE_ASSERTS:
            return
        query = f"jsonpath {quoted(_jsonpath(path))}"
        if isinstance(item, dict):
            if path:
                out.append(f"{query} isCollection")
            if len(path) < MAX_DEPTH:
                for child_key, child in item.items():
                    visit(child, path + (child_key,), child_key)
            return
        if isinstance(item, list):
            out.append(f"{query} isCollection")
            if item and len(path) < MAX_DEPTH:
                visit(item[0], path + (0,), key)
            return
        echoed = by_key.get((key, json.dumps(item)), _MISSING) if key else _MISSING
        if echoed is _MISSING and not isinstance(item, (bool, type(None), float)):
            echoed = anywhere.get(str(item), _MISSING)
        if echoed is not _MISSING and item is not None:
            out.append(f"{query} == {_predicate_value(item, echoed)}")
        elif item is None:
            out.append(f"{query} == null")
        elif isinstance(item, bool):
            out.append(f"{query} isBoolean")
        elif isinstance(item, int):
            out.append(f"{query} isInteger")
        elif isinstance(item, float):
            out.append(f"{query} isFloat")
        else:
            out.append(f"{query} isString")

    visit(value, (), "")
    if not out:  # an empty object: its being an object is the shape
        out.append('jsonpath "$" isCollection')
    return out


_MISSING = object()


def _response_lines(step: _Step) -> list[str]:
    exchange = step.exchange
    out = [f"HTTP {exchange.status}"]
    if step.captures:
        out.append("[Captures]")
        out.extend(f"{key_string(name)}: {query}" for name, query in step.captures)
    asserts: list[str] = []
    media = _media_type(_header(exchange.response_headers, "content-type"))
    if media:
        asserts.append(f'header "Content-Type" contains {quoted(media)}')
    return out + (["[Asserts]", *asserts] if asserts else [])


def test_from_exchanges(
    exchanges: Sequence[CapturedExchange],
    *,
    latency_p95_ms: Mapping[Endpoint, float] | None = None,
    secrets: RedactionRules = DEFAULT_RULES,
) -> GeneratedTest:
    """A multi-step test of `exchanges` in the order given (capture order), chained.
    `latency_p95_ms`: each endpoint's observed p95, for the duration budgets. ValueError
    (one line) for no exchanges or an exchange without a response."""
    if not exchanges:
        raise ValueError("no exchanges to make a test from")
    steps = [_step(exchange, index) for index, exchange in enumerate(exchanges)]
    chained = _Values()
    _sends_set_cookies(steps)
    _chain(steps, chained)
    # Secrets and chained values share one table, chained first: a token that a login
    # response produced is captured, not asked for.
    values = _Values()
    values.names = chained.names
    values.variables = dict(chained.variables)
    for step in steps:
        _find_secrets(step, secrets, values)
    p95s = latency_p95_ms or {}
    blocks: list[str] = []
    for step in steps:
        budget = duration_budget(p95s.get(endpoint_of(step.exchange)), step.exchange.duration_ms)
        # Values from earlier responses are known to this step; later ones are not yet.
        known = _Values()
        known.variables = {
            value: var
            for value, var in values.variables.items()
            if var.name not in _captured_from(steps[step.index :])
        }
        lines = _request_lines(step, known)
        lines.extend(_response_lines(step))
        shape = _shape_asserts(step.response_json, step, known) if step.has_response_json else []
        if shape or budget is not None:
            if "[Asserts]" not in lines:
                lines.append("[Asserts]")
            lines.extend(shape)
            if budget is not None:
                lines.append(f"duration < {budget}")
        blocks.append("\n".join(lines) + "\n")
    text = "\n".join(blocks)
    captures = tuple(name for step in steps for name, _ in step.captures)
    secret_vars = {value: var for value, var in values.variables.items() if var.name not in captures}
    _check_no_secret(text, secret_vars)
    used = (var.name for var in secret_vars.values() if "{{" + var.name + "}}" in text)
    return GeneratedTest(text=text, secrets=tuple(dict.fromkeys(used)), captures=captures)


def _check_no_secret(text: str, secret_vars: Mapping[str, Var]) -> None:
    """The last guard: a captured secret written literally is a bug that must not ship a file.
    (Placeholders are not values: the secret `secret` may well be `{{secret}}`.)"""
    text = re.sub(r"\{\{[^{}]*\}\}", "{{}}", text)
    for value, var in secret_vars.items():
        if len(value) >= 4 and re.search(_bounded(value), text):
            raise ValueError(f"internal error: the value of secret {var.name!r} would be written; not generating")


def _captured_from(steps: Sequence[_Step]) -> set[str]:
    return {name for step in steps for name, _ in step.captures}


def test_from_exchange(
    exchange: CapturedExchange,
    *,
    latency_p95_ms: float | None = None,
    secrets: RedactionRules = DEFAULT_RULES,
) -> GeneratedTest:
    """A one-step test of `exchange`; `latency_p95_ms`: its endpoint's observed p95."""
    p95s = {endpoint_of(exchange): latency_p95_ms} if latency_p95_ms is not None else {}
    return test_from_exchanges([exchange], latency_p95_ms=p95s, secrets=secrets)


# Keep pytest from collecting the two public functions as tests when a test module imports them.
test_from_exchange.__test__ = False  # type: ignore[attr-defined]
test_from_exchanges.__test__ = False  # type: ignore[attr-defined]
