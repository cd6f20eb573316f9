"""The services' dependency graph: declared dependencies (the registry) merged with observed calls (traffic).

Observed calls are exchanges whose smart client named its caller (X-Passageway-Caller, stored
in exchanges.caller), counted per (caller, service) over a time window. The read is bounded
twice: the window's time bounds become id bounds (capture_blocks, as for the search's since:),
so only the window's id range of the primary key is walked, newest first; and at most
`limit` of its newest exchanges are read (GRAPH_ROWS), callers or not, so a busy window costs
the same as a quiet one. When the limit cut the window, the answer says `sampled` and from when
its calls are (`sampled_since`). The merge itself is storage.pure.dependency_graph.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, case, func, select

from storage import registry
from storage.models import Exchange, ServiceRegistration
from storage.pure.dependency_graph import ObservedCall, graph_nodes, merge_edges
from storage.pure.search import Query, Term
from storage.queries import iso_utc
from storage.search_sql import compile_query
from storage.store import Store

__all__ = ["GRAPH_ROWS", "dependency_graph", "observed_calls"]

GRAPH_ROWS = 100_000
"""The newest exchanges of the window read at most for observed calls."""


def observed_calls(
    store: Store, *, since: dt.datetime, until: dt.datetime, realm: str | None = None, limit: int = GRAPH_ROWS
) -> tuple[list[ObservedCall], dt.datetime | None]:
    """Calls seen in [since, until) among its newest `limit` exchanges (in `realm`: "" for none;
    every realm when None), one per (caller, service); and, when the limit cut the window, the
    capture time of the oldest exchange read (else None). Errors: status >= 500 or no answer."""
    time_terms = Query(((Term("after", ">=", since),), (Term("before", "<", until),)))
    where = [compile_query(time_terms, dialect=store.dialect)]
    if realm is not None:
        where.append(Exchange.realm == realm if realm else Exchange.realm.is_(None))
    # The bounded read first (newest first in the id range), then the grouping on what it read.
    window = (
        select(Exchange.id, Exchange.caller, Exchange.service, Exchange.status, Exchange.error_kind,
               Exchange.captured_at)  # fmt: skip
        .where(and_(*where))
        .order_by(Exchange.id.desc())
        .limit(limit)
        .subquery()
    )
    failed = (window.c.status >= 500) | window.c.error_kind.isnot(None)
    # Grouped with the exchanges that name no caller too: their groups count what was read (and
    # from when) in the same pass; they are no calls.
    grouped = select(
        window.c.caller, window.c.service, func.count().label("requests"),
        func.sum(case((failed, 1), else_=0)).label("errors"),
        func.max(window.c.captured_at).label("last_seen"), func.min(window.c.captured_at).label("first_seen"),
    ).group_by(window.c.caller, window.c.service)  # fmt: skip
    with store.connect() as conn:
        rows = conn.execute(grouped).all()
    calls = [
        ObservedCall(row.caller, row.service, int(row.requests), int(row.errors or 0), row.last_seen)
        for row in rows
        if row.caller is not None and row.service is not None
    ]
    read = sum(row.requests for row in rows)
    return calls, (min(row.first_seen for row in rows) if read >= limit else None)


def _configured_names(store: Store, realm: str | None) -> set[str]:
    table = ServiceRegistration.__table__
    query = select(table.c.service).distinct()
    if realm is not None:
        query = query.where(table.c.realm == realm)
    with store.connect() as conn:
        return set(conn.execute(query).scalars())


def dependency_graph(
    store: Store, *, since: dt.datetime, until: dt.datetime | None = None, realm: str | None = None,
    limit: int = GRAPH_ROWS, now: dt.datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The graph of `realm` ("" for services without one; all realms, merged by name, when None):

    {"since", "until", "realm", "sampled", "sampled_since",
     "nodes": [{"name", "configured", "registered", "declares", "state"}],
     "edges": [{"caller", "service", "kind": "declared"|"observed"|"both", "declared", "observed",
                "flag": "undeclared"|"unseen"|None, "requests", "errors", "last_seen"}]}.

    A node's `state` is its registry health (up, down, gone) when it registers itself, else
    None; `declares`: it registered itself and so declared its dependencies (even none)."""
    now = now or dt.datetime.now(dt.UTC)
    until = until or now
    found = registry.instances(store, realm=realm, now=now)
    declarations: dict[str, set[str]] = {}
    by_name: dict[str, list[registry.Instance]] = {}
    for instance in found:
        declarations.setdefault(instance.name, set()).update(instance.depends_on)
        by_name.setdefault(instance.name, []).append(instance)
    calls, sampled_since = observed_calls(store, since=since, until=until, realm=realm, limit=limit)
    edges = merge_edges(declarations, calls)
    configured = _configured_names(store, realm)
    nodes = [
        {
            "name": name,
            "configured": name in configured,
            "registered": name in by_name,
            "declares": name in declarations,
            "state": registry.registry_health(by_name[name])["state"] if name in by_name else None,
        }
        for name in graph_nodes(configured | by_name.keys(), edges)
    ]
    return {
        "since": iso_utc(since),
        "until": iso_utc(until),
        "realm": realm,
        "sampled": sampled_since is not None,
        "sampled_since": iso_utc(sampled_since) if sampled_since else None,
        "nodes": nodes,
        "edges": [
            {
                "caller": e.caller, "service": e.service, "kind": e.kind, "declared": e.declared,
                "observed": e.observed, "flag": e.flag, "requests": e.requests, "errors": e.errors,
                "last_seen": iso_utc(e.last_seen) if e.last_seen else None,
            }
            for e in edges
        ],  # fmt: skip
    }
