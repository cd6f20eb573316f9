"""storage.pure.diff.diff_exchanges: each section of the diff, its limits, and properties (hypothesis)."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from storage.pure.diff import (
    DEFAULT_NOISE_HEADERS,
    MAX_JSON_DEPTH,
    MAX_OUTPUT_ITEMS,
    DiffBody,
    diff_exchanges,
    responses_differ,
)


def exchange(**overrides: Any) -> dict:
    base = {
        "id": 1,
        "method": "GET",
        "url": "https://api.local/users/42",
        "http_version": "HTTP/1.1",
        "status": 200,
        "reason": "OK",
        "request_headers": [["Host", "api.local"], ["Accept", "*/*"]],
        "response_headers": [["Content-Type", "application/json"]],
        "error": None,
        "duration_ms": 12.5,
        "timings": {"connect_ms": 1.0, "tls_ms": 2.0, "send_ms": 0.5, "wait_ms": 8.0, "receive_ms": 1.0},
    }
    return base | overrides


def body(data: bytes | str, content_type: str | None = "application/json", *, truncated: bool = False) -> DiffBody:
    raw = data.encode() if isinstance(data, str) else data
    size = len(raw) + 100 if truncated else len(raw)
    return DiffBody(data=raw, content_type=content_type, truncated=truncated, size=size, sha256=hashlib.sha256(raw).hexdigest())


def diff(a: dict, b: dict, *, a_req=None, a_resp=None, b_req=None, b_resp=None, **options: Any) -> dict:  # type: ignore[no-untyped-def]
    return diff_exchanges(a, b, a_request_body=a_req, a_response_body=a_resp, b_request_body=b_req, b_response_body=b_resp, **options)


def response_diff(a: DiffBody | None, b: DiffBody | None, **options: Any) -> dict:
    return diff(exchange(), exchange(id=2), a_resp=a, b_resp=b, **options)["response_body"]


def json_changes(a: Any, b: Any, **options: Any) -> list[dict]:
    result = response_diff(body(json.dumps(a)), body(json.dumps(b)), **options)
    assert result["kind"] == "json"
    return result["changes"]


# Whole exchanges


def test_identical_exchanges_are_same_and_output_is_strict_json():
    result = diff(exchange(), exchange(id=2), a_resp=body('{"a": 1}'), b_resp=body('{"a": 1}'))
    assert result["a"] == 1 and result["b"] == 2 and result["same"] is True
    assert result["request_line"] == {"method": None, "url": None, "http_version": None}
    assert result["status"] == {"a": 200, "b": 200, "changed": False, "reason": None, "error": None}
    assert result["response_body"] == {"kind": "same", "truncated": False}
    assert result["request_body"] == {"kind": "none", "truncated": False}
    json.dumps(result, allow_nan=False)


def test_request_line_changes():
    result = diff(exchange(), exchange(method="POST", url="https://api.local/users/43", http_version="HTTP/2.0"))
    assert result["request_line"] == {
        "method": ["GET", "POST"],
        "url": ["https://api.local/users/42", "https://api.local/users/43"],
        "http_version": ["HTTP/1.1", "HTTP/2.0"],
    }
    assert result["same"] is False


def test_status_reason_and_error():
    error = {"kind": "timeout", "message": "upstream did not answer"}
    failed = exchange(status=None, reason=None, response_headers=None, error=error)
    result = diff(exchange(), failed)
    assert result["status"] == {"a": 200, "b": None, "changed": True, "reason": ["OK", None], "error": [None, error]}
    assert result["response_headers"]["removed"] == [["content-type", "application/json"]]
    assert result["same"] is False

    reason_only = diff(exchange(), exchange(reason="Fine"))
    assert reason_only["status"]["changed"] is False and reason_only["status"]["reason"] == ["OK", "Fine"]
    assert reason_only["same"] is False


def test_responses_differ_by_status_response_headers_or_body_bytes():
    """What a bulk replay job counts: request changes, noise and timings do not count."""
    same = diff(exchange(), exchange(id=2, url="https://api.local/users/7", duration_ms=99.0,
                                     response_headers=[["Content-Type", "application/json"], ["Date", "now"]]),
                a_resp=body('{"a": 1}'), b_resp=body('{"a": 1}'))  # fmt: skip
    assert not responses_differ(same)
    assert responses_differ(diff(exchange(), exchange(id=2, status=500)))
    assert responses_differ(diff(exchange(), exchange(id=2, response_headers=[["Content-Type", "text/plain"]])))
    assert responses_differ(diff(exchange(), exchange(id=2), a_resp=body('{"a": 1}'), b_resp=body('{"a":1}')))


# Headers


def test_headers_order_and_name_case_do_not_matter():
    a = exchange(request_headers=[["Host", "h"], ["Accept", "*/*"], ["X-A", "1"]])
    b = exchange(request_headers=[["x-a", "1"], ["ACCEPT", "*/*"], ["host", "h"]])
    assert diff(a, b)["request_headers"] == {"added": [], "removed": [], "changed": [], "noise": []}
    assert diff(a, b)["same"] is True


def test_headers_added_removed_changed_sorted_by_lowercase_name():
    a = exchange(request_headers=[["Zeta", "1"], ["Accept", "a"], ["Gone", "x"], ["Gone", "y"]])
    b = exchange(request_headers=[["New-B", "2"], ["accept", "b"], ["New-A", "1"], ["Zeta", "1"]])
    headers = diff(a, b)["request_headers"]
    assert headers["added"] == [["new-a", "1"], ["new-b", "2"]]
    assert headers["removed"] == [["gone", "x"], ["gone", "y"]]
    assert headers["changed"] == [{"name": "accept", "a": ["a"], "b": ["b"]}]


def test_header_values_keep_order_and_duplicates():
    once = exchange(request_headers=[["Cookie", "a=1"]])
    twice = exchange(request_headers=[["Cookie", "a=1"], ["cookie", "a=1"]])
    assert diff(once, twice)["request_headers"]["changed"] == [{"name": "cookie", "a": ["a=1"], "b": ["a=1", "a=1"]}]
    swapped = diff(exchange(request_headers=[["V", "1"], ["V", "2"]]), exchange(request_headers=[["V", "2"], ["V", "1"]]))
    assert swapped["request_headers"]["changed"] == [{"name": "v", "a": ["1", "2"], "b": ["2", "1"]}]


def test_noise_headers_are_listed_only_as_noise():
    a = exchange(response_headers=[["Date", "Mon"], ["X-Request-Id", "1"], ["Set-Cookie", "s=1"], ["Content-Type", "text/plain"]])
    b = exchange(response_headers=[["Date", "Tue"], ["Traceparent", "00-ab"], ["Set-Cookie", "s=2"], ["Content-Type", "text/plain"]])
    headers = diff(a, b)["response_headers"]
    assert headers["noise"] == ["date", "traceparent", "x-request-id"]
    assert headers["added"] == [] and headers["removed"] == []
    assert headers["changed"] == [{"name": "set-cookie", "a": ["s=1"], "b": ["s=2"]}]


def test_only_noise_differs_means_same():
    a = exchange(response_headers=[["Date", "Mon"], ["Content-Length", "10"]], duration_ms=1.0)
    b = exchange(response_headers=[["Date", "Tue"], ["Content-Length", "11"]], duration_ms=900.0)
    result = diff(a, b)
    assert result["same"] is True and result["response_headers"]["noise"] == ["content-length", "date"]


def test_custom_noise_set_replaces_default_and_ignores_case():
    a = exchange(response_headers=[["Date", "Mon"], ["X-Build", "1"]])
    b = exchange(response_headers=[["Date", "Tue"], ["X-Build", "2"]])
    headers = diff(a, b, noise_headers={"X-Build"})["response_headers"]
    assert headers["noise"] == ["x-build"]
    assert headers["changed"] == [{"name": "date", "a": ["Mon"], "b": ["Tue"]}]


def test_default_noise_set_shape():
    assert all(name == name.lower() for name in DEFAULT_NOISE_HEADERS)
    assert "set-cookie" not in DEFAULT_NOISE_HEADERS and "etag" not in DEFAULT_NOISE_HEADERS
    assert {"date", "content-length", "traceparent", "x-request-id"} <= DEFAULT_NOISE_HEADERS


# Timing


def test_timing_deltas_and_unknown_phases():
    a = exchange(duration_ms=10.1, timings={"connect_ms": None, "tls_ms": None, "send_ms": 0.1, "wait_ms": 5.0, "receive_ms": 1.0})
    b = exchange(duration_ms=10.3, timings={"connect_ms": 3.0, "tls_ms": None, "send_ms": 0.3, "wait_ms": 2.5, "receive_ms": 1.0})
    timing = diff(a, b)["timing"]
    assert timing["duration_ms"] == {"a": 10.1, "b": 10.3, "delta": 0.2}
    assert timing["connect_ms"] == {"a": None, "b": 3.0, "delta": None}
    assert timing["tls_ms"] == {"a": None, "b": None, "delta": None}
    assert timing["send_ms"]["delta"] == 0.2 and timing["wait_ms"]["delta"] == -2.5 and timing["receive_ms"]["delta"] == 0.0


def test_timing_tolerates_missing_timings():
    timing = diff(exchange(duration_ms=None, timings=None), exchange())["timing"]
    assert timing["duration_ms"] == {"a": None, "b": 12.5, "delta": None}
    assert timing["wait_ms"] == {"a": None, "b": 8.0, "delta": None}


# JSON bodies


def test_json_nested_objects_by_path():
    a = {"user": {"name": "ann", "age": 30, "old": True}, "weird key": 1, "1st": 2}
    b = {"user": {"name": "bob", "age": 30, "new": None}, "weird key": 2, "1st": 3}
    assert json_changes(a, b) == [
        {"path": '$["1st"]', "op": "changed", "a": 2, "b": 3},
        {"path": "$.user.name", "op": "changed", "a": "ann", "b": "bob"},
        {"path": "$.user.new", "op": "added", "b": None},
        {"path": "$.user.old", "op": "removed", "a": True},
        {"path": '$["weird key"]', "op": "changed", "a": 1, "b": 2},
    ]


def test_json_key_order_and_formatting_do_not_matter():
    result = response_diff(body('{"a":1,"b":[1,2]}'), body('{\n  "b": [1, 2],\n  "a": 1\n}'))
    assert result == {"kind": "json", "truncated": False, "changes": [], "ignored": [], "truncated_output": False}
    assert diff(exchange(), exchange(), a_resp=body('{"a":1}'), b_resp=body('{ "a" : 1 }'))["same"] is True


def test_json_arrays_index_by_index():
    assert json_changes({"xs": [1, 2, 3]}, {"xs": [1, 5, 3, 4]}) == [
        {"path": "$.xs[1]", "op": "changed", "a": 2, "b": 5},
        {"path": "$.xs[3]", "op": "added", "b": 4},
    ]
    assert json_changes([[1], [2]], [[1]]) == [{"path": "$[1]", "op": "removed", "a": [2]}]


def test_json_type_changes_and_number_semantics():
    assert json_changes({"n": 1, "f": 2.50, "big": 10**20}, {"n": 1.0, "f": 2.5, "big": 1e20}) == []
    assert json_changes({"t": True, "z": 0, "s": "1"}, {"t": 1, "z": False, "s": 1}) == [
        {"path": "$.s", "op": "changed", "a": "1", "b": 1},
        {"path": "$.t", "op": "changed", "a": True, "b": 1},
        {"path": "$.z", "op": "changed", "a": 0, "b": False},
    ]
    assert json_changes({"o": {"k": 1}}, {"o": [1]}) == [{"path": "$.o", "op": "changed", "a": {"k": 1}, "b": [1]}]
    assert json_changes({"o": None}, {"o": {}}) == [{"path": "$.o", "op": "changed", "a": None, "b": {}}]


def test_json_ignore_by_key_name_at_any_depth():
    a = {"updated_at": 1, "user": {"updated_at": 1, "name": "x"}, "items": [{"updated_at": 5}], "same": {"updated_at": 9}}
    b = {"updated_at": 2, "user": {"updated_at": 3, "name": "y"}, "items": [{}], "same": {"updated_at": 9}}
    result = response_diff(body(json.dumps(a)), body(json.dumps(b)), ignore_keys=["updated_at"])
    assert result["changes"] == [{"path": "$.user.name", "op": "changed", "a": "x", "b": "y"}]
    assert result["ignored"] == ["$.items[0].updated_at", "$.updated_at", "$.user.updated_at"]


def test_json_ignore_by_path_only_there():
    a = {"meta": {"timestamp": 1}, "data": {"timestamp": 1}, "items": [{"id": 1}, {"id": 2}]}
    b = {"meta": {"timestamp": 2}, "data": {"timestamp": 2}, "items": [{"id": 9}, {"id": 3}]}
    result = response_diff(body(json.dumps(a)), body(json.dumps(b)), ignore_keys=["$.meta.timestamp", "$.items[0]"])
    assert result["changes"] == [
        {"path": "$.data.timestamp", "op": "changed", "a": 1, "b": 2},
        {"path": "$.items[1].id", "op": "changed", "a": 2, "b": 3},
    ]
    assert result["ignored"] == ["$.items[0]", "$.meta.timestamp"]


def test_json_only_ignored_differences_mean_same():
    a = exchange(response_headers=[])
    result = diff(a, a, a_resp=body('{"id": 1, "request_id": "x"}'), b_resp=body('{"id": 1, "request_id": "y"}'), ignore_keys=["request_id"])
    assert result["same"] is True and result["response_body"]["ignored"] == ["$.request_id"]


def test_dollar_prefixed_key_is_a_name_not_a_path():
    assert json_changes({"$set": 1, "k": 1}, {"$set": 2, "k": 2}, ignore_keys=["$set"]) == [{"path": "$.k", "op": "changed", "a": 1, "b": 2}]


def test_json_deep_nesting_is_reported_at_the_depth_cap():
    def nest(depth: int, leaf: int) -> Any:
        value: Any = leaf
        for _ in range(depth):
            value = {"k": value}
        return value

    changes = json_changes(nest(MAX_JSON_DEPTH + 50, 1), nest(MAX_JSON_DEPTH + 50, 2))
    assert len(changes) == 1 and changes[0]["op"] == "changed"
    assert changes[0]["path"] == "$" + ".k" * MAX_JSON_DEPTH
    equal = response_diff(body(json.dumps(nest(MAX_JSON_DEPTH + 50, 1))), body(json.dumps(nest(MAX_JSON_DEPTH + 50, 1), indent=1)))
    assert equal["kind"] == "json" and equal["changes"] == []


def test_json_nested_beyond_the_parser_falls_back_to_text():
    deep = "[" * 100_000 + "]" * 100_000
    assert response_diff(body(deep), body(deep + " "))["kind"] == "text"


def test_json_changes_are_capped():
    n = MAX_OUTPUT_ITEMS + 10
    result = response_diff(body(json.dumps(list(range(n)))), body(json.dumps([-1] * n)))
    assert len(result["changes"]) == MAX_OUTPUT_ITEMS and result["truncated_output"] is True


def test_json_without_content_type_is_detected_and_nan_is_not_json():
    assert response_diff(body('{"a": 1}', None), body('{"a": 2}', None))["kind"] == "json"
    assert response_diff(body('{"a": NaN}'), body('{"a": 1}'))["kind"] == "text"
    assert response_diff(body('{"a": 1e999}'), body('{"a": 1}'))["kind"] == "text"


def test_long_json_arrays_are_fast():
    a = json.dumps({"items": [{"id": i, "name": f"n{i}"} for i in range(30_000)]})
    b = json.dumps({"items": [{"id": i, "name": f"n{i}"} for i in range(1, 30_001)]})
    started = time.perf_counter()
    result = response_diff(body(a), body(b))
    assert time.perf_counter() - started < 2.0  # generous for slow CI; unguarded, this takes tens of seconds
    assert result["changes"][0] == {"path": "$.items[0].id", "op": "changed", "a": 0, "b": 1}


# Text bodies


def test_text_line_diff_with_context_hunks():
    a = "\n".join(f"line {i}" for i in range(1, 21))
    b = a.replace("line 3\n", "line three\n").replace("line 18\n", "")
    result = response_diff(body(a, "text/plain"), body(b, "text/plain; charset=utf-8"))
    assert result["kind"] == "text" and result["truncated_output"] is False
    first, second = result["hunks"]
    assert first["a_start"] == 1 and first["b_start"] == 1
    assert [(line["op"], line["text"]) for line in first["lines"]] == [
        (" ", "line 1"), (" ", "line 2"), ("-", "line 3"), ("+", "line three"), (" ", "line 4"), (" ", "line 5"), (" ", "line 6"),
    ]
    assert second["a_start"] == 15 and second["b_start"] == 15
    assert [line["op"] for line in second["lines"]] == [" ", " ", " ", "-", " ", " "]


def test_text_kind_for_html_and_for_json_that_does_not_parse():
    assert response_diff(body("<p>a</p>", "text/html"), body("<p>b</p>", "text/html"))["kind"] == "text"
    assert response_diff(body('{"a": 1', "application/json"), body('{"a": 2', "application/json"))["kind"] == "text"
    assert response_diff(body('{"a": 1}', "application/json"), body("<h1>502</h1>", "text/html"))["kind"] == "text"


def test_text_output_is_capped():
    a = "\n".join(f"a{i}" for i in range(3000))
    b = "\n".join(f"b{i}" for i in range(3000))
    result = response_diff(body(a, "text/plain"), body(b, "text/plain"))
    assert sum(len(h["lines"]) for h in result["hunks"]) == MAX_OUTPUT_ITEMS and result["truncated_output"] is True


def test_text_that_would_diff_slowly_is_summarised():
    # Many repeated lines in shuffled order: difflib's worst case.
    a = "\n".join(f"x{i % 3000}" for i in range(20_000))
    b = "\n".join(f"x{(i * 7) % 3000}" for i in range(20_000))
    started = time.perf_counter()
    result = response_diff(body(a, "text/plain"), body(b, "text/plain"))
    assert time.perf_counter() - started < 2.0  # generous for slow CI; unguarded, this takes tens of seconds
    assert result["too_large"] is True and result["a"]["size"] == len(a) and "hunks" not in result


# Binary, one-sided and truncated bodies


def test_binary_and_invalid_utf8():
    result = response_diff(body(b"\x89PNG\x00\x01", "image/png"), body(b"\x89PNG\x00\x02", "image/png"))
    assert result == {
        "kind": "binary",
        "truncated": False,
        "a": {"size": 6, "sha256": hashlib.sha256(b"\x89PNG\x00\x01").hexdigest()},
        "b": {"size": 6, "sha256": hashlib.sha256(b"\x89PNG\x00\x02").hexdigest()},
    }
    assert response_diff(body(b"\xff\xfe", None), body(b"\xff", None))["kind"] == "binary"
    assert response_diff(body(b"\xff", "application/json"), body(b"{}", "application/json"))["kind"] == "binary"
    assert response_diff(body(b"plain", "application/octet-stream"), body(b"plain!", "application/octet-stream"))["kind"] == "binary"


def test_same_by_hash_or_by_decoded_data():
    a = body(b"\x00\x01", None)
    assert response_diff(a, a)["kind"] == "same"
    differently_encoded = DiffBody(data=a.data, content_type=None, truncated=False, size=2, sha256="0" * 64)
    assert response_diff(a, differently_encoded)["kind"] == "same"


def test_one_sided_bodies():
    assert response_diff(None, body('{"a": 1}'))["changes"] == [{"path": "$", "op": "added", "b": {"a": 1}}]
    assert response_diff(body("[1]"), None)["changes"] == [{"path": "$", "op": "removed", "a": [1]}]
    text = response_diff(body("x\ny", "text/plain"), None)
    assert [(line["op"], line["text"]) for line in text["hunks"][0]["lines"]] == [("-", "x"), ("-", "y")]
    binary = response_diff(None, body(b"\x00", "image/png"))
    assert binary["kind"] == "binary" and binary["a"] is None and binary["b"]["size"] == 1


def test_empty_body_is_no_body():
    assert response_diff(body(b"", "text/plain"), None) == {"kind": "none", "truncated": False}
    result = diff(exchange(), exchange(), a_req=body(b""), b_req=None)
    assert result["same"] is True


def test_truncated_bodies_are_diffed_and_flagged():
    result = response_diff(body('{"a": 1', truncated=True), body('{"a": 2', truncated=True))
    assert result["kind"] == "text" and result["truncated"] is True and result["hunks"]
    assert response_diff(body("[1]"), body("[1]", truncated=True)) == {"kind": "same", "truncated": True}


# Properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)
header_lists = st.lists(
    st.tuples(st.sampled_from(["Host", "accept", "X-A", "x-a", "Date", "Set-Cookie", "traceparent"]), st.text(max_size=6)).map(list),
    max_size=6,
)
exchanges = st.builds(
    exchange,
    method=st.sampled_from(["GET", "POST"]),
    status=st.none() | st.integers(100, 599),
    request_headers=header_lists,
    response_headers=st.none() | header_lists,
    duration_ms=st.none() | st.floats(0, 1e6),
)
content_types = st.sampled_from([None, "application/json", "text/plain", "text/html; charset=utf-8", "image/png", "application/octet-stream"])
bodies = st.none() | st.builds(body, st.binary(max_size=64), content_types, truncated=st.booleans())


def reversed_json_change(change: dict) -> dict:
    op = {"added": "removed", "removed": "added", "changed": "changed"}[change["op"]]
    swapped = {"path": change["path"], "op": op}
    if "b" in change:
        swapped["a"] = change["b"]
    if "a" in change:
        swapped["b"] = change["a"]
    return swapped


@settings(max_examples=60, deadline=None)
@given(exchanges, bodies, bodies)
def test_an_exchange_is_the_same_as_itself(ex: dict, request_body: DiffBody | None, response_body: DiffBody | None):
    result = diff(ex, ex, a_req=request_body, a_resp=response_body, b_req=request_body, b_resp=response_body)
    assert result["same"] is True
    for section in ("request_headers", "response_headers"):
        assert result[section] == {"added": [], "removed": [], "changed": [], "noise": []}


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_reserialised_json_has_no_changes(value: Any):
    result = response_diff(body(json.dumps(value)), body(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)))
    assert result["kind"] in ("same", "json") and result.get("changes", []) == []


@settings(max_examples=60, deadline=None)
@given(exchanges, exchanges)
def test_swapping_sides_swaps_header_changes(a: dict, b: dict):
    forward, backward = diff(a, b), diff(b, a)
    for section in ("request_headers", "response_headers"):
        assert forward[section]["added"] == backward[section]["removed"]
        assert forward[section]["removed"] == backward[section]["added"]
        assert forward[section]["noise"] == backward[section]["noise"]
        assert [{"name": c["name"], "a": c["b"], "b": c["a"]} for c in forward[section]["changed"]] == backward[section]["changed"]
    assert forward["same"] == backward["same"]


@settings(max_examples=80, deadline=None)
@given(json_values, json_values)
def test_swapping_sides_swaps_json_changes(a: Any, b: Any):
    forward = response_diff(body(json.dumps(a)), body(json.dumps(b)))
    backward = response_diff(body(json.dumps(b)), body(json.dumps(a)))
    assert forward["kind"] == backward["kind"]
    if forward["kind"] == "json":
        assert [reversed_json_change(c) for c in forward["changes"]] == backward["changes"]


@settings(max_examples=100, deadline=None)
@given(bodies, bodies, st.lists(st.sampled_from(["a", "$.a", "$[0]", "$", ""]), max_size=2))
def test_arbitrary_bodies_never_raise_and_give_strict_json(a: DiffBody | None, b: DiffBody | None, ignore_keys: list[str]):
    result = diff(exchange(), exchange(), a_req=a, b_req=b, a_resp=b, b_resp=a, ignore_keys=ignore_keys)
    assert result["request_body"]["kind"] in ("none", "same", "json", "text", "binary")
    json.dumps(result, allow_nan=False)
