"""radar.template: Hurl's rendering of values in text and in JSON bodies, undefined variables."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from radar.hurl import parse_hurl
from radar.model import Placeholder, Template
from radar.template import UndefinedVariable, render, render_json_body


def test_render_text_with_typed_values():
    template = Template(("id=", Placeholder("id", 1, 5), "&ok=", Placeholder("ok", 1, 9), "&n=", Placeholder("n", 1, 12)))
    assert render(template, {"id": 42, "ok": True, "n": None}) == "id=42&ok=true&n=null"
    assert render(template, {"id": "a b", "ok": False, "n": 1.5}) == "id=a b&ok=false&n=1.5"


def test_render_collections_as_compact_json():
    assert render(Template((Placeholder("v", 1, 1),)), {"v": [1, "é"]}) == '[1,"é"]'


def test_undefined_variable_names_it_and_where():
    with pytest.raises(UndefinedVariable) as info:
        render(Template(("x", Placeholder("token", 3, 17))), {})
    error = info.value
    assert (error.name, error.line, error.column) == ("token", 3, 17)
    assert str(error) == "line 3, column 17: variable 'token' is not defined"


def body_of(hurl_text: str) -> Template:
    return parse_hurl(hurl_text).entries[0].request.body.text


def test_json_body_values_stay_typed_outside_strings():
    body = body_of('POST http://x\n{"n": {{n}}, "b": {{b}}, "s": {{s}}, "z": {{z}}, "l": {{l}}}\n')
    rendered = render_json_body(body, {"n": 3, "b": True, "s": 'say "hi"', "z": None, "l": [1, {"a": 2}]})
    assert json.loads(rendered) == {"n": 3, "b": True, "s": 'say "hi"', "z": None, "l": [1, {"a": 2}]}


def test_json_body_placeholders_inside_strings_are_escaped_text():
    body = body_of('POST http://x\n{"greeting": "hi {{name}}, \\"{{n}}\\"", "k": "{{b}}"}\n')
    rendered = render_json_body(body, {"name": 'a"b\\c\n', "n": 7, "b": False})
    assert json.loads(rendered) == {"greeting": 'hi a"b\\c\n, "7"', "k": "false"}


def test_json_body_text_without_template_is_returned_as_is():
    assert render_json_body('{"a": 1}', {}) == '{"a": 1}'


def test_json_body_undefined_variable():
    with pytest.raises(UndefinedVariable) as info:
        render_json_body(body_of('POST http://x\n{\n  "a": {{missing}}\n}\n'), {})
    assert (info.value.line, info.value.column) == (3, 8)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text())


@given(inside=json_scalars, outside=json_scalars)
def test_any_value_renders_into_valid_json(inside, outside):
    body = body_of('POST http://x\n{"in": "<{{inside}}>", "out": {{outside}}}\n')
    parsed = json.loads(render_json_body(body, {"inside": inside, "outside": outside}))
    assert parsed["out"] == outside
    assert parsed["in"] == "<" + render(Template((Placeholder("v", 1, 1),)), {"v": inside}) + ">"
