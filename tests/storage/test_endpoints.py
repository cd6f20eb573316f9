"""storage.pure.endpoints: segment rules, cardinality inference, search patterns; properties (hypothesis)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.pure.endpoints import (
    MAX_SEGMENTS,
    infer_templates,
    search_pattern,
    template_path,
    template_segment,
)
from storage.pure.search import parse_query


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/users/42", "/users/{id}"),
        ("/users/-7", "/users/{id}"),
        ("/users/42/orders/9001", "/users/{id}/orders/{id}"),
        ("/orders/550e8400-e29b-41d4-a716-446655440000", "/orders/{uuid}"),
        ("/orders/550E8400-E29B-41D4-A716-446655440000/items", "/orders/{uuid}/items"),
        ("/blobs/0123456789abcdef", "/blobs/{hash}"),
        ("/commits/da39a3ee5e6b4b0d3255bfef95601890afd80709", "/commits/{hash}"),
        ("/blobs/0123456789abcde", "/blobs/0123456789abcde"),  # 15 hex digits: not a hash yet
        ("/days/2026-11-28", "/days/{date}"),
        ("/events/2026-11-28T10:15:00Z", "/events/{date}"),
        ("/people/ada@example.com", "/people/{email}"),
        ("/people/ada%40example.com", "/people/{email}"),
        ("/reset/a8Fk29xQ", "/reset/{token}"),
        ("/reset/a8fk29xqz0b1c2d3e4", "/reset/{token}"),
        ("/jwt/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc123XYZ", "/jwt/{token}"),
        ("/files/42.json", "/files/{id}.json"),
        ("/files/report.json", "/files/report.json"),
        ("/api/v2/oauth2/x509", "/api/v2/oauth2/x509"),
        ("/blog/release-2024-notes", "/blog/release-2024-notes"),
        ("/users/me", "/users/me"),
        ("/users/", "/users/"),
        ("/users", "/users"),
        ("//double//slashes", "//double//slashes"),
        ("/", "/"),
        ("", "/"),
        ("no-leading-slash/42", "/no-leading-slash/{id}"),
        ("/search?q=42&page=3", "/search"),
        ("/p/%ff%fe", "/p/{token}"),
        ("/p/caf%C3%A9", "/p/caf%C3%A9"),
        ("/p/%E2%82%AC", "/p/%E2%82%AC"),
        ("/a/" + "x" * 500, "/a/{token}"),
        ("/already/{id}/{uuid}", "/already/{id}/{uuid}"),
    ],
)
def test_segment_rules(path: str, template: str) -> None:
    assert template_path(path) == template


def test_trailing_slash_and_empty_segments_are_kept_distinct() -> None:
    assert template_path("/users/42/") == "/users/{id}/"
    assert template_path("/users/42/") != template_path("/users/42")
    assert template_path("/users//42") == "/users//{id}"


def test_very_long_paths_end_in_rest() -> None:
    path = "/" + "/".join(["seg"] * 10_000)
    template = template_path(path)
    assert template.endswith("/{rest}")
    assert template.count("/") == MAX_SEGMENTS + 1
    assert template_path(template) == template
    assert search_pattern(template).endswith("/seg/*")


def test_a_huge_segment_is_a_token() -> None:
    assert template_segment("a1" * 500_000) == "{token}"


# -- cardinality -------------------------------------------------------------------------------

NAMES = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "xena", "yves", "zoe",
]  # fmt: skip


def test_many_names_collapse_to_param_but_fixed_routes_stay() -> None:
    paths = [f"/users/{name}" for name in NAMES] + ["/users/me"] * 50 + ["/users/search"] * 40
    paths += ["/users/alice/orders/7", "/users/bob/orders/8"]
    templates = infer_templates(paths)
    assert templates["/users/alice"] == "/users/{param}"
    assert templates["/users/zoe"] == "/users/{param}"
    assert templates["/users/me"] == "/users/me"
    assert templates["/users/search"] == "/users/search"
    assert templates["/users/alice/orders/7"] == "/users/{param}/orders/{id}"


def test_a_small_vocabulary_never_collapses() -> None:
    routes = ["me", "search", "count", "export", "import", "batch", "settings", "stats"]
    paths = [f"/users/{route}" for route in routes]
    assert infer_templates(paths) == {path: path for path in paths}


def test_threshold_is_configurable_and_strict() -> None:
    paths = [f"/users/{name}" for name in NAMES[:5]]
    assert set(infer_templates(paths, max_literals=5).values()) == set(paths)
    assert set(infer_templates(paths, max_literals=4).values()) == {"/users/{param}"}
    with pytest.raises(ValueError, match="max_literals"):
        infer_templates(paths, max_literals=0)


def test_collapse_is_per_parent() -> None:
    paths = [f"/users/{name}" for name in NAMES] + ["/teams/red", "/teams/blue"]
    templates = infer_templates(paths)
    assert templates["/teams/red"] == "/teams/red"
    assert templates["/users/bob"] == "/users/{param}"


def test_merged_subtrees_are_judged_together() -> None:
    # Under each name only one action appears, but merged under {param} there are many.
    paths = [f"/repos/{name}/{name}-action" for name in NAMES]
    assert set(infer_templates(paths).values()) == {"/repos/{param}/{param}"}


def test_counts_mapping_equals_repeated_paths() -> None:
    paths = [f"/users/{name}" for name in NAMES] + ["/users/me"] * 30
    counts = {path: paths.count(path) for path in set(paths)}
    assert infer_templates(counts) == infer_templates(paths)


def test_tens_of_thousands_of_paths_collapse_to_a_few_templates() -> None:
    # Speed is bench/ material (no timed tests here); this checks the result at that size.
    rng = random.Random(7)
    paths = [
        f"/api/v1/{rng.choice(['users', 'orders', 'items'])}/{rng.choice(['u', 'o'])}{i}/{rng.choice(['a', 'b'])}/{rng.randint(0, 10**6)}"
        for i in range(20_000)
    ]
    templates = infer_templates(paths)
    assert set(templates.values()) == {f"/api/v1/{kind}/{{param}}/{leaf}/{{id}}" for kind in ("users", "orders", "items") for leaf in "ab"}


# -- search patterns ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "pattern"),
    [
        ("/users/{id}", "/users/*"),
        ("/users/{param}/orders/{id}", "/users/*/orders/*"),
        ("/files/{id}.json", "/files/*.json"),
        ("/users/me", "/users/me"),
    ],
)
def test_search_pattern(template: str, pattern: str) -> None:
    assert search_pattern(template) == pattern
    (term,) = parse_query(f"path:{pattern}").terms
    assert term.value == pattern


# -- properties --------------------------------------------------------------------------------

segment = st.one_of(
    st.sampled_from(["users", "me", "search", "v2", "", "orders", "{id}", "%ff", "a%2Fb", "42.json"]),
    st.integers(0, 10**12).map(str),
    st.uuids().map(str),
    st.binary(min_size=8, max_size=20).map(bytes.hex),
    st.text(st.characters(codec="utf-8", exclude_characters="/?"), max_size=12),
    st.text("abcdefghijklmnopqrstuvwxyzABC0123456789-_", min_size=1, max_size=24),
)
paths = st.lists(segment, max_size=6).map(lambda segments: "/" + "/".join(segments))


@given(paths)
def test_template_path_is_idempotent(path: str) -> None:
    template = template_path(path)
    assert template_path(template) == template


@given(paths)
def test_the_search_pattern_matches_the_path(path: str) -> None:
    pattern = search_pattern(template_path(path)).split("*")
    path = path.split("?", 1)[0]
    path = path if path.startswith("/") else "/" + path
    # A glob: the literal parts appear in order, the first at the start and the last at the end.
    assert path.startswith(pattern[0]) and path.endswith(pattern[-1])


@settings(max_examples=60)
@given(st.lists(paths, max_size=80), st.randoms(use_true_random=False), st.integers(1, 6))
def test_inference_is_order_independent(observed: list[str], rng: random.Random, max_literals: int) -> None:
    shuffled = list(observed)
    rng.shuffle(shuffled)
    assert infer_templates(shuffled, max_literals=max_literals) == infer_templates(observed, max_literals=max_literals)


@settings(max_examples=60)
@given(st.lists(paths, max_size=80), st.integers(1, 6))
def test_inference_is_idempotent(observed: list[str], max_literals: int) -> None:
    templates = infer_templates(observed, max_literals=max_literals)
    counts: dict[str, int] = {}
    for path in observed:
        counts[templates[path]] = counts.get(templates[path], 0) + 1
    again = infer_templates(counts, max_literals=max_literals)
    assert all(again[template] == template for template in counts)
