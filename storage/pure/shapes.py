"""Shapes of observed JSON values and of API operations: mergeable, bounded summaries. Pure.

A *node* summarises every JSON value seen at one place (a body's root, a property, an array's
items): how many, of which JSON types (null -> nullable), for strings the formats every one of
them matched and the distinct values while they are few (enum candidates), for integers their
range, for objects each property's node (its count is how many objects had it: `required` is
"in every object"), for arrays one node for all their items. An *operation* summary (one method +
endpoint template) holds the nodes of its path and query parameters and of its request bodies by
media type (apart for the requests the service accepted and those it refused with a 4xx/5xx), of
its responses by status and media type, the exchange count and one example.

Both are plain JSON (a day row's `summary` column), and `merge` / `merge_operations` are
associative and commutative: day rows (and chunks of exchanges) merge in any order to the same
summary. They stay bounded whatever the traffic:

- depth: below MAX_DEPTH values count only by type;
- nodes per body summary: at most MAX_NODES; past it, the nodes kept are the first by (depth,
  path) order. Taking "the first N of the union" of summaries commutes with merging (the first N of
  a union are among the first N of its parts), which is what keeps merge associative where
  "the most frequent N" would not;
- enum candidates: at most ENUM_MAX distinct strings of at most ENUM_MAX_CHARS characters, never
  an identifier, a formatted string, text with whitespace, a redaction marker or a secret member's value
  (one more and the node has no enum candidates for good);
- query parameters, media types and statuses: the first QUERY_MAX / MEDIA_MAX / STATUS_MAX
  by name order.

Pruning only loosens a schema (a property or an items schema left out accepts anything), so a
value merged into a summary always validates against the schema made from it (`to_json_schema`,
JSON Schema 2020-12, which OpenAPI 3.1 uses).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from storage.pure.endpoints import MAX_SEGMENTS, PLACEHOLDERS, template_segment
from storage.pure.redaction import MARKER_RE

__all__ = [
    "ENUM_MAX",
    "ENUM_MAX_CHARS",
    "ENUM_MIN_SAMPLES",
    "FORMATS",
    "EXAMPLE_MAX_CHARS",
    "MAX_DEPTH",
    "MAX_NAME_CHARS",
    "MAX_NODES",
    "MEDIA_MAX",
    "QUERY_MAX",
    "STATUS_MAX",
    "Body",
    "add_exchange",
    "bound_operation",
    "is_id_name",
    "merge",
    "merge_operations",
    "observe",
    "observe_text",
    "operation_of",
    "path_values",
    "request_side",
    "scalar_of_text",
    "to_json_schema",
    "json_type",
]

MAX_DEPTH = 10
"""Values nested deeper than this count only by type (no properties, no items)."""
MAX_NODES = 200
"""Nodes of one body summary (its root and everything below)."""
MAX_NAME_CHARS = 100
"""A longer member or query parameter name is data, not a name: not kept."""
_INT_CLAMP = 2**64
"""Integer ranges are kept within ±this (enough to tell int32 from int64 from larger)."""
ENUM_MAX = 10
"""Distinct strings an enum may have."""
ENUM_MAX_CHARS = 40
ENUM_MIN_SAMPLES = 8
"""An enum needs at least this many strings, and ENUM_SAMPLES_PER_VALUE times its distinct values."""
ENUM_SAMPLES_PER_VALUE = 4
QUERY_MAX = 50
MEDIA_MAX = 4
STATUS_MAX = 20
EXAMPLE_MAX_CHARS = 4096
"""An example body (as JSON text) longer than this is left out of the example; its path and query are cut to it."""

_TYPES = ("boolean", "integer", "number", "string", "object", "array", "null")
FORMATS = ("uuid", "date-time", "date", "email", "uri")
"""The string formats recognised, in the order a schema prefers them."""
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# ASCII digits only: "\d" would also take other scripts' digits, which no date format allows.
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_DATE_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)
_EMAIL = re.compile(r"[^@\s\"<>(),;:\\\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"<>\\^`{|}]+")
_INTEGER_TEXT = re.compile(r"-?(?:0|[1-9]\d{0,18})", re.ASCII)
_NUMBER_TEXT = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?", re.ASCII)
_ID_NAME = re.compile(r"(?:.*[_\-. ])?(?:id|uuid|guid|key|hash)s?", re.IGNORECASE)
_CAMEL_ID_NAME = re.compile(r".*[a-z0-9](?:Id|ID|Uuid|UUID|Key|Hash)s?")

Node = dict[str, Any]


def _valid_date(text: str) -> bool:
    match = _DATE.fullmatch(text)
    if match is None:
        return False
    try:
        dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return False
    return True


def _is_date_time(text: str) -> bool:
    match = _DATE_TIME.fullmatch(text)
    return bool(match) and _valid_date(match[1]) and int(match[2]) < 24 and int(match[3]) < 60 and int(match[4]) < 61


_CHECKS: dict[str, Callable[[str], bool]] = {
    "uuid": lambda text: _UUID.fullmatch(text) is not None,
    "date-time": _is_date_time,
    "date": _valid_date,
    "email": lambda text: "@" in text and _EMAIL.fullmatch(text) is not None,
    "uri": lambda text: "://" in text and _URI.fullmatch(text) is not None,
}


def _formats(text: str, candidates: Iterable[str] = FORMATS) -> list[str]:
    """Which of `candidates` `text` satisfies (RFC 3339 date-time and date, RFC 4122 uuid, an
    address, a URL), in FORMATS order."""
    if len(text) > 2048:
        return []
    return [name for name in candidates if _CHECKS[name](text)]


def _enum_candidate(text: str) -> bool:
    """A string that may be one of a few fixed values: short, not free text, not an identifier."""
    if not text or len(text) > ENUM_MAX_CHARS:
        return False
    return _short_enum_candidate(text)


@functools.lru_cache(maxsize=8192)  # an enum's few values come back again and again
def _short_enum_candidate(text: str) -> bool:
    if any(c.isspace() for c in text):
        return False  # whitespace: free text (a name, a sentence), not a code
    if MARKER_RE.search(text):
        return False
    # Numbers, uuids, hashes, dates, addresses and opaque tokens are identifiers or data.
    return all(template_segment(part) == part for part in text.split("/"))


def is_id_name(name: str) -> bool:
    """A member named like an identifier (`id`, `user_id`, `orderId`, `api-key`): never an enum."""
    return _ID_NAME.fullmatch(name) is not None or _CAMEL_ID_NAME.fullmatch(name) is not None


def json_type(value: Any) -> str:
    """The JSON Schema type name of a value json.loads made (bool is boolean, not integer)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


# --- nodes ---------------------------------------------------------------------------------

_KINDS = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string", dict: "object", list: "array"}
"""JSON types of what json.loads makes, by exact type (the per-value fast path of _add)."""


def _add(node: Node, value: Any, depth: int, secret: Callable[[str], bool] | None, hidden: bool) -> None:
    """Count `value` into `node` (in place). `hidden`: the value of a secret member (no enum)."""
    kind = _KINDS.get(type(value)) or json_type(value)
    node["n"] = node.get("n", 0) + 1
    types = node.get("t")
    if types is None:
        types = node["t"] = {}
    types[kind] = types.get(kind, 0) + 1
    if kind == "string":
        # The formats every string so far satisfied (an intersection: once empty, no more checks).
        formats = node.get("f")
        if formats is None:
            node["f"] = _formats(value)
        elif formats:
            node["f"] = _formats(value, formats)
        if "e" not in node:
            node["e"] = {}
        enum = node["e"]
        if enum is not None:
            if hidden or not _enum_candidate(value):
                node["e"] = None
            else:
                enum[value] = enum.get(value, 0) + 1
                if len(enum) > ENUM_MAX:
                    node["e"] = None
    elif kind == "integer":
        value = max(-_INT_CLAMP, min(_INT_CLAMP, value))
        node["lo"] = min(node.get("lo", value), value)
        node["hi"] = max(node.get("hi", value), value)
    elif kind == "object" and depth < MAX_DEPTH:
        properties = node.setdefault("p", {})
        for key, item in value.items():
            key = str(key)
            if len(key) > MAX_NAME_CHARS:
                continue
            child = properties.get(key)
            if child is None:
                child = properties[key] = {}
            _add(child, item, depth + 1, secret, hidden or (secret is not None and secret(key)))
    elif kind == "array" and depth < MAX_DEPTH:
        for item in value:
            items = node.get("i")
            if items is None:
                items = node["i"] = {}
            _add(items, item, depth + 1, secret, hidden)


def observe(
    value: Any, *, secret: Callable[[str], bool] | None = None, into: Node | None = None, prune: bool = True
) -> Node:
    """The summary of one JSON value, or `into` with it counted in (in place, pruned to bounds).

    `secret`: member name -> whether its values are secret (storage.pure.redaction.is_secret_name):
    such values are never kept as enum candidates. `prune=False` leaves the pruning to a later
    `bound_operation` (the same result: the first MAX_NODES of a union are those of its parts')."""
    node: Node = {} if into is None else into
    _add(node, value, 0, secret, False)
    return _prune(node) if prune else node


def scalar_of_text(text: str) -> Any:
    """A URL parameter's text as the JSON scalar it spells: true/false, an integer, a number, or the text."""
    if text in ("true", "false"):
        return text == "true"
    if _INTEGER_TEXT.fullmatch(text):
        return int(text)
    if len(text) < 40 and _NUMBER_TEXT.fullmatch(text):
        number = float(text)
        if number == number and abs(number) != float("inf"):
            return number
    return text


def observe_text(text: str, *, hidden: bool = False, count: int = 1, into: Node | None = None) -> Node:
    """A URL parameter's value (path segment or query value, already unescaped) counted in
    `count` times, typed as scalar_of_text reads it."""
    node: Node = {} if into is None else into
    value = scalar_of_text(text)
    if count == 1:
        _add(node, value, MAX_DEPTH, None, hidden)
        return node
    one: Node = {}
    _add(one, value, MAX_DEPTH, None, hidden)
    merged = merge(node, _scaled(one, count))
    node.clear()
    node.update(merged)
    return node


def _scaled(node: Node, factor: int) -> Node:
    out = copy.deepcopy(node)
    out["n"] *= factor
    out["t"] = {kind: count * factor for kind, count in out["t"].items()}
    if out.get("e"):
        out["e"] = {value: count * factor for value, count in out["e"].items()}
    return out


def _add_counts(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    out = dict(a)
    for key, count in b.items():
        out[key] = out.get(key, 0) + count
    return out


def _merge_node(a: Node, b: Node) -> Node:
    out: Node = {"n": a.get("n", 0) + b.get("n", 0), "t": _add_counts(a.get("t", {}), b.get("t", {}))}
    if "f" in a and "f" in b:
        out["f"] = [name for name in a["f"] if name in b["f"]]
    elif "f" in a or "f" in b:
        out["f"] = list(a["f"] if "f" in a else b["f"])
    if "e" in a or "e" in b:
        if "e" not in a or "e" not in b:
            enum = a.get("e") if "e" in a else b.get("e")
            out["e"] = None if enum is None else dict(enum)
        elif a["e"] is None or b["e"] is None:
            out["e"] = None
        else:
            enum = _add_counts(a["e"], b["e"])
            out["e"] = None if len(enum) > ENUM_MAX else enum
    for key, pick in (("lo", min), ("hi", max)):
        if key in a and key in b:
            out[key] = pick(a[key], b[key])
        elif key in a or key in b:
            out[key] = a[key] if key in a else b[key]
    if "p" in a or "p" in b:
        pa, pb = a.get("p", {}), b.get("p", {})
        out["p"] = {
            key: _merge_node(pa[key], pb[key]) if key in pa and key in pb else copy.deepcopy(pa.get(key) or pb[key])
            for key in {*pa, *pb}
        }
    if "i" in a or "i" in b:
        if "i" in a and "i" in b:
            out["i"] = _merge_node(a["i"], b["i"])
        else:
            out["i"] = copy.deepcopy(a.get("i") or b["i"])
    if a.get("cut") or b.get("cut"):
        out["cut"] = True
    return out


def merge(a: Node, b: Node) -> Node:
    """Two summaries of values seen at one place, as one (new; neither is changed)."""
    return _prune(_merge_node(a, b))


def _paths(node: Node) -> list[tuple[str, ...]]:
    """Every node's path below the root (`p` + property name, or `i`)."""
    found: list[tuple[str, ...]] = []
    stack: list[tuple[tuple[str, ...], Node]] = [((), node)]
    while stack:
        path, current = stack.pop()
        for key, child in current.get("p", {}).items():
            found.append((*path, "p" + key))
            stack.append(((*path, "p" + key), child))
        if "i" in current:
            found.append((*path, "i"))
            stack.append(((*path, "i"), current["i"]))
    return found


def _prune(node: Node) -> Node:
    """At most MAX_NODES nodes: the first by (depth, path); `cut` says some were left out."""
    paths = _paths(node)
    if len(paths) < MAX_NODES:
        return node
    kept = set(sorted(paths, key=lambda path: (len(path), path))[: MAX_NODES - 1])

    def keep(current: Node, path: tuple[str, ...]) -> None:
        if "p" in current:
            current["p"] = {
                key: child for key, child in current["p"].items() if (*path, "p" + key) in kept
            }
            for key, child in current["p"].items():
                keep(child, (*path, "p" + key))
        if "i" in current:
            if (*path, "i") in kept:
                keep(current["i"], (*path, "i"))
            else:
                del current["i"]

    keep(node, ())
    node["cut"] = True
    return node


def _types(node: Node) -> list[str]:
    present = [kind for kind in _TYPES if node.get("t", {}).get(kind)]
    if "number" in present and "integer" in present:
        present.remove("integer")  # every integer is a number
    return present


def to_json_schema(node: Node | None, *, name: str | None = None) -> dict[str, Any]:
    """JSON Schema 2020-12 that every value counted into `node` validates against. `name`:
    the member the values belong to (a member named like an identifier gets no enum)."""
    if not node or not node.get("n"):
        return {}
    types = _types(node)
    schema: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    strings = node["t"].get("string", 0)
    if strings:
        held = node.get("f", [])
        if held:
            schema["format"] = held[0]
        enum = node.get("e")
        if (
            enum
            and len(enum) > 1  # one value seen is a constant of this traffic, not a closed set
            and set(types) <= {"string", "null"}
            and not held
            and (name is None or not is_id_name(name))
            and strings >= max(ENUM_MIN_SAMPLES, ENUM_SAMPLES_PER_VALUE * len(enum))
        ):
            schema["enum"] = [*sorted(enum), *([None] if "null" in types else [])]
    if types in (["integer"], ["integer", "null"]) and "lo" in node:
        if _INT32[0] <= node["lo"] and node["hi"] <= _INT32[1]:
            schema["format"] = "int32"
        elif _INT64[0] <= node["lo"] and node["hi"] <= _INT64[1]:
            schema["format"] = "int64"
    objects = node["t"].get("object", 0)
    if objects and node.get("p"):
        properties = node["p"]
        schema["properties"] = {key: to_json_schema(properties[key], name=key) for key in sorted(properties)}
        required = sorted(key for key, child in properties.items() if child.get("n", 0) >= objects)
        if required:
            schema["required"] = required
    if node["t"].get("array") and node.get("i"):
        schema["items"] = to_json_schema(node["i"], name=name)
    return schema


# --- operations ----------------------------------------------------------------------------


class Body:
    """A body as the summary sees it: its media type and, when it was read as JSON, the value."""

    __slots__ = ("json", "media", "parsed")

    def __init__(self, media: str, *, parsed: bool = False, json: Any = None) -> None:
        self.media = media
        self.parsed = parsed
        self.json = json


def path_values(template: str, path: str) -> dict[str, str]:
    """Segment index -> the (unescaped) text each placeholder of `template` took in `path`."""
    raw = path.split("?", 1)[0]
    parts = (raw[1:] if raw.startswith("/") else raw).split("/")
    if len(parts) > MAX_SEGMENTS:
        parts = [*parts[:MAX_SEGMENTS], "/".join(parts[MAX_SEGMENTS:])]
    segments = template[1:].split("/")
    values: dict[str, str] = {}
    for index, (segment, part) in enumerate(zip(segments, parts, strict=False)):
        if "{" not in segment:
            continue
        for placeholder in PLACEHOLDERS:
            if segment.startswith(placeholder):
                suffix = segment[len(placeholder) :]
                if suffix and part.endswith(suffix):
                    part = part[: -len(suffix)]
                values[str(index)] = unquote(part, errors="replace")
                break
    return values


def _add_body(side: dict[str, Any], body: Body | None, secret: Callable[[str], bool] | None) -> None:
    if body is None:
        side["none"] = side.get("none", 0) + 1
        return
    media = side.setdefault("c", {}).setdefault(body.media[:MAX_NAME_CHARS], {"n": 0})
    media["n"] += 1
    if body.parsed:
        media["s"] = observe(body.json, secret=secret, into=media.get("s"), prune=False)


def add_exchange(
    operation: dict[str, Any],
    *,
    template: str,
    path: str,
    query: Iterable[tuple[str, str]],
    request: Body | None,
    status: int,
    response: Body | None,
    secret: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """Count one exchange into `operation` (in place; `bound_operation` once done adding).

    `query`: the (unescaped) name/value pairs. What the request carried (path and query
    parameters, body) goes under "ok" when the service accepted it (status < 400), else under
    "bad": a document describes requests from the accepted ones, as long as there are any."""
    operation["n"] = operation.get("n", 0) + 1
    side = operation.setdefault("ok" if status < 400 else "bad", {"n": 0})
    side["n"] += 1
    for index, text in path_values(template, path).items():
        params = side.setdefault("path", {})
        params[index] = observe_text(text, into=params.get(index))
    seen: set[str] = set()
    for name, value in query:
        if len(name) > MAX_NAME_CHARS:
            continue
        entry = side.setdefault("query", {"p": {}})["p"].setdefault(name, {"n": 0, "v": {}})
        if name in seen:
            entry["m"] = 1
        else:
            seen.add(name)
            entry["n"] += 1
        observe_text(value, hidden=secret is not None and secret(name), into=entry["v"])
    _add_body(side.setdefault("body", {}), request, secret)
    answer = operation.setdefault("res", {}).setdefault(str(status), {"n": 0})
    answer["n"] += 1
    _add_body(answer, response, secret)
    return operation


def bound_operation(operation: dict[str, Any]) -> dict[str, Any]:
    """An operation summary within its bounds (in place): after add_exchange."""
    bodies = [operation[key].get("body") for key in ("ok", "bad") if key in operation]
    bodies += list(operation.get("res", {}).values())
    for body in bodies:
        for media in (body or {}).get("c", {}).values():
            if "s" in media:
                _prune(media["s"])
    return _bounded_operation(operation)


def operation_of(
    *,
    template: str,
    path: str,
    query: Iterable[tuple[str, str]],
    request: Body | None,
    status: int,
    response: Body | None,
    example: dict[str, Any] | None = None,
    secret: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """The summary of one exchange of an operation (merge_operations adds them up); `example`:
    {"id": exchange id, ...} the redacted example (the newest id's is kept)."""
    operation = add_exchange(
        {}, template=template, path=path, query=query, request=request, status=status, response=response, secret=secret
    )
    if example is not None:
        operation["ex"] = example
    return bound_operation(operation)


def _merge_counted(a: dict[str, Any], b: dict[str, Any], merge_item: Callable[[Any, Any], Any]) -> dict[str, Any]:
    return {
        key: merge_item(a[key], b[key]) if key in a and key in b else copy.deepcopy(a[key] if key in a else b[key])
        for key in {*a, *b}
    }


def _merge_media(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": a["n"] + b["n"]}
    if "s" in a and "s" in b:
        out["s"] = merge(a["s"], b["s"])
    elif "s" in a or "s" in b:
        out["s"] = copy.deepcopy(a.get("s") or b["s"])
    return out


def _merge_side(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if a.get("none") or b.get("none"):
        out["none"] = a.get("none", 0) + b.get("none", 0)
    if "n" in a or "n" in b:
        out["n"] = a.get("n", 0) + b.get("n", 0)
    if "c" in a or "c" in b:
        out["c"] = _merge_counted(a.get("c", {}), b.get("c", {}), _merge_media)
    if a.get("cut") or b.get("cut"):
        out["cut"] = True
    return out


def _merge_query_param(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {"n": a["n"] + b["n"], "v": merge(a["v"], b["v"])}
    if a.get("m") or b.get("m"):
        out["m"] = 1
    return out


def _first(mapping: dict[str, Any], limit: int, key: Callable[[str], Any] = str) -> tuple[dict[str, Any], bool]:
    if len(mapping) <= limit:
        return mapping, False
    kept = sorted(mapping, key=key)[:limit]
    return {name: mapping[name] for name in kept}, True


def _bounded_operation(operation: dict[str, Any]) -> dict[str, Any]:
    """QUERY_MAX query parameters, MEDIA_MAX media types per body, STATUS_MAX statuses: the first by name."""
    cut = False
    requests = [operation[key] for key in ("ok", "bad") if key in operation]
    for side in requests:
        if "query" in side:
            side["query"]["p"], dropped = _first(side["query"]["p"], QUERY_MAX)
            cut = cut or dropped
    for body in (*(side.get("body") for side in requests), *operation.get("res", {}).values()):
        if body and "c" in body:
            body["c"], dropped = _first(body["c"], MEDIA_MAX)
            cut = cut or dropped
    if "res" in operation:
        operation["res"], dropped = _first(operation["res"], STATUS_MAX)
        cut = cut or dropped
    if cut:
        operation["cut"] = True
    return operation


def _merge_request(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": a.get("n", 0) + b.get("n", 0)}
    if "path" in a or "path" in b:
        out["path"] = _merge_counted(a.get("path", {}), b.get("path", {}), merge)
    if "query" in a or "query" in b:
        qa, qb = a.get("query", {"p": {}}), b.get("query", {"p": {}})
        out["query"] = {"p": _merge_counted(qa["p"], qb["p"], _merge_query_param)}
    if "body" in a or "body" in b:
        out["body"] = _merge_side(a.get("body", {}), b.get("body", {}))
    return out


def merge_operations(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two summaries of one operation, as one (new; neither is changed). Associative and commutative."""
    out: dict[str, Any] = {"n": a.get("n", 0) + b.get("n", 0)}
    for key in ("ok", "bad"):
        if key in a or key in b:
            out[key] = _merge_request(a.get(key, {}), b.get(key, {}))
    if "res" in a or "res" in b:
        out["res"] = _merge_counted(a.get("res", {}), b.get("res", {}), _merge_side)
    examples = [ex for ex in (a.get("ex"), b.get("ex")) if ex is not None]
    if examples:
        out["ex"] = copy.deepcopy(max(examples, key=_example_rank))
    if a.get("cut") or b.get("cut"):
        out["cut"] = True
    return _bounded_operation(out)


def _example_rank(example: dict[str, Any]) -> tuple[bool, int, str]:
    """An accepted exchange's example (status < 400) before a refused one's, then the newest; the
    text breaks a tie, so that the choice never depends on the order of merging."""
    status = example.get("response", {}).get("status")
    accepted = isinstance(status, int) and status < 400
    return accepted, int(example.get("id", 0)), json.dumps(example, sort_keys=True)


def request_side(operation: dict[str, Any]) -> dict[str, Any]:
    """What a document says of the operation's requests: the accepted ones', or when the service
    accepted none, the refused ones'."""
    return operation.get("ok") or operation.get("bad") or {"n": 0}
