"""storage.pure.surrogates: text with lone surrogates written out as escapes that read back as it was."""

from __future__ import annotations

import json
import subprocess

from hypothesis import given
from hypothesis import strategies as st

from storage.pure.snippets import SnippetRequest, as_curl, as_fetch, as_httpie, as_python_httpx
from storage.pure.surrogates import escape_surrogates, json_text

# Any str, lone surrogates included (hypothesis leaves them out of st.text() by default).
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)


@given(st.recursive(st.none() | st.integers() | ANY_TEXT,
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
                    max_leaves=8))  # fmt: skip
def test_json_text_always_encodes_and_reads_back(value: object) -> None:
    text = json_text(value)
    text.encode("utf-8")
    # A high surrogate right before a low one reads back as their pair's character, as with json.dumps.
    assert json.loads(text) == json.loads(json.dumps(value))


def test_json_text_keeps_other_characters_as_they_are() -> None:
    assert json_text({"k": "café 😀 \ud83d \udcff"}) == '{"k": "café 😀 \\ud83d \\udcff"}'
    assert json_text(["plain"], separators=(",", ":")) == '["plain"]'


def test_escape_surrogates_changes_nothing_else() -> None:
    text = "ascii only"
    assert escape_surrogates(text) is text
    assert escape_surrogates("a\ud800b\udfffc", lambda s: "?") == "a?b?c"


def test_snippets_encode_and_a_shell_gets_the_bytes_back() -> None:
    """A lone surrogate in the URL, a header name and value: every snippet encodes as UTF-8; in
    a shell, a surrogateescape'd byte (U+DCFF) is that byte again, any other surrogate the
    bytes UTF-8 would spell it with."""
    request = SnippetRequest("GET", "https://a.example/\ud83d?q=\udcff", [("X-\ud83d", "v\udcff'")])
    for build in (as_curl, as_httpie, as_python_httpx, as_fetch):
        build(request).encode("utf-8")
    assert "'https://a.example/\\ud83d?q=\\udcff'" in as_python_httpx(request)
    assert '"https://a.example/\\ud83d?q=\\udcff"' in as_fetch(request)
    curl = as_curl(request)
    url_word = curl.splitlines()[0].removeprefix("curl ").removesuffix(" \\")
    echoed = subprocess.run(["bash", "-c", f"printf %s {url_word}"], capture_output=True, check=True).stdout
    assert echoed == b"https://a.example/\xed\xa0\xbd?q=\xff"
