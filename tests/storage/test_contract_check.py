"""storage.pure.contract_check: each rule, 3.0 and 3.1 dialects, real documents (the OAI's
examples, a FastAPI app's own /openapi.json), bounds, and properties over varied inputs (hypothesis)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from storage.pure.contract_check import (
    MAX_BODY_BYTES,
    MAX_VIOLATIONS,
    RULES,
    ContractError,
    Exchange,
    Violation,
    compile_contract,
    json_path,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "openapi"


def load(name: str) -> dict[str, Any]:
    text = (DATA / name).read_text(encoding="utf-8")
    return json.loads(text) if name.endswith(".json") else yaml.safe_load(text)


PETSTORE = compile_contract(load("v3.0-petstore-expanded.yaml"))
TICTACTOE = compile_contract(load("v3.1-tictactoe.yaml"))


def ok(**body: Any) -> bytes:
    return json.dumps(body).encode()


def rules(violations: list[Violation]) -> list[tuple[str, str, str | None]]:
    return [(v.rule, v.side, v.json_path) for v in violations]


# --- the Petstore (3.0, servers with a base path, allOf, default responses) -------------------


def test_a_conforming_exchange_has_no_violation():
    exchange = Exchange("GET", "/v2/pets/12", status=200, response_content_type="application/json; charset=utf-8",
                        response_body=ok(id=12, name="Rex", tag="dog"))  # fmt: skip
    assert PETSTORE.check(exchange) == []


def test_the_servers_base_path_is_optional_and_the_template_is_matched():
    assert PETSTORE.template_for("GET", "/v2/pets/12") == "/pets/{id}"
    assert PETSTORE.template_for("GET", "/pets/12") == "/pets/{id}"
    assert PETSTORE.template_for("GET", "/pets/12/") == "/pets/{id}"
    assert PETSTORE.template_for("GET", "/v3/pets") is None


def test_missing_field_wrong_type_and_their_json_paths():
    body = json.dumps([{"id": 1, "name": "a"}, {"id": "2", "name": "b"}, {"id": 3}]).encode()
    found = PETSTORE.check(Exchange("GET", "/pets", status=200, response_content_type="application/json",
                                    response_body=body))  # fmt: skip
    assert rules(found) == [("wrong-type", "response", "$[1].id"), ("missing-field", "response", "$[2].name")]
    assert found[0].message == "expected integer, got string"
    assert found[1].message == "required field 'name' is missing"


def test_request_bodies_are_checked_too():
    found = PETSTORE.check(Exchange("POST", "/pets", status=200, request_content_type="application/json",
                                    request_body=ok(tag=7)))  # fmt: skip
    assert rules(found) == [("missing-field", "request", "$.name"), ("wrong-type", "request", "$.tag")]


def test_an_undocumented_method_names_the_documented_ones_and_the_template():
    (violation,) = PETSTORE.check(Exchange("PATCH", "/pets/12", status=200))
    assert violation.rule == "undocumented-endpoint"
    assert violation.message == "PATCH /pets/{id} is not in the contract (documented: GET, DELETE)"


def test_options_of_a_documented_path_is_no_violation():
    assert PETSTORE.check(Exchange("OPTIONS", "/pets/12", status=204)) == []
    assert [v.rule for v in PETSTORE.check(Exchange("OPTIONS", "/elsewhere", status=204))] == ["undocumented-endpoint"]


def test_an_undocumented_path_is_named_by_its_template_never_its_values():
    (violation,) = PETSTORE.check(Exchange("GET", "/tokens/9f86d081884c7d659a2feaa0c55ad015", status=200))
    assert violation.rule == "undocumented-endpoint"
    assert "9f86d0" not in violation.message and "/tokens/{hash}" in violation.message


def test_a_default_response_covers_any_status():
    assert PETSTORE.check(Exchange("GET", "/pets", status=503, response_content_type="application/json",
                                   response_body=ok(code=503, message="down"))) == []  # fmt: skip


def test_invalid_and_unparsable_json():
    found = PETSTORE.check(Exchange("GET", "/pets/1", status=200, response_content_type="application/json",
                                    response_body=b"{nope"))  # fmt: skip
    assert rules(found) == [("invalid-json", "response", "$")]


def test_query_parameters_are_typed():
    assert PETSTORE.check(Exchange("GET", "/pets", "limit=10&tags=a&tags=b", status=200)) == []
    found = PETSTORE.check(Exchange("GET", "/pets", "limit=ten", status=200))
    assert rules(found) == [("invalid-parameter", "request", "$query.limit")]
    assert found[0].message == "query parameter does not fit integer"


def test_unexpected_content_type():
    found = PETSTORE.check(Exchange("POST", "/pets", status=200, request_content_type="application/xml",
                                    request_body=b"<pet/>"))  # fmt: skip
    assert rules(found) == [("unexpected-content-type", "request", None)]


def test_a_required_request_body_that_is_absent():
    found = PETSTORE.check(Exchange("POST", "/pets", status=200, request_body=b""))
    assert rules(found) == [("missing-field", "request", "$")]
    # None: not known (truncated at capture): nothing said
    assert PETSTORE.check(Exchange("POST", "/pets", status=200, request_body=None)) == []


def test_no_response_means_no_response_checks():
    assert PETSTORE.check(Exchange("DELETE", "/pets/1", status=None)) == []


# --- Tic Tac Toe (3.1, parameters by $ref at the path level, enums, no default) ----------------


def test_path_parameters_from_refs_are_checked():
    assert TICTACTOE.check(Exchange("GET", "/board/1/3", status=200, response_content_type="application/json",
                                    response_body=json.dumps("X").encode())) == []  # fmt: skip
    found = TICTACTOE.check(Exchange("GET", "/board/1/9", status=200))
    assert rules(found) == [("invalid-parameter", "request", "$path.column")]


def test_unknown_enum_value_quotes_the_contract_never_the_traffic():
    body = json.dumps({"winner": "Z", "board": [[".", ".", "."]] * 3}).encode()
    found = TICTACTOE.check(Exchange("GET", "/board", status=200, response_content_type="application/json",
                                     response_body=body))  # fmt: skip
    assert rules(found) == [("unknown-enum", "response", "$.winner")]
    assert found[0].message == 'value is not one of the documented values (".", "X", "O")'
    assert '"Z"' not in found[0].message


def test_unexpected_status_without_default():
    found = TICTACTOE.check(Exchange("GET", "/board", status=500))
    assert rules(found) == [("unexpected-status", "response", None)]
    assert found[0].message == "status 500 is not documented (documented: 200)"


def test_status_ranges_are_honoured():
    doc = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"},
           "paths": {"/x": {"get": {"responses": {"2XX": {"description": "ok"}, "404": {"description": "no"}}}}}}  # fmt: skip
    contract = compile_contract(doc)
    assert contract.check(Exchange("GET", "/x", status=204)) == []
    assert contract.check(Exchange("GET", "/x", status=404)) == []
    assert rules(contract.check(Exchange("GET", "/x", status=500))) == [("unexpected-status", "response", None)]


# --- 3.0 nullable, additionalProperties, oneOf, bounds ----------------------------------------


def _doc(schema: dict, version: str = "3.0.3", **extra: Any) -> dict:
    return {
        "openapi": version, "info": {"title": "t", "version": "1"},
        "paths": {"/items/{id}": {"get": {
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": schema}}}},
        }}},
        **extra,
    }  # fmt: skip


def _check(contract: Any, body: Any) -> list[Violation]:
    return contract.check(Exchange("GET", "/items/1", status=200, response_content_type="application/json",
                                   response_body=json.dumps(body).encode()))  # fmt: skip


def test_nullable_in_3_0():
    contract = compile_contract(_doc({"type": "object", "properties": {
        "a": {"type": "string", "nullable": True},
        "b": {"type": "string"},
        "c": {"allOf": [{"$ref": "#/components/schemas/C"}], "nullable": True},
        "d": {"type": "string", "enum": ["x"], "nullable": True},
    }}, components={"schemas": {"C": {"type": "integer"}}}))  # fmt: skip
    assert _check(contract, {"a": None, "c": None, "d": None}) == []
    assert rules(_check(contract, {"b": None, "c": "s"})) == [
        ("wrong-type", "response", "$.b"), ("wrong-type", "response", "$.c"),
    ]


def test_exclusive_minimum_as_a_boolean_in_3_0():
    contract = compile_contract(_doc({"type": "integer", "minimum": 0, "exclusiveMinimum": True}))
    assert _check(contract, 1) == []
    assert rules(_check(contract, 0)) == [("invalid-value", "response", "$")]


def test_unknown_fields_only_where_additional_properties_is_false():
    contract = compile_contract(_doc({"type": "object", "additionalProperties": False,
                                      "properties": {"a": {"type": "object", "properties": {}}}}))  # fmt: skip
    assert _check(contract, {"a": {"anything": 1}}) == []
    found = _check(contract, {"a": {}, "zz": 1, "odd name": 2})
    assert rules(found) == [("unknown-field", "response", "$.zz"), ("unknown-field", "response", '$["odd name"]')]


def test_one_of_reports_the_closest_branch():
    contract = compile_contract(_doc({"oneOf": [
        {"type": "object", "required": ["kind", "size"], "properties": {"kind": {"const": "a"}, "size": {"type": "integer"}}},
        {"type": "string"},
    ]}, version="3.1.0"))  # fmt: skip
    assert _check(contract, {"kind": "a", "size": 3}) == []
    assert rules(_check(contract, {"kind": "a", "size": "3"})) == [("wrong-type", "response", "$.size")]


def test_violations_are_bounded():
    contract = compile_contract(_doc({"type": "array", "items": {"type": "integer"}}))
    found = _check(contract, ["x"] * 500)
    assert len(found) == MAX_VIOLATIONS


def test_bodies_over_the_limit_are_not_parsed():
    contract = compile_contract(_doc({"type": "array", "items": {"type": "integer"}}))
    body = b"[" + b'"x",' * (MAX_BODY_BYTES // 4) + b'"x"]'
    assert contract.check(Exchange("GET", "/items/1", status=200, response_content_type="application/json",
                                   response_body=body)) == []  # fmt: skip


def test_validators_are_made_once_per_schema():
    contract = compile_contract(_doc({"type": "object"}))
    _check(contract, {})
    made = dict(contract._validators)
    _check(contract, {"a": 1})
    assert contract._validators == made and all(made[k] is contract._validators[k] for k in made)


def test_literal_paths_win_over_templates():
    doc = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {
        "/pets/{id}": {"get": {"responses": {"200": {"description": "x"}}}},
        "/pets/mine": {"get": {"responses": {"204": {"description": "x"}}}},
    }}  # fmt: skip
    contract = compile_contract(doc)
    assert contract.template_for("GET", "/pets/mine") == "/pets/mine"
    assert contract.template_for("GET", "/pets/7") == "/pets/{id}"


def test_servers_with_variables_and_relative_urls():
    doc = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"},
           "servers": [{"url": "https://{host}/api/{v}", "variables": {"host": {"default": "x"}, "v": {"default": "v1"}}},
                       {"url": "/rel"}],
           "paths": {"/a": {"get": {"responses": {"200": {"description": "x"}}}}}}  # fmt: skip
    contract = compile_contract(doc)
    for path in ("/api/v1/a", "/rel/a", "/a"):
        assert contract.template_for("GET", path) == "/a"


@pytest.mark.parametrize("document", [{"swagger": "2.0"}, {"openapi": "4.0.0"}, {"openapi": "3.1.0", "paths": []}, []])
def test_not_openapi_3(document):
    with pytest.raises(ContractError):
        compile_contract(document)


# --- a FastAPI app's own document ---------------------------------------------------------------


class Item(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str] = []
    note: str | None = None


def _fastapi_document() -> dict:
    app = FastAPI()

    @app.get("/items/{item_id}", response_model=Item)
    def read(item_id: int, q: str | None = None, limit: int = 10) -> Item:
        raise NotImplementedError

    @app.post("/items", response_model=Item, status_code=201)
    def create(item: Item) -> Item:
        raise NotImplementedError

    return app.openapi()


FASTAPI = compile_contract(_fastapi_document())


def test_a_fastapi_document():
    good = Exchange("GET", "/items/3", "q=x&limit=5", 200, None, "application/json", None,
                    ok(id=3, name="n", price=1.5, tags=["a"], note=None))  # fmt: skip
    assert FASTAPI.check(good) == []
    bad = Exchange("GET", "/items/three", "limit=many", 200, None, "application/json", None,
                   ok(id=3, price="1", tags=[1]))  # fmt: skip
    assert sorted(rules(FASTAPI.check(bad))) == sorted([
        ("invalid-parameter", "request", "$path.item_id"), ("invalid-parameter", "request", "$query.limit"),
        ("missing-field", "response", "$.name"), ("wrong-type", "response", "$.price"),
        ("wrong-type", "response", "$.tags[0]"),
    ])  # fmt: skip
    # FastAPI documents 422 (validation error) and the declared 201, not 200
    assert FASTAPI.check(Exchange("POST", "/items", status=422)) == []
    assert rules(FASTAPI.check(Exchange("POST", "/items", status=200))) == [("unexpected-status", "response", None)]


# --- properties ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
       path=st.text(min_size=0, max_size=40).map(lambda s: "/" + s),
       query=st.text(max_size=30), status=st.none() | st.integers(100, 599),
       body=json_values, raw=st.binary(max_size=40), json_body=st.booleans(),
       content_type=st.sampled_from([None, "application/json", "text/plain", "application/problem+json"]))  # fmt: skip
def test_any_exchange_gives_bounded_well_formed_violations(method, path, query, status, body, raw, json_body, content_type):
    payload = json.dumps(body).encode() if json_body else raw
    for contract in (PETSTORE, TICTACTOE, FASTAPI):
        found = contract.check(Exchange(method, path, query, status, content_type, content_type, payload, payload))
        assert len(found) <= MAX_VIOLATIONS
        for violation in found:
            assert violation.rule in RULES
            assert violation.side in ("request", "response")
            assert "\n" not in violation.message and len(violation.message) < 400
            violation.message.encode("utf-8")  # no lone surrogate: it can be stored and answered as JSON
            (violation.json_path or "").encode("utf-8")
            assert violation.json_path is None or (violation.json_path.startswith("$") and len(violation.json_path) <= 200)


@settings(max_examples=100, deadline=None)
@given(item_id=st.integers(-(2**40), 2**40), name=st.text(max_size=20), price=st.floats(allow_nan=False, allow_infinity=False),
       tags=st.lists(st.text(max_size=5), max_size=4))  # fmt: skip
def test_conforming_fastapi_exchanges_never_violate(item_id, name, price, tags):
    body = json.dumps({"id": item_id, "name": name, "price": price, "tags": tags}).encode()
    exchange = Exchange("GET", f"/items/{item_id}", "limit=3", 200, None, "application/json", None, body)
    assert FASTAPI.check(exchange) == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 50), st.text(max_size=10)), max_size=12))
def test_json_path_is_bounded_and_starts_at_the_root(parts):
    path = json_path(parts)
    assert path.startswith("$") and len(path) <= 200


def test_recursive_schemas_are_followed_to_any_depth():
    tree = {"type": "object", "required": ["value"],
            "properties": {"value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#/components/schemas/Tree"}}}}  # fmt: skip
    contract = compile_contract(_doc({"$ref": "#/components/schemas/Tree"}, version="3.1.0",
                                     components={"schemas": {"Tree": tree}}))  # fmt: skip
    deep = {"value": 1, "children": [{"value": 2, "children": [{"value": 3, "children": [{"value": "4"}]}]}]}
    assert rules(_check(contract, deep)) == [("wrong-type", "response", "$.children[0].children[0].children[0].value")]
    assert _check(contract, {"value": 1, "children": [{"value": 2}]}) == []


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.iterdir() if p.suffix in (".json", ".yaml")))
def test_every_example_document_validates_and_compiles(name):
    from storage.contracts import check_document

    document = check_document(load(name))  # openapi-spec-validator accepts it
    contract = compile_contract(document)
    operations = list(contract.operations())
    if name == "v3.1-webhook-example.yaml":
        assert operations == []  # webhooks only: every request is undocumented
        assert [v.rule for v in contract.check(Exchange("POST", "/pets", status=200))] == ["undocumented-endpoint"]
    else:
        assert operations
        for method, template in operations:
            assert contract.template_for(method, template.replace("{", "").replace("}", "")) == template


STRICT = compile_contract(_doc({"type": "object", "additionalProperties": False, "required": ["id"],
                                "properties": {"id": {"type": "integer"}, "tags": {"type": "array", "items": {
                                    "type": "object", "additionalProperties": False}}}}))  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=6),
       st.lists(st.dictionaries(st.text(max_size=12), st.integers(), max_size=3), max_size=3))  # fmt: skip
def test_captured_field_names_give_one_line_encodable_violations(extra, tags):
    body = json.dumps({**extra, "tags": tags}).encode()  # surrogates, NULs, newlines in the names
    found = STRICT.check(Exchange("GET", "/items/1", status=200, response_content_type="application/json",
                                  response_body=body))  # fmt: skip
    unknown = [v for v in found if v.rule == "unknown-field"]
    expected = sum(1 for name in {**extra, "tags": tags} if name not in ("id", "tags")) + sum(len(t) for t in tags)
    assert len(unknown) == expected  # at most 15: below MAX_VIOLATIONS
    for violation in found:
        assert "\n" not in violation.message and "\n" not in (violation.json_path or "")
        violation.message.encode("utf-8")
        (violation.json_path or "").encode("utf-8")
