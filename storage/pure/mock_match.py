"""Which recording answers a simulated service's request (proxy.mocks). Pure: no I/O.

A simulation holds recordings (a request and the response it got, in recorded order) indexed
once by `build_index`; `match` picks the answer for each live request:

1. Exact: the same method, path, query and body. Query parameters compare as a multiset, in
   any order (`?a=1&b=2` is `?b=2&a=1`; `?a=1&a=2` is not `?a=1`); a JSON body compares by
   value (key order and whitespace aside), any other body byte for byte. Headers are never
   compared: they carry tokens, trace ids and dates that differ on every run.
2. Closest on the same endpoint: among the recordings of the same method and path (they differ
   by query or body), else of the same method and endpoint template
   (storage.pure.endpoints.template_path: `/orders/42` and `/orders/43` are `/orders/{id}`),
   the one with the highest `similarity` (below); on a tie, the one recorded first.
3. None: no recording of that method and template. The result names the MAX_CLOSEST
   recordings nearest to the request (`nearness`): those under the same first path segment,
   else any.

Sequences: identical recorded requests (one exact key) form a group, kept in recorded order.
The n-th time a group answers, it answers with its n-th recording, so `GET /cart`, `POST /cart`,
`GET /cart` plays back the empty cart, then the full one. After the last recording the last one
repeats (the state a sequence ends in is the one a client keeps seeing, as WireMock's scenarios
stay in their last state). The counts live in a MockState, one per simulation, which the proxy
makes anew each time it (re)loads the simulation's recordings: reloading restarts every sequence.

similarity(request, recording) = path + query + body, each in [0, 1], so 0..3:
- path: the share of segments equal at the same position (the template already matched);
- query: (shared name=value pairs + shared names) / (all pairs + all names) of both sides;
  1 when neither has a query;
- body: for JSON bodies the same formula over leaf paths (`items.0.sku`) and path=value pairs;
  for form bodies over their fields; other bodies 1 when equal, else 0; 1 when both are empty.
nearness (only for a no-match's list): twice the share of leading path segments in common
(where a request is going matters most) + 0.5 for the same method + the query similarity.

Bounds: build_index keeps at most `max_recordings` recordings and `max_body_bytes` bytes of
bodies (request and response) in all; what does not fit is dropped and counted. JSON leaves
are read up to MAX_LEAVES per body. Exact matching is one dict lookup; a closest match or a miss
scores at most MAX_SCORED groups (the first recorded of its candidates).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from storage.pure.endpoints import template_path

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_RECORDINGS",
    "MAX_CLOSEST",
    "MAX_LEAVES",
    "MockIndex",
    "MockMatch",
    "MockRequest",
    "MockState",
    "Recording",
    "answer_headers",
    "build_index",
    "match",
    "similarity",
]

DEFAULT_MAX_RECORDINGS = 5000
"""Recordings one simulation holds at most."""
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
"""Bytes of bodies (requests and responses) one simulation holds at most."""
MAX_CLOSEST = 3
"""Recordings a no-match names."""
MAX_LEAVES = 256
"""JSON leaves (or form fields) of one body compared; the rest are ignored."""
MAX_SCORED = 200
"""Recordings one request scores at most (the first recorded of its candidates), so that a
simulation with thousands of recordings of one endpoint costs the loop a bounded time."""
_MAX_JSON_BYTES = 1024 * 1024
"""A longer body is compared as bytes, never parsed."""

_DROPPED_RESPONSE_HEADERS = frozenset({
    # hop-by-hop (RFC 9110 7.6.1) and what mitmproxy sets itself for the body it sends
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
    "transfer-encoding", "upgrade", "content-length",
    # the recorded body is kept decoded
    "content-encoding",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Recording:
    """One recorded exchange: the request it got and the response it gave (bodies decoded)."""

    label: str
    """What the mock mark says answered: "#1234" (a stored exchange), "har:entry 7"."""
    method: str
    path: str
    """Without the query."""
    query: str
    request_body: bytes
    status: int
    reason: str = ""
    response_headers: tuple[tuple[str, str], ...] = ()
    response_body: bytes = b""
    duration_ms: float | None = None
    request_content_type: str | None = None
    exchange_id: int | None = None
    """The stored exchange's id; None for a HAR file's entry."""


@dataclass(frozen=True, slots=True)
class MockRequest:
    """A live request to a simulated service (body decoded, as the proxy reads it)."""

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = ()
    body: bytes = b""

    @property
    def content_type(self) -> str | None:
        items = self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        return next((value for name, value in items if name.lower() == "content-type"), None)


@dataclass(frozen=True, slots=True)
class _Features:
    """What similarity compares, read once per group and per live request."""

    segments: tuple[str, ...]
    query_names: frozenset[str]
    query_pairs: frozenset[tuple[str, str]]
    body_kind: str
    """"empty", "json", "form" or "bytes"."""
    body_names: frozenset[str]
    body_pairs: frozenset[tuple[str, str]]
    body_digest: bytes


@dataclass(frozen=True, slots=True)
class _Group:
    """Identical recorded requests, in recorded order: a sequence (see the module doc)."""

    key: tuple[str, str, tuple[tuple[str, str], ...], bytes]
    recordings: tuple[Recording, ...]
    position: int
    """Where its first recording was in the recorded order (ties go to the earliest)."""
    features: _Features


@dataclass(frozen=True, slots=True)
class MockIndex:
    """A simulation's recordings, indexed (immutable; see build_index)."""

    groups: Mapping[tuple, _Group]
    by_template: Mapping[tuple[str, str], tuple[_Group, ...]]
    by_path: Mapping[tuple[str, str], tuple[_Group, ...]]
    """(method, path): the groups that differ from a request of that path by query or body only."""
    by_first: Mapping[str, tuple[_Group, ...]]
    """First path segment: where a miss looks for the closest recordings first."""
    recordings: int
    """How many recordings it holds."""
    dropped: int
    """How many did not fit max_recordings or max_body_bytes."""
    body_bytes: int


@dataclass(slots=True)
class MockState:
    """How many times each group answered in one simulation (sequences); new on every (re)load."""

    served: dict[tuple, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MockMatch:
    """What `match` found. kind: "exact", "closest" (same endpoint template) or "none"."""

    kind: str
    recording: Recording | None = None
    similarity: float | None = None
    """For "closest": the similarity score (0..3) of the recording chosen."""
    closest: tuple[Recording, ...] = ()
    """For "none": the recordings nearest to the request, nearest first."""


# --- keys and features --------------------------------------------------------------------------


def _query_pairs(query: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(parse_qsl(query, keep_blank_values=True)))


def _is_form(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded"


def _json_value(body: bytes) -> tuple[bool, object]:
    """(True, value) when `body` is a JSON object or array; (False, None) otherwise."""
    if not body or len(body) > _MAX_JSON_BYTES or body.lstrip()[:1] not in (b"{", b"["):
        return False, None
    try:
        return True, json.loads(body)
    except (ValueError, RecursionError):
        return False, None


def _leaves(value: object) -> list[tuple[str, str]]:
    """(dotted path, the leaf's JSON) for up to MAX_LEAVES leaves, breadth first."""
    out: list[tuple[str, str]] = []
    pending: list[tuple[str, object]] = [("", value)]
    while pending and len(out) < MAX_LEAVES:
        path, node = pending.pop(0)
        if isinstance(node, dict) and node:
            pending.extend((f"{path}.{key}" if path else str(key), child) for key, child in node.items())
        elif isinstance(node, list) and node:
            pending.extend((f"{path}.{i}" if path else str(i), child) for i, child in enumerate(node))
        else:
            out.append((path, json.dumps(node, sort_keys=True)))
    return out


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _body_features(body: bytes, content_type: str | None) -> tuple[str, frozenset, frozenset, bytes]:
    """(kind, names, pairs, digest): the digest is of the canonical form, so it is the exact key."""
    if not body:
        return "empty", frozenset(), frozenset(), b""
    is_json, value = _json_value(body)
    if is_json:
        canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        leaves = _leaves(value)
        return "json", frozenset(p for p, _ in leaves), frozenset(leaves), _digest(b"j" + canonical.encode("utf-8", "surrogatepass"))
    if _is_form(content_type):
        text = body.decode("utf-8", "replace")
        pairs = tuple(sorted(parse_qsl(text, keep_blank_values=True)))
        return "form", frozenset(n for n, _ in pairs[:MAX_LEAVES]), frozenset(pairs[:MAX_LEAVES]), _digest(b"f" + repr(pairs).encode())
    return "bytes", frozenset(), frozenset(), _digest(b"b" + body)


def _features(path: str, query: str, body: bytes, content_type: str | None) -> _Features:
    pairs = _query_pairs(query)
    kind, names, body_pairs, digest = _body_features(body, content_type)
    return _Features(
        segments=tuple(path.split("/")),
        query_names=frozenset(name for name, _ in pairs),
        query_pairs=frozenset(pairs),
        body_kind=kind,
        body_names=names,
        body_pairs=body_pairs,
        body_digest=digest,
    )


def _key(method: str, path: str, query: str, features: _Features) -> tuple:
    return (method.upper(), path, _query_pairs(query), features.body_digest)


# --- scores -------------------------------------------------------------------------------------


def _overlap(names_a: frozenset, pairs_a: frozenset, names_b: frozenset, pairs_b: frozenset) -> float:
    """(shared pairs + shared names) / (all pairs + all names); 1 when both are empty."""
    total = len(pairs_a | pairs_b) + len(names_a | names_b)
    if not total:
        return 1.0
    return (len(pairs_a & pairs_b) + len(names_a & names_b)) / total


def _path_score(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    longest = max(len(a), len(b))
    return sum(x == y for x, y in zip(a, b, strict=False)) / longest if longest else 1.0


def _body_score(a: _Features, b: _Features) -> float:
    if a.body_kind == b.body_kind and a.body_kind in ("json", "form"):
        return _overlap(a.body_names, a.body_pairs, b.body_names, b.body_pairs)
    return 1.0 if a.body_digest == b.body_digest else 0.0


def _similarity(a: _Features, b: _Features) -> float:
    query = _overlap(a.query_names, a.query_pairs, b.query_names, b.query_pairs)
    return _path_score(a.segments, b.segments) + query + _body_score(a, b)


def similarity(request: MockRequest, recording: Recording) -> float:
    """The score `match` ranks a template's recordings by (see the module doc), 0..3."""
    return _similarity(
        _features(request.path, request.query, request.body, request.content_type),
        _features(recording.path, recording.query, recording.request_body, recording.request_content_type),
    )


def _nearness(method: str, a: _Features, group: _Group) -> float:
    b = group.features
    leading = 0
    for x, y in zip(a.segments[1:], b.segments[1:], strict=False):  # [0] is the "" before the first /
        if x != y:
            break
        leading += 1
    longest = max(len(a.segments), len(b.segments)) - 1 or 1
    same_method = 0.5 if group.key[0] == method else 0.0
    return 2 * leading / longest + same_method + _overlap(a.query_names, a.query_pairs, b.query_names, b.query_pairs)


# --- index and match ----------------------------------------------------------------------------


def build_index(
    recordings: Iterable[Recording],
    *,
    max_recordings: int = DEFAULT_MAX_RECORDINGS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> MockIndex:
    """Index recordings given in recorded order (oldest first). Past `max_recordings`, or past
    `max_body_bytes` of bodies in all, recordings are dropped (and counted), never cut."""
    members: dict[tuple, list[Recording]] = {}
    features: dict[tuple, _Features] = {}
    positions: dict[tuple, int] = {}
    kept = dropped = body_bytes = 0
    for position, recording in enumerate(recordings):
        size = len(recording.request_body) + len(recording.response_body)
        if kept >= max_recordings or body_bytes + size > max_body_bytes:
            dropped += 1
            continue
        found = _features(recording.path, recording.query, recording.request_body, recording.request_content_type)
        key = _key(recording.method, recording.path, recording.query, found)
        if key not in members:
            members[key], features[key], positions[key] = [], found, position
        members[key].append(recording)
        kept += 1
        body_bytes += size
    groups = {key: _Group(key, tuple(found), positions[key], features[key]) for key, found in members.items()}
    by_template: dict[tuple[str, str], list[_Group]] = {}
    by_path: dict[tuple[str, str], list[_Group]] = {}
    by_first: dict[str, list[_Group]] = {}
    for group in groups.values():
        by_template.setdefault((group.key[0], template_path(group.key[1])), []).append(group)
        by_path.setdefault((group.key[0], group.key[1]), []).append(group)
        by_first.setdefault(_first_segment(group.features.segments), []).append(group)
    return MockIndex(
        groups=groups,
        by_template={key: tuple(found) for key, found in by_template.items()},
        by_path={key: tuple(found) for key, found in by_path.items()},
        by_first={key: tuple(found) for key, found in by_first.items()},
        recordings=kept,
        dropped=dropped,
        body_bytes=body_bytes,
    )


def _serve(state: MockState, group: _Group) -> Recording:
    """The group's next recording in its sequence; its last one once the sequence is over."""
    count = state.served.get(group.key, 0)
    state.served[group.key] = min(count + 1, len(group.recordings))
    return group.recordings[min(count, len(group.recordings) - 1)]


def match(index: MockIndex, state: MockState, request: MockRequest) -> MockMatch:
    """The recording that answers `request` (see the module doc); advances `state`'s sequences."""
    method = request.method.upper()
    found = _features(request.path, request.query, request.body, request.content_type)
    group = index.groups.get(_key(method, request.path, request.query, found))
    if group is not None:
        return MockMatch("exact", _serve(state, group))
    candidates = index.by_path.get((method, request.path)) or index.by_template.get((method, template_path(request.path)))
    if candidates:
        best = max(candidates[:MAX_SCORED], key=lambda g: (_similarity(found, g.features), -g.position))
        return MockMatch("closest", _serve(state, best), similarity=_similarity(found, best.features))
    pool = index.by_first.get(_first_segment(found.segments), ())[:MAX_SCORED]
    if len(pool) < MAX_CLOSEST:
        pool = (*pool, *itertools.islice(index.groups.values(), MAX_SCORED))
    ranked = heapq.nsmallest(MAX_CLOSEST, {g.key: g for g in pool}.values(), key=lambda g: (-_nearness(method, found, g), g.position))
    return MockMatch("none", closest=tuple(g.recordings[0] for g in ranked))


def _first_segment(segments: tuple[str, ...]) -> str:
    return segments[1] if len(segments) > 1 else ""


def answer_headers(recorded: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The recorded response headers a mock answer sends: hop-by-hop ones, Content-Length and
    Content-Encoding left out (the body is sent decoded, and its length is the proxy's to set)."""
    return [(name, value) for name, value in recorded if name.lower() not in _DROPPED_RESPONSE_HEADERS]
