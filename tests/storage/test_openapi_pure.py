"""storage.pure.openapi: documents from operation summaries, checked by openapi-spec-validator."""

from __future__ import annotations

import functools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from storage.pure.endpoints import template_path
from storage.pure.openapi import build_document
from storage.pure.shapes import Body, merge_operations, operation_of


def summary_of(template: str, paths: list[str], *, status: int = 200, query: list | None = None, body: object = None,
               response: object = None, example_id: int = 1) -> dict:  # fmt: skip
    parts = [
        operation_of(
            template=template,
            path=path,
            query=query or [],
            request=None if body is None else Body("application/json", parsed=True, json=body),
            status=status,
            response=Body("application/json", parsed=True, json=response if response is not None else {"ok": True}),
            example={"id": example_id, "request": {"path": path, "query": "limit=5", "type": "application/json", "body": body},
                     "response": {"status": status, "type": "application/json", "body": response}},
        )
        for path in paths
    ]
    return functools.reduce(merge_operations, parts, {"n": 0})


def test_a_document_with_parameters_bodies_responses_and_examples_validates() -> None:
    doc = build_document(
        "users",
        [
            ("GET", "/users/{id}", summary_of("/users/{id}", ["/users/1", "/users/2"], query=[("limit", "5")],
                                              response={"id": 1, "name": "ann"})),
            ("POST", "/users", summary_of("/users", ["/users"], status=201, body={"name": "ann"}, response={"id": 3})),
            ("GET", "/users/{id}/posts/{id}", summary_of("/users/{id}/posts/{id}", ["/users/1/posts/2"])),
            ("PROPFIND", "/users", summary_of("/users", ["/users"])),
        ],
        since="2026-12-01T00:00:00Z",
    )  # fmt: skip
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert sorted(doc["paths"]) == ["/users", "/users/{id}", "/users/{id}/posts/{id2}"]
    assert list(doc["paths"]["/users"]) == ["post"]  # PROPFIND has no place in a path item
    get = doc["paths"]["/users/{id}"]["get"]
    assert get["parameters"][0] == {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "format": "int32"}}
    assert get["parameters"][1]["name"] == "limit" and get["parameters"][1]["required"] is True
    assert get["parameters"][1]["example"] == 5
    content = get["responses"]["200"]["content"]["application/json"]
    assert content["schema"]["required"] == ["id", "name"] and content["example"] == {"id": 1, "name": "ann"}
    post = doc["paths"]["/users"]["post"]
    assert post["requestBody"]["required"] is True
    assert post["requestBody"]["content"]["application/json"]["example"] == {"name": "ann"}
    assert post["responses"]["201"]["description"] == "Created"
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_many_literals_collapse_into_one_parameter_and_merge_their_operations() -> None:
    names = [f"user{chr(97 + i)}{chr(97 + i)}" for i in range(30)]
    operations = [("GET", template_path(f"/people/{name}"), summary_of(f"/people/{name}", [f"/people/{name}"])) for name in names]
    operations.append(("GET", "/people/me", summary_of("/people/me", ["/people/me"] * 500)))
    doc = build_document("people", operations)
    validate(doc)
    assert sorted(doc["paths"]) == ["/people/me", "/people/{param}"]
    operation = doc["paths"]["/people/{param}"]["get"]
    assert operation["x-passageway-exchanges"] == 30
    assert operation["parameters"][0]["schema"]["type"] == "string"


def test_templates_differing_only_by_placeholder_names_are_one_path() -> None:
    doc = build_document(
        "files",
        [
            ("GET", "/files/{id}", summary_of("/files/{id}", ["/files/7"])),
            ("GET", "/files/{uuid}", summary_of("/files/{uuid}", ["/files/0f8fad5b-d9cb-469f-a165-70867728950e"])),
            ("DELETE", "/files/{id}", summary_of("/files/{id}", ["/files/8"], status=204)),
        ],
    )
    validate(doc)
    assert list(doc["paths"]) == ["/files/{param}"]
    assert doc["paths"]["/files/{param}"]["get"]["x-passageway-exchanges"] == 2
    assert set(doc["paths"]["/files/{param}"]) == {"get", "delete"}


segments = st.sampled_from(["users", "orders", "42", "7", "me", "{id}", "v2", "a{b", "x.json"])
paths = st.lists(segments, min_size=0, max_size=4).map(lambda parts: "/" + "/".join(parts))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["GET", "POST", "DELETE", "PATCH", "BREW"]), paths, st.sampled_from([200, 204, 404, 999])), min_size=1, max_size=12))
def test_any_traffic_gives_a_valid_document(calls: list[tuple[str, str, int]]) -> None:
    operations: dict[tuple[str, str], dict] = {}
    for method, path, status in calls:
        template = template_path(path)
        one = summary_of(template, [path], status=status, query=[("q", "1")])
        key = (method, template)
        operations[key] = merge_operations(operations.get(key, {"n": 0}), one)
    doc = build_document("svc", [(m, t, s) for (m, t), s in operations.items()])
    validate(doc)
