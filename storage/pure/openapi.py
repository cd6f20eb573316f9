"""An OpenAPI 3.1 document from operation summaries (storage.pure.shapes). Pure.

Input: (method, endpoint template, summary) triples, a window's day rows already merged per
operation. The document:

- paths: the templates after endpoint inference's cardinality collapse (storage.pure.endpoints.
  infer_templates, weighted by each template's exchanges): `/users/alice`, `/users/bob`, ... seen
  as more than a few literals become `/users/{param}`, and their operations merge (the literals
  become the parameter's observed values). Templates that differ only by placeholder names
  (`/users/{id}`, `/users/{uuid}`) are one OpenAPI path, as a router would see them: their
  operations merge too, and the parameter is named `param` where they disagreed;
- parameters and request bodies from the requests the service accepted (status < 400), or from
  the refused ones when it accepted none (shapes.request_side);
- each placeholder is a named path parameter (`{id}`; a second `{id}` in one path is `{id2}`) with
  the schema of the values seen; query parameters with their schema, required when every
  exchange had them; a parameter seen repeated in one URL is an array;
- requestBody and responses per status, with a schema per media type (JSON bodies) and the
  operation's redacted example (the summaries hold it redacted already);
- operationId `<method>_<path words>`, unique; `x-passageway-exchanges` per operation.
"""

from __future__ import annotations

import http
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from storage.pure.endpoints import PLACEHOLDERS, infer_templates
from storage.pure.shapes import merge_operations, observe_text, request_side, scalar_of_text, to_json_schema

__all__ = ["METHODS", "OPENAPI_VERSION", "build_document", "collapse_operations"]

OPENAPI_VERSION = "3.1.0"
METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")
"""The methods an OpenAPI 3.1 path item has; others (PROPFIND, CONNECT...) are left out."""
_PLACEHOLDER = re.compile("|".join(re.escape(p) for p in sorted(PLACEHOLDERS, key=len, reverse=True)))
_WORD = re.compile(r"[A-Za-z0-9]+")


def _structure(template: str) -> str:
    return _PLACEHOLDER.sub("{}", template)


def collapse_operations(operations: Iterable[tuple[str, str, dict[str, Any]]]) -> dict[tuple[str, str], tuple[dict[str, Any], list[str | None]]]:
    """(method, structural path with `{}` for each placeholder) -> (the merged summary, the
    placeholder name per segment index, None for literal segments) after the cardinality collapse."""
    operations = [(method.upper(), template, summary) for method, template, summary in operations if method.upper() in METHODS]
    weights: dict[str, int] = defaultdict(int)
    for _, template, summary in operations:
        weights[template] += int(summary.get("n", 0)) or 1
    collapsed = infer_templates(dict(weights))
    groups: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for method, template, summary in operations:
        target = collapsed.get(template, template)
        if target != template:
            summary = _literals_as_values(template, target, summary)
        groups[(method, _structure(target))].append((target, summary))
    # Placeholder names per structure, over every method: a path is spelled once for all of them.
    names: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for (_, structure), members in groups.items():
        for target, _ in members:
            for index, segment in enumerate(target[1:].split("/")):
                found = _PLACEHOLDER.search(segment)
                if found is not None:
                    names[structure][index].add(found.group(0)[1:-1])
    out: dict[tuple[str, str], tuple[dict[str, Any], list[str | None]]] = {}
    for key in sorted(groups):
        merged: dict[str, Any] = {"n": 0}
        for _, summary in sorted(groups[key], key=lambda member: member[0]):
            merged = merge_operations(merged, summary)
        seen = names[key[1]]
        placeholders: list[str | None] = [
            (next(iter(seen[i])) if len(seen[i]) == 1 else "param") if i in seen else None
            for i in range(len(key[1][1:].split("/")))
        ]
        out[key] = (merged, placeholders)
    return out


def _literals_as_values(template: str, target: str, summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with each literal segment the collapse turned into `{param}` counted as that
    parameter's value (as often as the operation was called)."""
    out = dict(summary)
    for key in ("ok", "bad"):
        if key not in summary:
            continue
        side = summary[key]
        path = {index: dict(node) for index, node in side.get("path", {}).items()}
        count = int(side.get("n", 0)) or 1
        for index, (before, after) in enumerate(zip(template[1:].split("/"), target[1:].split("/"), strict=False)):
            if before != after and _PLACEHOLDER.search(before) is None:
                path[str(index)] = observe_text(before, count=count, into=path.get(str(index), {}))
        out[key] = {**side, "path": path}
    return out


def _openapi_path(structure: str, placeholders: list[str | None]) -> tuple[str, dict[int, str]]:
    """The OpenAPI path text and segment index -> parameter name (made unique within the path)."""
    used: dict[str, int] = {}
    names: dict[int, str] = {}
    parts = []
    for index, segment in enumerate(structure[1:].split("/")):
        if "{}" in segment and placeholders[index] is not None:
            base = str(placeholders[index])
            used[base] = used.get(base, 0) + 1
            name = base if used[base] == 1 else f"{base}{used[base]}"
            names[index] = name
            # Braces of a literal are escaped, so only the placeholder reads as a template.
            head, _, tail = segment.partition("{}")
            parts.append(_escape(head) + "{" + name + "}" + _escape(tail))
        else:
            parts.append(_escape(segment))
    return "/" + "/".join(parts), names


def _escape(literal: str) -> str:
    return literal.replace("{", "%7B").replace("}", "%7D")


def _operation_id(method: str, path: str, taken: set[str]) -> str:
    words = _WORD.findall(path.replace("{", " by ").replace("}", " "))
    base = "_".join([method.lower(), *words]) if words else f"{method.lower()}_root"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    taken.add(candidate)
    return candidate


def _media_schema(media: str, entry: dict[str, Any]) -> dict[str, Any]:
    if "s" in entry:
        return to_json_schema(entry["s"])
    if media.startswith("text/"):
        return {"type": "string"}
    return {}


def _content(side: dict[str, Any], example: dict[str, Any] | None) -> dict[str, Any]:
    content: dict[str, Any] = {}
    for media in sorted(side.get("c", {})):
        entry: dict[str, Any] = {"schema": _media_schema(media, side["c"][media])}
        if example is not None and example.get("type") == media and "body" in example:
            entry["example"] = example["body"]
        content[media] = entry
    return content


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"Status {status}"


def _parameters(side: dict[str, Any], names: dict[int, str], example: dict[str, Any] | None) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    for index in sorted(names):
        node = side.get("path", {}).get(str(index))
        parameters.append({"name": names[index], "in": "path", "required": True, "schema": to_json_schema(node) or {"type": "string"}})
    examples: dict[str, str] = {}
    if example is not None and isinstance(example.get("query"), str):
        for name, value in parse_qsl(example["query"], keep_blank_values=True):
            examples.setdefault(name, value)
    total = int(side.get("n", 0))
    for name in sorted(side.get("query", {}).get("p", {})):
        if not name:
            continue
        entry = side["query"]["p"][name]
        schema = to_json_schema(entry["v"], name=name)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": entry["n"] >= total > 0}
        if entry.get("m"):
            parameter.update(schema={"type": "array", "items": schema}, style="form", explode=True)
        else:
            parameter["schema"] = schema
        if name in examples and not entry.get("m"):
            parameter["example"] = scalar_of_text(examples[name])
        parameters.append(parameter)
    return parameters


def _operation(method: str, path: str, summary: dict[str, Any], names: dict[int, str], taken: set[str]) -> dict[str, Any]:
    example = summary.get("ex")
    request_example = example.get("request") if example else None
    response_example = example.get("response") if example else None
    operation: dict[str, Any] = {"operationId": _operation_id(method, path, taken)}
    side = request_side(summary)
    parameters = _parameters(side, names, request_example)
    if parameters:
        operation["parameters"] = parameters
    request = side.get("body", {})
    if request.get("c"):
        operation["requestBody"] = {"required": not request.get("none"), "content": _content(request, request_example)}
    responses: dict[str, Any] = {}
    for code in sorted(summary.get("res", {})):
        if not (code.isdigit() and 100 <= int(code) <= 599):
            continue
        side = summary["res"][code]
        chosen = response_example if response_example and str(response_example.get("status")) == code else None
        response: dict[str, Any] = {"description": _reason(int(code))}
        content = _content(side, chosen)
        if content:
            response["content"] = content
        responses[code] = response
    operation["responses"] = responses or {"default": {"description": "No response was observed (every exchange ended in an error)."}}
    operation["x-passageway-exchanges"] = int(summary.get("n", 0))
    return operation


def build_document(
    service: str,
    operations: Iterable[tuple[str, str, dict[str, Any]]],
    *,
    realm: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a service's operations (method, template, merged summary)."""
    grouped = collapse_operations(operations)
    paths: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    exchanges = 0
    for (method, structure), (summary, placeholders) in grouped.items():
        path, names = _openapi_path(structure, placeholders)
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, summary, names, taken)
        exchanges += int(summary.get("n", 0))
    window = ", ".join(part for part in (f"since {since}" if since else "", f"until {until}" if until else "") if part)
    description = f"Inferred by Passageway from {exchanges} observed exchange(s)" + (f" ({window})" if window else "") + "."
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": service, "version": f"inferred-{until or 'now'}", "description": description},
        "paths": {path: paths[path] for path in sorted(paths)},
        "x-passageway": {"service": service, "realm": realm, "since": since, "until": until, "exchanges": exchanges},
    }
