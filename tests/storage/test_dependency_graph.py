"""storage.pure.dependency_graph: declared and observed edges merged, and which are flagged."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from storage.pure.dependency_graph import ObservedCall, graph_nodes, merge_edges

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def summary(edges):
    return [(e.caller, e.service, e.kind, e.flag, e.requests, e.errors) for e in edges]


def test_declared_observed_and_both_with_their_flags():
    declarations = {"frontend": ["orders", "identity"], "orders": ["billing"], "billing": []}
    observed = [
        ObservedCall("frontend", "orders", 10, 1, T0),
        ObservedCall("orders", "identity", 4, 0, T0),  # orders never declared identity
        ObservedCall("billing", "ledger", 2, 2, T0),  # billing declared no dependencies at all
        ObservedCall("cron", "orders", 3, 0, T0),  # cron does not declare: not flagged
    ]
    assert summary(merge_edges(declarations, observed)) == [
        ("billing", "ledger", "observed", "undeclared", 2, 2),
        ("cron", "orders", "observed", None, 3, 0),
        ("frontend", "identity", "declared", "unseen", 0, 0),
        ("frontend", "orders", "both", None, 10, 1),
        ("orders", "billing", "declared", "unseen", 0, 0),
        ("orders", "identity", "observed", "undeclared", 4, 0),
    ]


def test_calls_of_one_pair_are_summed_with_the_latest_time_and_empty_counts_ignored():
    later = T0 + dt.timedelta(minutes=5)
    observed = [
        ObservedCall("a", "b", 3, 1, later),
        ObservedCall("a", "b", 2, 0, None),
        ObservedCall("a", "b", 1, 1, T0),
        ObservedCall("a", "c", 0, 0, T0),
    ]
    (edge,) = merge_edges({"a": ["b"]}, observed)
    assert (edge.requests, edge.errors, edge.last_seen, edge.kind, edge.flag) == (6, 2, later, "both", None)


def test_nodes_are_the_services_and_every_end_of_an_edge():
    edges = merge_edges({"web": ["ghost"]}, [ObservedCall("cli", "web", 1)])
    assert graph_nodes(["web", "idle"], edges) == ["cli", "ghost", "idle", "web"]


NAMES = st.sampled_from(["a", "b", "c", "d", "e"])


@given(
    declarations=st.dictionaries(NAMES, st.lists(NAMES, max_size=4)),
    observed=st.lists(st.builds(ObservedCall, NAMES, NAMES, st.integers(0, 5), st.integers(0, 5)), max_size=20),
)
def test_every_pair_once_and_flags_follow_the_definitions(declarations, observed):
    edges = merge_edges(declarations, observed)
    pairs = [(e.caller, e.service) for e in edges]
    assert pairs == sorted(set(pairs))
    declared = {(c, s) for c, needs in declarations.items() for s in needs}
    seen = {(o.caller, o.service) for o in observed if o.requests > 0}
    assert set(pairs) == declared | seen
    for edge in edges:
        pair = (edge.caller, edge.service)
        assert edge.declared == (pair in declared) and edge.observed == (pair in seen)
        assert edge.requests == sum(o.requests for o in observed if (o.caller, o.service) == pair and o.requests > 0)
        expected_flag = (
            "unseen" if pair not in seen else "undeclared" if pair not in declared and edge.caller in declarations else None
        )
        assert edge.flag == expected_flag
        assert edge.kind == {(True, True): "both", (True, False): "declared", (False, True): "observed"}[
            (edge.declared, edge.observed)
        ]
