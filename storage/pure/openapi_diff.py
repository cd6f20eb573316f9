"""The changelog between two OpenAPI 3.0/3.1 documents (older, newer): pure, no I/O.

diff_documents(older, newer) lists what changed, operation by operation (method and path
template; `/pets/{id}` and `/pets/{petId}` are one endpoint), each change marked breaking or
not by the rules API-diff tools apply (a client written against the older document):

- endpoints: removed is breaking, added is not;
- response statuses: removed is breaking, added is not;
- parameters (query, path, header): added required or made required is breaking; added optional,
  removed or made optional is not; a type changed is breaking unless it widened;
- request body fields: added required or made required is breaking; added optional or removed
  is not; a type may widen (integer -> number, adding null); enum values removed are breaking;
- response body fields: removed or made optional is breaking; added is not; a type may narrow;
  enum values added are breaking (a client may not know the new value), removed are not.

render_text(changes) is the command line's rendering; Change.as_dict() the API's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from storage.pure.contract_check import METHODS, ContractError, compile_contract

__all__ = ["Change", "diff_documents", "render_text", "summary"]

_MAX_DEPTH = 10
_MAX_FIELDS = 2000
"""Fields flattened per schema: a huge or recursive schema is compared on its first ones."""


@dataclass(frozen=True, slots=True)
class Change:
    kind: str
    """endpoint-added/-removed, status-added/-removed, parameter-added/-removed/-required/-optional,
    field-added/-removed/-required/-optional, type-changed, enum-value-added/-removed."""
    breaking: bool
    method: str
    path: str
    where: str | None
    """"request", "response 200", "query parameter", ...; None for the endpoint itself."""
    name: str | None
    """The field's JSON path ($.items[].price) or the parameter's name."""
    old: Any = None
    new: Any = None

    @property
    def message(self) -> str:
        action = self.kind.split("-", 1)[1].removeprefix("value-")
        if self.kind.startswith("endpoint"):
            return f"{action} endpoint"
        if self.kind.startswith("status"):
            return f"{action} response status {self.name}"
        if self.kind == "type-changed":
            return f"{self.where} type of {self.name}: {self.old} -> {self.new}"
        if self.kind.startswith("enum"):
            value = self.new if action == "added" else self.old
            return f"{self.where} {self.name}: enum value {json.dumps(value)} {action}"
        subject = self.where if self.kind.startswith("parameter") else f"{self.where} field"
        state = {"required": "now required", "optional": "now optional"}.get(action, action)
        extra = f" ({self.new})" if action == "added" and self.new else ""
        return f"{subject} {self.name} {state}{extra}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "breaking": self.breaking, "method": self.method, "path": self.path,
            "where": self.where, "name": self.name, "old": self.old, "new": self.new, "message": self.message,
        }  # fmt: skip


def diff_documents(older: Mapping[str, Any], newer: Mapping[str, Any]) -> list[Change]:
    """Changes from `older` to `newer`, endpoints in path order; ContractError for a document that
    is not OpenAPI 3.0/3.1."""
    old, new = _Document(older), _Document(newer)
    changes: list[Change] = []
    for key in sorted(old.operations.keys() | new.operations.keys(), key=lambda k: (k[1], _method_order(k[0]))):
        method = key[0]
        if key not in new.operations:
            changes.append(Change("endpoint-removed", True, method, old.operations[key][0], None, None))
        elif key not in old.operations:
            changes.append(Change("endpoint-added", False, method, new.operations[key][0], None, None))
        else:
            changes.extend(_operation_changes(method, new.operations[key][0], old, old.operations[key][1],
                                              new, new.operations[key][1]))  # fmt: skip
    return changes


def summary(changes: list[Change]) -> dict[str, Any]:
    """The API's answer: every change and the counts."""
    return {
        "total": len(changes),
        "breaking": sum(change.breaking for change in changes),
        "changes": [change.as_dict() for change in changes],
    }


def render_text(changes: list[Change]) -> str:
    """One line per change, breaking ones marked, grouped by endpoint."""
    if not changes:
        return "no changes"
    breaking = sum(change.breaking for change in changes)
    lines = [f"{len(changes)} change(s), {breaking} breaking"]
    endpoint = None
    for change in changes:
        if (change.method, change.path) != endpoint:
            endpoint = (change.method, change.path)
            lines.append(f"{change.method} {change.path}")
        lines.append(f"  {'BREAKING ' if change.breaking else '         '}{change.message}")
    return "\n".join(lines)


# --- the documents ------------------------------------------------------------------------------


class _Document:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self.contract = compile_contract(document)
        self.operations: dict[tuple[str, str], tuple[str, Mapping[str, Any]]] = {}
        for route in self.contract.routes:
            for method in METHODS:
                operation = route.item.get(method)
                if isinstance(operation, Mapping):
                    key = (method.upper(), re.sub(r"\{[^{}/]*\}", "{}", route.template).rstrip("/") or "/")
                    self.operations[key] = (route.template, {"operation": operation, "item": route.item})

    def resolve(self, node: Any) -> Any:
        if isinstance(node, Mapping) and "$ref" in node:
            try:
                return self.contract.deref(node)[1]
            except ContractError:
                return {}
        return node

    def parameters(self, pair: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
        chosen: dict[tuple[str, str], Mapping[str, Any]] = {}
        for owner in (pair["item"], pair["operation"]):
            for parameter in owner.get("parameters") or ():
                parameter = self.resolve(parameter)
                if isinstance(parameter, Mapping) and isinstance(parameter.get("name"), str):
                    chosen[(str(parameter.get("in")), parameter["name"])] = parameter
        return chosen

    def fields(self, schema: Any) -> dict[str, dict[str, Any]]:
        """JSON path -> {"types": frozenset, "required": bool, "enum": list | None} of a schema."""
        out: dict[str, dict[str, Any]] = {}
        self._walk(schema, "$", True, out, 0, set())
        return out

    def _walk(self, schema: Any, path: str, required: bool, out: dict, depth: int, seen: set[str]) -> None:
        if len(out) >= _MAX_FIELDS or depth > _MAX_DEPTH:
            return
        if isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
            ref = schema["$ref"]
            if ref in seen:
                return  # recursive schema: compared down to its first repetition
            seen = seen | {ref}
        schema = self.resolve(schema)
        if not isinstance(schema, Mapping):
            return
        merged = _merge_branches(schema, self.resolve)
        entry = out.setdefault(path, {"types": frozenset(), "required": required, "enum": None})
        entry["types"] = entry["types"] | _types(merged)
        if isinstance(merged.get("enum"), list):
            entry["enum"] = [v for v in merged["enum"] if v is not None]
        required_names = set(merged.get("required") or ())
        for name, child in (merged.get("properties") or {}).items():
            self._walk(child, _child(path, name), name in required_names, out, depth + 1, seen)
        if merged.get("items") is not None:
            self._walk(merged["items"], path + "[]", True, out, depth + 1, seen)


def _merge_branches(schema: Mapping[str, Any], resolve: Any) -> dict[str, Any]:
    """A schema with its allOf/anyOf/oneOf branches folded in: properties united (required only
    when allOf requires it or every anyOf/oneOf branch does), types united."""
    merged = dict(schema)
    properties = dict(schema.get("properties") or {})
    required = set(schema.get("required") or ())
    types = set(_types(schema))
    for keyword in ("allOf", "anyOf", "oneOf"):
        branches = [resolve(b) for b in schema.get(keyword) or () if isinstance(resolve(b), Mapping)]
        branches = [_merge_branches(b, resolve) for b in branches]
        for branch in branches:
            for name, child in (branch.get("properties") or {}).items():
                properties.setdefault(name, child)
            types |= _types(branch)
            if "items" in branch and "items" not in merged:
                merged["items"] = branch["items"]
            if "enum" in branch and "enum" not in merged:
                merged["enum"] = branch["enum"]
        if keyword == "allOf":
            for branch in branches:
                required |= set(branch.get("required") or ())
        elif branches:
            required |= set.intersection(*(set(b.get("required") or ()) for b in branches))
    merged["properties"] = properties
    merged["required"] = sorted(required)
    merged["type"] = sorted(types)
    return merged


def _types(schema: Mapping[str, Any]) -> frozenset[str]:
    kind = schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind} if isinstance(kind, str) else set()
    if schema.get("nullable") is True and kinds:
        kinds.add("null")
    if not kinds and isinstance(schema.get("properties"), Mapping) and schema["properties"]:
        kinds.add("object")
    return frozenset(kinds)


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$-]*", name) else f'{path}["{name}"]'


def _method_order(method: str) -> int:
    return METHODS.index(method.lower()) if method.lower() in METHODS else len(METHODS)


def _shown(types: frozenset[str]) -> str:
    return "|".join(sorted(types)) or "any"


def _widens(old: frozenset[str], new: frozenset[str]) -> bool:
    """Every value of the old types is a value of the new ones (no type: anything)."""
    if not new:
        return True
    if not old:
        return False
    covered = set(new) | ({"integer"} if "number" in new else set())
    return old <= covered


# --- per operation ------------------------------------------------------------------------------


def _operation_changes(
    method: str, path: str, old: _Document, old_pair: Mapping[str, Any], new: _Document, new_pair: Mapping[str, Any]
) -> Iterator[Change]:
    yield from _parameter_changes(method, path, old, old_pair, new, new_pair)
    yield from _body_changes(method, path, "request", old, _request_schema(old, old_pair), new,
                             _request_schema(new, new_pair))  # fmt: skip
    old_responses = _responses(old, old_pair["operation"])
    new_responses = _responses(new, new_pair["operation"])
    for status in sorted(old_responses.keys() - new_responses.keys()):
        yield Change("status-removed", True, method, path, None, status)
    for status in sorted(new_responses.keys() - old_responses.keys()):
        yield Change("status-added", False, method, path, None, status)
    for status in sorted(old_responses.keys() & new_responses.keys()):
        yield from _body_changes(method, path, f"response {status}", old, old_responses[status], new,
                                 new_responses[status])  # fmt: skip


def _parameter_changes(
    method: str, path: str, old: _Document, old_pair: Mapping[str, Any], new: _Document, new_pair: Mapping[str, Any]
) -> Iterator[Change]:
    before, after = old.parameters(old_pair), new.parameters(new_pair)
    for key in sorted(before.keys() | after.keys()):
        location, name = key
        where = f"{location} parameter"
        if location == "path":
            continue  # a path parameter's name is part of the template: the endpoint is the same
        if key not in after:
            yield Change("parameter-removed", False, method, path, where, name)
            continue
        required = bool(after[key].get("required"))
        if key not in before:
            yield Change("parameter-added", required, method, path, where, name, None, "required" if required else "optional")
            continue
        was_required = bool(before[key].get("required"))
        if required and not was_required:
            yield Change("parameter-required", True, method, path, where, name)
        elif was_required and not required:
            yield Change("parameter-optional", False, method, path, where, name)
        old_fields = old.fields(before[key].get("schema", {}))
        new_fields = new.fields(after[key].get("schema", {}))
        old_types, new_types = old_fields.get("$", {}).get("types", frozenset()), new_fields.get("$", {}).get("types", frozenset())
        if old_types != new_types:
            yield Change("type-changed", not _widens(old_types, new_types), method, path, where, name,
                         _shown(old_types), _shown(new_types))  # fmt: skip
        yield from _enum_changes(method, path, where, name, old_fields.get("$"), new_fields.get("$"), request=True)


def _request_schema(document: _Document, pair: Mapping[str, Any]) -> Any:
    body = document.resolve(pair["operation"].get("requestBody"))
    return _json_schema(document, body)


def _responses(document: _Document, operation: Mapping[str, Any]) -> dict[str, Any]:
    """Status (as written: 200, 2XX, default) -> its JSON body's schema (None when it has none)."""
    out = {}
    for status, response in (operation.get("responses") or {}).items():
        out[str(status).upper() if str(status).lower() != "default" else "default"] = _json_schema(
            document, document.resolve(response)
        )
    return out


def _json_schema(document: _Document, holder: Any) -> Any:
    if not isinstance(holder, Mapping):
        return None
    for media, declared in (holder.get("content") or {}).items():
        media = str(media).split(";", 1)[0].strip().lower()
        if (media == "application/json" or media.endswith("+json")) and isinstance(declared, Mapping):
            return declared.get("schema")
    return None


def _body_changes(
    method: str, path: str, where: str, old: _Document, old_schema: Any, new: _Document, new_schema: Any
) -> Iterator[Change]:
    if old_schema is None and new_schema is None:
        return
    request = where == "request"
    before = old.fields(old_schema) if old_schema is not None else {}
    after = new.fields(new_schema) if new_schema is not None else {}
    for name in sorted(before.keys() | after.keys(), key=lambda n: (n.count(".") + n.count("["), n)):
        if name not in after:
            if _parent(name) in before and _parent(name) not in after:
                continue  # its parent's removal says it
            yield Change("field-removed", not request, method, path, where, name)
            continue
        if name not in before:
            if _parent(name) in after and _parent(name) not in before:
                continue
            required = after[name]["required"]
            yield Change("field-added", request and required, method, path, where, name, None,
                         "required" if required else "optional")  # fmt: skip
            continue
        was, now = before[name]["required"], after[name]["required"]
        if now and not was:
            yield Change("field-required", request, method, path, where, name)
        elif was and not now:
            yield Change("field-optional", not request, method, path, where, name)
        old_types, new_types = before[name]["types"], after[name]["types"]
        if old_types != new_types:
            safe = _widens(old_types, new_types) if request else _widens(new_types, old_types)
            yield Change("type-changed", not safe, method, path, where, name, _shown(old_types), _shown(new_types))
        yield from _enum_changes(method, path, where, name, before[name], after[name], request=request)


def _enum_changes(
    method: str, path: str, where: str, name: str, before: Mapping | None, after: Mapping | None, *, request: bool
) -> Iterator[Change]:
    old = (before or {}).get("enum")
    new = (after or {}).get("enum")
    if old is None or new is None:
        return  # an enum appearing or going is a change of the values allowed, said by neither side alone
    for value in [v for v in old if v not in new]:
        yield Change("enum-value-removed", request, method, path, where, name, value, None)
    for value in [v for v in new if v not in old]:
        yield Change("enum-value-added", not request, method, path, where, name, None, value)


def _parent(name: str) -> str:
    if name.endswith("[]"):
        return name[:-2]
    cut = max(name.rfind("."), name.rfind("["))
    return name[:cut] if cut > 0 else "$"
