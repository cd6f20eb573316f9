"""The search language: text -> Query. Pure: no I/O, no SQL (storage.search_sql compiles it).

    status:5xx service:identity -path:/health* "connection reset" OR timeout

Terms AND together; `OR` between two terms makes them alternatives (OR binds
tighter than the implicit AND: `a b OR c` is a AND (b OR c)); `-term` negates.
Values may be quoted: `body:"not found"`, `header:x-note="a b"`. Bare words and
quoted phrases are free text over the URL and the decoded text bodies.

A bad query raises QueryError(message, position): one line, and the 0-based
character position of the offending term in the input.
"""

from __future__ import annotations

import datetime as dt
import decimal
import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from storage.errors import Invalid

__all__ = ["FIELDS", "MAX_QUERY_LENGTH", "Query", "QueryError", "Term", "parse_query", "text_tokens", "words_only"]

FIELDS = (
    "method", "status", "service", "host", "path", "header", "req.header", "res.header", "duration", "size",
    "since", "after", "before", "trace", "is", "has", "body", "test", "fault",
    "mock", "violation",
)  # fmt: skip
MAX_QUERY_LENGTH = 2000
"""Longer queries are refused: a search is typed by a person, and each term costs a join."""
IS_VALUES = ("error", "replay", "websocket", "test", "fault", "mock", "violation")
HAS_VALUES = ("body",)
HEADER_VALUE_MAX = 256
"""Header values are indexed (and compared) on their first HEADER_VALUE_MAX characters."""

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1024,
    "k": 1024,
    "mb": 1024**2,
    "m": 1024**2,
    "gb": 1024**3,
    "g": 1024**3,
}
_DURATION_UNITS = {"": 1.0, "ms": 1.0, "s": 1000.0}
_SINCE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_COMPARE = re.compile(r"(>=|<=|>|<|=)?(.*)", re.DOTALL)
_NUMBER = re.compile(r"(\d+(?:\.\d+)?|\.\d+)([a-z]*)")
_FIELD = re.compile(r"[A-Za-z][A-Za-z.]*")
_TOKEN = re.compile(r"[^\W_]+")
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MAX_SINCE = 1000 * 366 * 86400
_MAX_NUMBER = 1e15


class QueryError(Invalid):
    """A search query that cannot be parsed: a one-line message and where (0-based)."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        return f"{self.message} (at character {self.position})"


def text_tokens(text: str) -> tuple[str, ...]:
    """The words full-text search sees: runs of letters and digits, lowercased.

    The indexes split text the same way (see storage.search_sql), so a word means
    the same on SQLite FTS5 and PostgreSQL tsvector."""
    return tuple(token.lower() for token in _TOKEN.findall(text))


# ASCII bytes that are not letters or digits -> space; text_tokens' split, for bytes.translate.
_ASCII_SEPARATORS = bytes(c if chr(c).isalnum() else 0x20 for c in range(128)) + bytes(range(128, 256))
_SEPARATORS = re.compile(r"[\W_]+")


def words_only(text: str) -> str:
    """`text` with every character that separates words (for text_tokens) replaced by spaces.

    What the PostgreSQL indexer hands to to_tsvector, so PostgreSQL's own parser (which
    keeps URLs, e-mail addresses and hyphenated words whole) sees plain words only.
    Pure-ASCII text, nearly every body, goes through bytes.translate: 30x faster than
    a regular expression here or in PostgreSQL."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_SEPARATORS).decode("ascii")
    return _SEPARATORS.sub(" ", text)


INDEXED_FIELDS = frozenset({"text", "body", "header", "req.header", "res.header"})


@dataclass(frozen=True, slots=True)
class Term:
    """One condition. `field` is a FIELDS name or "text" (free text); `op` and `value` by field:

    method/service/trace  op "="   value str (method upper-cased, a hex trace id lower-cased)
    host/path/test/fault/mock/violation  op "=" or "glob" value str (host lower-cased; glob: `*` any run)
    status                op "range" value (low, high) inclusive, either None when open
    duration/size         op one of > >= < <= =  value float ms / int bytes
    since                 op ">=" value seconds (int); after/before: value aware UTC datetime
    header, req.header, res.header  op "present" value name, or op "=" value (name, value)
    is/has                op "=" value a word of IS_VALUES / HAS_VALUES
    body                  op "phrase" value tokens; text: op "word" (last token a prefix) or "phrase"
    """

    field: str
    op: str
    value: Any
    negated: bool = False
    position: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return ("-" if self.negated else "") + _canonical(self)


@dataclass(frozen=True, slots=True)
class Query:
    """AND of groups; each group is an OR of terms (most groups hold one term)."""

    groups: tuple[tuple[Term, ...], ...] = ()

    def __str__(self) -> str:
        return " ".join(
            " OR ".join(str(term) for term in group) for group in self.groups
        )

    @property
    def terms(self) -> tuple[Term, ...]:
        return tuple(term for group in self.groups for term in group)

    @property
    def needs_index(self) -> bool:
        """Whether it reads the search index (free text, body, headers), which lags capture."""
        return any(term.field in INDEXED_FIELDS for term in self.terms)


# -- tokenizer --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Token:
    text: str
    """Raw text as written (quotes kept), for error messages."""
    position: int
    negated: bool
    field: str | None
    value: str
    quoted: bool
    value_position: int


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """Text of the quoted string opening at text[start] == '"', and the index after it."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise QueryError("unterminated quote", start)


def _tokens(text: str) -> list[_Token | int]:
    """Terms, and the position (an int) of each OR."""
    out: list[_Token | int] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        negated = False
        if text[i] == "-" and i + 1 < n and not text[i + 1].isspace():
            negated = True
            i += 1
        if text[i] == '"':
            value, i = _read_quoted(text, i)
            if i < n and not text[i].isspace():
                raise QueryError("a quoted phrase must be followed by a space", i)
            out.append(
                _Token(
                    text[start:i], start, negated, None, value, True, start + negated
                )
            )
            continue
        j = i
        while j < n and not text[j].isspace() and text[j] != '"':
            j += 1
        word = text[i:j]
        colon = word.find(":")
        if colon > 0 and _FIELD.fullmatch(word[:colon]):
            name, value_start = word[:colon], i + colon + 1
            if j < n and text[j] == '"' and j == value_start:
                value, j = _read_quoted(text, j)
                if j < n and not text[j].isspace():
                    raise QueryError("a quoted value must be followed by a space", j)
                out.append(
                    _Token(
                        text[start:j], start, negated, name, value, True, value_start
                    )
                )
            else:
                if (
                    j < n
                    and text[j] == '"'
                    and word.endswith("=")
                    and name.lower().endswith("header")
                ):
                    value, end = _read_quoted(text, j)  # header:name="a value"
                    if end < n and not text[end].isspace():
                        raise QueryError(
                            "a quoted value must be followed by a space", end
                        )
                    out.append(
                        _Token(
                            text[start:end],
                            start,
                            negated,
                            name,
                            word[colon + 1 :] + value,
                            True,
                            value_start,
                        )
                    )
                    i = end
                    continue
                if j < n and text[j] == '"':
                    raise QueryError(
                        "quote in the middle of a value: quote the whole value", j
                    )
                out.append(
                    _Token(
                        text[start:j],
                        start,
                        negated,
                        name,
                        word[colon + 1 :],
                        False,
                        value_start,
                    )
                )
            i = j
            continue
        if j < n and text[j] == '"':
            raise QueryError("quote in the middle of a word: quote the whole phrase", j)
        if word == "OR" and not negated:
            out.append(start)
        else:
            out.append(_Token(text[start:j], start, negated, None, word, False, i))
        i = j
    return out


# -- parser -----------------------------------------------------------------------------------


def parse_query(text: str) -> Query:
    """Parse `text`; QueryError(message, position) when it is not a valid query."""
    if not isinstance(text, str):
        raise TypeError("query must be str")
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(f"query too long (at most {MAX_QUERY_LENGTH} characters)", MAX_QUERY_LENGTH)
    items = _tokens(text)
    groups: list[list[Term]] = []
    pending_or: int | None = None
    for item in items:
        if isinstance(item, int):
            if not groups or pending_or is not None:
                raise QueryError("OR needs a term on each side", item)
            pending_or = item
            continue
        term = _term(item)
        if pending_or is not None:
            groups[-1].append(term)
            pending_or = None
        else:
            groups.append([term])
    if pending_or is not None:
        raise QueryError("OR needs a term on each side", pending_or)
    return Query(tuple(tuple(group) for group in groups))


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name.lower(), FIELDS, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _term(token: _Token) -> Term:
    if token.field is None:
        return _free_text(token)
    name = token.field.lower()
    if name not in FIELDS:
        if (
            token.value.startswith("//") and not token.quoted
        ):  # a URL such as http://host/path
            return _free_text(_Token(token.text, token.position, token.negated, None,
                                     token.text[token.negated:], False, token.position))  # fmt: skip
        raise QueryError(
            f'unknown field "{token.field}"{_suggest(token.field)}', token.position
        )
    if token.value == "" and not token.quoted:
        raise QueryError(f"{name}: needs a value", token.position)
    term = _FIELD_PARSERS[name](name, token)
    return Term(term.field, term.op, term.value, token.negated, token.position)


def _free_text(token: _Token) -> Term:
    tokens = text_tokens(token.value)
    if not tokens:
        raise QueryError(
            f"nothing to search for in {token.text!r}: free text needs letters or digits",
            token.position,
        )
    return Term(
        "text",
        "phrase" if token.quoted else "word",
        tokens,
        token.negated,
        token.position,
    )


def _fail(token: _Token, message: str) -> QueryError:
    return QueryError(message, token.position)


def _method(name: str, token: _Token) -> Term:
    if not _METHOD.fullmatch(token.value):
        raise _fail(token, f"method: not an HTTP method: {token.value!r}")
    return Term(name, "=", token.value.upper())


def _status(name: str, token: _Token) -> Term:
    value = token.value.strip().lower()
    match = re.fullmatch(r"([1-9])xx", value)
    if match:
        low = int(match.group(1)) * 100
        return Term(name, "range", (low, low + 99))
    match = re.fullmatch(r"(>=|<=|>|<|=)?(\d{1,3})", value)
    if not match:
        raise _fail(
            token,
            f"status: expected a code (404), a class (5xx) or a comparison (>=400), not {token.value!r}",
        )
    op, code = match.group(1) or "=", int(match.group(2))
    bounds = {
        "=": (code, code),
        ">=": (code, None),
        ">": (code + 1, None),
        "<=": (None, code),
        "<": (None, code - 1),
    }[op]
    return Term(name, "range", bounds)


def _comparison(
    token: _Token, units: dict[str, float], what: str, example: str
) -> tuple[str, float]:
    match = _COMPARE.fullmatch(token.value.strip().lower())
    op, rest = (match.group(1) or "="), match.group(2)  # type: ignore[union-attr]
    number = _NUMBER.fullmatch(rest)
    if not number or number.group(2) not in units:
        known = ", ".join(unit for unit in units if unit)
        raise _fail(
            token,
            f"{what}: expected a comparison and a number with a unit ({known}), e.g. {example}",
        )
    value = float(number.group(1)) * units[number.group(2)]
    if not value <= _MAX_NUMBER:
        raise _fail(token, f"{what}: number too large")
    return op, value


def _duration(name: str, token: _Token) -> Term:
    op, ms = _comparison(token, _DURATION_UNITS, name, "duration:>250ms")
    return Term(name, op, ms)


def _size(name: str, token: _Token) -> Term:
    op, size = _comparison(token, _SIZE_UNITS, name, "size:>1mb")
    return Term(name, op, int(size))


_HEX = re.compile(r"[0-9a-fA-F]+")


def _plain(name: str, token: _Token) -> Term:
    value = token.value
    if name == "trace" and _HEX.fullmatch(value):
        # traceparent and B3 ids are recorded lower-case; an X-Request-ID as it came (any case).
        value = value.lower()
    return Term(name, "=", value)


def _glob(name: str, token: _Token) -> Term:
    value = token.value.lower() if name == "host" else token.value
    return Term(name, "glob" if "*" in value else "=", value)


def _since(name: str, token: _Token) -> Term:
    match = re.fullmatch(r"(\d{1,15})([smhdw])", token.value.strip().lower())
    if not match:
        raise _fail(
            token,
            f"since: expected a number and a unit (s, m, h, d, w), e.g. since:1h, not {token.value!r}",
        )
    seconds = int(match.group(1)) * _SINCE_UNITS[match.group(2)]
    if seconds > _MAX_SINCE:
        raise _fail(token, "since: too far back (at most 1000 years)")
    return Term(name, ">=", seconds)


def _instant(name: str, token: _Token) -> Term:
    value = token.value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            moment = dt.datetime.combine(
                dt.date.fromisoformat(value), dt.time(), dt.UTC
            )
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*", value):
            moment = dt.datetime.fromisoformat(value)
        else:
            raise ValueError
    except (ValueError, OverflowError):
        raise _fail(
            token,
            f"{name}: expected an ISO 8601 date or date-time, e.g. {name}:2026-11-01, not {value!r}",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        moment = moment.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        raise _fail(token, f"{name}: date out of range") from None
    return Term(name, ">=" if name == "after" else "<", moment)


def _header(name: str, token: _Token) -> Term:
    header, sep, value = token.value.partition("=")
    if not _NAME.fullmatch(header):
        raise _fail(
            token,
            f"{name}: expected a header name, e.g. {name}:x-request-id=abc or {name}:x-debug",
        )
    if not sep:
        return Term(name, "present", header.lower())
    return Term(name, "=", (header.lower(), value[:HEADER_VALUE_MAX]))


def _word(choices: tuple[str, ...]) -> Any:
    def parse(name: str, token: _Token) -> Term:
        value = token.value.lower()
        if value not in choices:
            raise _fail(
                token,
                f"{name}: expected one of {', '.join(choices)}, not {token.value!r}",
            )
        return Term(name, "=", value)

    return parse


def _body(name: str, token: _Token) -> Term:
    tokens = text_tokens(token.value)
    if not tokens:
        raise _fail(token, "body: needs letters or digits to search for")
    return Term(name, "phrase", tokens)


_FIELD_PARSERS = {
    "method": _method,
    "status": _status,
    "service": _plain,
    "host": _glob,
    "path": _glob,
    "header": _header,
    "req.header": _header,
    "res.header": _header,
    "duration": _duration,
    "size": _size,
    "since": _since,
    "after": _instant,
    "before": _instant,
    "trace": _plain,
    "is": _word(IS_VALUES),
    "has": _word(HAS_VALUES),
    "body": _body,
    "test": _glob,
    "fault": _glob,
    "mock": _glob,
    "violation": _glob,
}


# -- canonical form: parse_query(str(q)) == q -------------------------------------------------


def _quote(value: str) -> str:
    if (
        value
        and not any(c.isspace() or c == '"' for c in value)
        and value != "OR"
        and not value.startswith("-")
    ):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(value: float) -> str:
    return format(decimal.Decimal(repr(float(value))), "f")


def _canonical(term: Term) -> str:
    name, op, value = term.field, term.op, term.value
    if name == "text":
        return '"' + " ".join(value) + '"' if op == "phrase" else _text_word(value)
    if name == "body":
        return 'body:"' + " ".join(value) + '"'
    if name == "status":
        low, high = value
        if low is not None and high is not None:
            if low == high:
                return f"status:{low}"
            if low % 100 == 0 and high == low + 99 and 100 <= low <= 900:
                return f"status:{low // 100}xx"
        if high is None:
            return f"status:>={low}"
        if low is None:
            return f"status:<={high}"
        raise AssertionError("unreachable")
    if name == "duration":
        return f"duration:{'' if op == '=' else op}{_number(value)}ms"
    if name == "size":
        return f"size:{'' if op == '=' else op}{int(value)}b"
    if name == "since":
        return f"since:{value}s"
    if name in ("after", "before"):
        return f"{name}:{value.isoformat()}"
    if name.endswith("header"):
        if op == "present":
            return f"{name}:{value}"
        return f"{name}:{_quote(value[0] + '=' + value[1])}"
    return f"{name}:{_quote(value)}"


def _text_word(tokens: tuple[str, ...]) -> str:
    # A word of several tokens ("users/42") is written back with a separator that
    # keeps it one word: the tokens and their order are what matter.
    return "/".join(tokens)
