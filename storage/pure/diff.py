"""Diff two captured exchanges ("a", the old one, and "b", the new one): pure, no I/O.

Backs GET /api/diff and the side-by-side view. The inputs are exchange details
as the API returns them plus the decoded bodies; the output is plain JSON-ready
data. Everything compared is attacker-controlled, so it is only ever compared
and copied, never interpreted, and the work done is bounded: JSON is walked to
a fixed depth, the line diff gives up after a fixed amount of work, and every
list of changes is capped.
"""

from __future__ import annotations

import collections
import difflib
import functools
import json
import math
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_NOISE_HEADERS", "DiffBody", "diff_exchanges", "responses_differ"]

DEFAULT_NOISE_HEADERS = frozenset(
    {
        # Clock-derived: differ on every response even when nothing else does.
        # (Expires is usually Date + max-age; Last-Modified is "now" for most
        # dynamic content.) ETag is deliberately absent: it only changes when the
        # representation does, and a changed validator matters for caching.
        "date",
        "age",
        "expires",
        "last-modified",
        # Per-request ids and trace context, minted fresh for each request.
        "x-request-id",
        "x-correlation-id",
        "traceparent",
        "tracestate",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-parentspanid",
        "x-b3-sampled",
        "x-amzn-trace-id",
        "cf-ray",
        # Measurements of this particular request; the timing section compares those.
        "server-timing",
        "x-runtime",
        "x-response-time",
        # Framing and hop-by-hop: properties of the connection and route, not of
        # the message. The body diff already reports a body that changed size.
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "via",
    }
)
"""Lowercase names of headers whose differences are noise by default.

Set-Cookie is not noise: a different cookie is a real behavioural change."""

TIMING_FIELDS = ("duration_ms", "connect_ms", "tls_ms", "send_ms", "wait_ms", "receive_ms")

MAX_JSON_DEPTH = 200
"""Deeper subtrees are compared whole and reported as one change at this depth."""
MAX_OUTPUT_ITEMS = 2000
"""Cap on diff lines (text) and on changes / ignored paths (JSON) per body."""
TEXT_DIFF_BUDGET = 500_000
"""Lines scanned by the line diff before it gives up and reports a summary (see _BudgetedMatcher)."""
MAX_LINE_REPEATS = 16
"""Lines repeated more often than this in b do not anchor matches (see _BudgetedMatcher)."""
TEXT_CONTEXT = 3
"""Unchanged lines shown around each change, as in a unified diff."""

_TEXTUAL_TYPES = ("text/", "json", "xml", "html", "javascript", "x-www-form-urlencoded", "yaml", "csv", "graphql")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True, slots=True)
class DiffBody:
    """One side's body, as the diff needs it."""

    data: bytes
    """Decoded (Content-Encoding undone); only the kept prefix when truncated."""
    content_type: str | None
    truncated: bool
    size: int
    """Full size, including what was not kept."""
    sha256: str
    """Hex digest of the stored bytes."""


def diff_exchanges(
    a: dict,
    b: dict,
    *,
    a_request_body: DiffBody | None,
    a_response_body: DiffBody | None,
    b_request_body: DiffBody | None,
    b_response_body: DiffBody | None,
    ignore_keys: Collection[str] = (),
    noise_headers: Collection[str] = DEFAULT_NOISE_HEADERS,
) -> dict:
    """What changed from exchange `a` to exchange `b`.

    `ignore_keys` applies to JSON bodies: a key name ("updated_at") is ignored at
    any depth, a path starting with "$" ("$.meta.timestamp", "$.items[0]") only
    there. "same" is true when nothing but noise (noise headers, ignored JSON
    keys, timings) differs.
    """
    noise = frozenset(name.lower() for name in noise_headers)
    request_line = {field: _pair_if_changed(a.get(field), b.get(field)) for field in ("method", "url", "http_version")}
    status = {
        "a": a.get("status"),
        "b": b.get("status"),
        "changed": a.get("status") != b.get("status"),
        "reason": _pair_if_changed(a.get("reason"), b.get("reason")),
        "error": _pair_if_changed(a.get("error"), b.get("error")),
    }
    request_headers = _diff_headers(a.get("request_headers"), b.get("request_headers"), noise=noise)
    response_headers = _diff_headers(a.get("response_headers"), b.get("response_headers"), noise=noise)
    request_body = _diff_bodies(a_request_body, b_request_body, ignore_keys=ignore_keys)
    response_body = _diff_bodies(a_response_body, b_response_body, ignore_keys=ignore_keys)
    same = (
        all(pair is None for pair in request_line.values())
        and not status["changed"]
        and status["reason"] is None
        and status["error"] is None
        and all(_headers_same(h) for h in (request_headers, response_headers))
        and all(_body_same(d) for d in (request_body, response_body))
    )
    return {
        "a": a.get("id"),
        "b": b.get("id"),
        "same": same,
        "request_line": request_line,
        "status": status,
        "request_headers": request_headers,
        "response_headers": response_headers,
        "request_body": request_body,
        "response_body": response_body,
        "timing": _diff_timings(a, b),
    }


def responses_differ(diff: dict) -> bool:
    """Whether a diff_exchanges result says the responses differ: the status, a response header
    (noise apart), or the response body's bytes."""
    headers = diff["response_headers"]
    return bool(
        diff["status"]["changed"]
        or headers["added"]
        or headers["removed"]
        or headers["changed"]
        or diff["response_body"]["kind"] not in ("same", "none")
    )


def _pair_if_changed(a: Any, b: Any) -> list | None:
    return None if a == b else [a, b]


def _headers_same(diff: dict) -> bool:
    return not (diff["added"] or diff["removed"] or diff["changed"])


def _body_same(diff: dict) -> bool:
    return diff["kind"] in ("none", "same") or (diff["kind"] == "json" and not diff["changes"])


# Headers


def _diff_headers(a: Iterable[Iterable[str]] | None, b: Iterable[Iterable[str]] | None, *, noise: frozenset[str]) -> dict:
    """Compare header lists by lowercase name, each name's values in wire order.

    Order between different names is ignored; duplicates are not (the same value
    sent twice is not the same as once). A `None` list (no response) is empty.
    Output names are lowercase and sorted; differing `noise` names are listed
    only under "noise".
    """
    a_values, b_values = _group_headers(a), _group_headers(b)
    added: list[list[str]] = []
    removed: list[list[str]] = []
    changed: list[dict] = []
    noisy: list[str] = []
    for name in sorted(a_values.keys() | b_values.keys()):
        old, new = a_values.get(name, []), b_values.get(name, [])  # a present name has values
        if old == new:
            continue
        if name in noise:
            noisy.append(name)
        elif not old:
            added.extend([name, value] for value in new)
        elif not new:
            removed.extend([name, value] for value in old)
        else:
            changed.append({"name": name, "a": old, "b": new})
    return {"added": added, "removed": removed, "changed": changed, "noise": noisy}


def _group_headers(headers: Iterable[Iterable[str]] | None) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in headers or ():
        grouped.setdefault(name.lower(), []).append(value)
    return grouped


# Timings


def _diff_timings(a: dict, b: dict) -> dict:
    """Each phase on both sides and the change b - a (None unless both are known)."""
    a_values = {"duration_ms": a.get("duration_ms"), **(a.get("timings") or {})}
    b_values = {"duration_ms": b.get("duration_ms"), **(b.get("timings") or {})}
    out = {}
    for field in TIMING_FIELDS:
        old, new = a_values.get(field), b_values.get(field)
        # Rounded like the stored phases (microseconds) so 0.1 + 0.2 noise does not show.
        delta = None if old is None or new is None else round(new - old, 3)
        out[field] = {"a": old, "b": new, "delta": delta}
    return out


# Bodies


def _diff_bodies(a: DiffBody | None, b: DiffBody | None, *, ignore_keys: Collection[str]) -> dict:
    """Compare two bodies as JSON, as text lines, or as opaque bytes.

    The kind is the most specific one both sides support (a missing side supports
    all of them and counts as empty). An empty, complete body is the same as no body.
    "truncated" is true when either side was cut at capture: only the kept bytes
    were compared.
    """
    a, b = _absent_if_empty(a), _absent_if_empty(b)
    truncated = any(side is not None and side.truncated for side in (a, b))
    if a is None and b is None:
        return {"kind": "none", "truncated": False}
    if a is not None and b is not None and (a.sha256 == b.sha256 or a.data == b.data):
        return {"kind": "same", "truncated": truncated}
    a_text, b_text = _as_text(a), _as_text(b)
    if a_text is not None and b_text is not None:
        a_json, b_json = _as_json(a, a_text), _as_json(b, b_text)
        if a_json is not None and b_json is not None:
            diff = _JsonDiff(ignore_keys)
            diff.walk(a_json[0], b_json[0], "$", 0)
            return {"kind": "json", "truncated": truncated, **diff.result()}
        return {"kind": "text", "truncated": truncated, **_diff_text(a, b, a_text, b_text)}
    return {"kind": "binary", "truncated": truncated, "a": _summary(a), "b": _summary(b)}


_MISSING: Any = object()
"""A side that has no body, or an object key that one side does not have."""


def _absent_if_empty(body: DiffBody | None) -> DiffBody | None:
    return None if body is not None and not body.data and not body.truncated else body


def _as_text(body: DiffBody | None) -> str | None:
    """The body as text when it is declared textual (or undeclared) and valid UTF-8.

    A missing body is the empty text.
    """
    if body is None:
        return ""
    content_type = (body.content_type or "").lower()
    if content_type and not any(marker in content_type for marker in _TEXTUAL_TYPES):
        return None
    try:
        return body.data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _as_json(body: DiffBody | None, text: str) -> tuple[Any] | None:
    """(value,) when the body is JSON; a missing body is (_MISSING,). None otherwise."""
    if body is None:
        return (_MISSING,)
    content_type = (body.content_type or "").lower()
    if content_type and "json" not in content_type:
        return None
    try:
        return (json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float),)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser allows
        return None


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, never equal themselves, and would make the output invalid JSON.
    raise ValueError(f"not JSON: {name}")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e999 parses to inf
        raise ValueError(f"number out of range: {literal[:20]}")
    return value


def _summary(body: DiffBody | None) -> dict | None:
    return None if body is None else {"size": body.size, "sha256": body.sha256}


# JSON


_JSON_KINDS: dict[type, str] = {
    type(None): "null",
    bool: "boolean",  # its own kind: true is not 1
    int: "number",
    float: "number",  # so 1 == 1.0
    str: "string",
    list: "array",
    dict: "object",
}
"""The kind of each type json.loads produces; compared before values are."""


def _json_equal(a: Any, b: Any) -> bool:
    """Semantic equality (1 == 1.0, true != 1), without recursion so any depth is safe."""
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        kind = _JSON_KINDS[type(x)]
        if kind != _JSON_KINDS[type(y)]:
            return False
        if kind == "object":
            if x.keys() != y.keys():
                return False
            pending.extend((x[key], y[key]) for key in x)
        elif kind == "array":
            if len(x) != len(y):
                return False
            pending.extend(zip(x, y, strict=True))
        elif x != y:
            return False
    return True


@functools.lru_cache(maxsize=1024)  # arrays of objects repeat the same keys
def _key_path(key: str) -> str:
    return f".{key}" if _IDENTIFIER.match(key) else f"[{json.dumps(key)}]"


def _is_path(ignore_key: str) -> bool:
    # "$.a" or "$[0]" is a path; "$set" (a MongoDB-style key) is a name.
    return ignore_key == "$" or ignore_key.startswith(("$.", "$["))


class _JsonDiff:
    """Collects changes while walking two JSON values in step."""

    def __init__(self, ignore_keys: Collection[str]) -> None:
        self.ignored_paths = frozenset(key for key in ignore_keys if _is_path(key))
        self.ignored_names = frozenset(key for key in ignore_keys if not _is_path(key))
        self.changes: list[dict] = []
        self.ignored: list[str] = []
        self.truncated_output = False
        """Changes were cut at MAX_OUTPUT_ITEMS; the walk stopped there."""
        self.ignored_truncated = False
        """Ignored paths were cut at MAX_OUTPUT_ITEMS; the walk went on."""

    def result(self) -> dict:
        return {
            "changes": self.changes,
            "ignored": self.ignored,
            "truncated_output": self.truncated_output or self.ignored_truncated,
        }

    def walk(self, a: Any, b: Any, path: str, depth: int) -> None:
        if self.truncated_output:
            return
        if path in self.ignored_paths:
            self._skip(a, b, path)
            return
        if a is _MISSING:
            self._change({"path": path, "op": "added", "b": b})
            return
        if b is _MISSING:
            self._change({"path": path, "op": "removed", "a": a})
            return
        kind = _JSON_KINDS[type(a)]
        if kind != _JSON_KINDS[type(b)]:
            self._change({"path": path, "op": "changed", "a": a, "b": b})
        elif kind not in ("object", "array"):
            if a != b:
                self._change({"path": path, "op": "changed", "a": a, "b": b})
        elif depth >= MAX_JSON_DEPTH:
            if not _json_equal(a, b):
                self._change({"path": path, "op": "changed", "a": a, "b": b})
        elif kind == "object":
            for key in sorted(a.keys() | b.keys()):
                old, new = a.get(key, _MISSING), b.get(key, _MISSING)
                if key in self.ignored_names:
                    self._skip(old, new, path + _key_path(key))
                else:
                    self.walk(old, new, path + _key_path(key), depth + 1)
        else:
            # Index by index: an insertion shows as changes from there on, which
            # is bounded work on any input (an LCS over long arrays is not).
            for index in range(max(len(a), len(b))):
                old = a[index] if index < len(a) else _MISSING
                new = b[index] if index < len(b) else _MISSING
                self.walk(old, new, f"{path}[{index}]", depth + 1)

    def _skip(self, a: Any, b: Any, path: str) -> None:
        # Only differences that were hidden are listed, so the UI can say "3 ignored".
        if a is _MISSING or b is _MISSING or not _json_equal(a, b):
            if len(self.ignored) < MAX_OUTPUT_ITEMS:
                self.ignored.append(path)
            else:
                self.ignored_truncated = True

    def _change(self, change: dict) -> None:
        if len(self.changes) < MAX_OUTPUT_ITEMS:
            self.changes.append(change)
        else:
            self.truncated_output = True


# Text


def _diff_text(a: DiffBody | None, b: DiffBody | None, a_text: str, b_text: str) -> dict:
    """Unified-diff hunks of lines (split on "\\n" only, so a changed line ending shows).

    Each hunk: {"a_start", "b_start" (1-based first line shown), "lines": [{"op", "text"}]},
    op " " (context, up to TEXT_CONTEXT lines), "-" (only in a) or "+" (only in b).
    At most MAX_OUTPUT_ITEMS lines in all, then "truncated_output" is true.
    """
    a_lines, b_lines = _lines(a_text), _lines(b_text)
    matcher = _BudgetedMatcher(a_lines, b_lines)
    try:
        groups = list(matcher.get_grouped_opcodes(TEXT_CONTEXT))
    except _OverBudget:
        return {"too_large": True, "a": _summary(a), "b": _summary(b)}
    hunks: list[dict] = []
    budget = MAX_OUTPUT_ITEMS
    for index, group in enumerate(groups):
        hunk_lines: list[dict] = []
        for tag, a_from, a_to, b_from, b_to in group:
            if tag == "equal":
                hunk_lines += ({"op": " ", "text": line} for line in a_lines[a_from:a_to])
            else:
                hunk_lines += ({"op": "-", "text": line} for line in a_lines[a_from:a_to])
                hunk_lines += ({"op": "+", "text": line} for line in b_lines[b_from:b_to])
        hunks.append({"a_start": group[0][1] + 1, "b_start": group[0][3] + 1, "lines": hunk_lines[:budget]})
        budget -= len(hunk_lines)
        if budget <= 0:
            return {"hunks": hunks, "truncated_output": budget < 0 or index + 1 < len(groups)}
    return {"hunks": hunks, "truncated_output": False}


class _OverBudget(Exception):
    """The line diff would take too long."""


class _BudgetedMatcher(difflib.SequenceMatcher):
    """difflib with bounded work, because it is quadratic on some inputs.

    Most of its time goes to find_longest_match, which looks at every line of
    the a-range against each place that line occurs in b. Lines occurring more
    than MAX_LINE_REPEATS times in b are made junk (they still join the matches
    around them, as difflib's own autojunk does), so each a-line costs at most
    that many steps, and the a-lines scanned in all are capped by
    TEXT_DIFF_BUDGET: roughly half a second of work.
    """

    def __init__(self, a: list[str], b: list[str]) -> None:
        popular = {line for line, count in collections.Counter(b).items() if count > MAX_LINE_REPEATS}
        self.budget = TEXT_DIFF_BUDGET
        super().__init__(popular.__contains__, a, b)

    def find_longest_match(self, alo: int = 0, ahi: int | None = None, blo: int = 0, bhi: int | None = None) -> difflib.Match:
        self.budget -= (len(self.a) if ahi is None else ahi) - alo
        if self.budget < 0:
            raise _OverBudget
        return super().find_longest_match(alo, ahi, blo, bhi)


def _lines(text: str) -> list[str]:
    return text.split("\n") if text else []
