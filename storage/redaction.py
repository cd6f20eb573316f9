"""Redact secrets from captured traffic: pure functions, no I/O.

Share pages, exports and share-viewer streams show a redacted copy of an
exchange; with `redact_at_capture = true` the proxy applies the same rules to
the record before anything is written (`redact_record`).

What is redacted by default (`DEFAULT_RULES`; names compare case-insensitively
with "-", "_", "." and spaces ignored, so "api-key", "api_key", "apiKey" and
"API KEY" are one name):

- headers named in `header_names`: Authorization, Proxy-Authorization,
  Cookie, Set-Cookie, X-Api-Key;
- URL query parameters, form (x-www-form-urlencoded) fields and JSON object
  members (at any depth, also inside arrays) named in `field_names`: the
  header names above plus "auth" (Firebase's ?auth=, Docker's "auth"),
  "pwd", "pass" and "sig" (Azure SAS); a Rails-style "user[pwd]" matches by its
  last segment;
- any header, parameter, field or member whose name contains one of
  `name_substrings`: token, secret, password, passwd, passphrase, api-key,
  private-key, credential, signature (presigned URLs, webhook signatures);
- the signature of every JWT anywhere in text (headers, URLs, bodies): a
  `eyJ....<payload>.<signature>` keeps its header and payload, which say who
  and what, and loses only the part that makes it usable;
- the userinfo of a URL (`https://user:pass@host`) whole (tokens are often
  sent as the user name), and the query of URL-valued headers (Referer,
  Location, Content-Location).

How values are redacted, chosen so the shape stays debuggable:

- Authorization / Proxy-Authorization keep their scheme word ("Bearer",
  "Basic", "Digest", "AWS4-HMAC-SHA256", ...) and lose the rest whole: Basic
  credentials are not decoded to keep the user name. A value with no scheme
  word is redacted whole.
- Cookie keeps every cookie name and redacts each value; Set-Cookie keeps the
  cookie name and the attributes it knows (Path, Domain, Expires, Max-Age,
  Secure, HttpOnly, SameSite, ...) and redacts the value and any unknown
  attribute's value.
- Other matching values are replaced whole. A JSON member's string or number
  becomes a marker string; under an object or array every string and number
  leaf does, while keys, true/false/null and the structure stay. Empty values
  stay empty: there is nothing to hide and "it was empty" helps debugging.

Each secret becomes `[redacted:3f9a1c2b]`: the 8 hex digits are the first 4
bytes of HMAC-SHA256(key, secret), so equal secrets show equal markers (the
same token in a header and in a later request correlates) without revealing
them. 32 bits is for correlation at a glance, not uniqueness: different
secrets collide once in about 65 000 pairs. Anyone holding the key can confirm
a guessed low-entropy secret (a password) against a marker, so the key must be
guarded like the data it protects. A value that already is a marker is left as
it is, which makes redaction idempotent.

Bodies (`redact_body`, decoded, i.e. Content-Encoding already undone):

- JSON types, and any text body whose first non-space character is "{" or
  "[", are scanned token by token without building a tree: a string followed
  by ":" is a key. The scan is iterative (any nesting depth costs no stack and
  is redacted precisely; nothing is replaced wholesale) and lenient, so a
  truncated or slightly broken body still has every complete secret member
  redacted, and an unterminated secret string at the end is redacted to the
  end. Only secret tokens are replaced, each by a JSON string, so valid JSON
  stays valid with its formatting, key order and duplicate keys as they were.
- x-www-form-urlencoded: fields as for a URL query.
- Other text: JWT signatures only.
- Binary (not a text type and not valid UTF-8): returned unchanged except for
  JWT signatures, matched on the bytes (a binary body has no names to match,
  but a token in a protobuf or msgpack message is still a token; the match
  needs "eyJ" and two dots in base64url runs, which random binary data does
  not produce).
- Text that is not valid UTF-8 is decoded with surrogateescape, so every byte
  not replaced comes back exactly as it was.

Nothing here raises on hostile input; a bad key (not non-empty bytes) raises
ValueError, as that is the caller's bug, not the traffic's.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote_plus, unquote_to_bytes

from storage.decoding import DecodeError, decode_body
from storage.record import CapturedBody, ExchangeRecord, WebSocketMessageRecord

__all__ = [
    "DEFAULT_RULES",
    "record_redactor",
    "MARKER_RE",
    "RECORD_DECODE_LIMIT",
    "RedactionRules",
    "redact_body",
    "redact_exchange",
    "redact_headers",
    "redact_record",
    "redact_text",
    "redact_url",
    "redact_websocket_message",
    "rules_from_config",
]

MARKER_RE = re.compile(r"\[redacted:[0-9a-f]{8}\]")
"""What a redacted secret looks like."""

RECORD_DECODE_LIMIT = 64 * 1024 * 1024
"""redact_record decodes at most this many bytes of a body; a body that decodes to
more (a decompression bomb) is treated as undecodable and its data dropped."""

_MAX_ENTRY = 100
_MIN_SUBSTRING = 3
_JWT_ENTRY = "jwt"


def _squash(name: str) -> str:
    """The form names compare in: lowercase, without - _ . and spaces."""
    return re.sub(r"[-_. ]", "", name.lower())


def _parse_entry(entry: object) -> tuple[str, str]:
    """A config entry -> ("name" | "substring" | "jwt", normalized value); ValueError when absurd."""
    if not isinstance(entry, str):
        raise ValueError(f"redaction entry must be a string, not {type(entry).__name__}: {entry!r}")
    text = entry.strip()
    if not text:
        raise ValueError("empty redaction entry")
    if len(text) > _MAX_ENTRY:
        raise ValueError(f"redaction entry longer than {_MAX_ENTRY} characters: {text[:40]!r}...")
    if not text.isprintable():
        raise ValueError(f"redaction entry has control characters: {text!r}")
    lowered = text.lower()
    if lowered == _JWT_ENTRY:
        return "jwt", _JWT_ENTRY
    if "*" in text:
        inner = text[1:-1]
        if len(text) < 3 or not (text.startswith("*") and text.endswith("*")) or "*" in inner:
            raise ValueError(f"redaction entry {text!r}: only '*part*' patterns (a name containing 'part') are supported")
        if len(_squash(inner)) < _MIN_SUBSTRING:
            raise ValueError(
                f"redaction entry {text!r}: a name part needs at least {_MIN_SUBSTRING} letters or digits, "
                "shorter ones would redact almost everything"
            )
        return "substring", inner.strip().lower()
    if not _squash(text):
        raise ValueError(f"redaction entry {text!r} has no letters or digits")
    return "name", lowered


def _names(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise TypeError(f"expected a collection of names, not the string {value!r}")
    return frozenset(str(v).strip().lower() for v in value)


@dataclass(frozen=True, slots=True)
class RedactionRules:
    """What to redact. Names are stored lowercase and compared squashed (see the module doc)."""

    header_names: frozenset[str]
    """Headers redacted by exact name."""
    field_names: frozenset[str]
    """Query parameters, form fields and JSON members redacted by exact name."""
    name_substrings: frozenset[str]
    """Any header, parameter, field or member whose name contains one of these."""
    jwt: bool = True
    """Replace the signature of JWTs found anywhere in text."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "header_names", _names(self.header_names))
        object.__setattr__(self, "field_names", _names(self.field_names))
        object.__setattr__(self, "name_substrings", _names(self.name_substrings))
        object.__setattr__(self, "jwt", bool(self.jwt))

    def with_added(self, *entries: str) -> RedactionRules:
        """Also redact: "x-session" (a header, parameter or field by name), "*session*"
        (any name containing it), "jwt" (JWT signatures). ValueError for an absurd entry."""
        headers, fields, parts, jwt = set(self.header_names), set(self.field_names), set(self.name_substrings), self.jwt
        for entry in entries:
            kind, value = _parse_entry(entry)
            if kind == "jwt":
                jwt = True
            elif kind == "substring":
                parts.add(value)
            else:
                headers.add(value)
                fields.add(value)
        return RedactionRules(frozenset(headers), frozenset(fields), frozenset(parts), jwt)

    def without(self, *entries: str) -> RedactionRules:
        """Stop redacting: entries as for with_added. ValueError for an entry that is not
        among the rules (most likely a typo, which would otherwise be silently ignored)."""
        headers, fields, parts, jwt = set(self.header_names), set(self.field_names), set(self.name_substrings), self.jwt
        for entry in entries:
            kind, value = _parse_entry(entry)
            if kind == "jwt":
                jwt = False
                continue
            if kind == "substring":
                found = {p for p in parts if _squash(p) == _squash(value)}
                if not found:
                    raise ValueError(f"redaction entry {entry!r}: no rule redacts names containing {value!r}")
                parts -= found
                continue
            key = _squash(value)
            found_h = {h for h in headers if _squash(h) == key}
            found_f = {f for f in fields if _squash(f) == key}
            if not found_h and not found_f:
                hint = ""
                matching = sorted(p for p in parts if _squash(p) in key)
                if matching:
                    hint = f"; it is redacted because it contains {matching[0]!r}: remove '*{matching[0]}*' instead"
                raise ValueError(f"redaction entry {entry!r} is not redacted by name{hint}")
            headers -= found_h
            fields -= found_f
        return RedactionRules(frozenset(headers), frozenset(fields), frozenset(parts), jwt)


_DEFAULT_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key")

DEFAULT_RULES = RedactionRules(
    header_names=frozenset(_DEFAULT_HEADERS),
    field_names=frozenset((*_DEFAULT_HEADERS, "auth", "pwd", "pass", "sig")),
    name_substrings=frozenset(
        ("token", "secret", "password", "passwd", "passphrase", "api-key", "private-key", "credential", "signature")
    ),
    jwt=True,
)


def rules_from_config(add: Sequence[str], remove: Sequence[str]) -> RedactionRules:
    """DEFAULT_RULES with config's `redact_add` and `redact_remove` applied.

    Entries: "x-session" (a header / parameter / field name), "*session*" (names
    containing it), "jwt" (JWT signatures). ValueError, naming the entry, for an
    empty, overlong or unknown entry, a too-short part, or an entry in both lists."""
    if isinstance(add, str) or isinstance(remove, str):
        raise ValueError("redact_add and redact_remove must be lists of strings, not a string")
    both = {_parse_entry(e) for e in add} & {_parse_entry(e) for e in remove}
    if both:
        raise ValueError(f"redaction entries both added and removed: {sorted(v for _, v in both)}")
    return DEFAULT_RULES.with_added(*add).without(*remove)


# --- markers ---------------------------------------------------------------


def _check_key(key: object) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or not key:
        raise ValueError("the redaction key must be non-empty bytes")
    return bytes(key)


def _to_bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return text.encode("utf-8", "surrogatepass")


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes) -> hmac.HMAC:
    """The HMAC state after the key: copied per secret instead of re-keyed."""
    return hmac.new(key, digestmod=hashlib.sha256)


def _marker(secret: str | bytes, key: bytes) -> str:
    mac = _keyed(key).copy()
    mac.update(_to_bytes(secret) if isinstance(secret, str) else secret)
    return f"[redacted:{mac.hexdigest()[:8]}]"


def _is_marker(value: str) -> bool:
    return MARKER_RE.fullmatch(value) is not None


def _redact_value(value: str, key: bytes) -> str:
    """`value` whole as a marker; blank values and markers stay as they are."""
    if not value.strip() or _is_marker(value):
        return value
    return _marker(value, key)


# --- names -----------------------------------------------------------------


class _Matcher:
    """Name -> secret? for one RedactionRules, with a bounded cache of answers."""

    __slots__ = ("cache", "headers", "fields", "parts")

    def __init__(self, rules: RedactionRules) -> None:
        self.headers = frozenset(_squash(n) for n in rules.header_names)
        self.fields = frozenset(_squash(n) for n in rules.field_names)
        self.parts = tuple(sorted({_squash(p) for p in rules.name_substrings} - {""}))
        self.cache: dict[tuple[str, bool], bool] = {}

    def secret(self, name: str, *, header: bool) -> bool:
        hit = self.cache.get((name, header))
        if hit is not None:
            return hit
        squashed = _squash(name)
        if header:
            result = squashed in self.headers
        else:
            last = re.findall(r"[^\[\]]+", name)  # Rails/PHP style user[password]
            result = squashed in self.fields or bool(last and _squash(last[-1]) in self.fields)
        result = result or any(p in squashed for p in self.parts)
        if len(self.cache) < 10_000:  # names come from the traffic: bounded
            self.cache[(name, header)] = result
        return result


@functools.lru_cache(maxsize=32)
def _matcher(rules: RedactionRules) -> _Matcher:
    return _Matcher(rules)


# --- text: JWT signatures ---------------------------------------------------

_B64 = "A-Za-z0-9_-"
_JWT_RE = re.compile(rf"(?<![{_B64}])(eyJ[{_B64}]*\.[{_B64}]+\.)([{_B64}]+)")
_JWT_BYTES_RE = re.compile(_JWT_RE.pattern.encode())


def _jwt(text: str, rules: RedactionRules, key: bytes) -> str:
    if not rules.jwt or "eyJ" not in text:
        return text
    return _JWT_RE.sub(lambda m: m.group(1) + _marker(m.group(2), key), text)


def redact_text(text: str, rules: RedactionRules, key: bytes) -> str:
    """Free text: JWT signatures replaced (there are no names to go by)."""
    key = _check_key(key)
    if not isinstance(text, str):
        return text
    return _jwt(text, rules, key)


# --- headers ---------------------------------------------------------------

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9._+-]{0,39})\s+")
_KNOWN_SCHEMES = frozenset(
    ("basic", "bearer", "digest", "negotiate", "ntlm", "token", "hoba", "mutual", "vapid", "dpop", "oauth", "apikey",
     "aws4-hmac-sha256", "scram-sha-1", "scram-sha-256", "gnap", "privatetoken", "sswsa", "ssws", "jwt")
)  # fmt: skip
_COOKIE_ATTRIBUTES = frozenset(
    ("path", "domain", "expires", "max-age", "secure", "httponly", "samesite", "partitioned", "priority",
     "version", "comment")
)  # fmt: skip
_SET_COOKIE_SPLIT = re.compile(r",(?=\s*[^\s=;,]+=)")
"""Folded Set-Cookie values: a comma starts a new cookie only when "name=" follows
(the comma in "Expires=Wed, 21 Oct 2026" is followed by a day number)."""
_URL_HEADERS = frozenset(("referer", "location", "contentlocation"))


def _redact_authorization(value: str, key: bytes) -> str:
    core = value.strip()
    m = _SCHEME_RE.match(core)
    if m and m.end() < len(core):
        scheme = m.group(1)
        # A scheme word is a known scheme, or letters only: never a word with digits,
        # which may be the first half of a secret that contains a space.
        if scheme.lower() in _KNOWN_SCHEMES or re.fullmatch(r"[A-Za-z-]{1,20}", scheme):
            lead = len(value) - len(value.lstrip())
            return value[: lead + m.end()] + _redact_value(core[m.end() :], key) + value[lead + len(core) :]
    return _redact_value(value, key)


def _redact_pair(part: str, key: bytes) -> str:
    """'name=value' with the value redacted (surrounding spaces kept); a bare word whole."""
    name, eq, value = part.partition("=")
    if not eq:
        return _redact_value(part, key)
    core = value.strip()
    if not core or _is_marker(core):
        return part
    start = value.index(core[0])
    return name + "=" + value[:start] + _marker(core, key) + value[start + len(core) :]


def _redact_cookie(value: str, key: bytes) -> str:
    return ";".join(_redact_pair(part, key) for part in value.split(";"))


def _redact_set_cookie(value: str, key: bytes) -> str:
    cookies = []
    for cookie in _SET_COOKIE_SPLIT.split(value):
        parts = cookie.split(";")
        out = [_redact_pair(parts[0], key)]
        for attr in parts[1:]:
            name = attr.partition("=")[0].strip().lower()
            out.append(attr if name in _COOKIE_ATTRIBUTES else _redact_pair(attr, key))
        cookies.append(";".join(out))
    return ",".join(cookies)


def _header_value(name: str, value: str, rules: RedactionRules, key: bytes) -> str:
    if _matcher(rules).secret(name, header=True):
        squashed = _squash(name)
        if squashed in ("authorization", "proxyauthorization"):
            return _redact_authorization(value, key)
        if squashed == "cookie":
            return _redact_cookie(value, key)
        if squashed == "setcookie":
            return _redact_set_cookie(value, key)
        return _redact_value(value, key)
    if _squash(name) in _URL_HEADERS:
        return _redact_url(value, rules, key)
    return _jwt(value, rules, key)


def _as_str(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "surrogateescape")
    return str(value)


def redact_headers(headers: Sequence[Sequence[str]] | None, rules: RedactionRules, key: bytes) -> list:
    """[name, value] or (name, value) pairs, in order with duplicates, each value redacted;
    each pair comes back as the type it came in (list or tuple). None -> []."""
    key = _check_key(key)
    out: list = []
    for item in headers or ():
        try:
            name, value = item
        except (TypeError, ValueError):  # not a pair: nothing to go by, so hide it whole
            out.append(["", _marker(_as_str(item), key)])
            continue
        name, value = _as_str(name), _as_str(value)
        redacted = _header_value(name, value, rules, key)
        out.append((name, redacted) if isinstance(item, tuple) else [name, redacted])
    return out


# --- URLs, queries, forms --------------------------------------------------

_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/?#@]*)@")


def _field_bytes(raw: str) -> bytes:
    """The value a form-encoded field stands for, as bytes (what its marker hashes)."""
    return unquote_to_bytes(raw.replace("+", " "))


def _redact_query(query: str, rules: RedactionRules, key: bytes) -> str:
    """'a=1&token=x' -> 'a=1&token=[redacted:..]'; order, blanks and encoding kept."""
    if not query:
        return query
    matcher = _matcher(rules)
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, eq, value = part.partition("=")
        if eq and value and matcher.secret(unquote_plus(name), header=False):
            if not _is_marker(unquote_plus(value)):
                parts[i] = name + "=" + _marker(_field_bytes(value), key)
        else:
            parts[i] = _jwt(part, rules, key)
    return "&".join(parts)


def _redact_url(url: str, rules: RedactionRules, key: bytes) -> str:
    rest, hash_mark, fragment = url.partition("#")
    base, question, query = rest.partition("?")
    m = _USERINFO_RE.match(base)
    if m and m.group(2) and not _is_marker(m.group(2)):
        base = m.group(1) + _marker(_field_bytes(m.group(2)), key) + "@" + base[m.end() :]
    base = _jwt(base, rules, key)
    query = _redact_query(query, rules, key)
    fragment = _redact_query(fragment, rules, key)  # OAuth implicit flow: #access_token=...
    return base + question + query + hash_mark + fragment


def redact_url(url: str, rules: RedactionRules, key: bytes) -> str:
    """A URL with secret query (and fragment) parameters, its userinfo and JWT signatures
    redacted; parameter order, blank values and the encoding of untouched parts kept."""
    key = _check_key(key)
    if not isinstance(url, str):
        return url
    return _redact_url(url, rules, key)


# --- JSON ------------------------------------------------------------------

_JSON_TOKEN_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[^"]+', re.S)
"""Strings (an unterminated one at the end included) and the gaps between them."""
_KEY_GAP_RE = re.compile(r"\s*:")
_VALUE_START_RE = re.compile(r"\s*:\s*")
_GAP_ITEM_RE = re.compile(r"[\[\]{}]|-?[0-9][0-9.eE+-]*")
_NUMBER_RE = re.compile(r"-?[0-9][0-9.eE+-]*")


def _closed(token: str) -> bool:
    """Whether a string token ends with its closing quote (not an escaped one)."""
    if len(token) < 2 or token[-1] != '"':
        return False
    body = token[1:-1]
    return (len(body) - len(body.rstrip("\\"))) % 2 == 0


def _json_string(token: str) -> str:
    """The text a JSON string token stands for (raw inner text when malformed)."""
    inner = token[1:-1] if _closed(token) else token[1:]
    if "\\" not in inner:
        return inner
    try:
        return json.loads('"' + inner + '"')
    except ValueError:
        return inner


def _string_marker(token: str, key: bytes) -> str:
    value = _json_string(token)
    if not value or _is_marker(value):
        return token
    return '"' + _marker(value, key) + '"'


def _redact_json(text: str, rules: RedactionRules, key: bytes) -> str:
    """Secret members of JSON text redacted token by token (see the module doc)."""
    matcher = _matcher(rules)
    tokens = _JSON_TOKEN_RE.findall(text)
    out: list[str] = []
    depth = 0
    secret_depth: int | None = None  # depth outside the secret subtree being walked
    pending = False  # a secret key's ":" seen or expected; its value comes next
    changed = False
    count = len(tokens)
    for i, token in enumerate(tokens):
        if token[0] == '"':
            following = tokens[i + 1] if i + 1 < count else ""
            is_key = _KEY_GAP_RE.match(following) is not None
            if is_key:
                if secret_depth is None and matcher.secret(_json_string(token), header=False):
                    pending = True
                out.append(token)
            elif pending or secret_depth is not None:
                pending = False
                new = _string_marker(token, key)
                changed = changed or new is not token
                out.append(new)
            else:
                out.append(token)
            continue
        # A gap between strings: punctuation, numbers, literals, whitespace.
        if not pending and secret_depth is None:
            depth += token.count("{") + token.count("[") - token.count("}") - token.count("]")
            out.append(token)
            continue
        pieces = []
        pos = 0
        if pending:
            start = _VALUE_START_RE.match(token)
            if start is None:
                pending = False
            else:
                pos = start.end()
                if pos == len(token):  # the value is the next string
                    out.append(token)
                    continue
                pending = False
                head = token[pos]
                if head in "{[":
                    secret_depth = depth
                elif (number := _NUMBER_RE.match(token, pos)) is not None:
                    pieces.append(token[:pos] + '"' + _marker(number.group(), key) + '"')
                    pos = number.end()
                    changed = True
        if pos and not pieces:
            pieces.append(token[:pos])
        for item in _GAP_ITEM_RE.finditer(token, pos):
            text_item = item.group()
            pieces.append(token[pos : item.start()])
            pos = item.end()
            if text_item in "{[":
                depth += 1
            elif text_item in "}]":
                depth -= 1
                if secret_depth is not None and depth <= secret_depth:
                    secret_depth = None
            elif secret_depth is not None:
                text_item = '"' + _marker(text_item, key) + '"'
                changed = True
            pieces.append(text_item)
        pieces.append(token[pos:])
        out.append("".join(pieces))
    return "".join(out) if changed else text


# --- bodies ----------------------------------------------------------------

_TEXT_MARKERS = ("json", "xml", "javascript", "ecmascript", "x-www-form-urlencoded", "yaml", "graphql", "csv", "html")
_LEADING_CONTAINER_RE = re.compile(r"[\s\ufeff]*[{\[]")


def _media_type(content_type: str | None) -> str:
    if not isinstance(content_type, str):
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def _is_text_type(media: str) -> bool:
    return media.startswith("text/") or any(marker in media for marker in _TEXT_MARKERS)


def _as_text(data: bytes, textish: bool) -> str | None:
    """The body as text, or None when it is binary. Text types (and UTF-8 cut short by
    truncation) decode with surrogateescape, so no byte is lost."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if textish or (exc.reason == "unexpected end of data" and exc.end == len(data)):
            return data.decode("utf-8", "surrogateescape")
        return None


def _redact_text_body(text: str, media: str, rules: RedactionRules, key: bytes) -> str:
    if "json" in media or _LEADING_CONTAINER_RE.match(text):
        text = _redact_json(text, rules, key)
    elif media == "application/x-www-form-urlencoded":
        text = _redact_query(text, rules, key)
    return _jwt(text, rules, key)


def _redact_body(data: bytes, content_type: str | None, rules: RedactionRules, key: bytes) -> bytes:
    if not data:
        return data
    media = _media_type(content_type)
    text = _as_text(data, _is_text_type(media))
    if text is None:
        if not rules.jwt or b"eyJ" not in data:
            return data
        return _JWT_BYTES_RE.sub(lambda m: m.group(1) + _marker(m.group(2), key).encode(), data)
    redacted = _redact_text_body(text, media, rules, key)
    if redacted == text:
        return data
    return redacted.encode("utf-8", "surrogateescape")


def redact_body(data: bytes, content_type: str | None, rules: RedactionRules, key: bytes) -> bytes:
    """A DECODED body (Content-Encoding undone) with its secrets redacted: JSON and form
    fields by name, JWT signatures everywhere. The same bytes object when nothing changed."""
    key = _check_key(key)
    if not isinstance(data, (bytes, bytearray)):
        return data
    data = bytes(data)
    try:
        return _redact_body(data, content_type, rules, key)
    except Exception:  # pragma: no cover - a bug must not leak the body: hide it whole
        return _marker(data, key).encode()


# --- exchanges and records -------------------------------------------------


def redact_exchange(detail: dict, rules: RedactionRules, key: bytes) -> dict:
    """A deep copy of an exchange detail dict (storage.queries.get_exchange) with url,
    query, path, headers and the error message redacted. Bodies are not in the dict:
    pass them through redact_body."""
    key = _check_key(key)
    out = copy.deepcopy(detail)
    if not isinstance(out, dict):
        return out
    if isinstance(out.get("url"), str):
        out["url"] = _redact_url(out["url"], rules, key)
    if isinstance(out.get("query"), str):
        out["query"] = _redact_query(out["query"], rules, key)
    if isinstance(out.get("path"), str):
        out["path"] = _jwt(out["path"], rules, key)
    for side in ("request_headers", "response_headers"):
        if isinstance(out.get(side), list):
            out[side] = redact_headers(out[side], rules, key)
    error = out.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        error["message"] = _jwt(error["message"], rules, key)
    return out


def _redact_captured(body: CapturedBody | None, rules: RedactionRules, key: bytes) -> CapturedBody | None:
    """A captured body with its secrets redacted, never with an unscanned byte kept.

    - Not Content-Encoded: redacted in place (size, truncated, content_type kept).
    - Encoded, decoded completely, nothing to redact: kept as captured, still encoded.
    - Encoded and redacted, or encoded and truncated: the redacted DECODED bytes with
      encoding=None. `size` stays the wire size (what was received), so it may now be
      smaller than len(data); the Content-Encoding header stays in the headers, which
      record what was sent. A truncated encoded body is always stored decoded: the
      undecodable tail of a cut-off stream was never scanned and may hold plain text
      (zstd and brotli keep literals uncompressed).
    - Undecodable (unknown or corrupt encoding, or more than RECORD_DECODE_LIMIT
      decoded): the data is dropped (b"", encoding=None, truncated=True, size kept),
      whatever its type: bytes that could not be scanned are not stored.
    """
    if body is None:
        return None
    data = bytes(body.data)
    if not body.encoding or not body.encoding.strip() or body.encoding.strip().lower() == "identity":
        redacted = _redact_body(data, body.content_type, rules, key)
        return body if redacted is data else dataclasses.replace(body, data=redacted)
    try:
        decoded = decode_body(data, body.encoding, partial=body.truncated, limit=RECORD_DECODE_LIMIT)
    except DecodeError:
        decoded = None
    if decoded is None or (not decoded and data):
        return dataclasses.replace(body, data=b"", encoding=None, truncated=True)
    redacted = _redact_body(decoded, body.content_type, rules, key)
    if redacted is decoded and not body.truncated:
        return body
    return dataclasses.replace(body, data=redacted, encoding=None)


def redact_record(record: ExchangeRecord, rules: RedactionRules, key: bytes) -> ExchangeRecord:
    """A copy of `record` redacted for storage (redact_at_capture): path, query, headers,
    bodies (see _redact_captured for how a redacted body is recorded) and the error
    message. The input record is not changed."""
    key = _check_key(key)
    try:
        return dataclasses.replace(
            record,
            path=_jwt(record.path, rules, key),
            query=_redact_query(record.query, rules, key),
            request_headers=redact_headers(record.request_headers, rules, key),
            response_headers=(
                None if record.response_headers is None else redact_headers(record.response_headers, rules, key)
            ),
            request_body=_redact_captured(record.request_body, rules, key),
            response_body=_redact_captured(record.response_body, rules, key),
            error_message=None if record.error_message is None else _jwt(record.error_message, rules, key),
            tags=list(record.tags),
        )
    except Exception:  # pragma: no cover - a bug must not let secrets through: keep no data
        return dataclasses.replace(
            record,
            path="/",
            query="",
            request_headers=[],
            response_headers=None if record.response_headers is None else [],
            request_body=None,
            response_body=None,
            error_message=None,
        )


def redact_websocket_message(
    message: WebSocketMessageRecord, rules: RedactionRules, key: bytes
) -> WebSocketMessageRecord:
    """A copy of a captured WebSocket message redacted like a body: text frames as text
    (JSON sniffed), binary frames as binary, a close reason as free text. `size` stays
    the size received."""
    key = _check_key(key)
    content_type = "text/plain" if message.kind in ("text", "close") else None
    data = redact_body(bytes(message.data), content_type, rules, key)
    return message if data is message.data else dataclasses.replace(message, data=data)



def record_redactor(rules: RedactionRules, key: bytes) -> Callable[[ExchangeRecord | WebSocketMessageRecord], object]:
    """For ExchangeWriter(transform=...): every record redacted before it is written."""
    key = _check_key(key)

    def redact(record: ExchangeRecord | WebSocketMessageRecord) -> object:
        if isinstance(record, ExchangeRecord):
            return redact_record(record, rules, key)
        return redact_websocket_message(record, rules, key)

    return redact
