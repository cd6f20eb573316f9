"""Redact secrets from captured traffic: pure functions, no I/O.

Everything that leaves Passageway redacted goes through one function: share snapshots
(an exchange, a search, a trace), HAR exports (API and CLI) and snippets with
`redact=true` use `Redaction` (or `redact_outgoing`); with `redact_at_capture = true`
the proxy's writer applies the same two passes to each record before anything is
written (`redact_record`).

Pass 1, by name. What is redacted by default (`DEFAULT_RULES`; names compare
case-insensitively with "-", "_", "." and spaces ignored, so "api-key", "api_key",
"apiKey" and "API KEY" are one name):

- headers named in `header_names`: Authorization, Proxy-Authorization,
  Cookie, Set-Cookie, X-Api-Key;
- URL query parameters, form (x-www-form-urlencoded) fields, multipart form fields
  and JSON object members (at any depth, also inside arrays, and inside a JSON
  document kept in a JSON string) named in `field_names`: the header names above
  plus "auth" (Firebase's ?auth=, Docker's "auth"), "pwd", "pass" and "sig" (Azure
  SAS); a Rails-style "user[pwd]" matches by its last segment;
- any header, parameter, field or member whose name contains one of
  `name_substrings`: token, secret, password, passwd, passphrase, api-key,
  private-key, credential, signature (presigned URLs, webhook signatures);
- in any text (bodies of every text type, JSON strings, error messages): `name=value`
  pairs with such a name (a URL's query or a form kept in a body, a log line), and
  the userinfo of URLs;
- the signature of every JWT anywhere in text (headers, URLs, bodies): a
  `eyJ....<payload>.<signature>` keeps its header and payload, which say who
  and what, and loses only the part that makes it usable;
- the userinfo of a URL (`https://user:pass@host`) whole (tokens are often
  sent as the user name), and the query of URL-valued headers (Referer,
  Location, Content-Location).

Pass 2, by value. Each value pass 1 replaced (and, for Basic credentials, the decoded
`user:pass` and its password), and each value the rules know as secret whatever its name
(`RedactionRules.values`: the configured test secrets), is then looked for everywhere else in the same output, in
the forms a service would echo it (storage.pure.secret_forms: URL-encoded, JSON-escaped at
any depth, HTML-escaped, base64...), and replaced by the same marker. An output of many
exchanges (a search share, a HAR) follows every exchange's secrets in all of them.

How values are redacted, chosen so the shape stays debuggable:

- Authorization / Proxy-Authorization keep their scheme word ("Bearer",
  "Basic", "Digest", "AWS4-HMAC-SHA256", ...) and lose the rest whole. A value
  with no scheme word is redacted whole.
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

Bodies (decoded, i.e. Content-Encoding already undone):

- Text is read in its declared charset (UTF-8 when none is declared; bytes that are
  not valid UTF-8 are kept with surrogateescape, so every byte not replaced comes
  back exactly as it was). A charset Python does not know, or text that is not valid
  in its charset, cannot be read: such a body does not go out (`OutBody.note` says
  why) and is not stored by `redact_record`.
- JSON types, and any text whose first non-space character is "{" or "[", are
  scanned token by token without building a tree: a string followed by ":" is a key.
  The scan is iterative and lenient, so a truncated or slightly broken body still
  has every complete secret member redacted, and an unterminated secret string at
  the end is redacted to the end. Only secret tokens are replaced, each by a JSON
  string, so valid JSON stays valid with its formatting, key order and duplicate
  keys as they were. Other text is scanned the same way for `"name": value` members.
- x-www-form-urlencoded: fields as for a URL query.
- multipart/*: each part by its own type; a part whose field name is secret is
  replaced whole. On the way out, a binary part (a file upload) is replaced by a
  note; at capture it is kept with pass 2 applied to its bytes.
- Binary (not a text type and not valid UTF-8): nothing has a name. On the way out
  it is withheld (`OutBody.note`), except PNG, JPEG, GIF and WebP images, which go
  out unless an echo form of a secret is in their bytes. At capture it is kept, JWT
  signatures and pass 2's forms replaced on the bytes.

Nothing here raises on hostile input; a bad key (not non-empty bytes) raises
ValueError, as that is the caller's bug, not the traffic's.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import copy
import dataclasses
import functools
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, unquote_to_bytes

from storage.pure.decoding import DEFAULT_DECODE_LIMIT, DecodeError, decode_body
from storage.pure.record import CapturedBody, ExchangeRecord, WebSocketMessageRecord
from storage.pure.secret_forms import SecretScrubber, is_followed

__all__ = [
    "DEFAULT_RULES",
    "MARKER_RE",
    "OutBody",
    "OutExchange",
    "Redaction",
    "RedactionRules",
    "is_secret_name",
    "record_redactor",
    "redact_body",
    "redact_headers",
    "redact_outgoing",
    "redact_record",
    "redact_text",
    "redact_url",
    "redact_websocket_message",
    "rules_from_config",
]

MARKER_RE = re.compile(r"\[redacted:[0-9a-f]{8}\]")
"""What a redacted secret looks like."""


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
    values: frozenset[str] = frozenset()
    """Known secret values (the test secrets) followed everywhere by pass 2 as if pass 1 had found
    them by name; values pass 2 does not follow (secret_forms.is_followed) are not looked for."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "header_names", _names(self.header_names))
        object.__setattr__(self, "field_names", _names(self.field_names))
        object.__setattr__(self, "name_substrings", _names(self.name_substrings))
        object.__setattr__(self, "jwt", bool(self.jwt))
        if isinstance(self.values, str) or not all(isinstance(v, str) for v in self.values):
            raise TypeError("RedactionRules.values must be a collection of strings")
        object.__setattr__(self, "values", frozenset(self.values))

    def with_values(self, *values: str) -> RedactionRules:
        """Also follow these secret values wherever they appear (see `values`)."""
        return dataclasses.replace(self, values=self.values | frozenset(values))

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
        return RedactionRules(frozenset(headers), frozenset(fields), frozenset(parts), jwt, self.values)

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
        return RedactionRules(frozenset(headers), frozenset(fields), frozenset(parts), jwt, self.values)


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


def _to_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


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


class _Marks:
    """Makes markers under one key and remembers the secret behind each (pass 2 follows them)."""

    __slots__ = ("key", "hidden")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.hidden: dict[str, str] = {}
        """Secret (as text) -> its marker."""

    def __call__(self, secret: str | bytes) -> str:
        marker = _marker(secret, self.key)
        text = secret if isinstance(secret, str) else _to_text(secret)
        if is_followed(text):
            self.hidden.setdefault(text, marker)
        return marker

    def value(self, value: str) -> str:
        """`value` whole as a marker; blank values and markers stay as they are."""
        if not value.strip() or _is_marker(value):
            return value
        return self(value)

    def scrubber(self) -> SecretScrubber:
        return SecretScrubber(self.hidden)


def _marks_following(rules: RedactionRules, key: bytes) -> _Marks:
    """Marks that follow the rules' known secret values from the start (pass 2 finds them all)."""
    marks = _Marks(_check_key(key))
    for value in rules.values:
        marks(value)
    return marks


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


def is_secret_name(name: str, rules: RedactionRules) -> bool:
    """Whether a parameter, form field or JSON member of this name is redacted by `rules`
    (for summaries that must not keep such values, e.g. storage.pure.shapes' enum candidates)."""
    return _matcher(rules).secret(name, header=False)


# --- text: JWT signatures, name=value pairs, URL userinfo --------------------

_B64 = "A-Za-z0-9_-"
_JWT_RE = re.compile(rf"(?<![{_B64}])(eyJ[{_B64}]*\.[{_B64}]+\.)([{_B64}]+)")
_JWT_BYTES_RE = re.compile(_JWT_RE.pattern.encode())
_MARKER_TEXT = MARKER_RE.pattern
_PAIR_RE = re.compile(
    rf"(?<![A-Za-z0-9_.\[\]-])([A-Za-z0-9_.\[\]-]{{1,100}})=({_MARKER_TEXT}|[^\s&\"'<>\\#;]+)"
)
"""name=value in text, the value up to what ends it in a query, a cookie, a quoted string or markup."""
_TEXT_USERINFO_RE = re.compile(rf"([A-Za-z][A-Za-z0-9+.-]*://)({_MARKER_TEXT}|[^/?#@\s\"'<>\\]+)@")


def _jwt(text: str, rules: RedactionRules, marks: _Marks) -> str:
    if not rules.jwt or "eyJ" not in text:
        return text
    return _JWT_RE.sub(lambda m: m.group(1) + marks(m.group(2)), text)


def _text_secrets(text: str, rules: RedactionRules, marks: _Marks) -> str:
    """Free text (a body, a JSON string, an error message): secret `name=value` pairs,
    URL userinfo and JWT signatures."""
    if "=" in text:
        matcher = _matcher(rules)

        def pair(m: re.Match[str]) -> str:
            name, value = m.group(1), m.group(2)
            if _is_marker(value) or not matcher.secret(unquote_plus(name), header=False):
                return m.group()
            return f"{name}={marks(_field_bytes(value))}"

        text = _PAIR_RE.sub(pair, text)
    if "://" in text:
        text = _TEXT_USERINFO_RE.sub(
            lambda m: m.group() if _is_marker(m.group(2)) else m.group(1) + marks(_field_bytes(m.group(2))) + "@", text
        )
    return _jwt(text, rules, marks)


def redact_text(text: str, rules: RedactionRules, key: bytes) -> str:
    """Free text: secret name=value pairs, URL userinfo and JWT signatures replaced."""
    key = _check_key(key)
    if not isinstance(text, str):
        return text
    return _text_secrets(text, rules, _Marks(key))


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


def _follow_basic(credentials: str, marks: _Marks) -> None:
    """Basic credentials: the decoded user:pass and its password are followed too (a service
    that echoes them decoded), and the user name when there is no password (an API key
    sent as the user, as Stripe's are)."""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True)
    except (binascii.Error, ValueError):
        return
    text = _to_text(decoded)
    user, colon, password = text.partition(":")
    if not colon:
        return
    marks(text)
    marks(password if password else user)


def _redact_authorization(value: str, marks: _Marks) -> str:
    core = value.strip()
    m = _SCHEME_RE.match(core)
    if m and m.end() < len(core):
        scheme = m.group(1)
        # A scheme word is a known scheme, or letters only: never a word with digits,
        # which may be the first half of a secret that contains a space.
        if scheme.lower() in _KNOWN_SCHEMES or re.fullmatch(r"[A-Za-z-]{1,20}", scheme):
            credentials = core[m.end() :]
            if scheme.lower() == "basic" and not _is_marker(credentials):
                _follow_basic(credentials, marks)
            lead = len(value) - len(value.lstrip())
            return value[: lead + m.end()] + marks.value(credentials) + value[lead + len(core) :]
    return marks.value(value)


def _redact_pair(part: str, marks: _Marks) -> str:
    """'name=value' with the value redacted (surrounding spaces kept); a bare word whole."""
    name, eq, value = part.partition("=")
    if not eq:
        return marks.value(part)
    core = value.strip()
    if not core or _is_marker(core):
        return part
    start = value.index(core[0])
    return name + "=" + value[:start] + marks(core) + value[start + len(core) :]


def _redact_cookie(value: str, marks: _Marks) -> str:
    return ";".join(_redact_pair(part, marks) for part in value.split(";"))


def _redact_set_cookie(value: str, marks: _Marks) -> str:
    cookies = []
    for cookie in _SET_COOKIE_SPLIT.split(value):
        parts = cookie.split(";")
        out = [_redact_pair(parts[0], marks)]
        for attr in parts[1:]:
            name = attr.partition("=")[0].strip().lower()
            out.append(attr if name in _COOKIE_ATTRIBUTES else _redact_pair(attr, marks))
        cookies.append(";".join(out))
    return ",".join(cookies)


def _header_value(name: str, value: str, rules: RedactionRules, marks: _Marks) -> str:
    if _matcher(rules).secret(name, header=True):
        squashed = _squash(name)
        if squashed in ("authorization", "proxyauthorization"):
            return _redact_authorization(value, marks)
        if squashed == "cookie":
            return _redact_cookie(value, marks)
        if squashed == "setcookie":
            return _redact_set_cookie(value, marks)
        return marks.value(value)
    if _squash(name) in _URL_HEADERS:
        return _redact_url(value, rules, marks)
    return _jwt(value, rules, marks)


def _as_str(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return _to_text(bytes(value))
    return str(value)


def _redact_headers(headers: Sequence[Sequence[str]] | None, rules: RedactionRules, marks: _Marks) -> list:
    out: list = []
    for item in headers or ():
        try:
            name, value = item
        except (TypeError, ValueError):  # not a pair: nothing to go by, so hide it whole
            out.append(["", marks(_as_str(item))])
            continue
        name, value = _as_str(name), _as_str(value)
        redacted = _header_value(name, value, rules, marks)
        out.append((name, redacted) if isinstance(item, tuple) else [name, redacted])
    return out


def redact_headers(headers: Sequence[Sequence[str]] | None, rules: RedactionRules, key: bytes) -> list:
    """[name, value] or (name, value) pairs, in order with duplicates, each value redacted;
    each pair comes back as the type it came in (list or tuple). None -> []."""
    return _redact_headers(headers, rules, _Marks(_check_key(key)))


# --- URLs, queries, forms --------------------------------------------------

_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/?#@]*)@")


def _field_bytes(raw: str) -> bytes:
    """The value a form-encoded field stands for, as bytes (what its marker hashes)."""
    return unquote_to_bytes(raw.replace("+", " "))


def _redact_query(query: str, rules: RedactionRules, marks: _Marks) -> str:
    """'a=1&token=x' -> 'a=1&token=[redacted:..]'; order, blanks and encoding kept."""
    if not query:
        return query
    matcher = _matcher(rules)
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, eq, value = part.partition("=")
        if eq and value and matcher.secret(unquote_plus(name), header=False):
            if not _is_marker(unquote_plus(value)):
                parts[i] = name + "=" + marks(_field_bytes(value))
        else:
            parts[i] = _jwt(part, rules, marks)
    return "&".join(parts)


def _redact_url(url: str, rules: RedactionRules, marks: _Marks) -> str:
    rest, hash_mark, fragment = url.partition("#")
    base, question, query = rest.partition("?")
    m = _USERINFO_RE.match(base)
    if m and m.group(2) and not _is_marker(m.group(2)):
        base = m.group(1) + marks(_field_bytes(m.group(2))) + "@" + base[m.end() :]
    base = _jwt(base, rules, marks)
    query = _redact_query(query, rules, marks)
    fragment = _redact_query(fragment, rules, marks)  # OAuth implicit flow: #access_token=...
    return base + question + query + hash_mark + fragment


def redact_url(url: str, rules: RedactionRules, key: bytes) -> str:
    """A URL with secret query (and fragment) parameters, its userinfo and JWT signatures
    redacted; parameter order, blank values and the encoding of untouched parts kept."""
    key = _check_key(key)
    if not isinstance(url, str):
        return url
    return _redact_url(url, rules, _Marks(key))


# --- JSON ------------------------------------------------------------------

_JSON_TOKEN_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[^"]+', re.S)
"""Strings (an unterminated one at the end included) and the gaps between them."""
_KEY_GAP_RE = re.compile(r"\s*:")
_VALUE_START_RE = re.compile(r"\s*:\s*")
_GAP_ITEM_RE = re.compile(r"[\[\]{}]|-?[0-9][0-9.eE+-]*")
_NUMBER_RE = re.compile(r"-?[0-9][0-9.eE+-]*")
_CONTAINER_STARTS = frozenset("{[ \t\r\n\ufeff")
_UNENCODABLE_RE = re.compile("[\ud800-\udc7f\udd00-\udfff]")
_MAX_JSON_NESTING = 8
"""JSON documents kept in JSON strings are redacted this many levels deep (each level
doubles the escapes, so deeper ones are rare and costly)."""


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


def _string_marker(token: str, marks: _Marks) -> str:
    value = _json_string(token)
    if not value or _is_marker(value):
        return token
    return '"' + marks(value) + '"'


def _nested_document(token: str, rules: RedactionRules, marks: _Marks, depth: int) -> str:
    """A string token holding a JSON document (an echoed body), with that document redacted."""
    if len(token) < 3 or token[1] not in _CONTAINER_STARTS or depth >= _MAX_JSON_NESTING:
        return token  # the common case, decided by one character
    if not _LEADING_CONTAINER_RE.match(token, 1) or not _closed(token):
        return token
    value = _json_string(token)
    redacted = _redact_json(value, rules, marks, depth + 1)
    if redacted == value:
        return token
    # Lone surrogates from \uXXXX escapes go back as escapes; those standing for
    # undecodable bytes (surrogateescape) stay, so the body's bytes come back.
    return _UNENCODABLE_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(redacted, ensure_ascii=False))


def _redact_json(text: str, rules: RedactionRules, marks: _Marks, depth: int = 0) -> str:
    """Secret members of JSON text redacted token by token (see the module doc)."""
    matcher = _matcher(rules)
    tokens = _JSON_TOKEN_RE.findall(text)
    out: list[str] = []
    level = 0
    secret_level: int | None = None  # level outside the secret subtree being walked
    pending = False  # a secret key's ":" seen or expected; its value comes next
    changed = False
    count = len(tokens)
    for i, token in enumerate(tokens):
        if token[0] == '"':
            following = tokens[i + 1] if i + 1 < count else ""
            is_key = _KEY_GAP_RE.match(following) is not None
            if is_key:
                if secret_level is None and matcher.secret(_json_string(token), header=False):
                    pending = True
                out.append(token)
            elif pending or secret_level is not None:
                pending = False
                new = _string_marker(token, marks)
                changed = changed or new is not token
                out.append(new)
            else:
                new = _nested_document(token, rules, marks, depth)
                changed = changed or new is not token
                out.append(new)
            continue
        # A gap between strings: punctuation, numbers, literals, whitespace.
        if not pending and secret_level is None:
            level += token.count("{") + token.count("[") - token.count("}") - token.count("]")
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
                    secret_level = level
                elif (number := _NUMBER_RE.match(token, pos)) is not None:
                    pieces.append(token[:pos] + '"' + marks(number.group()) + '"')
                    pos = number.end()
                    changed = True
        if pos and not pieces:
            pieces.append(token[:pos])
        for item in _GAP_ITEM_RE.finditer(token, pos):
            text_item = item.group()
            pieces.append(token[pos : item.start()])
            pos = item.end()
            if text_item in "{[":
                level += 1
            elif text_item in "}]":
                level -= 1
                if secret_level is not None and level <= secret_level:
                    secret_level = None
            elif secret_level is not None:
                text_item = '"' + marks(text_item) + '"'
                changed = True
            pieces.append(text_item)
        pieces.append(token[pos:])
        out.append("".join(pieces))
    return "".join(out) if changed else text


# --- bodies ----------------------------------------------------------------

_TEXT_MARKERS = ("json", "xml", "javascript", "ecmascript", "x-www-form-urlencoded", "yaml", "graphql", "csv", "html")
_LEADING_CONTAINER_RE = re.compile(r"[\s\ufeff]*[{\[]")
_JSON_MEMBER_RE = re.compile(r'"\s*:')
_FORM = "application/x-www-form-urlencoded"
_IMAGE_TYPES = frozenset(("image/png", "image/jpeg", "image/gif", "image/webp"))
_PARAM_RE = r';\s*{}\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;]+))'
_CHARSET_RE = re.compile(_PARAM_RE.format("charset"), re.I)
_BOUNDARY_RE = re.compile(_PARAM_RE.format("boundary"), re.I)
_DISPOSITION_NAME_RE = re.compile(_PARAM_RE.format("name"), re.I)
_DISPOSITION_FILE_RE = re.compile(_PARAM_RE.format("filename"), re.I)
_PART_HEADER_RE = re.compile(r"^([!-9;-~]+)[ \t]*:[ \t]*(.*?)[ \t]*$", re.M)


class _Unreadable(ValueError):
    """A body redaction cannot read (its message says why, for the note that replaces it)."""


def _media_type(content_type: str | None) -> str:
    if not isinstance(content_type, str):
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def _param(pattern: re.Pattern[str], value: str | None) -> str | None:
    m = pattern.search(value or "")
    return None if m is None else (m.group(1) if m.group(1) is not None else m.group(2))


def _is_text_type(media: str) -> bool:
    return media.startswith("text/") or any(marker in media for marker in _TEXT_MARKERS)


def _decode_text(data: bytes, content_type: str | None) -> tuple[str, str] | None:
    """(text, codec) of a body, or None when it is binary; _Unreadable when its declared
    charset is unknown or the bytes are not valid in it. UTF-8 (the default) decodes with
    surrogateescape for text types (and UTF-8 cut short by truncation), so no byte is lost."""
    declared = _param(_CHARSET_RE, content_type if isinstance(content_type, str) else None)
    codec = "utf-8"
    if declared:
        try:
            codec = codecs.lookup(declared).name
        except LookupError:
            raise _Unreadable(f"its charset {declared[:40]!r} is unknown") from None
    if codec != "utf-8":
        try:
            return data.decode(codec), codec
        except (UnicodeDecodeError, ValueError):
            raise _Unreadable(f"it is not valid {declared[:40]}") from None
    try:
        return data.decode("utf-8"), codec
    except UnicodeDecodeError as exc:
        if _is_text_type(_media_type(content_type)) or declared or (
            exc.reason == "unexpected end of data" and exc.end == len(data)
        ):
            return data.decode("utf-8", "surrogateescape"), codec
        return None


def _encode_text(text: str, codec: str) -> bytes:
    return text.encode("utf-8", "surrogateescape") if codec == "utf-8" else text.encode(codec)


def _redact_text_body(text: str, media: str, rules: RedactionRules, marks: _Marks) -> str:
    if media == _FORM:
        return _redact_query(text, rules, marks)
    if "json" in media or _LEADING_CONTAINER_RE.match(text) or _JSON_MEMBER_RE.search(text):
        text = _redact_json(text, rules, marks)
    return _text_secrets(text, rules, marks)


def _declared_binary(media: str) -> bool:
    """A type that says binary (octet-stream, protobuf, an image...): on the way out it is not
    read as text even when its bytes happen to be UTF-8, since their names cannot be known."""
    return bool(media) and not _is_text_type(media) and not media.startswith("multipart/")


def _binary_note(size: int, media: str) -> str:
    return f"binary ({media or 'no content type'}, {size} bytes): redaction cannot read it"


def _redact_multipart(data: bytes, boundary: str, rules: RedactionRules, marks: _Marks, *, withhold: bool) -> bytes:
    """Each part of a multipart body by its own type; a part named as a secret whole; binary
    parts (file uploads) replaced by a note when `withhold`, else kept for pass 2."""
    delimiter = b"--" + _to_bytes(boundary)
    pieces = data.split(delimiter)
    out = [pieces[0]]
    for piece in pieces[1:]:
        if piece.startswith(b"--"):  # the closing delimiter and the epilogue
            out.append(piece)
            continue
        split = re.search(rb"\r?\n\r?\n", piece)
        if split is None:  # cut before its headers ended: nothing readable to keep
            out.append(piece if not piece.strip() else b"\r\n" + marks(piece).encode())
            continue
        head, content = piece[: split.end()], piece[split.end() :]
        trailer = content[len(content.rstrip(b"\r\n")) :][-2:]
        content = content[: len(content) - len(trailer)]
        headers = {m.group(1).lower(): m.group(2) for m in _PART_HEADER_RE.finditer(_to_text(head))}
        disposition = headers.get("content-disposition", "")
        name = _param(_DISPOSITION_NAME_RE, disposition)
        filename = _param(_DISPOSITION_FILE_RE, disposition)
        part_type = headers.get("content-type") or (None if filename is not None else "text/plain")
        if name and content and _matcher(rules).secret(name, header=False):
            content = marks(content).encode()
        else:
            content = _redact_part(content, part_type, rules, marks, withhold=withhold)
        out.append(head + content + trailer)
    return delimiter.join(out)


def _redact_part(data: bytes, content_type: str | None, rules: RedactionRules, marks: _Marks, *, withhold: bool) -> bytes:
    media = _media_type(content_type)
    boundary = _param(_BOUNDARY_RE, content_type) if media.startswith("multipart/") else None
    if boundary:
        return _redact_multipart(data, boundary, rules, marks, withhold=withhold)
    try:
        decoded = None if withhold and _declared_binary(media) else _decode_text(data, content_type)
    except _Unreadable:
        decoded = None
    if decoded is None:
        if not withhold:
            return _jwt_bytes(data, rules, marks)
        return f"[{_binary_note(len(data), media)}]".encode()
    text, codec = decoded
    redacted = _redact_text_body(text, media, rules, marks)
    return data if redacted == text else _encode_text(redacted, codec)


def _jwt_bytes(data: bytes, rules: RedactionRules, marks: _Marks) -> bytes:
    """JWT signatures in binary data (a token in a protobuf or msgpack message is still a token;
    the match needs "eyJ" and two dots in base64url runs, which random data does not produce)."""
    if not rules.jwt or b"eyJ" not in data:
        return data
    return _JWT_BYTES_RE.sub(lambda m: m.group(1) + marks(m.group(2)).encode(), data)


@dataclass(slots=True)
class _PendingBody:
    """A body between pass 1 (names) and pass 2 (values): text to scrub, bytes to scrub, an
    image to check, or nothing (`note` says why)."""

    text: str | None = None
    codec: str = "utf-8"
    data: bytes | None = None
    image: bool = False
    note: str | None = None


def _first_pass_body(
    data: bytes, content_type: str | None, rules: RedactionRules, marks: _Marks, *, out: bool
) -> _PendingBody:
    """Pass 1 over a decoded body. `out`: bound for a share, an export or a snippet, where what
    redaction cannot read is withheld (at capture, binary bytes are kept)."""
    media = _media_type(content_type)
    boundary = _param(_BOUNDARY_RE, content_type) if media.startswith("multipart/") else None
    if boundary:
        return _PendingBody(data=_redact_multipart(data, boundary, rules, marks, withhold=out))
    try:
        decoded = None if out and _declared_binary(media) else _decode_text(data, content_type)
    except _Unreadable as exc:
        return _PendingBody(note=f"withheld: {exc}")
    if decoded is None:
        if not out:
            return _PendingBody(data=_jwt_bytes(data, rules, marks))
        if media in _IMAGE_TYPES:
            return _PendingBody(data=data, image=True)
        return _PendingBody(note=f"withheld: {_binary_note(len(data), media)}")
    text, codec = decoded
    return _PendingBody(text=_redact_text_body(text, media, rules, marks), codec=codec)


def _second_pass_body(body: _PendingBody, scrubber: SecretScrubber, *, cut: bool) -> tuple[bytes | None, str | None]:
    """(bytes, note) after pass 2: text and bytes scrubbed; an image holding a secret withheld."""
    if body.note is not None:
        return None, body.note
    if body.image:
        assert body.data is not None
        if scrubber.found_in(body.data):
            return None, "withheld: the image holds a redacted secret"
        return body.data, None
    if body.text is not None:
        try:
            return _encode_text(scrubber.text(body.text, cut=cut), body.codec), None
        except UnicodeEncodeError:
            return None, f"withheld: it does not encode back to {body.codec}"
    assert body.data is not None
    return scrubber.bytes(body.data, cut=cut), None


def redact_body(data: bytes, content_type: str | None, rules: RedactionRules, key: bytes) -> bytes:
    """A DECODED body (Content-Encoding undone) with its secrets redacted by name (pass 1 only,
    binary bytes kept): JSON, form and multipart fields, name=value pairs in text, JWT
    signatures. The same bytes object when nothing changed; b"" when it cannot be read."""
    key = _check_key(key)
    if not isinstance(data, (bytes, bytearray)):
        return data
    data = bytes(data)
    if not data:
        return data
    try:
        pending = _first_pass_body(data, content_type, rules, _Marks(key), out=False)
        if pending.note is not None:
            return b""
        if pending.text is None:
            assert pending.data is not None
            return data if pending.data == data else pending.data
        redacted = _encode_text(pending.text, pending.codec)
        return data if redacted == data else redacted
    except Exception:  # pragma: no cover - a bug must not leak the body: hide it whole
        return _marker(data, key).encode()


# --- exchanges going out: shares, HAR, snippets ------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutBody:
    """A body on its way out of Passageway: DECODED bytes (Content-Encoding undone), or none."""

    data: bytes | None
    """None: nothing of it may go out (`note` says why)."""
    content_type: str | None = None
    truncated: bool = False
    """Cut short (at capture, or by the output), so a secret may end it cut in two."""
    note: str | None = None
    """Why `data` is None, e.g. "withheld: binary (application/x-protobuf, 52 bytes): ..."."""


@dataclass(frozen=True, slots=True)
class OutExchange:
    """One exchange on its way out: the detail dict of storage.queries.get_exchange and its bodies."""

    detail: dict
    request_body: OutBody | None = None
    response_body: OutBody | None = None


_DETAIL_TEXTS = ("host", "path", "reason", "caller", "request_id")
"""Detail fields pass 2 also scrubs (ids, times and sizes are never secrets' echoes)."""


def _first_pass_detail(detail: dict, rules: RedactionRules, marks: _Marks) -> dict:
    out = copy.deepcopy(detail)
    if isinstance(out.get("url"), str):
        out["url"] = _redact_url(out["url"], rules, marks)
    if isinstance(out.get("query"), str):
        out["query"] = _redact_query(out["query"], rules, marks)
    if isinstance(out.get("path"), str):
        out["path"] = _jwt(out["path"], rules, marks)
    for side in ("request_headers", "response_headers"):
        if isinstance(out.get(side), list):
            out[side] = _redact_headers(out[side], rules, marks)
    error = out.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        error["message"] = _text_secrets(error["message"], rules, marks)
    if isinstance(out.get("har"), dict):  # an imported HAR's own facts: a page title is often a URL
        out["har"] = _map_strings(out["har"], lambda text: _text_secrets(text, rules, marks))
    return out


def _map_strings(value: object, change: Callable[[str], str]) -> Any:
    """Every string in a JSON-like value changed (dict keys are names, left as they are)."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {key: _map_strings(item, change) for key, item in value.items()}
    if isinstance(value, list):
        return [_map_strings(item, change) for item in value]
    return value


def _scrub_headers(headers: list, scrubber: SecretScrubber) -> list:
    return [
        type(pair)((scrubber.text(pair[0]), scrubber.text(pair[1])))
        if isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str) and isinstance(pair[1], str)
        else pair
        for pair in headers
    ]


def _second_pass_detail(detail: dict, scrubber: SecretScrubber) -> dict:
    for name in ("url", "query", *_DETAIL_TEXTS):
        if isinstance(detail.get(name), str):
            detail[name] = scrubber.text(detail[name])
    for side in ("request_headers", "response_headers"):
        if isinstance(detail.get(side), list):
            detail[side] = _scrub_headers(detail[side], scrubber)
    error = detail.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        error["message"] = scrubber.text(error["message"])
    if isinstance(detail.get("tags"), list):
        detail["tags"] = [scrubber.text(tag) if isinstance(tag, str) else tag for tag in detail["tags"]]
    if isinstance(detail.get("har"), dict):
        detail["har"] = _map_strings(detail["har"], scrubber.text)
    return detail


class Redaction:
    """One output's redaction (a share, a HAR, a snippet): the one way anything leaves redacted.

    `add` each exchange (pass 1: by name, remembering every value it hides), then `finish`
    (pass 2: every hidden value, in every echo form, replaced wherever it appears in any of
    the exchanges). `scrub` applies pass 2 to other text that goes out with them (a share's
    search). Bodies redaction cannot read come back with data None and a note.
    """

    def __init__(self, rules: RedactionRules, key: bytes) -> None:
        self._rules = rules
        self._marks = _marks_following(rules, key)
        self._pending: list[tuple[dict, dict[str, tuple[OutBody, _PendingBody] | None]]] = []
        self._scrubber: SecretScrubber | None = None

    def add(self, exchange: OutExchange) -> None:
        if self._scrubber is not None:
            raise RuntimeError("Redaction.add after finish")
        detail = _first_pass_detail(exchange.detail, self._rules, self._marks)
        bodies: dict[str, tuple[OutBody, _PendingBody] | None] = {}
        for side, body in (("request", exchange.request_body), ("response", exchange.response_body)):
            bodies[side] = None if body is None else (body, self._first_pass(body))
        self._pending.append((detail, bodies))

    def header_value(self, name: str, value: str) -> str:
        """A header value as pass 1 redacts it (for a search term naming a header)."""
        return _header_value(name, value, self._rules, self._marks)

    def finish(self) -> list[OutExchange]:
        scrubber = self._scrubber = self._marks.scrubber()
        out = []
        for detail, bodies in self._pending:
            finished: dict[str, OutBody | None] = {}
            for side, pair in bodies.items():
                if pair is None:
                    finished[side] = None
                    continue
                body, pending = pair
                data, note = _second_pass_body(pending, scrubber, cut=body.truncated)
                finished[side] = dataclasses.replace(body, data=data, note=note if data is None else body.note)
            out.append(OutExchange(_second_pass_detail(detail, scrubber), finished["request"], finished["response"]))
        self._pending = []
        return out

    def scrub(self, text: str) -> str:
        if self._scrubber is None:
            raise RuntimeError("Redaction.scrub before finish")
        return self._scrubber.text(text)

    def _first_pass(self, body: OutBody) -> _PendingBody:
        if body.data is None:
            return _PendingBody(note=body.note or "withheld: it could not be read")
        try:
            return _first_pass_body(bytes(body.data), body.content_type, self._rules, self._marks, out=True)
        except Exception:  # pragma: no cover - a bug must not leak the body: withhold it
            return _PendingBody(note="withheld: it could not be redacted")


def redact_outgoing(exchanges: Iterable[OutExchange], rules: RedactionRules, key: bytes) -> list[OutExchange]:
    """Every exchange redacted, each one's secrets followed in all of them (see Redaction)."""
    redaction = Redaction(rules, key)
    for exchange in exchanges:
        redaction.add(exchange)
    return redaction.finish()


# --- records at capture (redact_at_capture) ---------------------------------------------------


def _pending_captured(
    body: CapturedBody | None, rules: RedactionRules, marks: _Marks, decode_limit: int
) -> tuple[CapturedBody, _PendingBody | None, bytes | None] | None:
    """(body, its pass-1 state or None when kept as captured, the decoded bytes) of a record's body.

    - Not Content-Encoded: redacted in place (size, truncated, content_type kept).
    - Encoded, decoded completely, nothing to redact: kept as captured, still encoded.
    - Encoded and redacted, or encoded and truncated: the redacted DECODED bytes with
      encoding=None. `size` stays the wire size (what was received), so it may now be
      smaller than len(data); the Content-Encoding header stays in the headers, which
      record what was sent. A truncated encoded body is always stored decoded: the
      undecodable tail of a cut-off stream was never scanned and may hold plain text
      (zstd and brotli keep literals uncompressed).
    - Unreadable (unknown or corrupt encoding, more than `decode_limit` bytes decoded, an
      unknown charset): the data is dropped (b"", encoding=None, truncated=True, size kept),
      whatever its type: bytes that could not be scanned are not stored.
    """
    if body is None:
        return None
    data = bytes(body.data)
    encoded = bool(body.encoding and body.encoding.strip() and body.encoding.strip().lower() != "identity")
    decoded: bytes | None = data
    if encoded:
        try:
            decoded = decode_body(data, body.encoding, partial=body.truncated, limit=decode_limit)
        except DecodeError:
            decoded = None
        if decoded is not None and not decoded and data:
            decoded = None
    if decoded is None:
        return body, _PendingBody(note="undecodable"), None
    if not decoded:
        return body, None, decoded
    return body, _first_pass_body(decoded, body.content_type, rules, marks, out=False), decoded


def _finish_captured(
    state: tuple[CapturedBody, _PendingBody | None, bytes | None] | None, scrubber: SecretScrubber
) -> CapturedBody | None:
    if state is None:
        return None
    body, pending, decoded = state
    if pending is None:
        return body
    data, _ = _second_pass_body(pending, scrubber, cut=body.truncated)
    if data is None:
        return dataclasses.replace(body, data=b"", encoding=None, truncated=True)
    encoded = bool(body.encoding and body.encoding.strip() and body.encoding.strip().lower() != "identity")
    if data == decoded and (not encoded or not body.truncated):
        return body
    return dataclasses.replace(body, data=data, encoding=None)


def redact_record(
    record: ExchangeRecord, rules: RedactionRules, key: bytes, *, decode_limit: int = DEFAULT_DECODE_LIMIT
) -> ExchangeRecord:
    """A copy of `record` redacted for storage (redact_at_capture, and imports under it), by the
    same two passes as everything that goes out: path, query, host, reason, headers, bodies
    (see _pending_captured for how a redacted body is recorded), error message, tags and an
    imported HAR's own facts. The input record is not changed."""
    marks = _marks_following(rules, key)
    try:
        request_headers = _redact_headers(record.request_headers, rules, marks)
        response_headers = (
            None if record.response_headers is None else _redact_headers(record.response_headers, rules, marks)
        )
        query = _redact_query(record.query, rules, marks)
        path = _jwt(record.path, rules, marks)
        error = None if record.error_message is None else _text_secrets(record.error_message, rules, marks)
        har = None if record.har is None else _map_strings(record.har, lambda text: _text_secrets(text, rules, marks))
        request_body = _pending_captured(record.request_body, rules, marks, decode_limit)
        response_body = _pending_captured(record.response_body, rules, marks, decode_limit)
        scrub = marks.scrubber()
        return dataclasses.replace(
            record,
            host=scrub.text(record.host),
            path=scrub.text(path),
            query=scrub.text(query),
            reason=None if record.reason is None else scrub.text(record.reason),
            request_headers=_scrub_headers(request_headers, scrub),
            response_headers=None if response_headers is None else _scrub_headers(response_headers, scrub),
            request_body=_finish_captured(request_body, scrub),
            response_body=_finish_captured(response_body, scrub),
            error_message=None if error is None else scrub.text(error),
            tags=[scrub.text(tag) for tag in record.tags],
            har=None if har is None else _map_strings(har, scrub.text),
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
    the size received. (Each message is redacted alone: values redacted in the handshake
    or other messages are not followed into it.)"""
    key = _check_key(key)
    content_type = "text/plain" if message.kind in ("text", "close") else None
    data = redact_body(bytes(message.data), content_type, rules, key)
    return message if data is message.data else dataclasses.replace(message, data=data)


def record_redactor(
    rules: RedactionRules, key: bytes, *, decode_limit: int = DEFAULT_DECODE_LIMIT
) -> Callable[[ExchangeRecord | WebSocketMessageRecord], object]:
    """For ExchangeWriter(transform=...): every record redacted before it is written."""
    key = _check_key(key)

    def redact(record: ExchangeRecord | WebSocketMessageRecord) -> object:
        if isinstance(record, ExchangeRecord):
            return redact_record(record, rules, key, decode_limit=decode_limit)
        return redact_websocket_message(record, rules, key)

    return redact
