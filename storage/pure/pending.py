"""Pending exchanges as plain data: the notice a proxy gives for a call still in progress, the
record an expired one becomes, and which searches a pending exchange can match. Pure: no I/O.

A proxy announces an exchange that has waited for its response (state "waiting") or streamed
a body (state "streaming") for more than about a second; storage.pending keeps the notices in
pending_exchanges until the finished record replaces them. A notice nobody refreshes any more
(its proxy was killed) expires into an exchange with error kind UNKNOWN_OUTCOME.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from storage.pure.record import ExchangeRecord, Timings
from storage.pure.search import Query, Term, text_tokens

__all__ = [
    "PENDING_STATES",
    "UNKNOWN_OUTCOME",
    "PendingNotice",
    "pending_matches",
    "unknown_outcome_record",
]

UNKNOWN_OUTCOME = "unknown_outcome"
"""The error kind of an exchange whose proxy stopped before it finished: nobody knows how it ended."""
PENDING_STATES = ("waiting", "streaming")


@dataclass(frozen=True, slots=True)
class PendingNotice:
    """One call in progress, as its proxy sees it now."""

    uuid: str
    """The uuid the finished exchange will be stored under."""
    proxy: str
    started_at: float
    """Epoch seconds when the request started: the finished exchange's captured_at."""
    method: str
    scheme: str
    host: str
    port: int
    path: str
    query: str
    state: str
    """"waiting" for the response, or "streaming" a body (the request's or the response's)."""
    request_size: int = 0
    """Request body bytes so far."""
    response_size: int = 0
    """Response body bytes so far."""
    status: int | None = None
    """The response's status once its head arrived (a streaming response)."""
    service: str | None = None
    realm: str | None = None
    trace_id: str | None = None
    http_version: str = ""

    @property
    def progress(self) -> tuple[str, int, int]:
        """What changes while it runs: a notice with the same progress needs no update."""
        return (self.state, self.request_size, self.response_size)


def unknown_outcome_record(notice: PendingNotice, *, message: str) -> ExchangeRecord:
    """The exchange a pending notice becomes when its proxy stopped refreshing it: what the
    notice knew, status null, error kind UNKNOWN_OUTCOME. Same uuid and captured_at as the
    real record would have, so a real record that still arrives replaces it (storage.sink)."""
    return ExchangeRecord(
        uuid=notice.uuid,
        captured_at=notice.started_at,
        proxy=notice.proxy,
        scheme=notice.scheme,
        method=notice.method,
        host=notice.host,
        port=notice.port,
        path=notice.path,
        query=notice.query,
        http_version=notice.http_version,
        request_headers=[],
        request_body=None,
        timings=Timings(request_start=notice.started_at),
        service=notice.service,
        realm=notice.realm,
        status=None,
        error_kind=UNKNOWN_OUTCOME,
        error_message=message,
        trace_id=notice.trace_id,
    )


# -- which searches a pending exchange can match ----------------------------------------------
#
# Three-valued: True, False or None (cannot tell yet: the term needs the response, the status,
# the duration or a body). Only a query that is True is listed, so a pending exchange appears in
# a search exactly when what it already has matches and nothing it lacks is asked for.


def _glob_match(value: str, pattern: str) -> bool:
    """`*` matches any run of characters; everything else literally (storage.search_sql._glob)."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return value == pattern
    if not value.startswith(parts[0]) or not value.endswith(parts[-1]):
        return False
    position, end = len(parts[0]), len(value) - len(parts[-1])
    for part in parts[1:-1]:
        found = value.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return position <= end


def _text_in_url(term: Term, notice: PendingNotice) -> bool | None:
    """Free text: found in the URL is a match; not found may still be in a body (unknown)."""
    words = text_tokens(f"{notice.scheme}://{notice.host}{notice.path}?{notice.query}")
    tokens = (
        term.value if isinstance(term.value, tuple) else text_tokens(str(term.value))
    )
    if not tokens:
        return None
    if term.op == "phrase":
        size = len(tokens)
        found = any(words[i : i + size] == tokens for i in range(len(words) - size + 1))
    else:  # "word": every token a word of the URL, the last one a prefix
        *whole, last = tokens
        found = all(token in words for token in whole) and any(
            word.startswith(last) for word in words
        )
    return True if found else None


def _positive(term: Term, notice: PendingNotice, now: dt.datetime) -> bool | None:
    name, op, value = term.field, term.op, term.value
    if name == "method":
        return notice.method == value
    if name == "service":
        return notice.service is not None and notice.service == value
    if name == "host":
        host = notice.host.lower()
        return _glob_match(host, value) if op == "glob" else host == value
    if name == "path":
        return _glob_match(notice.path, value) if op == "glob" else notice.path == value
    if name == "trace":
        if notice.trace_id is None:
            return False
        return (
            notice.trace_id == value
            if len(value) >= 32
            else notice.trace_id.startswith(value)
        )
    started = dt.datetime.fromtimestamp(notice.started_at, dt.UTC)
    if name == "since":
        return started >= now - dt.timedelta(seconds=value)
    if name == "after":
        return started >= value
    if name == "before":
        return started < value
    if name == "is" and value == "websocket":
        return False
    if name == "text":
        return _text_in_url(term, notice)
    # status, duration, size, headers, body, has:, test:, is:error/replay/test: not known yet.
    return None


def _term(term: Term, notice: PendingNotice, now: dt.datetime) -> bool | None:
    value = _positive(term, notice, now)
    if value is None or not term.negated:
        return value
    return not value


def pending_matches(
    query: Query | None, notice: PendingNotice, *, now: dt.datetime | None = None
) -> bool:
    """Whether a pending exchange is listed under `query` (None or empty: always): every group
    must be True, a group (OR) being True when one of its terms is."""
    if query is None:
        return True
    now = now or dt.datetime.now(dt.UTC)
    for group in query.groups:
        if not any(_term(term, notice, now) is True for term in group):
            return False
    return True
