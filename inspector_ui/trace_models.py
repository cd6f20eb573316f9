"""Response models of /api/traces: storage.traces' dicts, documented and checked on the way out."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TraceCall(_Open):
    """One exchange of a trace, as a row of its waterfall (depth first, children by start)."""

    exchange_id: int
    parent_id: int | None = Field(description="The exchange that made this call; null for a root.")
    link: Literal["span", "nested", "replay"] | None = Field(
        description="How the parent was found: its span id is this call's parent span id (span), "
        "it contains this call in time (nested), or this is a replay placed beside its original (replay)."
    )
    depth: int
    child_count: int
    service: str | None
    caller: str | None
    method: str
    host: str
    path: str
    status: int | None
    error_kind: str | None
    span_id: str | None
    parent_span_id: str | None
    start: str | None
    offset_ms: float = Field(description="From the start of the trace.")
    duration_ms: float
    self_ms: float = Field(description="Duration less the time covered by its own calls.")
    failed: bool = Field(description="Status 5xx, or no response (error_kind).")
    slowest: bool = Field(description="The call with the most self time in the trace.")
    critical: bool = Field(description="On the critical path of the longest root call.")
    attempt: int | None = Field(description="X-Passageway-Attempt, when the smart client sent it.")
    retry: bool = Field(description="An attempt after the first.")
    replay_of: int | None
    fault: str | None = Field(None, description="What an injected fault rule did to this call (e.g. \"#3 status 503\").")
    mock: str | None = Field(None, description="Which recording answered this call while its service was simulated (e.g. \"#1234\").")
    replay_shift_ms: float | None = Field(
        None,
        description="For a replay kept in its original's trace (and the calls it made): how long after its "
        "original it ran; the waterfall draws it that much earlier, from its original's start. Null otherwise.",
    )


class TraceEdge(BaseModel):
    """Calls from one service to another within the trace."""

    caller: str
    service: str
    calls: int
    errors: int


class TraceDetail(_Open):
    """A trace assembled into its tree of calls."""

    trace_id: str
    start: str | None
    end: str | None
    duration_ms: float
    exchange_count: int
    error_count: int
    replay_count: int = Field(
        0, description="Exchanges that are replays kept in this trace, or calls they made: left out of its duration."
    )
    replay_of: int | None = Field(
        None, description="The exchange this trace's root call replays, when a replay started it."
    )
    replay_of_trace_id: str | None = Field(None, description="The trace that exchange is in, if it is still stored.")
    services: list[str]
    edges: list[TraceEdge]
    cut: bool = Field(description="More exchanges carry this trace id than were read (the first 2000 are shown).")
    nodes: list[TraceCall]


class TraceRoot(_Open):
    exchange_id: int
    service: str | None
    method: str
    path: str
    status: int | None
    error_kind: str | None
    replay_of: int | None = Field(
        None, description="The exchange this root call replays, when a replay started the trace."
    )
    replay_of_trace_id: str | None = Field(None, description="The trace that exchange is in, if it is still stored.")


class TraceListItem(_Open):
    trace_id: str
    root: TraceRoot
    start: str
    duration_ms: float
    exchange_count: int
    error_count: int
    replay_count: int = Field(
        0, description="Replays kept in this trace and the calls they made (not in its duration)."
    )
    services: list[str]
    cut: bool


class TraceList(BaseModel):
    """The newest traces first, a page of them."""

    data: list[TraceListItem]
    next_before: int | None = Field(
        description="Pass it as `before` for the next (older) page; null when no older trace can match. "
        "A page may hold fewer than `limit` traces (even none) and still have one: each call looks "
        "through a bounded number of exchanges."
    )
