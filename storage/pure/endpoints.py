"""Path templates: `/users/42` and `/users/43` are both `/users/{id}`. Pure: no I/O.

Two layers:

1. Segment rules (`template_path`): each segment on its own. Integers -> `{id}`, UUIDs ->
   `{uuid}`, 16 or more hex digits -> `{hash}`, ISO dates -> `{date}`, e-mail addresses ->
   `{email}`, opaque tokens (base64-ish, letters and digits mixed) and over-long segments ->
   `{token}`; a trailing file extension survives (`/files/42.json` -> `/files/{id}.json`).
   Words, even with a digit (`v2`, `oauth2`), stay as they are.
2. Cardinality (`infer_templates`): over an observed multiset of paths, where more than
   `max_literals` distinct literal segments sit at one position under the same parent
   template, they are identifiers (`/users/alice`, `/users/bob`, ...) and collapse to
   `{param}`. A small set of fixed routes never collapses; and within a collapsed set, a
   literal that carries at least `fixed_route_factor` times the median sibling's traffic
   (`/users/me` among thousands of user names) is kept as a fixed route.

Decisions, so that a template can always be turned back into a search (`search_pattern`):

- Literal segments are kept exactly as captured (percent-escapes included): the template's
  text matches the stored path. Escapes are decoded only to classify a segment, and bytes
  that are not UTF-8 classify as an opaque token's would.
- Empty segments and a trailing slash are kept: `/users/` and `/users` are distinct
  endpoints, as they are to most routers (and to the search).
- The query string is not part of the template (`?` ends the path).
- At most MAX_SEGMENTS segments are templated; whatever follows becomes one `{rest}`.
- A captured segment spelled exactly like a placeholder (`{id}`) is read as that
  placeholder, which is what keeps templating idempotent.

The result depends only on the multiset of paths, never on their order.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache
from urllib.parse import unquote

__all__ = [
    "DEFAULT_FIXED_ROUTE_FACTOR",
    "DEFAULT_MAX_LITERALS",
    "MAX_SEGMENTS",
    "MAX_SEGMENT_CHARS",
    "PLACEHOLDERS",
    "infer_templates",
    "search_pattern",
    "template_path",
    "template_segment",
]

DEFAULT_MAX_LITERALS = 20
"""Distinct literal values at one position before they are taken for identifiers."""
DEFAULT_FIXED_ROUTE_FACTOR = 10.0
"""In a collapsed set, a literal with this many times the median sibling's requests stays."""
MAX_SEGMENTS = 32
MAX_SEGMENT_CHARS = 100
"""A longer segment is data, not a route name."""

PLACEHOLDERS = frozenset({"{id}", "{uuid}", "{hash}", "{date}", "{email}", "{token}", "{param}", "{rest}"})

_INTEGER = re.compile(r"-?\d+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]{16,}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
_EMAIL = re.compile(r"[^@\s/]+@[^@\s/]+\.[A-Za-z]{2,}")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-.~+=]+")
_DIGIT = re.compile(r"\d")
_LETTER = re.compile(r"[A-Za-z]")
_NO_DIGIT_AT_OR_ESCAPE = re.compile(r"[^0-9@%]*")
_WORD_PART = re.compile(r"[A-Za-z]+|\d+")
_PLACEHOLDER_IN_SEGMENT = re.compile("|".join(re.escape(placeholder) for placeholder in sorted(PLACEHOLDERS)))
_EXTENSION = re.compile(r"(.+?)(\.[A-Za-z][A-Za-z0-9]{0,4})")


def _is_token(text: str) -> bool:
    """Opaque: base64-ish characters, letters and digits interleaved within one part, and
    long enough not to be a word like `v2`, `oauth2` or `x509` (mixed case from 8
    characters, `a8Fk29xQ`; otherwise from 16)."""
    if len(text) < 8 or not _TOKEN_CHARS.fullmatch(text):
        return False
    if len(_DIGIT.findall(text)) < 2 or len(_LETTER.findall(text)) < 2:
        return False
    mixed_case = text.lower() != text and text.upper() != text
    if len(text) < (8 if mixed_case else 16):
        return False
    # A slug of plain words and numbers (`release-2024-notes`) is a name, not a token.
    parts = re.split(r"[-_.~+=]+", text)
    return any(len(_WORD_PART.findall(part)) > 1 for part in parts)


def _classify(decoded: str) -> str | None:
    if _INTEGER.fullmatch(decoded):
        return "{id}"
    if _UUID.fullmatch(decoded):
        return "{uuid}"
    if _HEX.fullmatch(decoded) and any(c.isdigit() for c in decoded):
        return "{hash}"
    if _DATE.fullmatch(decoded):
        return "{date}"
    if _EMAIL.fullmatch(decoded):
        return "{email}"
    if _is_token(decoded):
        return "{token}"
    return None


def template_segment(segment: str) -> str:
    """One path segment (as captured, still percent-encoded) -> a placeholder, or itself."""
    if not segment or segment in PLACEHOLDERS:
        return segment
    if len(segment) > MAX_SEGMENT_CHARS:
        return "{token}"  # checked before the cache, which must not keep huge keys
    if _NO_DIGIT_AT_OR_ESCAPE.fullmatch(segment):
        return segment  # every placeholder but {param} needs a digit or an @: a word
    if segment.isascii() and segment.isdigit():
        return "{id}"
    return _template_short_segment(segment)


@lru_cache(maxsize=65536)
def _template_short_segment(segment: str) -> str:
    decoded = unquote(segment, errors="surrogateescape") if "%" in segment else segment
    if any("\udc80" <= c <= "\udcff" for c in decoded):
        return "{token}"  # not UTF-8 text: binary data in the path
    placeholder = _classify(decoded)
    if placeholder is not None:
        return placeholder
    extension = _EXTENSION.fullmatch(segment)
    if extension is not None:
        stem = template_segment(extension.group(1))
        if stem in PLACEHOLDERS:
            return stem + extension.group(2)
    return segment


def _segments(path: str) -> list[str]:
    path = path.split("?", 1)[0]
    if not path.startswith("/"):
        path = "/" + path
    parts = path[1:].split("/")
    if len(parts) > MAX_SEGMENTS:
        parts = [*parts[:MAX_SEGMENTS], "{rest}"]
    return parts


def template_path(path: str) -> str:
    """Layer 1 only: each segment through template_segment. Idempotent."""
    return "/" + "/".join(template_segment(segment) for segment in _segments(path))


class _Node:
    """A trie node: the requests at or below it, and its children by segment."""

    __slots__ = ("children", "count", "renamed")

    def __init__(self) -> None:
        self.count = 0
        self.children: dict[str, _Node] = {}
        self.renamed: dict[str, str] = {}
        """Literal children collapsed into `{param}` (literal -> "{param}")."""

    def add(self, segments: tuple[str, ...], count: int) -> None:
        node = self
        node.count += count
        for segment in segments:
            child = node.children.get(segment)
            if child is None:
                child = node.children[segment] = _Node()
            node = child
            node.count += count

    def absorb(self, other: _Node) -> None:
        self.count += other.count
        for segment, child in other.children.items():
            mine = self.children.get(segment)
            if mine is None:
                self.children[segment] = child
            else:
                mine.absorb(child)


def _is_literal(segment: str) -> bool:
    return bool(segment) and _PLACEHOLDER_IN_SEGMENT.search(segment) is None


def _collapse(node: _Node, max_literals: int, fixed_route_factor: float) -> None:
    """Collapse the node's literal children into `{param}` when they are identifiers, then
    the same below (after the merge, so merged subtrees are judged together)."""
    literals = {segment: child for segment, child in node.children.items() if _is_literal(segment)}
    if len(literals) > max_literals:
        median = statistics.median(child.count for child in literals.values())
        keep = {segment for segment, child in literals.items() if child.count >= fixed_route_factor * median}
        if len(keep) > max_literals:  # not a small set of routes: everything is an identifier
            keep = set()
        param = node.children.get("{param}") or _Node()
        for segment in sorted(literals):
            if segment in keep:
                continue
            param.absorb(node.children.pop(segment))
            node.renamed[segment] = "{param}"
        node.children["{param}"] = param
    for child in node.children.values():
        _collapse(child, max_literals, fixed_route_factor)


def infer_templates(
    paths: Iterable[str] | Mapping[str, int],
    *,
    max_literals: int = DEFAULT_MAX_LITERALS,
    fixed_route_factor: float = DEFAULT_FIXED_ROUTE_FACTOR,
) -> dict[str, str]:
    """Every distinct path -> its template, both layers.

    `paths`: each observed path once per request, or a mapping path -> request count (the
    counts decide which literals are fixed routes). Order-independent and deterministic."""
    if max_literals < 1:
        raise ValueError("max_literals must be at least 1")
    counts = Counter(paths) if not isinstance(paths, Mapping) else Counter(dict(paths))
    memo: dict[str, str] = {}  # distinct segments are far fewer than segments
    layered: dict[str, tuple[str, ...]] = {}
    for path in counts:
        segments = []
        for segment in _segments(path):
            template = memo.get(segment)
            if template is None:
                template = memo[segment] = template_segment(segment)
            segments.append(template)
        layered[path] = tuple(segments)
    per_template: Counter[tuple[str, ...]] = Counter()
    for path, count in counts.items():
        per_template[layered[path]] += count
    root = _Node()
    for segments, count in per_template.items():
        root.add(segments, count)
    _collapse(root, max_literals, fixed_route_factor)
    inferred: dict[tuple[str, ...], str] = {}
    for segments in per_template:
        out: list[str] = []
        node = root
        for segment in segments:
            segment = node.renamed.get(segment, segment)
            out.append(segment)
            node = node.children[segment]
        inferred[segments] = "/" + "/".join(out)
    return {path: inferred[segments] for path, segments in layered.items()}


def search_pattern(template: str) -> str:
    """The search language's `path:` glob for a template: each placeholder -> `*`.

    A `*` matches any run of characters, `/` included, so the pattern may also match a
    few paths of a neighbouring template; it never misses one of this template's."""
    return _PLACEHOLDER_IN_SEGMENT.sub("*", template)
