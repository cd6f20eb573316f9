"""proxy.balancing: the route table built from registry rows, round robin, ejection and its tiers."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.balancing import (
    EMPTY_TABLE,
    Balancer,
    Endpoint,
    Pool,
    RouteTable,
    build_table,
    connection_outcome,
    host_header,
)
from proxy.routing import parse_upstream, split_prefix


@dataclass(frozen=True)
class Row:
    name: str
    instance: str
    url: str
    health: str | None = None
    ready: bool | None = None


def endpoint(instance: str, service: str = "billing", port: int = 9000) -> Endpoint:
    upstream = parse_upstream(f"http://127.0.0.1:{port}")
    return Endpoint(service, instance, upstream, None, host_header(upstream))


def pool_of(count: int, unready: set[int] = frozenset()) -> Pool:
    endpoints = tuple(endpoint(f"i{n}", port=9000 + n) for n in range(count))
    return Pool("billing", endpoints, frozenset(endpoints[n] for n in unready))


# --- the table ---


def test_rows_become_pools_sorted_by_instance_with_their_upstreams():
    table = build_table(
        [Row("billing", "b", "http://10.0.0.2:81/api/", "/readyz", True), Row("billing", "a", "https://h.test"),
         Row("audit", "x", "http://[::1]:7000", ready=False)],
        configured=(),
    )  # fmt: skip
    billing = table.pools["billing"]
    assert [e.instance for e in billing.endpoints] == ["a", "b"]
    a, b = billing.endpoints
    assert (a.upstream.url, a.authority, a.health) == ("https://h.test:443", "h.test", None)
    assert (b.upstream.url, b.authority, b.health) == ("http://10.0.0.2:81/api", "10.0.0.2:81", "/readyz")
    assert not billing.unready
    audit = table.pools["audit"]
    assert audit.unready == {audit.endpoints[0]} and audit.endpoints[0].authority == "[::1]:7000"
    assert table.shadowed == frozenset() and table.skipped == ()


def test_a_configured_service_wins_and_is_noted_as_shadowing_when_it_points_elsewhere():
    configured = {"billing": parse_upstream("http://h:9"), "audit": parse_upstream("http://H:2/")}
    rows = [Row("billing", "a", "http://h:1"), Row("audit", "a", "http://h:2"), Row("users", "a", "http://h:3")]
    table = build_table(rows, configured=configured)
    # audit registered at its configured address: the same service, served by the configured route.
    assert set(table.pools) == {"users"} and table.shadowed == {"billing"}


def test_hostile_rows_are_left_out_with_a_reason():
    rows = [
        Row("bad name!", "a", "http://h:1"), Row("billing", "a", "ftp://h:1"), Row("billing", "b", "http://h:99999"),
        Row("billing", "c", "http://h:1", health="no-slash"), Row("x" * 64, "a", "http://h:1"),
    ]  # fmt: skip
    table = build_table(rows, configured=())
    [kept] = table.pools["billing"].endpoints
    assert kept.instance == "c" and kept.health is None  # a bad health path: probed by TCP instead
    assert len(table.skipped) == 5 and any("TCP connect" in reason for reason in table.skipped)
    assert all("\n" not in reason for reason in table.skipped)


hostile_text = st.text(st.characters(codec="utf-8"), max_size=30)
urls = st.one_of(hostile_text, st.builds("http://{}:{}{}".format, st.sampled_from(["h", "[::1]", "10.0.0.1", ""]),
                                          st.integers(-1, 70000), st.sampled_from(["", "/", "/base/", "?q", "#f"])))  # fmt: skip
rows = st.lists(st.builds(Row, st.one_of(st.sampled_from(["billing", "audit", "configured"]), hostile_text), hostile_text,
                          urls, st.one_of(st.none(), hostile_text, st.just("/readyz")), st.sampled_from([None, True, False])),
                max_size=12)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(rows=rows)
def test_any_rows_give_a_table_whose_every_route_is_well_formed(rows):
    table = build_table(rows, configured={"configured": parse_upstream("http://h:1")})
    assert "configured" not in table.pools
    for name, pool in table.pools.items():
        assert pool.endpoints and all(e.service == name for e in pool.endpoints) and pool.unready <= set(pool.endpoints)
        assert list(pool.endpoints) == sorted(pool.endpoints, key=lambda e: e.instance)
        for e in pool.endpoints:
            assert e.upstream.scheme == "http" and 0 < e.upstream.port < 65536 and not e.upstream.base_path.endswith("/")
            assert e.health is None or e.health.startswith("/")
    # Every row is routed, skipped with a reason, or shadowed by the configured name.
    routed = sum(len(pool.endpoints) for pool in table.pools.values())
    skipped = sum(1 for reason in table.skipped if "TCP connect" not in reason)
    assert 0 <= len(rows) - routed - skipped <= sum(1 for r in rows if r.name == "configured")


def test_endpoints_are_equal_across_refreshes_unless_their_address_changes():
    first = build_table([Row("billing", "a", "http://h:1", ready=True)], configured=())
    again = build_table([Row("billing", "a", "http://h:1", ready=False)], configured=())
    moved = build_table([Row("billing", "a", "http://h:2")], configured=())
    assert first.pools["billing"].endpoints == again.pools["billing"].endpoints != moved.pools["billing"].endpoints
    assert first.same_routes(build_table([Row("billing", "a", "http://h:1", ready=True)], configured=()))
    assert not first.same_routes(again) and not first.same_routes(EMPTY_TABLE)


@pytest.mark.parametrize(
    ("url", "expected"),
    [("http://h", "h"), ("http://h:80", "h"), ("http://h:443", "h:443"), ("https://h:443", "h"), ("https://h:80", "h:80"),
     ("http://[::1]:8080", "[::1]:8080"), ("http://[::1]", "[::1]")],
)  # fmt: skip
def test_host_header_leaves_out_the_default_port(url, expected):
    assert host_header(parse_upstream(url)) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/billing/a?b=1", ("billing", "/a?b=1")), ("/billing", ("billing", "/")), ("/billing?x", ("billing", "/?x")),
     ("/", ("", "/")), ("billing", None), ("*", None)],
)  # fmt: skip
def test_split_prefix(path, expected):
    assert split_prefix(path) == expected


@pytest.mark.parametrize(
    ("connected", "kind", "expected"),
    [(True, None, True), (True, "upstream_reset", True), (False, "connect_failed", False), (False, "timeout", False),
     (False, "client_disconnected", None), (False, "killed", None), (False, None, None)],
)  # fmt: skip
def test_connection_outcome(connected, kind, expected):
    assert connection_outcome(connected=connected, error_kind=kind) is expected


# --- round robin ---


@settings(max_examples=200, deadline=None)
@given(count=st.integers(1, 8), rounds=st.integers(1, 5), seed=st.integers(0, 2**32), offset=st.integers(0, 20))
def test_round_robin_is_exactly_fair_over_whole_rounds(count, rounds, seed, offset):
    balancer = Balancer(rng=random.Random(seed))
    pool = pool_of(count)
    for _ in range(offset):  # whichever point of the rotation the rounds start from
        balancer.pick(pool)
    picks = Counter(balancer.pick(pool) for _ in range(count * rounds))
    assert picks == Counter({e: rounds for e in pool.endpoints})


@settings(max_examples=100, deadline=None)
@given(count=st.integers(2, 6), picks=st.integers(0, 40), seed=st.integers(0, 2**32))
def test_any_run_of_picks_spreads_within_one(count, picks, seed):
    balancer = Balancer(rng=random.Random(seed))
    pool = pool_of(count)
    seen = Counter(balancer.pick(pool) for _ in range(picks))
    counts = [seen[e] for e in pool.endpoints]
    assert max(counts) - min(counts) <= 1


def test_each_service_has_its_own_rotation_starting_at_random():
    starts = {Balancer(rng=random.Random(seed)).pick(pool_of(4)).instance for seed in range(40)}
    assert starts == {"i0", "i1", "i2", "i3"}
    balancer = Balancer(rng=random.Random(1))
    billing, audit = pool_of(2), Pool("audit", (endpoint("a1", "audit", 9100),))
    first = balancer.pick(billing)
    assert balancer.pick(audit).service == "audit"
    assert balancer.pick(billing) != first


# --- ejection ---


def test_consecutive_failures_eject_and_a_connection_resets_the_count():
    balancer = Balancer(eject_after=3)
    a = endpoint("a", port=9001)
    assert not balancer.failed(a) and not balancer.failed(a)
    assert not balancer.connected(a) and balancer.failures(a) == 0
    assert [balancer.failed(a) for _ in range(3)] == [False, False, True]
    assert balancer.ejected == {a} and balancer.failures(a) == 0
    assert not balancer.failed(a)  # already out: nothing more to count
    assert balancer.connected(a) and balancer.ejected == frozenset()


def test_a_probe_readmits():
    balancer = Balancer(eject_after=1)
    a = endpoint("a", port=9001)
    assert balancer.failed(a) and balancer.readmit(a) and not balancer.readmit(a)
    assert balancer.ejected == frozenset()


def test_eject_after_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        Balancer(eject_after=0)


events = st.lists(st.tuples(st.sampled_from(["fail", "connect", "readmit", "pick"]), st.integers(0, 3)), max_size=80)


@settings(max_examples=300, deadline=None)
@given(count=st.integers(1, 4), eject_after=st.integers(1, 5), steps=events, unready=st.sets(st.integers(0, 3)),
       seed=st.integers(0, 2**32))  # fmt: skip
def test_ejection_rules_hold_for_any_sequence(count, eject_after, steps, unready, seed):
    """Against a model: an instance is ejected exactly when its last `eject_after` outcomes since
    it was last (re)admitted were failures; a pick avoids ejected instances while any other is
    left, then unready ones while a ready one is left, and never returns nothing."""
    balancer = Balancer(eject_after=eject_after, rng=random.Random(seed))
    pool = pool_of(count, {n for n in unready if n < count})
    streak = dict.fromkeys(pool.endpoints, 0)
    out: set[Endpoint] = set()
    for action, index in steps:
        target = pool.endpoints[index % count]
        if action == "fail":
            ejected_now = balancer.failed(target)
            if target not in out:
                streak[target] += 1
                assert ejected_now == (streak[target] == eject_after)
                if ejected_now:
                    out.add(target)
                    streak[target] = 0
            else:
                assert not ejected_now
        elif action == "connect":
            assert balancer.connected(target) == (target in out)
            out.discard(target)
            streak[target] = 0
        elif action == "readmit":
            assert balancer.readmit(target) == (target in out)
            out.discard(target)
        else:
            chosen = balancer.pick(pool)
            connectable = [e for e in pool.endpoints if e not in out]
            ready = [e for e in connectable if e not in pool.unready]
            assert chosen in (ready or connectable or pool.endpoints)
        assert balancer.ejected == out
        assert all(balancer.failures(e) == streak[e] for e in pool.endpoints)


def test_when_every_instance_is_ejected_all_share_the_traffic():
    balancer = Balancer(eject_after=1)
    pool = pool_of(3)
    for e in pool.endpoints:
        balancer.failed(e)
    assert Counter(balancer.pick(pool) for _ in range(6)) == Counter({e: 2 for e in pool.endpoints})


def test_unready_instances_take_traffic_only_when_no_ready_one_can():
    balancer = Balancer(eject_after=1)
    pool = pool_of(3, unready={0, 1})
    assert {balancer.pick(pool) for _ in range(6)} == {pool.endpoints[2]}
    balancer.failed(pool.endpoints[2])
    assert {balancer.pick(pool) for _ in range(6)} == {pool.endpoints[0], pool.endpoints[1]}


def test_retain_forgets_what_left_the_table():
    balancer = Balancer(eject_after=2)
    pool = pool_of(3)
    a, b, c = pool.endpoints
    balancer.failed(a), balancer.failed(a), balancer.failed(b)
    balancer.pick(pool)
    balancer.retain(RouteTable({"billing": Pool("billing", (c,))}))
    assert balancer.ejected == frozenset() and balancer.failures(b) == 0
    balancer.retain(EMPTY_TABLE)
    assert balancer.pick(Pool("billing", (a,))) == a
