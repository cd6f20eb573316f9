"""Traces: the exchanges that share a trace id, assembled into a tree of inter-service calls.

`assemble_trace` is pure. Each exchange's parent is, in order of preference:

1. a replay's original's parent ("replay": a replay sits beside what it replayed);
2. the exchange whose `span_id` is this one's `parent_span_id` ("span": the traceparent
   the calling handler propagated). Several exchanges can share a span id (a proxy that
   keeps headers as received): the one that contains this call in time wins, then the
   one of the calling service, then the tightest;
3. the tightest exchange that contains this one in time, within CLOCK_TOLERANCE (each
   proxy has its own clock), preferring one of the calling service ("nested");
4. none: a root.

Captured ids are hostile (forged, repeated, cyclic), so a candidate that would close a
cycle is passed over for the next one: the result is always a forest holding every
exchange once.

A replay whose original is in the same trace (one kept in it with `keep_trace`, or made
before replays started traces of their own) ran minutes or days later: it and the calls it
made are the trace's "kept replays". They stay in the tree, beside their original, but
the trace's start, end and duration, its slowest call and its critical path leave them
out (a 260 ms trace replayed 164 s later stays 260 ms), and each carries `replay_shift_ms`,
how long after its original it ran, for the waterfall to draw it from its original's start. `get_trace` and `list_traces` read the rows (through the partial index
ix_exchanges_trace_id) and assemble them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from sqlalchemy import Row, func, select

from passageway.wire import ATTEMPT_HEADER
from storage.models import CAPTURE_BLOCK_IDS, CaptureBlock, Exchange, unescape_text
from storage.queries import iso_utc
from storage.store import Store

__all__ = [
    "CLOCK_TOLERANCE",
    "LIST_ROW_BUDGET",
    "LIST_SCAN_ROWS",
    "LIST_SCAN_WINDOWS",
    "Trace",
    "TraceNode",
    "TraceSpan",
    "assemble_trace",
    "get_trace",
    "list_traces",
    "span_from_detail",
]

_ATTEMPT = ATTEMPT_HEADER.lower()
CLOCK_TOLERANCE = 0.010
"""Seconds a call may seem to start before, or end after, the call that made it: the
proxies that saw the two may run on hosts whose clocks differ by that much."""
LIST_SCAN_ROWS = 20_000
"""list_traces looks for traces in windows of this many exchange ids, newest first..."""
LIST_SCAN_WINDOWS = 5
"""... at most this many windows a call; its `next_before` goes on below them."""
LIST_ROW_BUDGET = 20_000
"""list_traces reads at most this many exchanges of the traces it found, a call."""
_SCAN_CHUNK = 1000
"""At most this many traced exchanges of a window are read at a time, newest first (the first
reads of a call fewer: an unfiltered first page needs the newest few hundred)."""


@dataclass(frozen=True, slots=True)
class TraceSpan:
    """One exchange as the assembly needs it: its interval, its links, what to show."""

    exchange_id: int
    start: float
    """Epoch seconds."""
    end: float
    service: str | None = None
    caller: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    method: str = ""
    host: str = ""
    path: str = ""
    status: int | None = None
    error_kind: str | None = None
    attempt: int | None = None
    """X-Passageway-Attempt (1-based) when the smart client sent it."""
    replay_of: int | None = None
    fault: str | None = None
    """What an injected fault did to it (storage.faults), e.g. "#3 status 503"."""
    mock: str | None = None
    """Which recording answered it while its service was simulated (proxy.mocks), e.g. "#1234"."""

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def failed(self) -> bool:
        return self.error_kind is not None or (self.status is not None and self.status >= 500)


@dataclass(slots=True)
class TraceNode:
    span: TraceSpan
    parent_id: int | None = None
    link: str | None = None
    """"span", "nested", "replay", or None for a root."""
    depth: int = 0
    children: list[TraceNode] = field(default_factory=list)
    self_ms: float = 0.0
    slowest: bool = False
    critical: bool = False
    replay_shift: float | None = None
    """Seconds: for a kept replay (and the calls it made), how long after its original it
    started; None for the trace's own calls."""

    def to_dict(self, trace_start: float) -> dict:
        s = self.span
        return {
            "exchange_id": s.exchange_id,
            "parent_id": self.parent_id,
            "link": self.link,
            "depth": self.depth,
            "child_count": len(self.children),
            "service": s.service,
            "caller": s.caller,
            "method": s.method,
            "host": s.host,
            "path": s.path,
            "status": s.status,
            "error_kind": s.error_kind,
            "span_id": s.span_id,
            "parent_span_id": s.parent_span_id,
            "start": iso_utc(s.start),
            "offset_ms": _ms(s.start - trace_start),
            "duration_ms": _ms(s.duration),
            "self_ms": round(self.self_ms, 3),
            "failed": s.failed,
            "slowest": self.slowest,
            "critical": self.critical,
            "attempt": s.attempt,
            "retry": s.attempt is not None and s.attempt > 1,
            "replay_of": s.replay_of,
            "fault": s.fault,
            "mock": s.mock,
            "replay_shift_ms": None if self.replay_shift is None else _ms(self.replay_shift),
        }


@dataclass(slots=True)
class Trace:
    nodes: list[TraceNode]
    """Depth first, each node's children by start time: the waterfall's rows in order."""
    start: float
    end: float
    cut: bool = False
    """More exchanges carry this trace id than were read."""

    @property
    def roots(self) -> list[TraceNode]:
        return [node for node in self.nodes if node.parent_id is None]

    @property
    def own_roots(self) -> list[TraceNode]:
        """The roots that are not kept replays: the first is the trace's root call."""
        return [node for node in self.roots if node.replay_shift is None]

    @property
    def replay_count(self) -> int:
        """Kept replays and the calls they made (see the module docstring)."""
        return sum(node.replay_shift is not None for node in self.nodes)

    @property
    def replay_of(self) -> int | None:
        """The exchange this trace's root call replays (in another trace): the trace a replay started."""
        roots = self.own_roots
        return roots[0].span.replay_of if roots else None

    def services(self) -> list[str]:
        """Every service involved (called or calling), in order of first appearance."""
        seen: dict[str, None] = {}
        for node in sorted(self.nodes, key=lambda n: (n.span.start, n.span.exchange_id)):
            for name in (node.span.caller, node.span.service):
                if name:
                    seen.setdefault(name, None)
        return list(seen)

    def edges(self) -> list[dict]:
        """Who called whom: caller service -> called service, with counts, most calls first.
        The caller is the one the smart client named, else the parent call's service."""
        by_id = {node.span.exchange_id: node for node in self.nodes}
        calls: Counter[tuple[str, str]] = Counter()
        errors: Counter[tuple[str, str]] = Counter()
        for node in self.nodes:
            parent = by_id.get(node.parent_id) if node.parent_id is not None else None
            caller = node.span.caller or (parent.span.service if parent is not None else None)
            if not caller or not node.span.service:
                continue
            edge = (caller, node.span.service)
            calls[edge] += 1
            errors[edge] += node.span.failed
        return [
            {"caller": caller, "service": service, "calls": count, "errors": errors[(caller, service)]}
            for (caller, service), count in sorted(calls.items(), key=lambda item: (-item[1], item[0]))
        ]

    def to_dict(self) -> dict:
        return {
            "start": iso_utc(self.start) if self.nodes else None,
            "end": iso_utc(self.end) if self.nodes else None,
            "duration_ms": _ms(self.end - self.start),
            "exchange_count": len(self.nodes),
            "error_count": sum(node.span.failed for node in self.nodes),
            "replay_count": self.replay_count,
            "replay_of": self.replay_of,
            "services": self.services(),
            "edges": self.edges(),
            "cut": self.cut,
            "nodes": [node.to_dict(self.start) for node in self.nodes],
        }


def _ms(seconds: float) -> float:
    return round(max(0.0, seconds) * 1000.0, 3)


def assemble_trace(spans: Sequence[TraceSpan], *, cut: bool = False, tolerance: float = CLOCK_TOLERANCE) -> Trace:
    """The forest of calls `spans` form (see the module docstring); pure."""
    unique = {span.exchange_id: span for span in spans}
    ordered = sorted(unique.values(), key=_time_order)
    nodes = {span.exchange_id: TraceNode(span) for span in ordered}
    parent: dict[int, int] = {}

    def closes_cycle(child: int, candidate: int) -> bool:
        at: int | None = candidate
        while at is not None:
            if at == child:
                return True
            at = parent.get(at)
        return False

    def attach(child: int, candidates: Iterable[int], link: str) -> bool:
        for candidate in candidates:
            if not closes_cycle(child, candidate):
                parent[child] = candidate
                nodes[child].link = link
                return True
        return False

    by_span_id: dict[str, list[TraceSpan]] = {}
    for span in ordered:
        if span.span_id:
            by_span_id.setdefault(span.span_id, []).append(span)
    rank = {span.exchange_id: index for index, span in enumerate(sorted(ordered, key=_size_order))}
    replays: dict[int, int] = {
        span.exchange_id: span.replay_of
        for span in ordered
        if span.replay_of is not None and span.replay_of in nodes and span.replay_of != span.exchange_id
    }

    # A sweep in start order keeps the calls still open (a container must be), so a long
    # run of sequential calls costs little.
    open_calls: list[TraceSpan] = []
    upcoming = 0
    for span in ordered:
        while upcoming < len(ordered) and ordered[upcoming].start <= span.start + tolerance:
            open_calls.append(ordered[upcoming])
            upcoming += 1
        open_calls = [other for other in open_calls if other.end >= span.start - tolerance]
        if span.exchange_id in replays:
            continue  # placed after every original has its place
        linked = [other for other in by_span_id.get(span.parent_span_id or "", ()) if other is not span]
        if linked and attach(span.exchange_id, _best_linked(span, linked, tolerance), "span"):
            continue
        containers = [
            other
            for other in open_calls
            if rank[other.exchange_id] > rank[span.exchange_id] and _contains(other, span, tolerance)
        ]
        containers.sort(key=lambda other: (other.service != span.caller or not span.caller, rank[other.exchange_id]))
        attach(span.exchange_id, (other.exchange_id for other in containers), "nested")

    # Replays in id order: a replay of a replay comes after its original. One of a root is
    # a root too, still marked as a replay.
    for replay_id in sorted(replays):
        nodes[replay_id].link = "replay"
        original_parent = parent.get(replays[replay_id])
        if original_parent is not None:
            attach(replay_id, [original_parent], "replay")

    for child, parent_id in parent.items():
        nodes[child].parent_id = parent_id
        nodes[parent_id].children.append(nodes[child])
    roots = [node for node in nodes.values() if node.parent_id is None]  # already in time order
    trace_nodes = _depth_first(roots)
    _shift_kept_replays(trace_nodes, nodes, replays)
    own = [node.span for node in trace_nodes if node.replay_shift is None]
    start = min((span.start for span in own), default=0.0)
    end = max((span.end for span in own), default=0.0)
    trace = Trace(nodes=trace_nodes, start=start, end=end, cut=cut)
    _measure(trace)
    return trace


def _shift_kept_replays(ordered: list[TraceNode], nodes: dict[int, TraceNode], replays: dict[int, int]) -> None:
    """Set replay_shift on each kept replay (a replay whose original is in this trace) and on
    the calls under it: how long after its original (as drawn) it started."""
    kept: set[int] = set()
    for node in ordered:  # depth first: a parent before its children
        if node.span.exchange_id in replays or (node.parent_id is not None and node.parent_id in kept):
            kept.add(node.span.exchange_id)
    if len(kept) == len(ordered):
        return  # only forged ids (replays of each other) make every call a replay: none is kept apart
    shifts: dict[int, float] = {}

    def depends_on(exchange_id: int) -> int | None:
        return replays[exchange_id] if exchange_id in replays else nodes[exchange_id].parent_id

    def shift_of(exchange_id: int) -> float:
        # Walk replay -> original and call -> its parent up to a known shift or a call of the
        # trace's own (no shift), then back down. A forged cycle is cut where it closes.
        chain: list[int] = []
        at: int | None = exchange_id
        while at is not None and at in kept and at not in shifts and at not in chain:
            chain.append(at)
            at = depends_on(at)
        for link in reversed(chain):
            dependency = depends_on(link)
            below = shifts.get(dependency, 0.0) if dependency is not None else 0.0
            if link in replays and dependency is not None:
                drawn_start = nodes[dependency].span.start - below
                below = max(0.0, nodes[link].span.start - drawn_start)
            shifts[link] = below
        return shifts[exchange_id]

    for node in ordered:
        if node.span.exchange_id in kept:
            node.replay_shift = shift_of(node.span.exchange_id)


def _time_order(span: TraceSpan) -> tuple[float, float, int]:
    return (span.start, -span.end, span.exchange_id)


def _size_order(span: TraceSpan) -> tuple[float, float, float, int]:
    # A strict order in which a container always ranks above what it contains: longer, then
    # earlier, then the lower id. Nesting only ever points up it, so it alone makes no cycle.
    return (span.duration, -span.start, span.end, -span.exchange_id)


def _contains(outer: TraceSpan, inner: TraceSpan, tolerance: float) -> bool:
    return outer.start <= inner.start + tolerance and inner.end <= outer.end + tolerance


def _best_linked(span: TraceSpan, linked: list[TraceSpan], tolerance: float) -> list[int]:
    """Exchanges holding the parent span id, best first: containing this call in time, of
    the calling service, tightest."""
    linked = sorted(
        linked,
        key=lambda other: (
            not _contains(other, span, tolerance),
            not span.caller or other.service != span.caller,
            other.duration,
            other.exchange_id,
        ),
    )
    return [other.exchange_id for other in linked]


def _depth_first(roots: list[TraceNode]) -> list[TraceNode]:
    out: list[TraceNode] = []
    stack = [(root, 0) for root in reversed(roots)]
    while stack:
        node, depth = stack.pop()
        node.depth = depth
        node.children.sort(key=lambda child: _time_order(child.span))
        out.append(node)
        stack.extend((child, depth + 1) for child in reversed(node.children))
    return out


def _measure(trace: Trace) -> None:
    """Self time (a call's time not spent waiting on its own calls), the slowest call (the
    most self time: where the time went) and the critical path of the longest root."""
    for node in trace.nodes:
        span = node.span
        covered = 0.0
        cursor = span.start
        for child in sorted(node.children, key=lambda c: c.span.start):
            if child.replay_shift is not None and node.replay_shift is None:
                continue  # a kept replay beside its original is no call this one waited on
            child_start = max(child.span.start, cursor)
            child_end = min(child.span.end, span.end)
            if child_end > child_start:
                covered += child_end - child_start
                cursor = child_end
        node.self_ms = max(0.0, span.duration - covered) * 1000.0
    own = [node for node in trace.nodes if node.replay_shift is None]
    if not own:
        return
    max(own, key=lambda n: (n.self_ms, -n.span.start, -n.span.exchange_id)).slowest = True
    # Critical path (as Jaeger draws it): from the end of the longest root, step back through
    # the child that finished last before the cursor, then the one before that child began.
    root = max(trace.own_roots, key=lambda n: (n.span.duration, -n.span.start))
    stack = [(root, root.span.end)]
    while stack:
        node, cursor = stack.pop()
        node.critical = True
        for child in sorted(node.children, key=lambda c: (-c.span.end, c.span.start)):
            if child.replay_shift is None and child.span.start < cursor:
                stack.append((child, min(child.span.end, cursor)))
                cursor = child.span.start


# ---------------------------------------------------------------- reading traces


def span_from_detail(exchange: dict) -> TraceSpan:
    """A TraceSpan from an exchange detail dict (storage.queries.get_exchange, maybe
    redacted): what a shared trace is assembled from."""
    timings = exchange.get("timings") or {}
    start = _epoch(timings.get("request_start")) or _epoch(exchange.get("captured_at")) or 0.0
    error = exchange.get("error") or None
    return TraceSpan(
        exchange_id=int(exchange["id"]),
        start=start,
        end=_end(start, _epoch(timings.get("response_end")), exchange.get("duration_ms")),
        service=exchange.get("service"),
        caller=exchange.get("caller"),
        span_id=exchange.get("span_id"),
        parent_span_id=exchange.get("parent_span_id"),
        method=exchange.get("method") or "",
        host=exchange.get("host") or "",
        path=exchange.get("path") or "",
        status=exchange.get("status"),
        error_kind=error.get("kind") if isinstance(error, dict) else None,
        attempt=_attempt(exchange.get("request_headers") or ()),
        replay_of=exchange.get("replay_of"),
        fault=exchange.get("fault"),
        mock=exchange.get("mock"),
    )


def _epoch(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _end(start: float, end: float | None, duration_ms: float | None) -> float:
    if end is not None and end >= start:
        return end
    if duration_ms is not None and duration_ms >= 0:
        return start + duration_ms / 1000.0
    return start


def _attempt(headers: Iterable[Sequence[str]]) -> int | None:
    for name, value in headers:
        if name.lower() == _ATTEMPT:
            value = value.strip()
            return int(value) if value.isdigit() and len(value) < 6 else None
    return None


_SPAN_COLUMNS = (
    Exchange.id,
    Exchange.captured_at,
    Exchange.trace_id,
    Exchange.service,
    Exchange.caller,
    Exchange.span_id,
    Exchange.parent_span_id,
    Exchange.method,
    Exchange.host,
    Exchange.path,
    Exchange.status,
    Exchange.error_kind,
    Exchange.duration_ms,
    Exchange.timings,
    Exchange.request_headers,
    Exchange.replay_of,
    Exchange.fault,
    Exchange.mock,
)


def _span_from_row(row: Row[Any]) -> TraceSpan:
    timings = row.timings or {}
    start = _epoch(timings.get("request_start")) or row.captured_at.timestamp()
    headers = [(unescape_text(name), unescape_text(value)) for name, value in row.request_headers or ()]
    return TraceSpan(
        exchange_id=row.id,
        start=start,
        end=_end(start, _epoch(timings.get("response_end")), row.duration_ms),
        service=row.service,
        caller=row.caller,
        span_id=row.span_id,
        parent_span_id=row.parent_span_id,
        method=row.method,
        host=row.host,
        path=row.path,
        status=row.status,
        error_kind=row.error_kind,
        attempt=_attempt(headers),
        replay_of=row.replay_of,
        fault=row.fault,
        mock=row.mock,
    )


def get_trace(store: Store, *, trace_id: str, limit: int = 2000) -> dict | None:
    """The assembled trace `trace_id` (exact) as plain data, or None when no exchange has it.
    At most `limit` exchanges (the first captured); `cut` says when there were more. A trace
    a replay started says which trace its original is in (`replay_of_trace_id`)."""
    limit = max(1, int(limit))
    query = (
        select(*_SPAN_COLUMNS)
        .where(Exchange.trace_id.isnot(None), Exchange.trace_id == trace_id)
        .order_by(Exchange.id)
        .limit(limit + 1)
    )
    with store.connect() as conn:
        rows = conn.execute(query).all()
        if not rows:
            return None
        trace = assemble_trace([_span_from_row(row) for row in rows[:limit]], cut=len(rows) > limit)
        originals = _trace_ids_of(conn, [trace.replay_of])
    return {"trace_id": trace_id, **trace.to_dict(), "replay_of_trace_id": originals.get(trace.replay_of)}


def _trace_ids_of(conn: Any, exchange_ids: Iterable[int | None]) -> dict[int, str | None]:
    """exchange id -> its trace id, for the ones still stored (by primary key: cheap)."""
    wanted = sorted({exchange_id for exchange_id in exchange_ids if exchange_id is not None})
    if not wanted:
        return {}
    rows = conn.execute(select(Exchange.id, Exchange.trace_id).where(Exchange.id.in_(wanted)))
    return {row.id: row.trace_id for row in rows}


def trace_exchange_ids(store: Store, *, trace_id: str, limit: int) -> tuple[list[int], bool]:
    """The ids of trace `trace_id`'s exchanges (exact, unlike the search's `trace:` prefix),
    the first `limit` captured, oldest first; and whether there were more."""
    query = (
        select(Exchange.id)
        .where(Exchange.trace_id.isnot(None), Exchange.trace_id == trace_id)
        .order_by(Exchange.id)
        .limit(max(1, int(limit)) + 1)
    )
    with store.connect() as conn:
        ids = list(conn.execute(query).scalars())
    return ids[:limit], len(ids) > limit


def list_traces(
    store: Store,
    *,
    since: dt.datetime,
    service: str | None = None,
    limit: int = 50,
    min_calls: int = 1,
    failed: bool = False,
    before: int | None = None,
) -> dict:
    """The newest traces with an exchange captured at or after `since` (and, with `service`,
    one to or from that service): a summary of each, newest first, as {"data": [summary, ...],
    "next_before": cursor}. `min_calls`: only traces with at least that many calls (kept
    replays not counted); `failed`: only traces with a failed call (an error, no response, or
    a 5xx).

    Pages by keyset. A trace's key is the id of its newest exchange that counts (captured at
    or after `since`, to or from `service`), and a trace is listed on the page whose ids hold
    its key, newest key first: `before` lists the traces whose key is below it, so following
    `next_before` from page to page lists each trace once, and misses none (a trace that
    gains such an exchange meanwhile moves to the first page). `next_before` is None when no
    older exchange can hold a key (the oldest stored, or the oldest captured at or after
    `since`, has been looked at).

    Bounded work on any table: the traces are looked for in windows of LIST_SCAN_ROWS ids
    (which follow capture order), newest first, at most LIST_SCAN_WINDOWS of them, and their
    exchanges are read through the trace_id index, at most LIST_ROW_BUDGET of them in all:
    with a filter, the traces are assembled a batch at a time until `limit` of them pass. A
    call that stops short of `limit` (a budget spent) says where to go on in `next_before`."""
    limit = max(1, min(int(limit), 500))
    filtered = min_calls > 1 or failed
    out: list[dict] = []
    next_before: int | None = None
    with store.connect() as conn:
        # Each its own subquery: SQLite reads min() or max() off the key alone, not both at once.
        first, top = conn.execute(
            select(select(func.min(Exchange.id)).scalar_subquery(), select(func.max(Exchange.id)).scalar_subquery())
        ).one()
        # Every exchange below the first block holding one captured at or after `since` was
        # captured before it (storage.models.CaptureBlock): the scan need not go lower.
        since_block = conn.execute(select(func.min(CaptureBlock.block)).where(CaptureBlock.latest >= since)).scalar()
        if top is None or since_block is None:
            return {"data": [], "next_before": None}
        scan = _TraceScan(
            conn,
            upper=top + 1 if before is None else min(before, top + 1),
            bottom=max(first, since_block * CAPTURE_BLOCK_IDS),
            since=since,
            service=service,
            newer_than=before,
        )
        candidates = iter(scan)
        keys: dict[str, int] = {}
        decided: int | None = None  # the key of the last trace decided (listed or not), and of every newer one
        queue: list[str] = []
        exhausted = False
        budget = LIST_ROW_BUDGET
        while True:
            if budget == 0:
                next_before = decided
                break
            # The first trace of a call is read alone, so however large the traces, a call
            # always decides one and every page moves on.
            want = 1 if decided is None else max(limit, 100) if filtered else limit - len(out)
            while len(queue) < want and not exhausted:
                pull = 500 if filtered else want - len(queue)
                chunk = list(islice(candidates, pull))
                exhausted = len(chunk) < pull
                keys.update(chunk)
                trace_ids = [trace_id for trace_id, _ in chunk]
                if filtered and trace_ids:
                    # What cannot pass, told by the trace_id index alone (a failed call, enough
                    # calls), 500 at a time; only what can is read and assembled.
                    queue += _could_pass(conn, trace_ids, min_calls=min_calls, failed=failed)
                elif not filtered:
                    queue += trace_ids
            if not queue:
                next_before = scan.resume
                break
            batch, queue = queue[:want], queue[want:]
            grouped, partly_read, read = _read_traces(conn, batch, budget)
            budget -= read
            stopped = bool(partly_read)
            for trace_id, spans in grouped.items():
                if trace_id in partly_read and decided is not None:
                    break  # past the row budget: the next page starts with it
                decided = keys[trace_id]
                if not spans:
                    continue  # deleted meanwhile (retention)
                trace = assemble_trace(spans, cut=trace_id in partly_read)
                if len(trace.nodes) - trace.replay_count < min_calls or (failed and not _failed(trace)):
                    continue
                out.append(_trace_summary(trace_id, trace))
                if len(out) == limit:
                    stopped = True
                    break
            if stopped:
                next_before = decided
                break
        originals = _trace_ids_of(conn, (summary["root"]["replay_of"] for summary in out))
    for summary in out:
        summary["root"]["replay_of_trace_id"] = originals.get(summary["root"]["replay_of"])
    return {"data": out, "next_before": next_before}


class _TraceScan:
    """The traces whose key (see list_traces) is below `upper`, newest first, as (trace id,
    key) pairs; `resume` is where the next call goes on once they are all taken: None when
    nothing at or above `bottom` was left unread."""

    def __init__(
        self,
        conn: Any,
        *,
        upper: int,
        bottom: int,
        since: dt.datetime,
        service: str | None,
        newer_than: int | None,
    ) -> None:
        self._conn = conn
        self._upper = upper
        self._bottom = bottom
        self._since = since
        self._service = service
        self._newer_than = newer_than
        self.resume: int | None = None

    def __iter__(self) -> Iterator[tuple[str, int]]:
        seen: set[str] = set()
        chunk = 100
        upper = self._upper
        for _ in range(LIST_SCAN_WINDOWS):
            if upper <= self._bottom:
                return
            lower = max(upper - LIST_SCAN_ROWS, self._bottom)
            # The id window is what bounds the work, so no other term may steer the plan to
            # an index of its own: length() hides trace_id from the partial index (all traced
            # rows, perhaps millions), and `since` is tested in Python (the captured_at index
            # could cover days of traffic).
            filters = [Exchange.id >= lower, func.length(Exchange.trace_id) > 0]
            if self._service:
                filters.append((Exchange.service == self._service) | (Exchange.caller == self._service))
            position = upper
            while True:
                # Small reads first: an unfiltered first page needs the newest few hundred.
                chunk = min(chunk * 2, _SCAN_CHUNK)
                rows = self._conn.execute(
                    select(Exchange.id, Exchange.trace_id, Exchange.captured_at)
                    .where(*filters, Exchange.id < position)
                    .order_by(Exchange.id.desc())
                    .limit(chunk)
                ).all()
                found: dict[str, int] = {}
                for row in rows:
                    if row.captured_at >= self._since and row.trace_id not in seen:
                        seen.add(row.trace_id)
                        found[row.trace_id] = row.id
                yield from self._not_on_a_newer_page(found)
                if len(rows) < chunk:
                    break
                position = rows[-1].id
            upper = lower
        self.resume = upper if upper > self._bottom else None

    def _not_on_a_newer_page(self, found: dict[str, int]) -> list[tuple[str, int]]:
        """`found` less the traces with an exchange that counts at `newer_than` or above: their
        key is there, a newer page lists them."""
        if self._newer_than is None or not found:
            return list(found.items())
        # id + 0: through the trace_id index, not the primary key's range of every newer row.
        rows = self._conn.execute(
            select(Exchange.trace_id, Exchange.captured_at, Exchange.service, Exchange.caller).where(
                Exchange.trace_id.isnot(None), Exchange.trace_id.in_(list(found)), Exchange.id + 0 >= self._newer_than
            )
        )
        newer = {
            row.trace_id
            for row in rows
            if row.captured_at >= self._since and (not self._service or self._service in (row.service, row.caller))
        }
        return [(trace_id, key) for trace_id, key in found.items() if trace_id not in newer]


def _read_traces(conn: Any, trace_ids: list[str], budget: int) -> tuple[dict[str, list[TraceSpan]], set[str], int]:
    """The exchanges of `trace_ids`, first captured first, at most `budget` (>= 1) in all: each
    trace's spans (in the order of `trace_ids`), the traces read only in part (some of their
    exchanges lay past the budget), and how many exchanges were read."""
    rows = conn.execute(
        select(*_SPAN_COLUMNS)
        .where(Exchange.trace_id.isnot(None), Exchange.trace_id.in_(trace_ids))
        .order_by(Exchange.id)
        .limit(budget + 1)
    ).all()
    grouped: dict[str, list[TraceSpan]] = {trace_id: [] for trace_id in trace_ids}
    for row in rows[:budget]:
        grouped[row.trace_id].append(_span_from_row(row))
    if len(rows) <= budget:
        return grouped, set(), len(rows)
    # id + 0: through the trace_id index, not the primary key's range of every newer row.
    past = select(Exchange.trace_id).where(
        Exchange.trace_id.isnot(None), Exchange.trace_id.in_(trace_ids), Exchange.id + 0 > rows[budget - 1].id
    )
    return grouped, set(conn.execute(past.distinct()).scalars()), budget


def _could_pass(conn: Any, trace_ids: list[str], *, min_calls: int, failed: bool) -> list[str]:
    """The traces among `trace_ids` (in their order) with a failed exchange (when `failed`) and
    at least `min_calls` exchanges: the filters' necessary conditions, by the trace_id index."""
    keep = set(trace_ids)
    in_batch = (Exchange.trace_id.isnot(None), Exchange.trace_id.in_(trace_ids))
    if failed:
        failing = select(Exchange.trace_id).where(*in_batch, Exchange.error_kind.isnot(None) | (Exchange.status >= 500))
        keep &= set(conn.execute(failing.distinct()).scalars())
    if min_calls > 1 and keep:
        counted = (
            select(Exchange.trace_id)
            .where(*in_batch)
            .group_by(Exchange.trace_id)
            .having(func.count() >= min_calls)
        )
        keep &= set(conn.execute(counted).scalars())
    return [trace_id for trace_id in trace_ids if trace_id in keep]


def _failed(trace: Trace) -> bool:
    return any(node.span.failed for node in trace.nodes)


def _trace_summary(trace_id: str, trace: Trace) -> dict:
    root = trace.own_roots[0].span
    return {
        "trace_id": trace_id,
        "root": {
            "exchange_id": root.exchange_id,
            "service": root.service,
            "method": root.method,
            "path": root.path,
            "status": root.status,
            "error_kind": root.error_kind,
            "replay_of": root.replay_of,
        },
        "start": iso_utc(trace.start),
        "duration_ms": _ms(trace.end - trace.start),
        "exchange_count": len(trace.nodes),
        "error_count": sum(node.span.failed for node in trace.nodes),
        "replay_count": trace.replay_count,
        "services": trace.services(),
        "cut": trace.cut,
    }
