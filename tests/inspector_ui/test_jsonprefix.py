"""inspector_ui/static/jsonprefix.js, run in node: any prefix of any JSON text pretty-prints
without throwing, and the output's tokens are exactly the prefix's (issue 16, point 7: a
truncated JSON body is pretty-printed as far as it goes)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

MODULE = Path(__file__).resolve().parents[2] / "inspector_ui" / "static" / "jsonprefix.js"
NODE = shutil.which("node")
# One node process for the whole module: a line in (a JSON string), a line out.
HARNESS = f"""
import {{ jsonPrefixTokens, prettyJsonPrefix }} from {json.dumps(MODULE.as_uri())};
import readline from "node:readline";
const lines = readline.createInterface({{ input: process.stdin }});
for await (const line of lines) {{
  let answer;
  try {{
    const text = JSON.parse(line);
    const pretty = prettyJsonPrefix(text);
    answer = {{ tokens: jsonPrefixTokens(text), pretty, again: jsonPrefixTokens(pretty) }};
  }} catch (error) {{
    answer = {{ error: String(error && error.stack || error) }};
  }}
  process.stdout.write(JSON.stringify(answer) + "\\n");
}}
"""

pytestmark = pytest.mark.skipif(NODE is None, reason="node not installed")


@pytest.fixture(scope="module")
def printer() -> Iterator:
    process = subprocess.Popen(
        [NODE, "--input-type=module", "-e", HARNESS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )

    def ask(text: str) -> dict:
        assert process.stdin and process.stdout
        process.stdin.write(json.dumps(text) + "\n")  # ASCII: lone surrogates travel as escapes
        process.stdin.flush()
        answer = json.loads(process.stdout.readline())
        assert "error" not in answer, answer["error"]
        return answer

    yield ask
    process.stdin.close()
    process.wait(timeout=10)


def without_layout(text: str) -> str:
    """`text` with JSON's insignificant whitespace (outside strings) taken out."""
    out, in_string, escaped = [], False, False
    for c in text:
        if in_string:
            out.append(c)
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
            out.append(c)
        elif c not in " \t\n\r":
            out.append(c)
    return "".join(out)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)
layouts = st.sampled_from(
    [
        {"separators": (",", ":")},
        {"indent": 2},
        {"indent": "\t", "separators": (" ,", " : ")},
        {},
    ]
)


@given(value=values, layout=layouts, ascii_only=st.booleans(), cut=st.floats(min_value=0, max_value=1))
@settings(max_examples=400, deadline=None)
def test_any_prefix_pretty_prints_to_the_same_tokens(printer, value, layout, ascii_only, cut) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, **layout)
    prefix = text[: round(len(text) * cut)]
    answer = printer(prefix)
    assert "".join(token for _, token in answer["tokens"]) == without_layout(prefix)
    assert answer["again"] == answer["tokens"]  # re-joining the tokens reproduces the prefix's tokens
    assert without_layout(answer["pretty"]) == without_layout(prefix)
    if prefix == text:  # the whole text: exactly what a pretty-printer makes of it
        assert answer["pretty"] == json.dumps(value, ensure_ascii=ascii_only, indent=2)


@given(st.text(max_size=60))
@settings(max_examples=300, deadline=None)
def test_any_text_at_all_never_throws(printer, text) -> None:
    answer = printer(text)
    assert answer["again"] == answer["tokens"]


def test_a_cut_body_reads_as_json_does(printer) -> None:
    answer = printer('{"orders":[{"id":1,"items":[]},{"id":2,"note":"half a str')
    assert answer["pretty"] == (
        '{\n  "orders": [\n    {\n      "id": 1,\n      "items": []\n    },\n    {\n      "id": 2,\n'
        '      "note": "half a str'
    )
    assert answer["tokens"][-1] == ["string", '"half a str']
    assert printer('{"a": tru')["tokens"][-1] == ["literal", "tru"]
    assert printer("[1, -2.5e")["tokens"][-1] == ["number", "-2.5e"]
