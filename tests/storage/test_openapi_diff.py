"""storage.pure.openapi_diff: each kind of change and whether it breaks, the renderings, real
documents, and properties (a document against itself, swapping sides) with hypothesis."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.pure.openapi_diff import Change, diff_documents, render_text, summary

DATA = Path(__file__).resolve().parents[1] / "data" / "openapi"
PETSTORE = yaml.safe_load((DATA / "v3.0-petstore-expanded.yaml").read_text(encoding="utf-8"))


def kinds(changes: list[Change]) -> list[tuple[str, bool, str, str, str | None, str | None]]:
    return [(c.kind, c.breaking, c.method, c.path, c.where, c.name) for c in changes]


def doc(paths: dict, **components: Any) -> dict:
    return {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths,
            "components": {"schemas": components}}  # fmt: skip


def op(request: dict | None = None, responses: dict | None = None, parameters: list | None = None) -> dict:
    operation: dict[str, Any] = {"responses": {
        status: {"description": "x", **({"content": {"application/json": {"schema": schema}}} if schema else {})}
        for status, schema in (responses or {"200": None}).items()
    }}  # fmt: skip
    if request is not None:
        operation["requestBody"] = {"content": {"application/json": {"schema": request}}}
    if parameters is not None:
        operation["parameters"] = parameters
    return operation


def obj(required: list[str] | None = None, **properties: Any) -> dict:
    return {"type": "object", "properties": properties, "required": required or []}


def test_identical_documents_have_no_changes():
    assert diff_documents(PETSTORE, PETSTORE) == []
    assert render_text([]) == "no changes"


def test_endpoints_added_and_removed_and_renamed_parameters_are_the_same_endpoint():
    old = doc({"/a/{id}": {"get": op(), "delete": op()}})
    new = doc({"/a/{aId}": {"get": op()}, "/b": {"post": op()}})
    assert kinds(diff_documents(old, new)) == [
        ("endpoint-removed", True, "DELETE", "/a/{id}", None, None),
        ("endpoint-added", False, "POST", "/b", None, None),
    ]


def test_statuses():
    old = doc({"/a": {"get": op(responses={"200": None, "404": None})}})
    new = doc({"/a": {"get": op(responses={"200": None, "2XX": None})}})
    assert kinds(diff_documents(old, new)) == [
        ("status-removed", True, "GET", "/a", None, "404"),
        ("status-added", False, "GET", "/a", None, "2XX"),
    ]


def test_response_fields():
    old = doc({"/a": {"get": op(responses={"200": obj(["id", "name"], id={"type": "integer"}, name={"type": "string"},
                                                       kind={"type": "string", "enum": ["a", "b"]})})}})  # fmt: skip
    new = doc({"/a": {"get": op(responses={"200": obj(["id"], id={"type": "string"}, name={"type": "string"},
                                                       kind={"type": "string", "enum": ["a", "c"]},
                                                       extra={"type": "boolean"})})}})  # fmt: skip
    assert kinds(diff_documents(old, new)) == [
        ("field-added", False, "GET", "/a", "response 200", "$.extra"),
        ("type-changed", True, "GET", "/a", "response 200", "$.id"),
        ("enum-value-removed", False, "GET", "/a", "response 200", "$.kind"),
        ("enum-value-added", True, "GET", "/a", "response 200", "$.kind"),
        ("field-optional", True, "GET", "/a", "response 200", "$.name"),
    ]


def test_response_field_removed_is_breaking_and_its_children_are_not_listed_again():
    old = doc({"/a": {"get": op(responses={"200": obj(a=obj(b={"type": "integer"}))})}})
    new = doc({"/a": {"get": op(responses={"200": obj()})}})
    assert kinds(diff_documents(old, new)) == [("field-removed", True, "GET", "/a", "response 200", "$.a")]


def test_request_fields():
    old = doc({"/a": {"post": op(request=obj(["x"], x={"type": "integer"}, y={"type": "string"},
                                             k={"enum": ["a", "b"], "type": "string"}))}})  # fmt: skip
    new = doc({"/a": {"post": op(request=obj(["x", "y", "z"], x={"type": "number"}, y={"type": "string"},
                                             z={"type": "string"}, w={"type": "string"},
                                             k={"enum": ["a"], "type": "string"}))}})  # fmt: skip
    assert kinds(diff_documents(old, new)) == [
        ("enum-value-removed", True, "POST", "/a", "request", "$.k"),
        ("field-added", False, "POST", "/a", "request", "$.w"),
        ("type-changed", False, "POST", "/a", "request", "$.x"),  # integer -> number widens
        ("field-required", True, "POST", "/a", "request", "$.y"),
        ("field-added", True, "POST", "/a", "request", "$.z"),
    ]


def test_parameters():
    q = {"in": "query", "schema": {"type": "integer"}}
    old = doc({"/a": {"get": op(parameters=[{**q, "name": "gone"}, {**q, "name": "limit"}, {**q, "name": "page"}])}})
    new = doc({"/a": {"get": op(parameters=[{**q, "name": "limit", "required": True},
                                            {"in": "query", "name": "page", "schema": {"type": "string"}},
                                            {**q, "name": "opt"}, {**q, "name": "must", "required": True}])}})  # fmt: skip
    assert kinds(diff_documents(old, new)) == [
        ("parameter-removed", False, "GET", "/a", "query parameter", "gone"),
        ("parameter-required", True, "GET", "/a", "query parameter", "limit"),
        ("parameter-added", True, "GET", "/a", "query parameter", "must"),
        ("parameter-added", False, "GET", "/a", "query parameter", "opt"),
        ("type-changed", True, "GET", "/a", "query parameter", "page"),
    ]


def test_refs_nullable_and_arrays_in_a_real_document():
    new = copy.deepcopy(PETSTORE)
    new["components"]["schemas"]["NewPet"]["properties"]["tag"]["nullable"] = True
    changes = diff_documents(PETSTORE, new)
    # A response field that may now be null breaks clients; a request one that may be null does not.
    assert ("type-changed", True, "GET", "/pets", "response 200", "$[].tag") in kinds(changes)
    assert ("type-changed", False, "POST", "/pets", "request", "$.tag") in kinds(changes)
    assert all(c.name.endswith(".tag") for c in changes)


def test_renderings():
    old = doc({"/a": {"get": op(responses={"200": obj(["n"], n={"type": "integer"})})}, "/b": {"get": op()}})
    new = doc({"/a": {"get": op(responses={"200": obj(["n"], n={"type": "integer"}, m={"type": "string"})})}})
    changes = diff_documents(old, new)
    assert render_text(changes) == (
        "2 change(s), 1 breaking\n"
        "GET /a\n"
        "           response 200 field $.m added (optional)\n"
        "GET /b\n"
        "  BREAKING removed endpoint"
    )
    answer = summary(changes)
    assert answer["total"] == 2 and answer["breaking"] == 1
    assert answer["changes"][1] == {"kind": "endpoint-removed", "breaking": True, "method": "GET", "path": "/b",
                                    "where": None, "name": None, "old": None, "new": None,
                                    "message": "removed endpoint"}  # fmt: skip
    json.dumps(answer)


def test_recursive_schemas_end():
    tree = {"type": "object", "properties": {"child": {"$ref": "#/components/schemas/Tree"}, "v": {"type": "integer"}}}
    old = doc({"/t": {"get": op(responses={"200": {"$ref": "#/components/schemas/Tree"}})}}, Tree=tree)
    new = copy.deepcopy(old)
    new["components"]["schemas"]["Tree"]["properties"]["v"]["type"] = "string"
    assert kinds(diff_documents(old, new)) == [("type-changed", True, "GET", "/t", "response 200", "$.v")]


# --- properties ---------------------------------------------------------------------------------

field_schemas = st.fixed_dictionaries(
    {"type": st.sampled_from(["integer", "number", "string", "boolean"])},
    optional={"enum": st.lists(st.text(max_size=3), min_size=1, max_size=3, unique=True)},
)
object_schemas = st.dictionaries(st.sampled_from("abcdef"), field_schemas, max_size=5).flatmap(
    lambda props: st.builds(lambda required: obj(required, **props), st.lists(st.sampled_from(sorted(props) or ["a"]), unique=True))
)
documents = st.dictionaries(
    st.sampled_from(["/a", "/b/{id}", "/c"]),
    st.dictionaries(st.sampled_from(["get", "post"]),
                    st.builds(lambda req, res: op(request=req, responses={"200": res}), object_schemas, object_schemas),
                    min_size=1, max_size=2),
    max_size=3,
).map(doc)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(documents, documents)
def test_swapping_the_documents_swaps_added_and_removed(old, new):
    forward = diff_documents(old, new)
    backward = diff_documents(new, old)
    flip = {"added": "removed", "removed": "added", "required": "optional", "optional": "required"}

    def key(c: Change, flipped: bool) -> tuple:
        kind = c.kind
        if flipped:
            head, _, tail = kind.rpartition("-")
            kind = f"{head}-{flip.get(tail, tail)}"
        return (kind, c.method, c.where, c.name)

    assert sorted(key(c, True) for c in forward) == sorted(key(c, False) for c in backward)
    assert diff_documents(old, old) == []
    text = render_text(forward)
    assert text.count("BREAKING") == sum(c.breaking for c in forward)
