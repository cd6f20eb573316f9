"""storage.pure.mock_match: exact first (query order and JSON key order aside), then the closest
recording of the same endpoint template, sequences in recorded order ending on the last, the
nearest recordings named on a miss, and the index's bounds."""

from __future__ import annotations

import json
import random
from urllib.parse import parse_qsl

from hypothesis import given, settings
from hypothesis import strategies as st

from storage.pure.mock_match import (
    MAX_CLOSEST,
    MAX_SCORED,
    MockRequest,
    MockState,
    Recording,
    answer_headers,
    build_index,
    match,
    similarity,
)

_names = st.text(alphabet="abcdefgh", min_size=1, max_size=4)
_values = st.text(alphabet="xyz0123456789", max_size=4)
_params = st.lists(st.tuples(_names, _values), max_size=6)
_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=5))
_json = st.recursive(
    _json_leaf,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(_names, children, max_size=3)),
    max_leaves=12,
)


def rec(label: str, method: str = "GET", path: str = "/items", query: str = "", body: bytes = b"", **kw) -> Recording:  # type: ignore[no-untyped-def]
    kw.setdefault("status", 200)
    return Recording(label=label, method=method, path=path, query=query, request_body=body, **kw)


def ask(method: str = "GET", path: str = "/items", query: str = "", body: bytes = b"", ctype: str | None = None) -> MockRequest:
    return MockRequest(method=method, path=path, query=query, headers={"Content-Type": ctype} if ctype else {}, body=body)


def _qs(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{name}={value}" for name, value in pairs)


@settings(max_examples=200)
@given(pairs=_params, seed=st.integers(0, 2**32))
def test_query_parameters_match_in_any_order(pairs: list[tuple[str, str]], seed: int) -> None:
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    index = build_index([rec("#1", query=_qs(pairs)), rec("#2", path="/items", query="zzz=1")])
    found = match(index, MockState(), ask(query=_qs(shuffled)))
    assert found.kind == "exact" and found.recording is not None and found.recording.label == "#1"


@settings(max_examples=200)
@given(value=_json, indent=st.sampled_from([None, 1, 4]))
def test_a_json_body_matches_by_value(value: object, indent: int | None) -> None:
    recorded = json.dumps(value).encode()
    other = json.dumps({"_other": value}).encode()
    index = build_index([rec("#1", "POST", body=recorded), rec("#2", "POST", body=other)])
    sent = json.dumps(value, indent=indent, sort_keys=True).encode()
    found = match(index, MockState(), ask("POST", body=sent, ctype="application/json"))
    assert found.kind == "exact" and found.recording.label == "#1"


@settings(max_examples=100)
@given(
    requests=st.lists(
        st.tuples(
            st.sampled_from(["GET", "POST"]),
            st.sampled_from(["/a", "/a/1", "/b/2"]),
            _params,
            st.binary(max_size=3).map(lambda b: b.replace(b"{", b"").replace(b"[", b"")),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_every_recording_is_found_exactly_and_sequences_play_in_order(requests) -> None:  # type: ignore[no-untyped-def]
    recordings = [rec(f"#{i}", m, p, _qs(q), b) for i, (m, p, q, b) in enumerate(requests)]
    index = build_index(recordings)

    def same(r: Recording) -> tuple:  # the model of "identical request": query as a multiset
        return (r.method, r.path, sorted(parse_qsl(r.query, keep_blank_values=True)), r.request_body)

    state = MockState()
    asked: dict[str, int] = {}
    for r in recordings + recordings:  # twice: past a sequence's end, its last recording repeats
        found = match(index, state, ask(r.method, r.path, r.query, r.request_body))
        group = [o.label for o in recordings if same(o) == same(r)]
        n = asked[group[0]] = asked.get(group[0], -1) + 1
        assert (found.kind, found.recording.label) == ("exact", group[min(n, len(group) - 1)])


def test_create_then_get_plays_back_in_recorded_order() -> None:
    index = build_index([
        rec("#1", "GET", "/cart", response_body=b"[]"),
        rec("#2", "POST", "/cart", body=b'{"sku": "a"}', status=201, response_body=b'{"id": 7}'),
        rec("#3", "GET", "/cart", response_body=b'[{"id": 7}]'),
        rec("#4", "GET", "/cart/7", response_body=b'{"id": 7}'),
    ])  # fmt: skip
    state = MockState()
    labels = [
        match(index, state, ask("GET", "/cart")).recording.label,
        match(index, state, ask("POST", "/cart", body=b'{ "sku":"a" }')).recording.label,
        match(index, state, ask("GET", "/cart")).recording.label,
        match(index, state, ask("GET", "/cart")).recording.label,  # past the end: the last again
        match(index, state, ask("GET", "/cart/7")).recording.label,
    ]
    assert labels == ["#1", "#2", "#3", "#3", "#4"]
    # A new state (the simulation reloaded) starts the sequences over.
    assert match(index, MockState(), ask("GET", "/cart")).recording.label == "#1"


def test_the_closest_recording_of_the_template_answers() -> None:
    index = build_index([
        rec("#1", path="/orders/1", query="expand=items&lang=en"),
        rec("#2", path="/orders/2", query="lang=fr"),
        rec("#3", "POST", "/orders", body=b'{"sku": "a", "qty": 1}'),
        rec("#4", "POST", "/orders", body=b'{"sku": "b", "qty": 5, "gift": true}'),
    ])  # fmt: skip
    state = MockState()
    found = match(index, state, ask(path="/orders/9", query="lang=fr"))
    assert (found.kind, found.recording.label) == ("closest", "#2")
    found = match(index, state, ask(path="/orders/9", query="expand=items"))
    assert found.recording.label == "#1"
    found = match(index, state, ask(path="/orders/2", query="expand=items&lang=en"))
    assert found.recording.label == "#2"  # a recording of the same path first, whatever its query
    found = match(index, state, ask("POST", "/orders", body=b'{"sku": "b", "qty": 2}'))
    assert found.recording.label == "#4" and 0 < found.similarity < 3


def test_form_bodies_compare_by_field() -> None:
    form = "application/x-www-form-urlencoded"
    index = build_index([
        rec("#1", "POST", "/login", body=b"user=ann&remember=1", request_content_type=form),
        rec("#2", "POST", "/login", body=b"user=bob", request_content_type=form),
    ])  # fmt: skip
    assert match(index, MockState(), ask("POST", "/login", body=b"remember=1&user=ann", ctype=form)).kind == "exact"
    assert match(index, MockState(), ask("POST", "/login", body=b"user=bob&x=1", ctype=form)).recording.label == "#2"


@settings(max_examples=200)
@given(
    a=st.tuples(_params, _json), b=st.tuples(_params, _json), path_a=st.sampled_from(["/x/1", "/x/2"]),
)
def test_similarity_is_symmetric_bounded_and_highest_for_the_same_request(a, b, path_a: str) -> None:  # type: ignore[no-untyped-def]
    ra = rec("#a", "POST", path_a, _qs(a[0]), json.dumps(a[1]).encode())
    rb = rec("#b", "POST", "/x/3", _qs(b[0]), json.dumps(b[1]).encode())
    qa, qb = ask("POST", ra.path, ra.query, ra.request_body), ask("POST", rb.path, rb.query, rb.request_body)
    assert 0 <= similarity(qa, rb) <= 3
    assert similarity(qa, rb) == similarity(qb, ra)
    assert similarity(qa, ra) == 3


def test_a_miss_names_the_nearest_recordings() -> None:
    index = build_index([rec(f"#{i}", path=f"/users/{name}") for i, name in enumerate(["ann", "bob", "cy", "dee"])] + [
        rec("#9", "DELETE", "/orders/1"),
        rec("#10", "GET", "/orders/1", query="x=1"),
    ])  # fmt: skip
    found = match(index, MockState(), ask("GET", "/orders/abc", query="x=1"))
    assert found.kind == "none" and found.recording is None
    assert [r.label for r in found.closest] == ["#10", "#9", "#0"]
    assert len(match(build_index([]), MockState(), ask()).closest) == 0
    assert MAX_CLOSEST == 3


@settings(max_examples=100)
@given(sizes=st.lists(st.integers(0, 50), max_size=30), most=st.integers(0, 20), budget=st.integers(0, 400))
def test_the_index_stays_within_its_bounds(sizes: list[int], most: int, budget: int) -> None:
    recordings = [rec(f"#{i}", path=f"/r/{i}", body=b"x" * size, response_body=b"y" * size) for i, size in enumerate(sizes)]
    index = build_index(recordings, max_recordings=most, max_body_bytes=budget)
    assert index.recordings <= most and index.body_bytes <= budget
    assert index.recordings + index.dropped == len(recordings)
    assert sum(len(g.recordings) for g in index.groups.values()) == index.recordings


def test_the_state_stays_bounded_however_often_a_group_answers() -> None:
    index = build_index([rec("#1"), rec("#2")])
    state = MockState()
    for _ in range(1000):
        match(index, state, ask())
    assert list(state.served.values()) == [2]


def test_answer_headers_leave_out_hop_by_hop_length_and_encoding() -> None:
    recorded = [("Content-Type", "application/json"), ("Content-Length", "12"), ("Content-Encoding", "gzip"),
                ("Transfer-Encoding", "chunked"), ("Connection", "keep-alive"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]  # fmt: skip
    assert answer_headers(recorded) == [("Content-Type", "application/json"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


def test_a_crowded_endpoint_scores_a_bounded_number_of_recordings() -> None:
    index = build_index([rec(f"#{i}", path=f"/items/{i}", query=f"v={i}") for i in range(3 * MAX_SCORED)])
    found = match(index, MockState(), ask(path="/items/999999", query=f"v={2 * MAX_SCORED}"))
    # The one with the same query is beyond what is scored: the first recorded of those scored answers.
    assert found.kind == "closest" and found.recording.label == "#0"
    found = match(index, MockState(), ask(path="/items/999999", query="v=7"))
    assert found.recording.label == "#7"
    miss = match(index, MockState(), ask("DELETE", "/elsewhere"))
    assert len(miss.closest) == MAX_CLOSEST
