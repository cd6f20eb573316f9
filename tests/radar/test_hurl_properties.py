"""Properties of radar.hurl.parse_hurl: generated files written as Hurl text parse back to the same
model, and no text makes the parser raise anything but HurlError."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from radar.hurl import HurlError, parse_hurl
from radar.model import Assert, Entry, HurlFile, KeyValue, Placeholder, Predicate, Query, Request, Response, Template

POSITION_FIELDS = {"line", "column", "text"}


def without_positions(value):
    """The model with every position (and an assert's source text) zeroed, to compare structure."""
    if isinstance(value, tuple):
        return tuple(without_positions(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for field in dataclasses.fields(value):
            if field.name in POSITION_FIELDS:
                changes[field.name] = "" if field.name == "text" else 0
            else:
                changes[field.name] = without_positions(getattr(value, field.name))
        return dataclasses.replace(value, **changes)
    return value


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
literal_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="#\\{}\r\n\t \x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029"),
    min_size=1,
    max_size=12,
)


def template_of(parts: list[str | str]) -> Template:
    """Parts are literal text or `{{name}}` markers; adjacent literals merged as the parser does."""
    merged: list[str | Placeholder] = []
    for part in parts:
        if part.startswith("{{"):
            merged.append(Placeholder(part[2:-2], 0, 0))
        elif merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return Template(tuple(merged))


template_parts = st.lists(st.one_of(literal_text, names.map(lambda n: "{{" + n + "}}")), min_size=1, max_size=4)


@st.composite
def header(draw):
    name = draw(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}", fullmatch=True))
    parts = draw(template_parts)
    return f"{name}: {''.join(parts)}", KeyValue(Template((name,)), template_of(parts), 0, 0)


def quoted(text: str) -> str:
    """A Hurl quoted string: quotes and backslashes escaped, braces and control characters as \\u{XX}."""
    escaped = "".join(
        "\\" + char if char in '"\\' else f"\\u{{{ord(char):x}}}" if char in "{}" or ord(char) < 32 else char
        for char in text
    )
    return f'"{escaped}"'



@st.composite
def assertion(draw):
    kind = draw(st.sampled_from(["status", "body", "duration", "jsonpath", "header", "cookie"]))
    argument = None
    query_text = kind
    if kind in ("jsonpath", "header", "cookie"):
        text = draw(st.text(max_size=10))
        argument = Template((text,) if text else ())
        query_text = f"{kind} {quoted(text)}"
    value_kind = draw(st.sampled_from(["int", "float", "string", "bool", "none"]))
    if value_kind == "none":
        name, value, value_text = draw(st.sampled_from(["exists", "isInteger", "isString", "isEmpty"])), None, ""
    else:
        name = draw(st.sampled_from(["==", "!=", ">", ">=", "<", "<="] if value_kind in ("int", "float") else ["==", "!=", "contains"]))
        value = {
            "int": st.integers(),
            "float": st.floats(allow_nan=False, allow_infinity=False),
            "string": st.text(max_size=10),
            "bool": st.booleans(),
        }[value_kind]
        value = draw(value)
        if value_kind == "string":
            value_text, value = quoted(value), Template((value,) if value else ())
        elif value_kind == "bool":
            value_text = "true" if value else "false"
        else:
            value_text = repr(value)
    negated = draw(st.booleans())
    predicate_text = ("not " if negated else "") + name + (f" {value_text}" if value_text else "")
    model = Assert(Query(kind, argument), (), Predicate(name, negated, value), 0, 0)
    return f"{query_text} {predicate_text}", model


@st.composite
def hurl_files(draw):
    lines: list[str] = []
    entries = []
    for _ in range(draw(st.integers(1, 3))):
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]))
        url_parts = ["http://"] + draw(template_parts)
        headers = draw(st.lists(header(), max_size=3))
        lines.append(f"{method} {''.join(url_parts)}")
        lines.extend(text for text, _ in headers)
        request = Request(method, template_of(url_parts), headers=tuple(model for _, model in headers))
        response = None
        if draw(st.booleans()):
            status = draw(st.integers(100, 599))
            asserts = draw(st.lists(assertion(), max_size=4))
            lines.append(f"HTTP {status}")
            if asserts:
                lines.append("[Asserts]")
                lines.extend(text for text, _ in asserts)
            response = Response("HTTP", status, asserts=tuple(model for _, model in asserts))
        if draw(st.booleans()):
            lines.append("# a comment")
        lines.append("")
        entries.append(Entry(request, response))
    return "\n".join(lines), HurlFile(tuple(entries), "<text>")


@settings(max_examples=300)
@given(hurl_files())
def test_generated_files_parse_back_to_their_model(case):
    text, model = case
    assert without_positions(parse_hurl(text)) == without_positions(model)


hurlish = st.lists(
    st.one_of(
        st.sampled_from([
            "GET http://x", "HTTP 200", "HTTP/1.1 *", "[Asserts]", "[Captures]", "[Query]", "[Options]", "[BasicAuth]",
            "```", "```json", "{", "}", "[", "]", '"a": {{b}}', "`x`", "hex,00;", "base64,AA==;", "status == 200",
            'jsonpath "$.a" count > 1', "a: b", "x: header \"y\"", "retry: 2", "variable: a=1", "# c", "",
        ]),  # fmt: skip
        st.text(max_size=20),
    ),
    max_size=12,
)


@settings(max_examples=500)
@given(st.one_of(st.text(), hurlish.map("\n".join)))
def test_any_text_parses_or_raises_hurl_error(text):
    try:
        parse_hurl(text, "fuzz.hurl")
    except HurlError as error:
        assert str(error).startswith(f"fuzz.hurl:{error.line}:{error.column}: ")
        assert error.line >= 1 and error.column >= 1
        assert "\n" not in error.message
