"""The Hurl file parser (https://hurl.dev/docs/grammar.html): text in, `radar.model.HurlFile` out.

Pure and hand-written, line by line with a cursor inside each line, following Hurl's grammar
for the subset Passageway runs. Every Hurl construct outside that subset is refused with
`FILE:LINE:COL: unsupported: <construct>` at the construct, so a test never silently checks
less than its author wrote.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, replace

from radar.model import (
    NULL,
    Assert,
    Body,
    Capture,
    Entry,
    Filter,
    HurlFile,
    KeyValue,
    Options,
    Placeholder,
    Predicate,
    PredicateValue,
    Query,
    Regex,
    Request,
    Response,
    Template,
)

__all__ = ["HurlError", "parse_hurl"]


class HurlError(ValueError):
    """A file that is not valid Hurl, or uses Hurl that Passageway does not run."""

    def __init__(self, filename: str, line: int, column: int, message: str) -> None:
        super().__init__(f"{filename}:{line}:{column}: {message}")
        self.filename = filename
        self.line = line
        self.column = column
        self.message = message


_METHOD = re.compile(r"[A-Z]+(?=[ \t])")
_SECTION = re.compile(r"\[([A-Za-z]+)\][ \t]*(#.*)?$")
_RESPONSE = re.compile(r"HTTP(/1\.0|/1\.1|/2|/3|/\*)?(?=[ \t]|$)")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*|==|!=|>=|<=|>|<")
_DURATION = re.compile(r"(\d+)(ms|s|m)?")

_REQUEST_SECTIONS = {
    "Query": "query",
    "QueryStringParams": "query",
    "Form": "form",
    "FormParams": "form",
    "Cookies": "cookies",
    "BasicAuth": "basic_auth",
    "Options": "options",
}
_RESPONSE_SECTIONS = {"Captures", "Asserts"}
_UNSUPPORTED_SECTIONS = {"Multipart", "MultipartFormData"}

_QUERIES_WITHOUT_ARGUMENT = {"status", "version", "url", "body", "bytes", "sha256", "md5", "duration"}
_QUERIES_WITH_STRING = {"header", "cookie", "jsonpath"}
_UNSUPPORTED_QUERIES = {"xpath", "variable", "certificate", "ip", "redirects", "rawbytes"}

_PREDICATES_WITH_VALUE = {"==", "!=", ">", ">=", "<", "<=", "contains", "startsWith", "endsWith", "matches"}
_PREDICATES_WITHOUT_VALUE = {"exists", "isInteger", "isFloat", "isString", "isBoolean", "isCollection", "isEmpty"}
_UNSUPPORTED_PREDICATES = {
    "equals", "notEquals", "greaterThan", "greaterThanOrEquals", "lessThan", "lessThanOrEquals", "includes",
    "isNumber", "isDate", "isIsoDate", "isList", "isObject", "isIpv4", "isIpv6", "isUuid",
}  # fmt: skip
_FUNCTIONS = {"newUuid", "newDate", "getEnv"}

_QUOTED_ESCAPES = {'"': '"', "\\": "\\", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_VALUE_ESCAPES = {"#": "#", "\\": "\\", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_BACKTICK_ESCAPES = {"`": "`", "\\": "\\", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "#": "#"}
_KEY_ESCAPES = {":": ":", "#": "#", "\\": "\\", " ": " ", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def parse_hurl(text: str, filename: str = "<text>") -> HurlFile:
    """Parse a Hurl file; raises HurlError with the position of the first problem."""
    return _Parser(text, filename).parse_file()


@dataclass
class _Cursor:
    """A position inside one line: `pos` is a 0-based index into `text`."""

    text: str
    line: int
    pos: int = 0

    @property
    def column(self) -> int:
        return self.pos + 1

    @property
    def rest(self) -> str:
        return self.text[self.pos :]

    def peek(self, size: int = 1) -> str:
        return self.text[self.pos : self.pos + size]

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def skip_spaces(self) -> int:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1
        return self.pos - start

    def at_line_end(self) -> bool:
        """Only spaces and an optional `# comment` remain."""
        rest = self.rest.lstrip(" \t")
        return not rest or rest.startswith("#")


class _TemplateBuilder:
    """Accumulates literal text and placeholders into a Template."""

    def __init__(self, line: int, column: int) -> None:
        self.parts: list[str | Placeholder] = []
        self.text: list[str] = []
        self.line = line
        self.column = column

    def add_text(self, text: str) -> None:
        self.text.append(text)

    def flush(self) -> None:
        text = "".join(self.text)
        if text:
            self.parts.append(text)
        self.text = []

    def add_placeholder(self, placeholder: Placeholder) -> None:
        self.flush()
        self.parts.append(placeholder)

    def build(self) -> Template:
        self.flush()
        return Template(tuple(self.parts), self.line, self.column)


class _Parser:
    def __init__(self, text: str, filename: str) -> None:
        self.filename = filename
        self.lines = [line.removesuffix("\r") for line in text.split("\n")]
        self.index = 0  # the next line to read, 0-based

    # -- errors and lines -------------------------------------------------------------------------

    def error(self, line: int, column: int, message: str) -> HurlError:
        return HurlError(self.filename, line, column, message)

    def unsupported(self, line: int, column: int, construct: str) -> HurlError:
        return self.error(line, column, f"unsupported: {construct}")

    def skip_blank_lines(self) -> None:
        while self.index < len(self.lines):
            stripped = self.lines[self.index].lstrip(" \t")
            if stripped and not stripped.startswith("#"):
                return
            self.index += 1

    def current(self) -> _Cursor | None:
        """The next meaningful line (blank lines and comments skipped), positioned at its text."""
        self.skip_blank_lines()
        if self.index >= len(self.lines):
            return None
        cursor = _Cursor(self.lines[self.index], self.index + 1)
        cursor.skip_spaces()
        return cursor

    def expect_line_end(self, cursor: _Cursor) -> None:
        cursor.skip_spaces()
        if not cursor.at_line_end():
            raise self.error(cursor.line, cursor.column, f"unexpected {_shown(cursor.rest)}")

    # -- file and entries -------------------------------------------------------------------------

    def parse_file(self) -> HurlFile:
        entries = []
        while (cursor := self.current()) is not None:
            entries.append(self.parse_entry(cursor))
        return HurlFile(tuple(entries), self.filename)

    def parse_entry(self, cursor: _Cursor) -> Entry:
        request = self.parse_request(cursor)
        response = None
        cursor = self.current()
        if cursor is not None and _RESPONSE.match(cursor.rest):
            response = self.parse_response(cursor)
        return Entry(request, response)

    def is_request_line(self, cursor: _Cursor) -> bool:
        return _METHOD.match(cursor.rest) is not None and _RESPONSE.match(cursor.rest) is None

    def parse_request(self, cursor: _Cursor) -> Request:
        line, column = cursor.line, cursor.column
        if _RESPONSE.match(cursor.rest):
            raise self.error(line, column, "a response `HTTP <status>` needs a request line before it")
        method = _METHOD.match(cursor.rest)
        if method is None:
            raise self.error(line, column, f"expected a request line `METHOD URL`, got {_shown(cursor.rest)}")
        cursor.pos += method.end()
        cursor.skip_spaces()
        if cursor.at_line_end():
            raise self.error(cursor.line, cursor.column, "expected a URL after the method")
        url = self.value_string(cursor)
        self.index += 1
        fields: dict[str, list[KeyValue]] = {"headers": [], "query": [], "form": [], "cookies": [], "basic_auth": []}
        options = Options()
        section: str | None = None
        body = None
        while (next_line := self.current()) is not None:
            if self.is_request_line(next_line) or _RESPONSE.match(next_line.rest):
                break
            if body is not None:
                raise self.error(
                    next_line.line, next_line.column, "expected `HTTP <status>` or a request after the body"
                )
            match = _SECTION.match(next_line.rest)
            if match:
                section = self.request_section(next_line, match.group(1))
                self.index += 1
            elif _starts_body(next_line.rest):
                body = self.parse_body(next_line)
            elif section == "options":
                options = self.parse_option(next_line, options)
                self.index += 1
            else:
                target = fields[section or "headers"]
                if section == "basic_auth" and target:
                    raise self.error(next_line.line, next_line.column, "[BasicAuth] takes a single `user: password`")
                target.append(self.key_value(next_line))
                self.index += 1
        return Request(
            method=method.group(0),
            url=url,
            headers=tuple(fields["headers"]),
            query=tuple(fields["query"]),
            form=tuple(fields["form"]),
            cookies=tuple(fields["cookies"]),
            basic_auth=fields["basic_auth"][0] if fields["basic_auth"] else None,
            body=body,
            options=options,
            line=line,
            column=column,
        )

    def request_section(self, cursor: _Cursor, name: str) -> str:
        if name in _REQUEST_SECTIONS:
            return _REQUEST_SECTIONS[name]
        if name in _UNSUPPORTED_SECTIONS:
            raise self.unsupported(cursor.line, cursor.column, f"section [{name}]")
        if name in _RESPONSE_SECTIONS:
            message = f"section [{name}] belongs to a response (after `HTTP <status>`)"
            raise self.error(cursor.line, cursor.column, message)
        raise self.error(cursor.line, cursor.column, f"unknown section [{name}]")

    def parse_response(self, cursor: _Cursor) -> Response:
        line, column = cursor.line, cursor.column
        match = _RESPONSE.match(cursor.rest)
        assert match is not None
        version = "HTTP" if match.group(1) in (None, "/*") else match.group(0)
        cursor.pos += match.end()
        if not cursor.skip_spaces():
            raise self.error(cursor.line, cursor.column, "expected a status after the HTTP version")
        status: int | None
        if cursor.peek() == "*":
            status = None
            cursor.pos += 1
        else:
            digits = re.match(r"\d+", cursor.rest)
            if digits is None:
                message = f"expected a status code or `*`, got {_shown(cursor.rest)}"
                raise self.error(cursor.line, cursor.column, message)
            status = int(digits.group(0))
            cursor.pos += digits.end()
        self.expect_line_end(cursor)
        self.index += 1
        headers: list[KeyValue] = []
        captures: list[Capture] = []
        asserts: list[Assert] = []
        section: str | None = None
        body = None
        while (next_line := self.current()) is not None:
            if self.is_request_line(next_line):
                break
            if body is not None:
                raise self.error(next_line.line, next_line.column, "expected a request after the response body")
            match = _SECTION.match(next_line.rest)
            if match:
                section = match.group(1)
                if section in _UNSUPPORTED_SECTIONS:
                    raise self.unsupported(next_line.line, next_line.column, f"section [{section}]")
                if section in _REQUEST_SECTIONS:
                    raise self.error(next_line.line, next_line.column, f"section [{section}] belongs to the request")
                if section not in _RESPONSE_SECTIONS:
                    raise self.error(next_line.line, next_line.column, f"unknown section [{section}]")
                self.index += 1
            elif _starts_body(next_line.rest):
                body = self.parse_body(next_line)
            elif section == "Captures":
                captures.append(self.parse_capture(next_line))
                self.index += 1
            elif section == "Asserts":
                asserts.append(self.parse_assert(next_line))
                self.index += 1
            else:
                headers.append(self.key_value(next_line))
                self.index += 1
        return Response(version, status, tuple(headers), tuple(captures), tuple(asserts), body, line, column)

    # -- key-values and options -------------------------------------------------------------------

    def key_value(self, cursor: _Cursor) -> KeyValue:
        line, column = cursor.line, cursor.column
        name = self.key_string(cursor)
        cursor.skip_spaces()
        if cursor.peek() != ":" and re.fullmatch(r"[^\s:;]+;[ \t]*(#.*)?", cursor.text.strip()):
            raise self.unsupported(line, column, "header without value `Name;`")
        if cursor.peek() != ":":
            raise self.error(cursor.line, cursor.column, f"expected `name: value`, got {_shown(cursor.text.strip())}")
        cursor.pos += 1
        cursor.skip_spaces()
        value = self.value_string(cursor)
        return KeyValue(name, value, line, column)

    def key_string(self, cursor: _Cursor) -> Template:
        builder = _TemplateBuilder(cursor.line, cursor.column)
        while not cursor.at_end():
            char = cursor.peek()
            if char in ": \t#":
                break
            if cursor.peek(2) == "{{":
                builder.add_placeholder(self.placeholder(cursor))
            elif char == "\\":
                builder.add_text(self.escape(cursor, _KEY_ESCAPES))
            else:
                builder.add_text(char)
                cursor.pos += 1
        template = builder.build()
        if not template.parts:
            raise self.error(cursor.line, cursor.column, f"expected `name: value`, got {_shown(cursor.text.strip())}")
        return template

    def value_string(self, cursor: _Cursor) -> Template:
        """Text to the end of the line or to a `#` comment, trailing spaces dropped."""
        builder = _TemplateBuilder(cursor.line, cursor.column)
        pending_spaces = ""
        while not cursor.at_end():
            char = cursor.peek()
            if char == "#":
                break
            if char in " \t":
                pending_spaces += char
                cursor.pos += 1
                continue
            builder.add_text(pending_spaces)
            pending_spaces = ""
            if cursor.peek(2) == "{{":
                builder.add_placeholder(self.placeholder(cursor))
            elif char == "\\":
                builder.add_text(self.escape(cursor, _VALUE_ESCAPES))
            else:
                builder.add_text(char)
                cursor.pos += 1
        return builder.build()

    def parse_option(self, cursor: _Cursor, options: Options) -> Options:
        name_match = re.match(r"[A-Za-z][A-Za-z0-9.-]*", cursor.rest)
        if name_match is None:
            raise self.error(cursor.line, cursor.column, f"expected `option: value`, got {_shown(cursor.rest)}")
        name = name_match.group(0)
        name_column = cursor.column
        cursor.pos += name_match.end()
        cursor.skip_spaces()
        if cursor.peek() != ":":
            raise self.error(cursor.line, cursor.column, f"expected `:` after option {name}")
        cursor.pos += 1
        cursor.skip_spaces()
        if name not in ("retry", "retry-interval", "delay", "variable"):
            raise self.unsupported(cursor.line, name_column, f"option {name}")
        if cursor.peek(2) == "{{":
            raise self.unsupported(cursor.line, cursor.column, f"template in option {name}")
        if name == "variable":
            return replace(options, variables=options.variables + (self.option_variable(cursor),))
        value_column = cursor.column
        if name == "retry":
            match = re.match(r"-?\d+", cursor.rest)
            if match is None or int(match.group(0)) < -1:
                raise self.error(cursor.line, value_column, "retry takes a count of attempts (-1 for no limit)")
            cursor.pos += match.end()
            self.expect_line_end(cursor)
            return replace(options, retry=int(match.group(0)))
        match = _DURATION.match(cursor.rest)
        if match is None:
            raise self.error(cursor.line, value_column, f"{name} takes a duration such as 500, 500ms, 2s or 1m")
        cursor.pos += match.end()
        self.expect_line_end(cursor)
        milliseconds = int(match.group(1)) * {"ms": 1, None: 1, "s": 1000, "m": 60_000}[match.group(2)]
        if name == "delay":
            return replace(options, delay_ms=milliseconds)
        return replace(options, retry_interval_ms=milliseconds)

    def option_variable(self, cursor: _Cursor) -> KeyValue:
        line, column = cursor.line, cursor.column
        match = _VARIABLE_NAME.match(cursor.rest)
        if match is None or cursor.text[cursor.pos + match.end() : cursor.pos + match.end() + 1] != "=":
            raise self.error(line, column, "variable takes `name=value`")
        name = Template.literal(match.group(0), line, column)
        cursor.pos += match.end() + 1
        if cursor.peek() == '"':
            value = self.quoted_string(cursor)
            self.expect_line_end(cursor)
        else:
            value = self.value_string(cursor)
        return KeyValue(name, value, line, column)

    # -- strings, templates, escapes --------------------------------------------------------------

    def placeholder(self, cursor: _Cursor) -> Placeholder:
        line, column = cursor.line, cursor.column
        end = cursor.text.find("}}", cursor.pos + 2)
        if end < 0:
            raise self.error(line, column, "unterminated template: `{{` without `}}`")
        inner = cursor.text[cursor.pos + 2 : end]
        expression = inner.strip(" \t")
        name = _VARIABLE_NAME.match(expression)
        if name is None:
            raise self.error(line, column, f"expected a variable name in {{{{{inner}}}}}")
        if name.group(0) in _FUNCTIONS:
            raise self.unsupported(line, column, f"function {name.group(0)}")
        if name.end() != len(expression):
            raise self.unsupported(line, column, f"filter in template {{{{{inner}}}}}")
        cursor.pos = end + 2
        return Placeholder(name.group(0), line, column)

    def escape(self, cursor: _Cursor, escapes: dict[str, str]) -> str:
        """A backslash escape at the cursor; `\\u{XXXX}` is a Unicode code point."""
        line, column = cursor.line, cursor.column
        char = cursor.text[cursor.pos + 1 : cursor.pos + 2]
        if char == "u":
            match = re.match(r"\\u\{([0-9a-fA-F]{1,6})\}", cursor.rest)
            if match is None or int(match.group(1), 16) > 0x10FFFF:
                raise self.error(line, column, "invalid unicode escape, expected \\u{XXXX}")
            cursor.pos += match.end()
            return chr(int(match.group(1), 16))
        if char not in escapes:
            raise self.error(line, column, f"invalid escape \\{char}")
        cursor.pos += 2
        return escapes[char]

    def quoted_string(self, cursor: _Cursor) -> Template:
        line, column = cursor.line, cursor.column
        cursor.pos += 1
        builder = _TemplateBuilder(line, column)
        while True:
            if cursor.at_end():
                raise self.error(line, column, "unterminated string: missing closing `\"`")
            char = cursor.peek()
            if char == '"':
                cursor.pos += 1
                return builder.build()
            if cursor.peek(2) == "{{":
                builder.add_placeholder(self.placeholder(cursor))
            elif char == "\\":
                builder.add_text(self.escape(cursor, _QUOTED_ESCAPES))
            else:
                builder.add_text(char)
                cursor.pos += 1

    def backtick_string(self, cursor: _Cursor) -> Template:
        line, column = cursor.line, cursor.column
        cursor.pos += 1
        builder = _TemplateBuilder(line, column)
        while True:
            if cursor.at_end():
                raise self.error(line, column, "unterminated string: missing closing `")
            char = cursor.peek()
            if char == "`":
                cursor.pos += 1
                return builder.build()
            if cursor.peek(2) == "{{":
                builder.add_placeholder(self.placeholder(cursor))
            elif char == "\\":
                builder.add_text(self.escape(cursor, _BACKTICK_ESCAPES))
            else:
                builder.add_text(char)
                cursor.pos += 1

    def regex_literal(self, cursor: _Cursor) -> Regex:
        line, column = cursor.line, cursor.column
        cursor.pos += 1
        pattern = []
        while True:
            if cursor.at_end():
                raise self.error(line, column, "unterminated regex: missing closing `/`")
            char = cursor.peek()
            if char == "/":
                cursor.pos += 1
                break
            if cursor.peek(2) == "\\/":
                pattern.append("/")
                cursor.pos += 2
            else:
                pattern.append(char)
                cursor.pos += 1
        text = "".join(pattern)
        try:
            re.compile(text)
        except re.error as exc:
            raise self.error(line, column, f"invalid regex /{text}/: {exc}") from None
        return Regex(text)

    def bytes_literal(self, cursor: _Cursor) -> bytes:
        """`hex,...;` or `base64,...;` at the cursor (the caller checked the prefix)."""
        line, column = cursor.line, cursor.column
        kind = "hex" if cursor.rest.startswith("hex,") else "base64"
        end = cursor.text.find(";", cursor.pos)
        if end < 0:
            raise self.error(line, column, f"unterminated {kind} value: missing `;`")
        payload = re.sub(r"[ \t]", "", cursor.text[cursor.pos + len(kind) + 1 : end])
        try:
            data = bytes.fromhex(payload) if kind == "hex" else base64.b64decode(payload, validate=True)
        except (ValueError, binascii.Error):
            raise self.error(line, column, f"invalid {kind} value") from None
        cursor.pos = end + 1
        return data

    # -- bodies -----------------------------------------------------------------------------------

    def parse_body(self, cursor: _Cursor) -> Body:
        line, column = cursor.line, cursor.column
        rest = cursor.rest
        if rest.startswith("```"):
            return self.multiline_body(cursor)
        if rest.startswith("`"):
            text = self.backtick_string(cursor)
            self.expect_line_end(cursor)
            self.index += 1
            return Body("text", text=text, line=line, column=column)
        if rest.startswith(("hex,", "base64,")):
            # A body's base64 or hex may wrap over several lines (MIME style) up to its `;`.
            last = self.index
            while ";" not in self.lines[last] and last + 1 < len(self.lines):
                last += 1
            joined = _Cursor(" ".join(self.lines[self.index : last + 1]), line, cursor.pos)
            data = self.bytes_literal(joined)
            end = self.lines[last].index(";") + 1 if last > self.index else joined.pos
            self.expect_line_end(_Cursor(self.lines[last], last + 1, end))
            self.index = last + 1
            return Body("bytes", data=data, line=line, column=column)
        if rest.startswith("file,"):
            raise self.unsupported(line, column, "file body")
        if rest.startswith("<"):
            raise self.unsupported(line, column, "XML body")
        return self.json_body(cursor)

    def multiline_body(self, cursor: _Cursor) -> Body:
        line, column = cursor.line, cursor.column
        after = cursor.rest[3:]
        if "```" in after:  # ```text``` on one line
            content_cursor = _Cursor(cursor.text, line, cursor.pos + 3)
            end = cursor.text.index("```", content_cursor.pos)
            text = self.multiline_content([(content_cursor, end)], line, column + 3)
            cursor.pos = end + 3
            self.expect_line_end(cursor)
            self.index += 1
            return Body("text", text=text, line=line, column=column)
        hint = after.strip(" \t")
        kinds = {"": "text", "raw": "text", "json": "json", "xml": "xml"}
        if hint not in kinds:
            raise self.unsupported(line, column + 3, f"multi-line string {hint.split()[0]}")
        segments: list[tuple[_Cursor, int]] = []
        index = self.index + 1
        while True:
            if index >= len(self.lines):
                raise self.error(line, column, "unterminated multi-line string: missing closing ```")
            text = self.lines[index]
            end = text.find("```")
            if end >= 0:
                closing = _Cursor(text, index + 1, end + 3)
                self.expect_line_end(closing)
                segments.append((_Cursor(text, index + 1), end))
                break
            segments.append((_Cursor(text + "\n", index + 1), len(text) + 1))
            index += 1
        content = self.multiline_content(segments, line + 1, 1)
        self.index = index + 1
        return Body(kinds[hint], text=content, line=line, column=column)

    def multiline_content(self, segments: list[tuple[_Cursor, int]], line: int, column: int) -> Template:
        """Raw text and placeholders; no escapes, so JSON or regexes inside stay as written."""
        builder = _TemplateBuilder(line, column)
        for cursor, end in segments:
            while cursor.pos < end:
                if cursor.peek(2) == "{{" and cursor.text.find("}}", cursor.pos) < end:
                    builder.add_placeholder(self.placeholder(cursor))
                else:
                    builder.add_text(cursor.peek())
                    cursor.pos += 1
        return builder.build()

    def json_body(self, cursor: _Cursor) -> Body:
        """A JSON object or array over as many lines as it takes, placeholders allowed as values
        and inside strings; checked by parsing it with each placeholder stood in for."""
        line, column = cursor.line, cursor.column
        builder = _TemplateBuilder(line, column)
        stand_in: list[str] = []  # the same text with placeholders replaced, same length, for json.loads
        offsets: list[tuple[int, int, int]] = []  # (offset in stand_in, line, column of that line's start)
        depth = 0
        in_string = False
        while True:
            offsets.append((len(stand_in), cursor.line, cursor.pos))
            while not cursor.at_end():
                char = cursor.peek()
                if cursor.peek(2) == "{{":
                    start = cursor.pos
                    builder.add_placeholder(self.placeholder(cursor))
                    width = cursor.pos - start
                    stand_in.append("x" * width if in_string else "0" + " " * (width - 1))
                    continue
                if in_string:
                    if char == "\\":
                        pair = cursor.peek(2)
                        builder.add_text(pair)
                        stand_in.append(pair)
                        cursor.pos += len(pair)
                        continue
                    in_string = char != '"'
                elif char == '"':
                    in_string = True
                elif char in "{[":
                    depth += 1
                elif char in "}]":
                    depth -= 1
                builder.add_text(char)
                stand_in.append(char)
                cursor.pos += 1
                if depth == 0 and not in_string:
                    self.expect_line_end(cursor)
                    self.index += 1
                    self.check_json("".join(stand_in), offsets)
                    return Body("json", text=builder.build(), line=line, column=column)
            self.index += 1
            if self.index >= len(self.lines):
                raise self.error(line, column, "unterminated JSON body: missing closing bracket")
            builder.add_text("\n")
            stand_in.append("\n")
            cursor = _Cursor(self.lines[self.index], self.index + 1)

    def check_json(self, text: str, offsets: list[tuple[int, int, int]]) -> None:
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            start, line, column = next(item for item in reversed(offsets) if item[0] <= exc.pos)
            raise self.error(line, column + exc.pos - start + 1, f"invalid JSON body: {exc.msg}") from None

    # -- captures and asserts ---------------------------------------------------------------------

    def parse_capture(self, cursor: _Cursor) -> Capture:
        line, column = cursor.line, cursor.column
        match = re.match(r"[A-Za-z_][A-Za-z0-9_.-]*", cursor.rest)
        if match is None:
            raise self.error(line, column, f"expected `name: query`, got {_shown(cursor.rest)}")
        name = match.group(0)
        cursor.pos += match.end()
        cursor.skip_spaces()
        if cursor.peek() != ":":
            raise self.error(cursor.line, cursor.column, f"expected `:` after capture name {name}")
        cursor.pos += 1
        cursor.skip_spaces()
        query = self.parse_query(cursor)
        filters = []
        while cursor.skip_spaces() and not cursor.at_line_end():
            word = _WORD.match(cursor.rest)
            if word is not None and word.group(0) == "redact":
                raise self.unsupported(cursor.line, cursor.column, "redact")
            filters.append(self.parse_filter(cursor))
        self.expect_line_end(cursor)
        return Capture(name, query, tuple(filters), line, column)

    def parse_assert(self, cursor: _Cursor) -> Assert:
        line, column = cursor.line, cursor.column
        query = self.parse_query(cursor)
        filters = []
        while True:
            if not cursor.skip_spaces() or cursor.at_line_end():
                raise self.error(cursor.line, cursor.column, "expected a predicate such as `== value` or `exists`")
            word = _WORD.match(cursor.rest)
            if word is not None and (word.group(0) == "not" or _is_predicate(word.group(0))):
                break
            filters.append(self.parse_filter(cursor))
        predicate = self.parse_predicate(cursor)
        self.expect_line_end(cursor)
        text = cursor.text[column - 1 : cursor.pos].rstrip(" \t")
        return Assert(query, tuple(filters), predicate, line, column, text)

    def parse_query(self, cursor: _Cursor) -> Query:
        line, column = cursor.line, cursor.column
        match = re.match(r"[A-Za-z][A-Za-z0-9]*", cursor.rest)
        kind = match.group(0) if match else ""
        if kind in _UNSUPPORTED_QUERIES:
            raise self.unsupported(line, column, f"query {kind}")
        if kind in _QUERIES_WITHOUT_ARGUMENT:
            cursor.pos += len(kind)
            return Query(kind, None, line, column)
        if kind in _QUERIES_WITH_STRING or kind == "regex":
            cursor.pos += len(kind)
            if not cursor.skip_spaces():
                raise self.error(cursor.line, cursor.column, f"expected a space and an argument after {kind}")
            if kind == "regex" and cursor.peek() == "/":
                return Query(kind, self.regex_literal(cursor), line, column)
            if cursor.peek() != '"':
                expected = '"..." or /.../' if kind == "regex" else '"..."'
                raise self.error(cursor.line, cursor.column, f"{kind} takes a quoted argument {expected}")
            return Query(kind, self.quoted_string(cursor), line, column)
        message = f"expected a query (status, header, body, jsonpath...), got {_shown(cursor.rest)}"
        raise self.error(line, column, message)

    def parse_filter(self, cursor: _Cursor) -> Filter:
        word = _WORD.match(cursor.rest)
        if word is None:
            raise self.error(cursor.line, cursor.column, f"expected a filter or a predicate, got {_shown(cursor.rest)}")
        name = word.group(0)
        if name != "count":
            raise self.unsupported(cursor.line, cursor.column, f"filter {name}")
        filter_ = Filter(name, cursor.line, cursor.column)
        cursor.pos += word.end()
        return filter_

    def parse_predicate(self, cursor: _Cursor) -> Predicate:
        line, column = cursor.line, cursor.column
        negated = False
        if cursor.rest.startswith("not") and cursor.text[cursor.pos + 3 : cursor.pos + 4] in (" ", "\t"):
            negated = True
            cursor.pos += 3
            cursor.skip_spaces()
        word = _WORD.match(cursor.rest)
        name = word.group(0) if word else ""
        if name in _UNSUPPORTED_PREDICATES:
            raise self.unsupported(cursor.line, cursor.column, f"predicate {name}")
        if not _is_predicate(name):
            message = f"expected a predicate such as `== value`, got {_shown(cursor.rest)}"
            raise self.error(cursor.line, cursor.column, message)
        cursor.pos += len(name)
        if name in _PREDICATES_WITHOUT_VALUE:
            return Predicate(name, negated, None, line, column)
        if not cursor.skip_spaces() or cursor.at_line_end():
            raise self.error(cursor.line, cursor.column, f"expected a value after {name}")
        value = self.predicate_value(cursor, name)
        return Predicate(name, negated, value, line, column)

    def predicate_value(self, cursor: _Cursor, predicate: str) -> PredicateValue:
        line, column = cursor.line, cursor.column
        rest = cursor.rest
        if rest.startswith('"'):
            return self.quoted_string(cursor)
        if rest.startswith("```"):
            raise self.unsupported(line, column, "multi-line string value")
        if rest.startswith("`"):
            return self.backtick_string(cursor)
        if rest.startswith("{{"):
            return self.placeholder(cursor)  # a bare placeholder keeps its variable's type
        if rest.startswith("/"):
            if predicate != "matches":
                raise self.error(line, column, f"a /regex/ value only goes with matches, not {predicate}")
            return self.regex_literal(cursor)
        if rest.startswith(("hex,", "base64,")):
            return self.bytes_literal(cursor)
        if rest.startswith("file,"):
            raise self.unsupported(line, column, "file value")
        for word, value in (("true", True), ("false", False), ("null", NULL)):
            if re.match(word + r"(?![A-Za-z0-9_])", rest):
                cursor.pos += len(word)
                return value
        number = _NUMBER.match(rest)
        if number is not None and not re.match(r"[A-Za-z0-9_.]", rest[number.end() : number.end() + 1]):
            cursor.pos += number.end()
            text = number.group(0)
            return int(text) if number.group(1) is None and number.group(2) is None else float(text)
        message = f"expected a value (\"string\", number, true, false, null...), got {_shown(rest)}"
        raise self.error(line, column, message)


def _is_predicate(name: str) -> bool:
    return name in _PREDICATES_WITH_VALUE or name in _PREDICATES_WITHOUT_VALUE or name in _UNSUPPORTED_PREDICATES


def _starts_body(rest: str) -> bool:
    """A JSON object, array or another body; `{{name}}: value` is a header with a templated name."""
    return rest.startswith(("{", "[", "`", "<", "hex,", "base64,", "file,")) and not rest.startswith("{{")


def _shown(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= 40 else text[:40] + "…")


