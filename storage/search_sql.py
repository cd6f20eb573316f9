"""Search Query -> SQL WHERE clause over `exchanges`, for SQLite and PostgreSQL.

Structured terms are plain conditions on indexed exchange columns (service, method,
status, captured_at, trace_id) or on the covering index of `exchange_headers`; the
full-text index is touched only by free-text and body: terms, each as one
`id IN (SELECT <id> FROM <index> WHERE <match>)` semi-join, so a query without
free text never reads the text index, and one with both lets the planner start
from whichever side is more selective.

Full text is *word* search on both databases, the same words on both: runs of
letters and digits, lowercased (storage.pure.search.text_tokens), taken from the URL
and from the decoded text bodies; a bare word is its tokens as a phrase with the
last one a prefix (`user` finds "users"; `users/4` finds "/users/42"), a quoted
phrase is the exact token sequence.

- SQLite: FTS5, contentless (`content=''`: the text is not stored twice), rowid =
  exchange id, columns url and body, tokenizer unicode61 without diacritic folding
  (letters and digits are token characters, everything else separates).
- PostgreSQL: a tsvector per exchange (`exchange_search.doc`, GIN index), built
  with the 'simple' configuration (no stemming, no stop words: FTS5 has neither)
  from the text with every non-alphanumeric run replaced by a space
  (storage.pure.search.words_only, in the indexer), so PostgreSQL's own URL/e-mail/float
  parser never changes what a word is; the
  URL carries weight A and bodies weight B, so
  `body:` is a weight restriction on the same index. Chosen over pg_trgm: a
  trigram index of every body costs several times more to write than the word
  index (and the SQLite writer cannot afford trigrams either), and word
  semantics can be made identical on both databases, substring semantics cannot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    bindparam,
    column,
    func,
    literal_column,
    not_,
    or_,
    select,
    table,
    text,
    true,
)
from sqlalchemy.sql import Select

from storage.models import CAPTURE_BLOCK_IDS, SLOW_MS, CaptureBlock, ContractViolation, Exchange, ExchangeHeader
from storage.pure.search import HEADER_VALUE_MAX, Query, Term

__all__ = [
    "FTS",
    "SIDES",
    "TEXT_CONTENT_TYPES",
    "compile_query",
    "fts_required_match",
    "required_text_ids",
    "is_text_content_type",
]

SIDES = {"header": None, "req.header": 0, "res.header": 1}
FTS = table("exchange_fts", column("rowid", Integer), column("exchange_fts"))
"""SQLite's FTS5 table, for joins: `FTS.c.exchange_fts.op("MATCH")(expression)`."""
TEXT_CONTENT_TYPES = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded")


def is_text_content_type(content_type: str | None) -> bool:
    """Bodies of these types are decoded and full-text indexed; others (images, binary) are not."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or any(
        marker in media for marker in TEXT_CONTENT_TYPES[1:]
    )


def compile_query(
    query: Query,
    *,
    dialect: str,
    now: dt.datetime | None = None,
    without_required_text: bool = False,
) -> ColumnElement[bool]:
    """A WHERE clause on Exchange for `query` (true() when it has no terms).

    `now` (aware) anchors since:; default the current time. `without_required_text`
    leaves out the terms fts_required_match() covers, for a query that joins
    exchange_fts on that match instead."""
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported dialect {dialect!r}")
    now = now or dt.datetime.now(dt.UTC)
    groups = query.groups
    if without_required_text:
        groups = tuple(group for group in groups if _required_text(group) is None)
    clauses = [or_(*(_term(term, dialect, now) for term in group)) for group in groups]
    clauses.extend(
        _id_bound(term, now)
        for (term,) in (group for group in query.groups if len(group) == 1)
        if term.field in _TIME_FIELDS and not term.negated
    )
    return and_(true(), *clauses) if clauses else true()


_TIME_FIELDS = ("since", "after", "before")


def _time_bound(term: Term, now: dt.datetime) -> dt.datetime:
    return now - dt.timedelta(seconds=term.value) if term.field == "since" else term.value


def _id_bound(term: Term, now: dt.datetime) -> ColumnElement[bool]:
    """The id range a top-level time term implies, through capture_blocks (see CaptureBlock).

    Added beside the exact captured_at condition: an id range is what the newest-first
    scan (and every (column, id) index) can use. When no block qualifies the bound is
    NULL and nothing matches, which is right: no stored exchange was captured then."""
    bound, block = _time_bound(term, now), CaptureBlock
    if term.field == "before":
        first_after = (func.max(block.block) + 1) * CAPTURE_BLOCK_IDS
        return Exchange.id < select(first_after).where(block.earliest < bound).scalar_subquery()
    first = func.min(block.block) * CAPTURE_BLOCK_IDS
    return Exchange.id >= select(first).where(block.latest >= bound).scalar_subquery()


def _term(term: Term, dialect: str, now: dt.datetime) -> ColumnElement[bool]:
    positive = _positive(term, dialect, now)
    return not_(positive) if term.negated else positive


def _compare(column: ColumnElement, op: str, value: object) -> ColumnElement[bool]:
    return {
        "=": column == value,
        ">": column > value,
        ">=": column >= value,
        "<": column < value,
        "<=": column <= value,
    }[op]


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _glob(column: ColumnElement, pattern: str, dialect: str) -> ColumnElement[bool]:
    """`*` matches any run of characters; everything else literally, case-sensitively."""
    if dialect == "sqlite":
        # LIKE is case-insensitive on SQLite; GLOB is not. Escape GLOB's own metacharacters.
        escaped = "".join(f"[{c}]" if c in "?[]" else c for c in pattern)
        return column.op("GLOB")(escaped)
    return column.like(_like_escape(pattern).replace("*", "%"), escape="\\")


def _positive(term: Term, dialect: str, now: dt.datetime) -> ColumnElement[bool]:
    """The term's condition, never NULL (so that NOT of it is the exact complement)."""
    name, op, value = term.field, term.op, term.value
    x = Exchange
    if name == "method":
        return x.method == value
    if name == "service":
        return and_(x.service.isnot(None), x.service == value)
    if name == "status":
        low, high = value
        if low is not None and low == high:
            # One code: an equality, so the (status, id) index yields rows newest first
            # (a one-value range there still needs every match sorted: 350 ms for 30k rows).
            return and_(x.status.isnot(None), x.status == low)
        conditions = [x.status.isnot(None)]
        if low is not None:
            conditions.append(x.status >= low)
        if high is not None:
            conditions.append(x.status <= high)
        return and_(*conditions)
    if name == "host":
        host = func.lower(x.host)
        return _glob(host, value, dialect) if op == "glob" else host == value
    if name == "path":
        return _glob(x.path, value, dialect) if op == "glob" else x.path == value
    if name == "test":
        # Spelled with IS NOT NULL, the partial index ix_exchanges_test_name_id's own condition.
        matches = _glob(x.test_name, value, dialect) if op == "glob" else x.test_name == value
        return and_(x.test_name.isnot(None), matches)
    if name == "fault":
        # `fault:#3*` (one rule), `fault:*stall*`: over the mark proxy.faults records; the partial
        # index ix_exchanges_fault_id holds the candidates.
        matches = _glob(x.fault, value, dialect) if op == "glob" else x.fault == value
        return and_(x.fault.isnot(None), matches)
    if name == "mock":
        # `mock:*#42*`: over the mark proxy.mocks records (which recording answered).
        matches = _glob(x.mock, value, dialect) if op == "glob" else x.mock == value
        return and_(x.mock.isnot(None), matches)
    if name == "violation":
        # `violation:missing-field`, `violation:*enum*`: over the rules the contract check stored.
        v = ContractViolation
        matches = _glob(v.rule, value, dialect) if op == "glob" else v.rule == value
        return x.id.in_(select(v.exchange_id).where(matches))
    if name == "trace":
        if len(value) >= 32:
            return and_(x.trace_id.isnot(None), x.trace_id == value)
        # A prefix (trace ids are long): a range the trace_id index can serve, and LIKE to be exact.
        upper = value[:-1] + chr(ord(value[-1]) + 1) if value else None
        conditions = [x.trace_id.isnot(None), x.trace_id >= value]
        if upper is not None:
            conditions.append(x.trace_id < upper)
        if dialect == "sqlite":
            conditions.append(
                x.trace_id.op("GLOB")(
                    "".join(f"[{c}]" if c in "*?[]" else c for c in value) + "*"
                )
            )
        else:
            conditions.append(x.trace_id.like(_like_escape(value) + "%", escape="\\"))
        return and_(*conditions)
    if name == "duration":
        condition = and_(x.duration_ms.isnot(None), _compare(x.duration_ms, op, value))
        if op in (">", ">=") and value >= SLOW_MS:
            # Implied, and spelled as the partial index's own condition (a literal: SQLite
            # matches it textually), so the index of slow exchanges serves the scan.
            return and_(condition, text(f"exchanges.duration_ms >= {SLOW_MS}"))
        return condition
    if name == "size":
        # The larger of the two bodies (a missing body counts as 0 bytes).
        request, response = (
            func.coalesce(x.request_body_size, 0),
            func.coalesce(x.response_body_size, 0),
        )
        if op in (">", ">="):
            return or_(_compare(request, op, value), _compare(response, op, value))
        if op in ("<", "<="):
            return and_(_compare(request, op, value), _compare(response, op, value))
        return or_(
            and_(request == value, response <= value),
            and_(response == value, request <= value),
        )
    if name in ("since", "after"):
        return x.captured_at >= _time_bound(term, now)
    if name == "before":
        return x.captured_at < value
    if name == "is":
        if value == "error":
            return or_(
                x.error_kind.isnot(None), and_(x.status.isnot(None), x.status >= 500)
            )
        if value == "replay":
            return x.replay_of.isnot(None)
        if value == "test":
            return x.test_name.isnot(None)
        if value == "fault":  # the partial index ix_exchanges_fault_id's own condition
            return x.fault.isnot(None)
        if value == "mock":  # ix_exchanges_mock_id's
            return x.mock.isnot(None)
        if value == "violation":
            return x.id.in_(select(ContractViolation.exchange_id))
        return x.websocket == true()
    if name == "has":
        return or_(
            x.request_body_sha256.isnot(None), x.response_body_sha256.isnot(None)
        )
    if name in SIDES:
        return x.id.in_(_header_ids(term, SIDES[name]))
    if name in ("text", "body"):
        return x.id.in_(
            _text_ids(
                value, prefix=op == "word", body_only=name == "body", dialect=dialect
            )
        )
    raise ValueError(
        f"cannot compile term {term}"
    )  # pragma: no cover - the parser makes only known fields


def _header_ids(term: Term, side: int | None) -> Select:
    h = ExchangeHeader
    if term.op == "present":
        query = select(h.exchange_id).where(h.name == term.value)
    else:
        header, value = term.value
        query = select(h.exchange_id).where(
            h.name == header, h.value == value[:HEADER_VALUE_MAX]
        )
    if side is not None:
        query = query.where(h.side == side)
    return query


def _required_text(group: Sequence[Term]) -> Term | None:
    """The group's term when it is a text or body: term every match must satisfy."""
    if len(group) == 1 and group[0].field in ("text", "body") and not group[0].negated:
        return group[0]
    return None


def _fts_expression(tokens: Sequence[str], *, prefix: bool, body_only: bool) -> str:
    # Tokens are letters and digits only (text_tokens), so they need no quoting beyond this.
    phrase = '"' + " ".join(tokens) + '"' + ("*" if prefix else "")
    return f"body : {phrase}" if body_only else phrase


def fts_required_match(query: Query) -> str | None:
    """SQLite: one FTS5 MATCH expression that every match of `query` satisfies (its free
    text and body: terms that are neither negated nor in an OR), or None when it has none.

    FTS5 yields the rows of a MATCH in rowid (= exchange id) order, so a list can be
    read newest first from the text index, joined to exchanges, and stop at a page."""
    terms = _required_texts(query)
    if not terms:
        return None
    return " AND ".join(
        _fts_expression(t.value, prefix=t.op == "word", body_only=t.field == "body")
        for t in terms
    )


def required_text_ids(query: Query) -> Select | None:
    """PostgreSQL: the ids of the exchanges that contain all of `query`'s required text
    (as fts_required_match), or None when it has none.

    The planner cannot estimate a prefix (`word:*`) it has no statistics for and
    assumes 0.5% of rows match, so for a rare word it scans exchanges newest first
    and tests every row (2.6 s on a million). Run with a LIMIT, this tells the caller
    whether the text is rare, and if so which ids have it."""
    terms = _required_texts(query)
    if not terms:
        return None
    tsquery = " & ".join(
        f"({_tsquery(t.value, prefix=t.op == 'word', body_only=t.field == 'body')})"
        for t in terms
    )
    return _tsquery_ids(tsquery)


def _required_texts(query: Query) -> list[Term]:
    return [term for group in query.groups if (term := _required_text(group)) is not None]


def _tsquery(tokens: Sequence[str], *, prefix: bool, body_only: bool) -> str:
    weight = "B" if body_only else ""
    parts = [f"{token}:{weight}" if weight else token for token in tokens]
    if prefix:
        parts[-1] = f"{tokens[-1]}:*{weight}"
    return " <-> ".join(parts)


def _tsquery_ids(tsquery: str) -> Select:
    return (
        select(literal_column("exchange_id"))
        .select_from(text("exchange_search"))
        .where(
            text("doc @@ to_tsquery('simple', :tsq)").bindparams(
                bindparam("tsq", tsquery, unique=True)
            )
        )
    )


def _text_ids(
    tokens: Sequence[str], *, prefix: bool, body_only: bool, dialect: str
) -> Select:
    if dialect == "sqlite":
        match = _fts_expression(tokens, prefix=prefix, body_only=body_only)
        return (
            select(literal_column("rowid"))
            .select_from(text("exchange_fts"))
            .where(
                text("exchange_fts MATCH :fts").bindparams(
                    bindparam("fts", match, unique=True)
                )
            )
        )
    return _tsquery_ids(_tsquery(tokens, prefix=prefix, body_only=body_only))
