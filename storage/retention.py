"""Retention: keep the store within a maximum age, a maximum number of exchanges and a maximum
size of stored bodies, by pruning the oldest exchanges (lowest ids) in small batches.

One pass (prune) fixes its targets at the start (pass_limits), then runs batches until they
are met, pausing between batches so the capture writer and the indexer get the database's
locks in between. Each batch (prune_batch) is one short transaction that deletes up to
`batch_size` exchanges and everything derived from them: their WebSocket messages and contract
violations, their search rows (exchange_headers, the full-text row, or their search_pending
entry when they were never indexed), and the bodies no remaining exchange references. Shares are never
touched: a share keeps its own redacted snapshot (storage.shares), bodies included, and
references no row of `bodies`, so its link keeps working after its exchanges are pruned.
Capture blocks are left as they are (storage.models.CaptureBlock: wider than needed, never wrong).

Full text on SQLite is a contentless FTS5 table, and SQLite before 3.43 can only remove a row
from one by giving the exact text that was indexed ('delete' command). The batch rebuilds it
with the indexer's own function (storage.indexer._documents) from the stored rows, before
deleting them. Exchanges still queued in search_pending were never indexed: their queue row
is deleted instead (an FTS 'delete' of text that was never inserted would corrupt the index).

Concurrency. SQLite: the batch's writes run under BEGIN IMMEDIATE (the one write lock, waited
for up to the store's busy_timeout); the reads and the documents' decoding happen before it,
so the lock is held only for the deletes. PostgreSQL: one pruner per database at a time
(pg_try_advisory_lock; a second one skips its pass). The capture writer inserts a body with
ON CONFLICT DO NOTHING, which takes no lock on a body that is already there, and only then its
exchange: a pruner that deleted that body as unreferenced before the exchange committed would
leave the exchange without its body. So the batch takes LOCK TABLE bodies IN SHARE ROW EXCLUSIVE
MODE just before deleting bodies: it waits for the writers between those two inserts to commit
(their exchanges are then visible to the NOT EXISTS check) and holds new body inserts back until
the batch commits, a few milliseconds later.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, delete, exists, func, or_, select

from storage.indexer import _documents, _header
from storage.models import Body, ContractViolation, Exchange, SearchPending, WebSocketMessage
from storage.pure.retention_policy import RetentionPolicy
from storage.store import Store
from storage.test_runs import prune_runs

__all__ = [
    "BATCH_SIZE",
    "Candidate",
    "PassLimits",
    "Pruned",
    "RetentionPolicy",
    "RetentionTotals",
    "choose",
    "pass_limits",
    "prune",
    "prune_batch",
]

BATCH_SIZE = 500
"""Exchanges per transaction: on SQLite about 10-30 ms of write lock, and on PostgreSQL a
short enough hold on the bodies table lock."""
PAUSE = 0.05
"""Seconds between two batches of a pass: the capture writer's flush interval."""
_RETENTION_LOCK = 0x70727565  # "prue": PostgreSQL advisory lock key, one pruner per database


@dataclass(frozen=True, slots=True)
class PassLimits:
    """One pass's targets, fixed when it starts (what arrives meanwhile waits for the next pass)."""

    cutoff: dt.datetime | None = None
    """Exchanges captured before this are past the maximum age."""
    last_id_over_count: int | None = None
    """Exchanges with this id or lower are beyond the newest max_exchanges."""
    excess_body_bytes: int = 0
    """Stored bytes of bodies over max_body_bytes (0: within it)."""

    def expired(self, candidate: Candidate) -> bool:
        """Past the age or count limit (bodies aside)."""
        return (self.cutoff is not None and candidate.captured_at < self.cutoff) or (
            self.last_id_over_count is not None and candidate.id <= self.last_id_over_count
        )

    @property
    def met(self) -> bool:
        return self.cutoff is None and self.last_id_over_count is None and self.excess_body_bytes <= 0


@dataclass(frozen=True, slots=True)
class Candidate:
    id: int
    captured_at: dt.datetime
    bodies: tuple[str, ...]
    """SHA-256 (hex) of its request and response bodies, those it has."""


@dataclass(slots=True)
class Pruned:
    """What a batch or a pass removed (or, dry run, would remove)."""

    exchanges: int = 0
    websocket_messages: int = 0
    bodies: int = 0
    body_bytes: int = 0
    """Stored (compressed) bytes of the bodies removed."""
    transactions: int = 0
    newest_captured_at: dt.datetime | None = None
    """Capture time of the newest exchange removed."""
    skipped: bool = False
    """PostgreSQL: another pruner held the lock, so this pass did nothing."""
    test_runs: int = 0
    """API test runs past the maximum age (storage.test_runs), pruned at the end of a pass."""

    def add(self, other: Pruned) -> None:
        self.exchanges += other.exchanges
        self.websocket_messages += other.websocket_messages
        self.bodies += other.bodies
        self.body_bytes += other.body_bytes
        self.transactions += other.transactions
        self.test_runs += other.test_runs
        if other.newest_captured_at is not None and (
            self.newest_captured_at is None or other.newest_captured_at > self.newest_captured_at
        ):
            self.newest_captured_at = other.newest_captured_at

    def summary(self, *, dry_run: bool = False) -> str:
        """One line for a log or a terminal."""
        if self.skipped:
            return "another pruner is running on this store: nothing done"
        verb = "would prune" if dry_run else "pruned"
        runs = f" and {self.test_runs} test runs" if self.test_runs else ""
        if not self.exchanges:
            if self.test_runs:
                return f"{verb} {self.test_runs} test runs"
            return f"{verb} nothing: the store is within its retention limits"
        newest = self.newest_captured_at.isoformat(timespec="seconds") if self.newest_captured_at else "?"
        about = "about " if dry_run else ""
        return (
            f"{verb} {self.exchanges} exchanges captured up to {newest} ({about}{self.body_bytes} bytes of bodies "
            f"in {about}{self.bodies} bodies, {self.websocket_messages} websocket messages){runs}"
        )


@dataclass(slots=True)
class RetentionTotals:
    """Counters of a long-running pruner, for /api/metrics."""

    exchanges: int = 0
    bodies: int = 0
    body_bytes: int = 0
    websocket_messages: int = 0
    failures: int = 0
    last_run: float | None = None
    """Epoch seconds when the last pass ended (successfully)."""

    def record(self, pruned: Pruned, *, at: float) -> None:
        self.exchanges += pruned.exchanges
        self.bodies += pruned.bodies
        self.body_bytes += pruned.body_bytes
        self.websocket_messages += pruned.websocket_messages
        self.last_run = at


def choose(
    candidates: Sequence[Candidate], limits: PassLimits, *, body_sizes: Mapping[str, int], kept_elsewhere: set[str]
) -> list[Candidate]:
    """Which of `candidates` (the oldest exchanges, ascending ids) to prune: every one past the age
    or count limit and then, while the bodies are over their byte limit, the oldest of the others
    until the bodies their removal leaves unreferenced cover the excess.

    body_sizes: stored bytes of each body; kept_elsewhere: bodies that exchanges outside
    `candidates` reference (never freed by this batch)."""
    chosen = {c.id for c in candidates if limits.expired(c)}
    if limits.excess_body_bytes > 0:
        references = Counter(sha for c in candidates for sha in c.bodies)
        released: Counter[str] = Counter()
        freed = 0

        def release(candidate: Candidate) -> None:
            nonlocal freed
            for sha in candidate.bodies:
                released[sha] += 1
                if released[sha] == references[sha] and sha not in kept_elsewhere:
                    freed += body_sizes.get(sha, 0)

        for candidate in candidates:
            if candidate.id in chosen:
                release(candidate)
        for candidate in candidates:
            if freed >= limits.excess_body_bytes:
                break
            if candidate.id not in chosen:
                chosen.add(candidate.id)
                release(candidate)
    return [c for c in candidates if c.id in chosen]


def pass_limits(store: Store, policy: RetentionPolicy, *, now: dt.datetime | None = None) -> PassLimits:
    """The targets of a pass starting now.

    The bodies' total is summed at each pass (one scan of the bodies table's row headers:
    length() reads neither SQLite's overflow pages nor PostgreSQL's TOAST) rather than kept as
    a running total, which every writer of every proxy would have to maintain in its batch."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(seconds=policy.max_age) if policy.max_age is not None else None
    last_id = excess = None
    with store.connect() as conn:
        if policy.max_exchanges is not None:
            last_id = conn.execute(
                select(Exchange.id).order_by(Exchange.id.desc()).offset(policy.max_exchanges).limit(1)
            ).scalar()
        if policy.max_body_bytes is not None:
            total = conn.execute(select(func.coalesce(func.sum(func.length(Body.data)), 0))).scalar_one()
            excess = int(total) - policy.max_body_bytes
    return PassLimits(cutoff=cutoff, last_id_over_count=last_id, excess_body_bytes=max(excess or 0, 0))


def prune(
    store: Store,
    policy: RetentionPolicy,
    *,
    batch_size: int = BATCH_SIZE,
    pause: float = PAUSE,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    now: dt.datetime | None = None,
) -> Pruned:
    """One pass: batches until the store is within `policy` (as it stood when the pass began),
    `pause` seconds apart; `stop` ends it between two batches. dry_run: count what would go,
    change nothing (body figures are then an estimate: bodies shared between batches)."""
    total = Pruned()
    if not policy.enabled:
        return total
    with store.connect() as lock_conn:
        if store.dialect == "postgresql" and not dry_run:
            locked = lock_conn.exec_driver_sql("SELECT pg_try_advisory_lock(%s)", (_RETENTION_LOCK,)).scalar()
            lock_conn.commit()
            if not locked:
                total.skipped = True
                return total
        try:
            limits = pass_limits(store, policy, now=now)
            after_id = 0
            while not limits.met:
                pruned, after_id = prune_batch(store, limits, batch_size=batch_size, after_id=after_id, dry_run=dry_run)
                total.add(pruned)
                if after_id is None:
                    break
                limits = PassLimits(limits.cutoff, limits.last_id_over_count, limits.excess_body_bytes - pruned.body_bytes)
                if stop is None:
                    time.sleep(pause)
                elif stop.wait(pause):
                    break
            # Test runs follow the exchanges' age limit: a run's steps link to exchanges of its time.
            if limits.cutoff is not None and not (stop is not None and stop.is_set()):
                total.test_runs = prune_runs(store, older_than=limits.cutoff, dry_run=dry_run)
        finally:
            if store.dialect == "postgresql" and not dry_run:
                lock_conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (_RETENTION_LOCK,))
                lock_conn.commit()
    return total


def prune_batch(
    store: Store, limits: PassLimits, *, batch_size: int = BATCH_SIZE, after_id: int = 0, dry_run: bool = False
) -> tuple[Pruned, int | None]:
    """Prune one batch of at most `batch_size` exchanges with ids above `after_id`, in one
    transaction. Returns what went and the id to continue after, or None when no exchange
    above `after_id` is over the limits."""
    with store.connect() as conn:
        candidates = _candidates(conn, limits, batch_size, after_id)
        if not candidates:
            return Pruned(), None
        window = [c.id for c in candidates]
        shas = sorted({sha for c in candidates for sha in c.bodies})
        body_sizes, kept_elsewhere = _body_references(conn, shas, window, after_id if dry_run else None)
        chosen = choose(candidates, limits, body_sizes=body_sizes, kept_elsewhere=kept_elsewhere)
        if not chosen:
            return Pruned(), window[-1]
        if dry_run:
            return _estimate(conn, chosen, candidates, body_sizes, kept_elsewhere), window[-1]
        if store.dialect == "postgresql":
            pruned = _delete_postgresql(conn, [c.id for c in chosen])
        else:
            pruned = _delete_sqlite(conn, [c.id for c in chosen])
    return pruned, window[-1]


def _candidates(conn: Connection, limits: PassLimits, batch_size: int, after_id: int) -> list[Candidate]:
    """The oldest exchanges above `after_id`: any of them while bodies are over their limit
    (choose() decides how many), else only those past the age or count limit."""
    query = (
        select(Exchange.id, Exchange.captured_at, Exchange.request_body_sha256, Exchange.response_body_sha256)
        .where(Exchange.id > after_id)
        .order_by(Exchange.id)
        .limit(batch_size)
    )
    if limits.excess_body_bytes <= 0:
        expired = []
        if limits.cutoff is not None:
            expired.append(Exchange.captured_at < limits.cutoff)
        if limits.last_id_over_count is not None:
            expired.append(Exchange.id <= limits.last_id_over_count)
        if not expired:
            return []
        query = query.where(or_(*expired))
    return [
        Candidate(id_, captured_at, tuple(sha for sha in (request, response) if sha is not None))
        for id_, captured_at, request, response in conn.execute(query)
    ]


def _body_references(
    conn: Connection, shas: Sequence[str], window: Sequence[int], floor: int | None
) -> tuple[dict[str, int], set[str]]:
    """Stored size of each body, and those referenced by an exchange outside `window`
    (with an id above `floor`, when given: a dry run counts lower ones as gone)."""
    if not shas:
        return {}, set()

    def referenced(column):  # type: ignore[no-untyped-def]
        clause = exists().where(column == Body.sha256, Exchange.id.not_in(window))
        return clause.where(Exchange.id > floor) if floor is not None else clause

    sizes: dict[str, int] = {}
    kept: set[str] = set()
    query = select(
        Body.sha256,
        func.length(Body.data),
        or_(referenced(Exchange.request_body_sha256), referenced(Exchange.response_body_sha256)),
    ).where(Body.sha256.in_(shas))
    for sha, size, elsewhere in conn.execute(query):
        sizes[sha] = size
        if elsewhere:
            kept.add(sha)
    return sizes, kept


def _estimate(
    conn: Connection,
    chosen: Sequence[Candidate],
    candidates: Sequence[Candidate],
    body_sizes: Mapping[str, int],
    kept_elsewhere: set[str],
) -> Pruned:
    chosen_ids = {c.id for c in chosen}
    kept = kept_elsewhere | {sha for c in candidates if c.id not in chosen_ids for sha in c.bodies}
    freed = {sha for c in chosen for sha in c.bodies} - kept
    uuids = conn.execute(select(Exchange.uuid).where(Exchange.id.in_(chosen_ids))).scalars().all()
    messages = conn.execute(
        select(func.count()).select_from(WebSocketMessage).where(WebSocketMessage.exchange_uuid.in_(uuids))
    ).scalar_one()
    return Pruned(
        exchanges=len(chosen),
        websocket_messages=messages,
        bodies=len(freed),
        body_bytes=sum(body_sizes.get(sha, 0) for sha in freed),
        newest_captured_at=max(c.captured_at for c in chosen),
    )


_SQLITE_FTS_DELETE = "INSERT INTO exchange_fts (exchange_fts, rowid, url, body) VALUES ('delete', ?, ?, ?)"
_SQLITE_HEADERS_DELETE = "DELETE FROM exchange_headers WHERE name = ? AND value = ? AND side = ? AND exchange_id = ?"
_PG_HEADERS_DELETE = (
    "DELETE FROM exchange_headers h USING unnest(%s::text[], %s::text[], %s::smallint[], %s::bigint[]) "
    "AS k(name, value, side, exchange_id) "
    "WHERE h.name = k.name AND h.value = k.value AND h.side = k.side AND h.exchange_id = k.exchange_id"
)


def delete_exchanges(
    conn: Connection, ids: list[int], *, on_deleted: Callable[[Connection, list[int]], None] | None = None
) -> Pruned:
    """Delete these exchanges and what derives from them, as a retention batch does (its own
    transaction on `conn`). storage.sink uses it when a finished record replaces the
    unknown_outcome exchange an expired pending notice became. `on_deleted` runs in that
    transaction with the ids it deleted (some may have gone already)."""
    if conn.dialect.name == "postgresql":
        return _delete_postgresql(conn, ids, on_deleted)
    return _delete_sqlite(conn, ids, on_deleted)


def _delete_sqlite(
    conn: Connection, ids: list[int], on_deleted: Callable[[Connection, list[int]], None] | None = None
) -> Pruned:
    # The indexed text, rebuilt before the lock (reads and decoding): rows and bodies are
    # immutable, and the DELETE .. RETURNING below says which of these rows were still there.
    documents = {doc[0]: doc for doc in _documents(conn, ids)}
    conn.commit()  # end the read transaction the reads began (pysqlite: no BEGIN was sent)
    conn.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        deleted = _delete_exchanges(conn, ids, with_headers=False)
        deleted_ids = [row[0] for row in deleted]
        unindexed = set(
            conn.execute(
                delete(SearchPending).where(SearchPending.exchange_id.in_(deleted_ids)).returning(SearchPending.exchange_id)
            ).scalars()
        )
        indexed = [documents[id_] for id_ in deleted_ids if id_ not in unindexed and id_ in documents]
        if indexed:
            conn.exec_driver_sql(_SQLITE_FTS_DELETE, [(id_, url, body) for id_, _, url, body in indexed])
            headers = [(name, value, side, id_) for id_, pairs, _, _ in indexed for name, value, side in pairs]
            if headers:
                conn.exec_driver_sql(_SQLITE_HEADERS_DELETE, headers)
        pruned = _delete_dependents(conn, deleted, lock_bodies=False)
        if on_deleted is not None:
            on_deleted(conn, deleted_ids)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return pruned


def _delete_postgresql(
    conn: Connection, ids: list[int], on_deleted: Callable[[Connection, list[int]], None] | None = None
) -> Pruned:
    conn.commit()  # the candidates' read transaction
    with conn.begin():
        deleted = _delete_exchanges(conn, ids, with_headers=True)
        deleted_ids = [row[0] for row in deleted]
        # Waits for an indexer that claimed one of these (FOR UPDATE SKIP LOCKED) to commit, so
        # the exchange_search and exchange_headers rows it wrote are there to delete next.
        conn.execute(delete(SearchPending).where(SearchPending.exchange_id.in_(deleted_ids)))
        conn.exec_driver_sql("DELETE FROM exchange_search WHERE exchange_id = ANY(%s)", (deleted_ids,))
        headers = list(_header_keys(deleted))
        if headers:
            conn.exec_driver_sql(_PG_HEADERS_DELETE, tuple(list(column) for column in zip(*headers, strict=True)))
        pruned = _delete_dependents(conn, deleted, lock_bodies=True)
        if on_deleted is not None:
            on_deleted(conn, deleted_ids)
    return pruned


def _delete_exchanges(conn: Connection, ids: list[int], *, with_headers: bool) -> list[tuple]:
    """Delete the exchanges still there among `ids`; rows of (id, uuid, captured_at, request
    sha, response sha[, request headers, response headers])."""
    columns = [Exchange.id, Exchange.uuid, Exchange.captured_at, Exchange.request_body_sha256, Exchange.response_body_sha256]
    if with_headers:
        columns += [Exchange.request_headers, Exchange.response_headers]
    return [tuple(row) for row in conn.execute(delete(Exchange).where(Exchange.id.in_(ids)).returning(*columns))]


def _header_keys(deleted: Iterable[tuple]) -> Iterable[tuple[str, str, int, int]]:
    """The exchange_headers primary keys the indexer wrote for these rows (storage.indexer._header):
    deleted by key, as exchange_headers has no index on exchange_id alone."""
    for id_, *_, request_headers, response_headers in deleted:
        keys = {_header(name, value, 0) for name, value in _json_list(request_headers)}
        keys.update(_header(name, value, 1) for name, value in _json_list(response_headers))
        for name, value, side in keys:
            yield name, value, side, id_


def _json_list(value: object) -> list:
    if value is None:
        return []
    return json.loads(value) if isinstance(value, str) else list(value)  # type: ignore[arg-type]


def _delete_dependents(conn: Connection, deleted: list[tuple], *, lock_bodies: bool) -> Pruned:
    """Delete the WebSocket messages and contract violations of the deleted exchanges, and their
    bodies that no exchange references."""
    if not deleted:
        return Pruned(transactions=1)
    uuids = [row[1] for row in deleted]
    conn.execute(delete(ContractViolation).where(ContractViolation.exchange_id.in_([row[0] for row in deleted])))
    messages = conn.execute(delete(WebSocketMessage).where(WebSocketMessage.exchange_uuid.in_(uuids))).rowcount
    shas = sorted({sha for row in deleted for sha in (row[3], row[4]) if sha is not None})
    freed: list[int] = []
    if shas:
        if lock_bodies:
            conn.exec_driver_sql("LOCK TABLE bodies IN SHARE ROW EXCLUSIVE MODE")
        freed = list(
            conn.execute(
                delete(Body)
                .where(
                    Body.sha256.in_(shas),
                    ~exists().where(Exchange.request_body_sha256 == Body.sha256),
                    ~exists().where(Exchange.response_body_sha256 == Body.sha256),
                )
                .returning(func.length(Body.data))
            ).scalars()
        )
    return Pruned(
        exchanges=len(deleted),
        websocket_messages=max(messages, 0),
        bodies=len(freed),
        body_bytes=sum(freed),
        transactions=1,
        newest_captured_at=max(row[2] for row in deleted),
    )
