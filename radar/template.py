"""Render `{{variable}}` templates the way Hurl does (https://hurl.dev/docs/templates.html).

Variables hold typed values (str, int, float, bool, None, and what captures give: lists,
dicts, bytes). In text a value is written as Hurl writes it (`true`, `null`, `1.5`); in a JSON
body a placeholder outside a string becomes the value's JSON form, so numbers and booleans
stay typed and a string becomes a JSON string.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from radar.model import Placeholder, Template

__all__ = ["UndefinedVariable", "render", "render_json_body", "render_value"]


class UndefinedVariable(KeyError):
    """A template names a variable that no option, capture, realm or command line defines."""

    def __init__(self, name: str, line: int, column: int) -> None:
        super().__init__(name)
        self.name = name
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: variable '{self.name}' is not defined"


def render_value(value: object) -> str:
    """A variable's value as text, as Hurl writes it."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _lookup(placeholder: Placeholder, variables: Mapping[str, object]) -> object:
    try:
        return variables[placeholder.name]
    except KeyError:
        raise UndefinedVariable(placeholder.name, placeholder.line, placeholder.column) from None


def render(template: Template, variables: Mapping[str, object]) -> str:
    """The template's text with every placeholder replaced by its variable's value."""
    return "".join(
        part if isinstance(part, str) else render_value(_lookup(part, variables)) for part in template.parts
    )


def render_json_body(template_or_text: Template | str, variables: Mapping[str, object]) -> str:
    """A JSON body: a placeholder inside a JSON string inserts the value's text, escaped for
    JSON; outside a string it inserts the value's JSON form (`{"n": {{n}}}` with n=3 gives
    `{"n": 3}`, with n="a" gives `{"n": "a"}`)."""
    if isinstance(template_or_text, str):
        return template_or_text
    out: list[str] = []
    in_string = False
    escaped = False
    for part in template_or_text.parts:
        if isinstance(part, str):
            for char in part:  # track whether the next placeholder sits inside a JSON string
                if escaped:
                    escaped = False
                elif in_string and char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = not in_string
            out.append(part)
            continue
        value = _lookup(part, variables)
        if in_string:
            out.append(json.dumps(render_value(value), ensure_ascii=False)[1:-1])
        else:
            out.append(json.dumps(render_value(value) if isinstance(value, bytes) else value, ensure_ascii=False))
    return "".join(out)
