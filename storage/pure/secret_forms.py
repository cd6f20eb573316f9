"""The forms a secret takes when a service echoes it, and a scrubber that finds them all: pure.

Redaction by name (storage.pure.redaction) finds a password in a JSON field, a token in a
header. Services send such values back in other places and other encodings: httpbin's
`/anything` returns the raw request body as a JSON *string* and the whole URL; an error
page repeats the token it rejected; a redirect carries it in a `Location` query. So each
value redacted by name is followed: `echo_forms()` lists the forms it can take and
`SecretScrubber` replaces every one of them, anywhere in the text, by the marker of the
value itself (the same keyed hash, so one secret reads the same everywhere).

The forms, combined as services combine them:
- as is;
- URL-encoded the ways encoders do it: every reserved character (`quote(s, safe="")`),
  Python's default (`/` kept), JavaScript's encodeURIComponent and encodeURI, form
  encoding (space as `+`, and the WHATWG variant that also encodes `~`); with upper- or
  lower-case hex; and encoded twice (a URL in another URL's query);
- JSON-string-escaped, one to three levels deep (a JSON document in a JSON string in a
  body), with non-ASCII as `\\uXXXX` (either hex case) or raw, and `/` as `\\/` or raw;
  a URL-encoded form JSON-escaped one or two levels deep (httpbin's "url" echoed in
  another JSON string); a JSON-escaped form URL-encoded (JSON in a query parameter);
- HTML-escaped, as is or URL-encoded (`&quot;`, `&#x27;`...);
- base64 and base64url, with and without padding, of the whole value (Basic
  credentials are `base64(user:pass)`), as is, URL-encoded or JSON-escaped; and, for
  values of 8 characters or more, the part of the base64 text that the value alone
  decides at each of the three alignments, so the value is found inside any base64
  blob that holds it.

Limits (the README says them too): a value shorter than MIN_FOLLOWED characters is not
followed (every "a" or "42" would go); nor are the words true, false, null and
authentication scheme names. A service that transforms a secret otherwise (hashes it,
changes its case, splits it) can still leak it.
"""

from __future__ import annotations

import base64
import bisect
import functools
import html
import json
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus

import ahocorasick

__all__ = ["MIN_FOLLOWED", "SecretScrubber", "echo_forms", "is_followed"]

MIN_FOLLOWED = 4
"""Values shorter than this (after trimming) are redacted where they stand but not followed."""

MAX_FORMS_PER_SECRET = 512
LONG_SECRET = 4096
MAX_FORM_CHARS = 4_000_000
"""Characters of forms one scrubber holds (its automaton's memory): every secret's own form
always, the encoded forms while they fit, secret by secret (`SecretScrubber.complete`)."""
_MIN_BASE64_FRAGMENT = 8
_FEW_FORMS = 64
_NOT_FOLLOWED = frozenset(("true", "false", "null", "none", "bearer", "basic", "digest", "negotiate", "token"))

_MARKER = r"\[redacted:[0-9a-f]{8}\]"


def is_followed(value: str) -> bool:
    """Whether a redacted value is also looked for elsewhere (see the limits above)."""
    core = value.strip()
    return len(core) >= MIN_FOLLOWED and core.lower() not in _NOT_FOLLOWED and re.fullmatch(_MARKER, core) is None


# --- forms ---------------------------------------------------------------------------------------

_HEX_RE = re.compile(r"%[0-9A-F]{2}")
_UNRESERVED_RE = re.compile(r"[A-Za-z0-9_.-]*")
_JSON_PLAIN_RE = re.compile(r"[ !#-.0-\[\]-~]*")
"""Printable ASCII but the quote, the slash and the backslash: what no JSON writer escapes."""
_UNICODE_ESCAPE_RE = re.compile(r"\\u[0-9a-f]{4}")


def _url_forms(value: str) -> set[str]:
    """`value` as the common URL and form encoders write it (upper- and lower-case hex)."""
    if _UNRESERVED_RE.fullmatch(value):  # most tokens: no encoder changes them
        return {value}
    forms = {
        quote(value, safe="", errors="surrogatepass"),
        quote(value, safe="/", errors="surrogatepass"),
        quote(value, safe="!'()*", errors="surrogatepass"),  # encodeURIComponent
        quote(value, safe=";,/?:@&=+$!'()*#", errors="surrogatepass"),  # encodeURI
        quote_plus(value, safe="", errors="surrogatepass"),
        quote_plus(value, safe="*", errors="surrogatepass").replace("~", "%7E"),  # WHATWG forms
    }
    forms |= {_HEX_RE.sub(lambda m: m.group().lower(), form) for form in forms}
    return forms


def _json_forms(value: str) -> set[str]:
    """`value` inside a JSON string, as JSON writers escape it."""
    if _JSON_PLAIN_RE.fullmatch(value):
        return {value}
    ascii_form = json.dumps(value, ensure_ascii=True)[1:-1]
    forms = {ascii_form, json.dumps(value, ensure_ascii=False)[1:-1]}
    forms.add(_UNICODE_ESCAPE_RE.sub(lambda m: "\\u" + m.group()[2:].upper(), ascii_form))
    forms |= {form.replace("/", "\\/") for form in forms}
    return forms


def _base64_forms(value: str) -> set[str]:
    data = value.encode("utf-8", "surrogatepass")
    forms = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(data).decode("ascii")
        forms |= {whole, whole.rstrip("=")}
        if len(data) < _MIN_BASE64_FRAGMENT:
            continue
        for shift in (0, 1, 2):
            # The characters whose 6 bits all come from `data` when it starts `shift` bytes
            # into a 3-byte group: the same in any base64 text that holds `data` there.
            text = encode(b"\0" * shift + data).decode("ascii")
            first = -(-8 * shift // 6)
            last = 8 * (shift + len(data)) // 6
            fragment = text[first:last]
            if len(fragment) >= _MIN_BASE64_FRAGMENT:
                forms.add(fragment)
    return forms


def echo_forms(secret: str) -> tuple[str, ...]:
    """The forms `secret` may take in an echo (see the module doc), the likeliest first, at
    most MAX_FORMS_PER_SECRET. A value longer than LONG_SECRET (a key file, a large blob)
    is followed as is, JSON-escaped and in base64 only."""
    if len(secret) > LONG_SECRET:
        forms = dict.fromkeys((secret, *_json_forms(secret), *_base64_forms(secret)))
        return tuple(forms)
    return _echo_forms(secret)


@functools.lru_cache(maxsize=4096)
def _echo_forms(secret: str) -> tuple[str, ...]:
    forms: dict[str, None] = {secret: None}

    def add(values: Iterable[str]) -> None:
        for value in values:
            if len(forms) < MAX_FORMS_PER_SECRET:
                forms.setdefault(value)

    def json_levels(values: Iterable[str], depth: int) -> None:
        level = set(values)
        for _ in range(depth):
            level = {escaped for value in level for escaped in _json_forms(value)}
            add(sorted(level))

    url_once = _url_forms(secret)
    add(sorted(url_once))
    json_levels([secret], 3)  # JSON in a JSON string in a JSON string
    base64_forms = _base64_forms(secret)
    add(sorted(base64_forms))
    add(sorted(html.escape(form) for form in (secret, *url_once)))
    json_levels(url_once, 2)  # a URL in a JSON body, itself echoed in a JSON string
    add(sorted(encoded for form in _json_forms(secret) for encoded in _url_forms(form)))  # JSON in a query
    add(sorted(twice for form in url_once for twice in _url_forms(form)))  # a URL in another URL's query
    add(sorted(encoded for form in base64_forms for encoded in _url_forms(form)))
    json_levels(base64_forms, 1)  # PHP's json_encode writes "/" as "\\/"
    return tuple(forms)


# --- scrubbing -----------------------------------------------------------------------------------


class SecretScrubber:
    """Replaces every echo form of the given secrets by the secret's marker.

    `markers` maps each secret (as redacted) to its marker. Forms are found by one
    Aho-Corasick automaton (pyahocorasick), leftmost-longest, in time linear in the text
    whatever the secrets (hostile traffic chooses them). Existing markers are left as they
    are, so a secret that happens to look like part of a marker cannot mangle one.
    """

    __slots__ = ("_by_form", "_text", "_latin1", "complete")

    def __init__(self, markers: Mapping[str, str]) -> None:
        followed = [(secret, marker) for secret, marker in markers.items() if is_followed(secret)]
        by_form = {secret: marker for secret, marker in followed}
        budget = MAX_FORM_CHARS - sum(map(len, by_form))
        self.complete = True
        """False when some encoded forms did not fit in MAX_FORM_CHARS (each secret is still
        followed as it is)."""
        for secret, marker in followed:
            for form in echo_forms(secret):
                if form in by_form:
                    continue
                if len(form) > budget:
                    self.complete = False
                    break
                by_form[form] = marker
                budget -= len(form)
        self._by_form = by_form
        self._text: _Matcher | None = _Matcher(by_form) if by_form else None
        self._latin1: _Matcher | None = None

    def __bool__(self) -> bool:
        return self._text is not None

    def text(self, value: str, *, cut: bool = False) -> str:
        """`value` with every echo form replaced. `cut`: the text was cut short, so a form's
        beginning at its very end (a secret cut in two) is replaced too."""
        if self._text is None or not value:
            return value
        return self._text.scrub(value, cut=cut)

    def bytes(self, data: bytes, *, cut: bool = False) -> bytes:
        """The same on bytes (forms in UTF-8): binary data keeps every other byte as it was."""
        if self._text is None or not data:
            return data
        if self._latin1 is None:
            # One character per byte, so the UTF-8 bytes of each form match as text.
            self._latin1 = _Matcher(
                {form.encode("utf-8", "surrogatepass").decode("latin-1"): marker for form, marker in self._by_form.items()}
            )
        return self._latin1.scrub(data.decode("latin-1"), cut=cut).encode("latin-1")

    def found_in(self, data: bytes) -> bool:
        """Whether any echo form occurs in `data` (for bodies that are withheld rather than edited)."""
        return self._text is not None and self.bytes(data) != data


_MARKER_SPLIT_RE = re.compile(f"({_MARKER})")


class _Matcher:
    """Forms -> markers. A few forms are looked for one by one first (str `in` is fast, and
    most text holds none of them); the automaton is built on first need."""

    __slots__ = ("by_form", "_automaton", "_sorted", "_longest")

    def __init__(self, by_form: Mapping[str, str]) -> None:
        self.by_form = dict(by_form)
        self._automaton: ahocorasick.Automaton | None = None
        self._sorted: list[str] | None = None
        self._longest = max(map(len, self.by_form))

    def scrub(self, value: str, *, cut: bool) -> str:
        if len(self.by_form) > _FEW_FORMS or any(form in value for form in self.by_form):
            pieces = _MARKER_SPLIT_RE.split(value)  # odd pieces are markers: kept whole
            value = "".join(piece if i % 2 else self._replace(piece) for i, piece in enumerate(pieces))
        return self._cut_tail(value) if cut else value

    def _replace(self, text: str) -> str:
        if not text:
            return text
        if self._automaton is None:
            self._automaton = ahocorasick.Automaton()
            for form, marker in self.by_form.items():
                self._automaton.add_word(form, (len(form), marker))
            self._automaton.make_automaton()
        out = []
        pos = 0
        for end, (length, marker) in self._automaton.iter_long(text):
            start = end - length + 1
            out.append(text[pos:start])
            out.append(marker)
            pos = end + 1
        if not out:
            return text
        out.append(text[pos:])
        return "".join(out)

    def _cut_tail(self, value: str) -> str:
        """A form's first MIN_FOLLOWED or more characters ending `value`: replaced from there."""
        if self._sorted is None:
            self._sorted = sorted(self.by_form)
        for start in range(max(0, len(value) - self._longest), len(value) - MIN_FOLLOWED + 1):
            tail = value[start:]
            i = bisect.bisect_left(self._sorted, tail)
            if i < len(self._sorted) and self._sorted[i].startswith(tail):
                return value[:start] + self.by_form[self._sorted[i]]
        return value
