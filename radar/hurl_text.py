"""Writing Hurl syntax: each helper turns values into text that Hurl reads back as exactly
those values. Pure, no I/O.

A value is a `Text`: literal strings and `Var`s (`{{name}}` placeholders) in order. Literal
text never becomes a placeholder: Hurl starts a template at two *unescaped* `{` (its parser
compares the source spelling, not the decoded character), so every `{` that is followed by
another `{` or by a placeholder is written escaped (`\\u{7b}` in Hurl strings, `\\u007b` in
JSON strings). Escapes follow Hurl's grammar (https://hurl.dev/docs/grammar.html):
quoted strings escape `"` and `\\`; one-line values (header values, URLs, `[Query]` and
`[Form]` values) escape `#` (a comment otherwise) and `\\`; keys escape `#` and `:` and
spell any character outside `[A-Za-z0-9_.\\-\\[\\]@$]` as `\\u{hex}`; multi-line strings
escape `\\` and the backquote. Control characters are escaped everywhere.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "Text",
    "Var",
    "base64_body",
    "json_body",
    "key_string",
    "multiline_body",
    "placeholder",
    "quoted",
    "value_string",
]

_VARIABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Var:
    """A `{{name}}` placeholder."""

    name: str

    def __post_init__(self) -> None:
        if not _VARIABLE_NAME.fullmatch(self.name):
            raise ValueError(f"invalid Hurl variable name {self.name!r}")


Text = str | Var | Sequence[str | Var]
"""A value to write: a literal, a placeholder, or both in order."""


def placeholder(name: str) -> str:
    return f"{{{{{Var(name).name}}}}}"


def _parts(text: Text) -> list[str | Var]:
    if isinstance(text, (str, Var)):
        return [text]
    return list(text)


def _unicode(char: str) -> str:
    return f"\\u{{{ord(char):x}}}"


def _write(text: Text, escape_char) -> str:
    """Literal parts through `escape_char(char, next_char)`, placeholders as `{{name}}`."""
    parts = _parts(text)
    out: list[str] = []
    for index, part in enumerate(parts):
        if isinstance(part, Var):
            out.append(placeholder(part.name))
            continue
        following = parts[index + 1] if index + 1 < len(parts) else None
        after = "{" if isinstance(following, Var) else (following[:1] if following else "")
        for position, char in enumerate(part):
            next_char = part[position + 1] if position + 1 < len(part) else after
            out.append(escape_char(char, next_char))
    return "".join(out)


_COMMON_ESCAPES = {"\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _control(char: str) -> bool:
    """Control characters (C0, DEL, C1), lone surrogates and the line and paragraph separators:
    never written raw, so that every line break in the text is one Hurl (and str.splitlines)
    sees as such, and nothing invisible hides in a value."""
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF or code in (0x2028, 0x2029)


def _escape_common(char: str, next_char: str) -> str | None:
    if char in _COMMON_ESCAPES:
        return _COMMON_ESCAPES[char]
    if char == "{" and next_char == "{":
        return _unicode(char)
    if _control(char):
        return _unicode(char) if not 0xD800 <= ord(char) <= 0xDFFF else _unicode("\ufffd")
    return None


def quoted(text: Text) -> str:
    """A Hurl quoted string: `"..."` (header names in queries, JSONPath, predicate values)."""

    def escape(char: str, next_char: str) -> str:
        if char == '"':
            return '\\"'
        return _escape_common(char, next_char) or char

    return '"' + _write(text, escape) + '"'


def value_string(text: Text) -> str:
    """A one-line value after `key:` or a method: a header value, a URL, a [Query]/[Form] value.

    Hurl trims spaces around it, so leading and trailing spaces are written escaped."""

    def escape(char: str, next_char: str) -> str:
        if char == "#":
            return "\\#"
        return _escape_common(char, next_char) or char

    written = _write(text, escape)
    stripped = written.lstrip(" ")
    written = _unicode(" ") * (len(written) - len(stripped)) + stripped
    stripped = written.rstrip(" ")
    return stripped + _unicode(" ") * (len(written) - len(stripped))


_KEY_CHARACTER = re.compile(r"[A-Za-z0-9_.\-\[\]@$]")


def key_string(text: Text) -> str:
    """The key of a header, a [Query]/[Form] field, a cookie or a capture name."""

    def escape(char: str, next_char: str) -> str:
        if char in "#:":
            return "\\" + char
        if _KEY_CHARACTER.fullmatch(char):
            return char
        return _escape_common(char, next_char) or _unicode(char)

    written = _write(text, escape)
    if not written:
        raise ValueError("a Hurl key cannot be empty")
    return written


def multiline_body(text: Text) -> str:
    """A ``` multi-line string holding exactly `text` (no newline is added at its end)."""

    def escape(char: str, next_char: str) -> str:
        if char == "`":
            return "\\`"
        if char == "\n":
            return "\n"
        return _escape_common(char, next_char) or char

    return "```\n" + _write(text, escape) + "```"


def base64_body(data: bytes) -> str:
    return f"base64,{base64.b64encode(data).decode('ascii')};"


# --- JSON --------------------------------------------------------------------

JsonValue = object
"""Parsed JSON (dict, list, str, int, float, bool, None) where any value may also be a
`Var` (written bare: `{{n}}`, typed) or a tuple of str/Var parts (a string with placeholders)."""


def _json_string(text: Text) -> str:
    def escape(char: str, next_char: str) -> str:
        if char == "{" and next_char == "{":
            return "\\u007b"
        if 0xD800 <= ord(char) <= 0xDFFF:
            return "\\ufffd"
        if _control(char) and char not in _COMMON_ESCAPES:
            return f"\\u{ord(char):04x}"
        return json.dumps(char, ensure_ascii=False)[1:-1]

    return '"' + _write(text, escape) + '"'


def _json_lines(value: JsonValue, indent: int, out: list[str], prefix: str, suffix: str) -> None:
    pad = "  " * indent
    if isinstance(value, Mapping):
        if not value:
            out.append(f"{pad}{prefix}{{}}{suffix}")
            return
        out.append(f"{pad}{prefix}{{")
        items = list(value.items())
        for index, (key, item) in enumerate(items):
            comma = "," if index < len(items) - 1 else ""
            _json_lines(item, indent + 1, out, f"{_json_string(key)}: ", comma)
        out.append(f"{pad}}}{suffix}")
    elif isinstance(value, list):
        if not value:
            out.append(f"{pad}{prefix}[]{suffix}")
            return
        out.append(f"{pad}{prefix}[")
        for index, item in enumerate(value):
            _json_lines(item, indent + 1, out, "", "," if index < len(value) - 1 else "")
        out.append(f"{pad}]{suffix}")
    else:
        out.append(f"{pad}{prefix}{_json_scalar(value)}{suffix}")


def _json_scalar(value: JsonValue) -> str:
    if isinstance(value, Var):
        return placeholder(value.name)
    if isinstance(value, (str, tuple)):
        return _json_string(value)
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value, allow_nan=False)
    raise TypeError(f"not a JSON value: {value!r}")


def json_body(value: JsonValue) -> str:
    """A JSON body, pretty (two spaces), keys in their order."""
    out: list[str] = []
    _json_lines(value, 0, out, "", "")
    return "\n".join(out)
