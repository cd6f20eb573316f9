"""The dependency graph's edges: what services declare they need, merged with who was seen calling whom.

Declarations come from the registry (each instance's `depends_on`; a service's is the union of
its instances'); observed calls come from traffic (exchanges whose smart client named its
caller). An edge caller -> service is declared, observed or both, and two kinds are flagged:

- "undeclared": seen in traffic, but the caller declares its dependencies and this is not one
  of them. A caller that declares nothing at all (it is not in `declarations`: a configured
  service, or a name a client made up) is not flagged: it never claimed to know its needs.
  A registered service that declares an empty list does claim it, and is flagged.
- "unseen": declared, but no call was seen in the window read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Edge", "ObservedCall", "graph_nodes", "merge_edges"]


@dataclass(frozen=True, slots=True)
class ObservedCall:
    """Calls of `caller` to `service` seen in traffic (one row per realm or proxy is fine: merge_edges sums)."""

    caller: str
    service: str
    requests: int
    errors: int = 0
    last_seen: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Edge:
    caller: str
    service: str
    declared: bool
    observed: bool
    requests: int
    errors: int
    last_seen: dt.datetime | None
    flag: str | None
    """"undeclared", "unseen" or None (see the module's docstring)."""

    @property
    def kind(self) -> str:
        """"both", "declared" or "observed"."""
        return "both" if self.declared and self.observed else "declared" if self.declared else "observed"


def _latest(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def merge_edges(declarations: Mapping[str, Iterable[str]], observed: Iterable[ObservedCall]) -> list[Edge]:
    """Every edge, sorted by caller then service. `declarations` maps each service that declares its
    dependencies to them; `observed` calls of one pair are summed (requests, errors, latest time).
    Calls with no count (requests < 1) are ignored."""
    declared = {(caller, service) for caller, needs in declarations.items() for service in needs}
    seen: dict[tuple[str, str], ObservedCall] = {}
    for call in observed:
        if call.requests < 1:
            continue
        key = (call.caller, call.service)
        before = seen.get(key)
        if before is not None:
            call = ObservedCall(call.caller, call.service, before.requests + call.requests,
                                before.errors + call.errors, _latest(before.last_seen, call.last_seen))  # fmt: skip
        seen[key] = call
    edges = []
    for caller, service in sorted(declared | seen.keys()):
        call = seen.get((caller, service))
        is_declared = (caller, service) in declared
        if call is None:
            flag = "unseen"
        elif not is_declared and caller in declarations:
            flag = "undeclared"
        else:
            flag = None
        edges.append(Edge(
            caller=caller, service=service, declared=is_declared, observed=call is not None,
            requests=call.requests if call else 0, errors=call.errors if call else 0,
            last_seen=call.last_seen if call else None, flag=flag,
        ))  # fmt: skip
    return edges


def graph_nodes(services: Iterable[str], edges: Iterable[Edge]) -> list[str]:
    """Every node of the graph, sorted: the services listed and every end of an edge (a declared
    dependency nobody runs, a caller that is no service here)."""
    names = set(services)
    for edge in edges:
        names.update((edge.caller, edge.service))
    return sorted(names)
