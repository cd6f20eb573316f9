"""storage.pure.shapes: summaries of JSON values and operations (pure; hypothesis where inputs vary)."""

from __future__ import annotations

import functools
import json
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from storage.pure.redaction import DEFAULT_RULES, is_secret_name
from storage.pure.shapes import (
    ENUM_MAX,
    MAX_DEPTH,
    MAX_NODES,
    Body,
    is_id_name,
    merge,
    merge_operations,
    observe,
    observe_text,
    operation_of,
    path_values,
    request_side,
    to_json_schema,
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["red", "green", "blue"])
    | st.uuids().map(str)
    | st.sampled_from(["2026-12-04T08:48:59Z", "2026-12-04", "a@example.com", "https://example.com/x"])
)
keys = st.sampled_from(["id", "name", "kind", "tags", "a", "b", "password", "x" * 120]) | st.text(max_size=6)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=25
)
secret = functools.partial(is_secret_name, rules=DEFAULT_RULES)


def summarise(values: list) -> dict:
    return functools.reduce(merge, (observe(value, secret=secret) for value in values), {})


def validator(node: dict) -> Draft202012Validator:
    schema = to_json_schema(node)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(json_values, min_size=1, max_size=8))
def test_every_value_merged_in_validates_against_the_schema_made_from_it(values: list) -> None:
    check = validator(summarise(values))
    for value in values:
        errors = [error.message for error in check.iter_errors(value)]
        assert not errors, (value, to_json_schema(summarise(values)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, json_values, json_values)
def test_merge_is_associative_and_commutative_and_leaves_its_inputs_alone(a, b, c) -> None:  # type: ignore[no-untyped-def]
    x, y, z = observe(a), observe(b), observe(c)
    before = json.dumps([x, y, z], sort_keys=True)
    assert merge(x, merge(y, z)) == merge(merge(x, y), z)
    assert merge(x, y) == merge(y, x)
    assert json.dumps([x, y, z], sort_keys=True) == before


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(json_values, min_size=1, max_size=6))
def test_counting_into_a_summary_is_merging_one_value_at_a_time(values: list) -> None:
    running: dict = {}
    for value in values:
        observe(value, secret=secret, into=running)
    assert running == summarise(values)


def wide(seed: int) -> dict:
    """An object with many members, each a nested structure: many more nodes than a summary keeps."""
    return {f"k{seed}_{i}": {"inner": [{f"m{j}": j for j in range(8)}], "s": f"v{i % 7}"} for i in range(60)}


@settings(max_examples=12, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=6, unique=True))
def test_summaries_stay_bounded_and_the_cut_commutes(seeds: list[int]) -> None:
    nodes = [observe(wide(seed)) for seed in seeds]
    merged = functools.reduce(merge, nodes)
    assert merged == functools.reduce(merge, reversed(nodes))
    text = json.dumps(merged)
    count = text.count('"n":')
    assert count <= MAX_NODES
    assert len(text) < MAX_NODES * 1200
    for seed in seeds:
        assert not list(validator(merged).iter_errors(wide(seed)))  # a cut summary still accepts what it saw


def test_types_nullable_required_and_items() -> None:
    node = summarise([
        {"id": 1, "name": "a", "note": None, "tags": ["x"], "scores": [1, 2.5]},
        {"id": 2, "name": "b", "note": "hi", "tags": [], "extra": True, "scores": []},
    ])
    schema = to_json_schema(node)
    assert schema["type"] == "object"
    assert schema["required"] == ["id", "name", "note", "scores", "tags"]  # extra: one object of two
    assert schema["properties"]["note"]["type"] == ["string", "null"]
    assert schema["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    assert schema["properties"]["scores"]["items"] == {"type": "number"}  # integers are numbers too
    assert schema["properties"]["extra"] == {"type": "boolean"}


def test_a_format_holds_only_when_every_string_matches() -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    assert to_json_schema(summarise(ids)) == {"type": "string", "format": "uuid"}
    assert "format" not in to_json_schema(summarise([*ids, "not-a-uuid"]))
    cases = {
        "date-time": ["2026-12-04T08:48:59Z", "2026-12-04T08:48:59.123+02:00"],
        "date": ["2026-12-04", "2025-02-28"],
        "email": ["ann@example.com", "bob.smith+x@mail.example.org"],
        "uri": ["https://example.com/a?b=c", "http://127.0.0.1:8000/"],
    }
    for fmt, values in cases.items():
        assert to_json_schema(summarise(values))["format"] == fmt
    assert "format" not in to_json_schema(summarise(["2026-02-30"]))  # no such day
    assert "format" not in to_json_schema(summarise(["2026-12-04T08:48:59"]))  # RFC 3339 wants an offset


def test_integers_say_int32_or_int64() -> None:
    assert to_json_schema(summarise([1, -5, 2**31 - 1]))["format"] == "int32"
    assert to_json_schema(summarise([1, 2**31]))["format"] == "int64"
    assert "format" not in to_json_schema(summarise([1, 2**64]))
    assert to_json_schema(summarise([None, 3])) == {"type": ["integer", "null"], "format": "int32"}


def test_enums_for_few_values_seen_often_and_never_for_ids_free_text_or_secrets() -> None:
    statuses = [{"status": s, "id": s, "password": s} for s in ["open", "closed", "pending"] * 5]
    schema = to_json_schema(summarise(statuses))
    assert schema["properties"]["status"]["enum"] == ["closed", "open", "pending"]
    assert "enum" not in schema["properties"]["id"]  # named like an identifier
    assert "enum" not in schema["properties"]["password"]  # a secret member's values are never kept
    assert "enum" not in to_json_schema(summarise(["open", "closed", "open"]))  # too few samples
    assert "enum" not in to_json_schema(summarise(["same"] * 20))  # a constant, not a closed set
    many = [f"value{i}x" for i in range(ENUM_MAX + 1)] * 10
    assert "enum" not in to_json_schema(summarise(many))
    assert "enum" not in to_json_schema(summarise(["a long sentence of free text here", "b"] * 10))
    assert "enum" not in to_json_schema(summarise(["12", "13"] * 10))  # numbers in strings are ids
    nullable = to_json_schema(summarise(["on", "off", None] * 6))
    assert nullable["enum"] == ["off", "on", None]
    assert is_id_name("user_id") and is_id_name("orderId") and is_id_name("ID") and not is_id_name("paid")


def test_depth_is_capped() -> None:
    deep: object = "leaf"
    for _ in range(MAX_DEPTH + 5):
        deep = {"d": deep}
    node = observe(deep)
    depth = 0
    while "p" in node:
        node = node["p"]["d"]
        depth += 1
    assert depth == MAX_DEPTH


def test_url_parameters_are_typed_from_their_text() -> None:
    node = observe_text("42")
    for text in ("7", "-3"):
        observe_text(text, into=node)
    assert to_json_schema(node) == {"type": "integer", "format": "int32"}
    assert to_json_schema(observe_text("true")) == {"type": "boolean"}
    assert to_json_schema(observe_text("2.5")) == {"type": "number"}
    assert to_json_schema(observe_text("abc", count=3))["type"] == "string"
    assert observe_text("abc", count=3)["n"] == 3
    assert path_values("/users/{id}/files/{uuid}.json", "/users/42/files/0f8fad5b-d9cb-469f-a165-70867728950e.json") == {
        "1": "42",
        "3": "0f8fad5b-d9cb-469f-a165-70867728950e",
    }


def one_exchange(i: int, *, status: int = 200, query: list | None = None, body: object = None) -> dict:
    return operation_of(
        template="/users/{id}",
        path=f"/users/{i}",
        query=query if query is not None else [("limit", str(i))],
        request=None if body is None else Body("application/json", parsed=True, json=body),
        status=status,
        response=Body("application/json", parsed=True, json={"id": i}),
        example={"id": i, "request": {"path": f"/users/{i}", "query": ""}, "response": {"status": status}},
        secret=secret,
    )


exchanges = st.builds(
    one_exchange,
    st.integers(0, 10_000),
    status=st.sampled_from([200, 201, 404, 500]),
    query=st.lists(st.tuples(st.sampled_from(["a", "b", "token"]), st.text(max_size=5)), max_size=3),
    body=json_values,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exchanges, exchanges, exchanges)
def test_operation_merge_is_associative_and_commutative(a: dict, b: dict, c: dict) -> None:
    assert merge_operations(a, merge_operations(b, c)) == merge_operations(merge_operations(a, b), c)
    assert merge_operations(a, b) == merge_operations(b, a)


def test_operation_counts_parameters_bodies_statuses_and_keeps_the_newest_example() -> None:
    parts = [
        one_exchange(1, query=[("limit", "1"), ("tag", "a"), ("tag", "b")]),
        one_exchange(2, query=[("limit", "2")], body={"name": "x"}),
        one_exchange(3, status=404, query=[("limit", "3")]),
    ]
    operation = functools.reduce(merge_operations, parts, {"n": 0})
    assert operation["n"] == 3
    accepted, refused = operation["ok"], operation["bad"]
    assert accepted["n"] == 2 and refused["n"] == 1  # the 404 is apart
    assert accepted["query"]["p"]["limit"]["n"] == 2
    assert accepted["query"]["p"]["tag"] == {"n": 1, "m": 1, "v": observe_text("b", into=observe_text("a"))}
    assert accepted["path"]["1"]["t"] == {"integer": 2}
    assert accepted["body"]["none"] == 1 and accepted["body"]["c"]["application/json"]["n"] == 1
    assert request_side(operation) is accepted and request_side({"n": 1, "bad": refused}) is refused
    assert {code: side["n"] for code, side in operation["res"].items()} == {"200": 2, "404": 1}
    assert operation["ex"]["id"] == 3
