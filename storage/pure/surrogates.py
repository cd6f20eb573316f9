"""Lone surrogates on the way out: text no encoder writes, escaped reversibly. Pure.

Captured and imported text may hold lone surrogates (U+D800..U+DFFF): mitmproxy decodes
header and path bytes that are not UTF-8 with surrogateescape (U+DC80..U+DCFF, one per
byte), and a HAR file may spell any of them as a JSON \\uXXXX escape. Python keeps them
in a str and the store keeps them (storage.models.escape_text), but no UTF-8 encoder
writes them. So everything that writes text out (JSON responses, HAR files, share
snapshots, snippets) passes it through escape_surrogates with its own syntax's escape:
each lone surrogate becomes an escape that reads back as that same character, and
nothing else changes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["LONE_SURROGATE", "escape_surrogates", "json_escape", "json_text"]

LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""One lone surrogate (a str never holds a pair: that is one character above U+FFFF)."""


def json_escape(char: str) -> str:
    """A JSON (and JavaScript) string escape of one character: \\uXXXX."""
    return f"\\u{ord(char):04x}"


def escape_surrogates(text: str, escape: Callable[[str], str] = json_escape) -> str:
    """`text` with each lone surrogate replaced by escape(surrogate); `text` itself when it holds none."""
    if text.isascii():
        return text
    return LONE_SURROGATE.sub(lambda match: escape(match.group()), text)


def json_text(value: Any, **options: Any) -> str:
    """JSON of `value` that always encodes as UTF-8: non-ASCII characters as they are,
    lone surrogates as \\uXXXX escapes, which json.loads reads back as the same characters
    (as it does for json.dumps' own escapes, a high surrogate directly followed by a low
    one reads back as the pair's character). `options` go to json.dumps."""
    # Outside strings JSON is ASCII, so every surrogate in the text is inside a string literal.
    return escape_surrogates(json.dumps(value, ensure_ascii=False, **options))
