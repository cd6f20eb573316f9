"""Traffic rollups: service figures at any volume (issue 19).

Every write batch merges the exchanges it inserted (only those: a batch written twice counts
once) into traffic_rollups (storage.models.TrafficRollup), in its own transaction
(storage.sink.DatabaseSink.write): per minute, service, realm, endpoint and status class, the
requests, errors, client errors, body bytes and a latency sketch (storage.pure.sketch). The
Services pages read these rows instead of the exchanges (service_summaries, service_stats).

- Endpoint: the method and storage.pure.endpoints.template_path of the path (the per-segment
  rule, computable for one record). The cardinality collapse (`/users/alice`, `/users/bob`, ... ->
  `/users/{param}`) depends on what else was seen, so it is applied when reading: infer_templates
  over the window's templates, weighted by their requests, gives the same templates as over the
  raw paths (it templates each segment first, and literal segments survive template_path).
- Concurrent writers (PostgreSQL): the upsert takes the rows' locks in key order (the batch's cells
  are sorted), after capture_blocks' (also sorted), so two writers never wait on each other in a
  cycle; counts add in SQL, and the sketch is merged in Python under the row lock the upsert took
  (RETURNING the stored sketch), so no update is lost. SQLite has one writer at a time and merges
  the sketch in SQL with a function registered on the connection.
- Two levels are written with each batch, minutes and hours, so that a long window reads hour
  rows (a 7-day page: 168 per endpoint and status class, not 10,080). Ageing (the maintenance
  job `rollups`, `maintain`): minute rows older than MINUTES_FOR are deleted (their hours stay),
  hour rows older than HOURS_FOR are merged into day rows (sketches merged), and rows past the
  retention policy's max_age are deleted. A row counts in a window when its start does, so where
  only hours (days) are left a window starts at its first whole hour (day): rolled_start.
- Reading (read_cells): one period length per time range, found through (service, period_seconds,
  period_start) (migration 0017): a 7-day page reads its ~7,000 hour rows, not the ~40,000 minute
  rows of its last 2 days with them.
- An unknown_outcome exchange (an expired pending notice) that its real record replaces is
  taken back out (uncount, in the transaction that deletes it), so the exchange counts once.
- Backfill: exchanges stored before migration 0016 are rolled up by the same job, BACKFILL_CHUNK
  at a time from the cursor job_cursors["rollups_backfill"] up to ["rollups_backfill_end"] (the
  highest id when the migration ran). Until it is done, readers scan the exchanges as before.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, bindparam, or_, select

from storage.models import Exchange, JobCursor, TrafficRollup
from storage.pure.endpoints import template_path
from storage.pure.sketch import Sketch
from storage.store import Store

__all__ = [
    "BACKFILL_CHUNK",
    "HOURS_FOR",
    "MINUTES_FOR",
    "Cell",
    "RollupWriter",
    "Maintained",
    "RolledRow",
    "accumulate",
    "backfill",
    "backfilled",
    "maintain",
    "read_cells",
    "rolled_start",
    "uncount",
    "minute_ceil",
    "minute_floor",
]

MINUTE, HOUR, DAY = 60, 3600, 86400
MINUTES_FOR = dt.timedelta(days=2)
"""Minute rows older than this are merged into hour rows."""
HOURS_FOR = dt.timedelta(days=35)
"""Hour rows older than this are merged into day rows."""
BACKFILL_CHUNK = 20_000
"""Exchanges rolled up per backfill transaction."""
AGE_CHUNK = 5000
"""Rows merged into a coarser period per transaction."""

BACKFILL_CURSOR, BACKFILL_END = "rollups_backfill", "rollups_backfill_end"
KEY_COLUMNS = ("period_start", "service", "realm", "method", "template", "status_class", "period_seconds")
VALUE_COLUMNS = ("requests", "errors", "client_errors", "request_bytes", "response_bytes", "durations", "example_path")
SOURCE_COLUMNS = (
    "captured_at", "service", "realm", "method", "path", "status", "duration_ms", "error_kind",
    "request_body_size", "response_body_size",
)  # fmt: skip
"""The exchange columns a cell is made of, in accumulate's argument order."""

Key = tuple[int, str, str, str, str, int, int]


@dataclass(slots=True)
class Cell:
    """One rollup row's values, as they are merged."""

    requests: int = 0
    errors: int = 0
    client_errors: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    sketch: Sketch = field(default_factory=Sketch)
    example_path: str = ""

    def add(self, other: Cell) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.client_errors += other.client_errors
        self.request_bytes += other.request_bytes
        self.response_bytes += other.response_bytes
        self.sketch.merge(other.sketch)
        if not self.example_path:
            self.example_path = other.example_path


def status_class(status: int | None) -> int:
    return status // 100 if status is not None and 100 <= status <= 599 else 0


@functools.lru_cache(maxsize=4096)
def _sqlite_minute(prefix: str) -> int:
    """'YYYY-MM-DD HH:MM' (SQLite's stored timestamps, UTC) -> epoch seconds."""
    return calendar.timegm(time.strptime(prefix, "%Y-%m-%d %H:%M"))


def epoch_of(captured_at: dt.datetime | str | float) -> float:
    if isinstance(captured_at, dt.datetime):
        value = captured_at if captured_at.tzinfo else captured_at.replace(tzinfo=dt.UTC)
        return value.timestamp()
    if isinstance(captured_at, str):
        return _sqlite_minute(captured_at[:16]) + float(captured_at[17:] or 0)
    return float(captured_at)


def minute_of(captured_at: dt.datetime | str | float) -> int:
    if isinstance(captured_at, str):  # the write path's SQLite text: no float parsing needed
        return _sqlite_minute(captured_at[:16])
    return int(epoch_of(captured_at) // MINUTE * MINUTE)


def accumulate(
    cells: dict[Key, Cell],
    rows: Iterable[Sequence[Any]],
    *,
    period: int = MINUTE,
) -> dict[Key, Cell]:
    """Add exchange rows (SOURCE_COLUMNS order) into `cells`; rows without a service are skipped."""
    templates: dict[str, str] = {}
    for captured_at, service, realm, method, path, status, duration_ms, error_kind, req_size, resp_size in rows:
        if service is None:
            continue
        template = templates.get(path)
        if template is None:
            template = templates[path] = template_path(path)
        start = minute_of(captured_at) if period == MINUTE else int(epoch_of(captured_at) // period * period)
        key = (start, service, realm or "", method, template, status_class(status), period)
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = Cell(example_path=path)
        cell.requests += 1
        if error_kind is not None or (status is not None and status >= 500):
            cell.errors += 1
        elif status is not None and 400 <= status < 500:
            cell.client_errors += 1
        cell.request_bytes += req_size or 0
        cell.response_bytes += resp_size or 0
        if duration_ms is not None:
            cell.sketch.add(duration_ms)
    return cells


def with_hours(cells: dict[Key, Cell]) -> dict[Key, Cell]:
    """Minute cells and, merged from them, their hour cells: both levels are written with each
    batch, so a long window reads hour rows (a 7-day page: 168 per endpoint, not 10,080)."""
    hours: dict[Key, Cell] = {}
    for key, cell in cells.items():
        if key[6] != MINUTE:
            continue
        hour_key = (key[0] // HOUR * HOUR, *key[1:6], HOUR)
        hour = hours.get(hour_key)
        if hour is None:
            hours[hour_key] = hour = Cell(example_path=cell.example_path)
        hour.add(cell)
    return {**cells, **hours}


def _merge_sketches(stored: bytes | None, added: bytes | None) -> bytes:
    sketch = Sketch.from_bytes(stored or b"")
    sketch.merge(Sketch.from_bytes(added or b""))
    return sketch.to_bytes()


class RollupWriter:
    """Merges cells into traffic_rollups inside the caller's transaction (the dialect's SQL, once)."""

    def __init__(self, dialect: str) -> None:
        self.postgres = dialect == "postgresql"
        names = ", ".join(KEY_COLUMNS + VALUE_COLUMNS)
        added = ", ".join(
            f"{name} = traffic_rollups.{name} + excluded.{name}" for name in VALUE_COLUMNS[:5]
        )
        conflict = ", ".join(KEY_COLUMNS)
        if self.postgres:
            types = ("bigint", "text", "text", "text", "text", "smallint", "integer",
                     "bigint", "bigint", "bigint", "bigint", "bigint", "bytea", "text")  # fmt: skip
            arrays = ", ".join(f"%s::{kind}[]" for kind in types)
            # Rows in key order: the row locks are taken in that order by every writer.
            self._upsert = (
                f"INSERT INTO traffic_rollups ({names}) SELECT * FROM unnest({arrays}) "
                f"ON CONFLICT ({conflict}) DO UPDATE SET {added} "
                f"RETURNING {conflict}, durations, xmax <> 0"
            )
            key_arrays = ", ".join(f"%s::{kind}[]" for kind in types[:7])
            matches = " AND ".join(f"t.{name} = u.{name}" for name in KEY_COLUMNS)
            self._set_sketches = (
                f"UPDATE traffic_rollups t SET durations = u.durations FROM unnest({key_arrays}, %s::bytea[]) "
                f"AS u({conflict}, durations) WHERE {matches}"
            )
        else:
            marks = ", ".join("?" * len(KEY_COLUMNS + VALUE_COLUMNS))
            self._upsert = (
                f"INSERT INTO traffic_rollups ({names}) VALUES ({marks}) ON CONFLICT ({conflict}) DO UPDATE SET "
                f"{added}, durations = passageway_sketch_merge(traffic_rollups.durations, excluded.durations)"
            )

    def merge(self, conn: Connection, cells: Mapping[Key, Cell]) -> None:
        if not cells:
            return
        keys = sorted(cells)
        rows = [
            (*key, c.requests, c.errors, c.client_errors, c.request_bytes, c.response_bytes, c.sketch.to_bytes(),
             c.example_path)
            for key in keys
            for c in (cells[key],)
        ]  # fmt: skip
        if not self.postgres:
            dbapi = conn.connection.driver_connection
            dbapi.create_function("passageway_sketch_merge", 2, _merge_sketches, deterministic=True)
            conn.exec_driver_sql(self._upsert, rows)
            return
        columns = tuple(list(column) for column in zip(*rows, strict=True))
        stored = conn.exec_driver_sql(self._upsert, columns).all()
        # Rows that existed kept their sketch (the upsert added the counts): merge ours in, under
        # the lock the upsert took.
        merged = [(*row[:7], _merge_sketches(row[7], cells[tuple(row[:7])].sketch.to_bytes()))
                  for row in stored if row[8]]  # fmt: skip
        if merged:
            merged.sort()
            conn.exec_driver_sql(self._set_sketches, tuple(list(column) for column in zip(*merged, strict=True)))


def uncount(conn: Connection, exchanges: Sequence[Sequence[Any]]) -> int:
    """Take exchanges that the caller's transaction deleted back out of the rollups; rows of (id,
    *SOURCE_COLUMNS). An unknown_outcome exchange replaced by its real record (storage.sink) must
    count once, as the real one. Its counts are subtracted from each row that counted it (its
    minute, its hour or, once aged, its day: rows of one level never overlap), and a row left with
    no request is deleted. A sketch cannot forget a value, so only exchanges without a duration
    (as unknown_outcome ones are) are taken out; so are only those the rollups counted (not the
    part of the exchanges stored before migration 0016 that the backfill has yet to reach).
    Returns the exchanges taken out."""
    position, end = _cursor(conn, BACKFILL_CURSOR), _cursor(conn, BACKFILL_END)
    duration = 1 + SOURCE_COLUMNS.index("duration_ms")
    taken = [
        row[1:]
        for row in exchanges
        if row[duration] is None and (position is None or end is None or row[0] > end or row[0] <= position)
    ]  # fmt: skip
    cells: dict[Key, Cell] = {}
    for period in (MINUTE, HOUR, DAY):
        accumulate(cells, taken, period=period)
    if not cells:
        return 0
    t = TrafficRollup.__table__
    match = and_(*(t.c[name] == bindparam(f"key_{name}") for name in KEY_COLUMNS))
    keys = [{f"key_{name}": value for name, value in zip(KEY_COLUMNS, key, strict=True)} for key in sorted(cells)]
    subtract = t.update().where(match).values(
        {name: t.c[name] - bindparam(f"less_{name}") for name in VALUE_COLUMNS[:5]}
    )  # fmt: skip
    conn.execute(subtract, [
        {**names, **{f"less_{name}": getattr(cells[key], name) for name in VALUE_COLUMNS[:5]}}
        for key, names in zip(sorted(cells), keys, strict=True)
    ])  # fmt: skip
    conn.execute(t.delete().where(match, t.c.requests <= 0), keys)
    return len(taken)


# -- maintenance: backfill, ageing, retention --------------------------------------------------


def _cursor(conn: Connection, job: str) -> int | None:
    return conn.execute(select(JobCursor.position).where(JobCursor.job == job)).scalar()


def backfilled(store: Store) -> bool:
    """Whether every exchange stored before the rollups existed has been rolled up."""
    if store in _backfilled:
        return True
    with store.connect() as conn:
        position, end = _cursor(conn, BACKFILL_CURSOR), _cursor(conn, BACKFILL_END)
    done = position is None or end is None or position >= end
    if done:
        _backfilled.add(store)
    return done


_backfilled: weakref.WeakSet[Store] = weakref.WeakSet()  # once done, done for good


@dataclass(frozen=True, slots=True)
class Maintained:
    """What one `maintain` call did."""

    backfilled: int = 0
    """Exchanges rolled up by the backfill."""
    aged: int = 0
    """Minute rows deleted past MINUTES_FOR, and hour rows merged into days past HOURS_FOR."""
    pruned: int = 0
    """Rows deleted past the retention policy's max_age."""
    more: bool = False
    """Work is left (a backlog): call again at once."""


def backfill(store: Store, *, chunk: int = BACKFILL_CHUNK) -> tuple[int, bool]:
    """Roll up the next `chunk` ids of the exchanges stored before migration 0016; (exchanges
    rolled up, more to do). The cursor moves in the transaction that merges them (on PostgreSQL
    the cursor row is locked first, so two maintenance processes take turns)."""
    writer = RollupWriter(store.dialect)
    with store.begin() as conn:
        lock = " FOR UPDATE" if store.dialect == "postgresql" else ""
        found = conn.exec_driver_sql(
            f"SELECT position FROM job_cursors WHERE job = '{BACKFILL_CURSOR}'{lock}"
        ).scalar()
        end = _cursor(conn, BACKFILL_END)
        if found is None or end is None or found >= end:
            return 0, False
        upto = min(found + chunk, end)
        columns = [getattr(Exchange, name) for name in SOURCE_COLUMNS]
        rows = conn.execute(select(*columns).where(and_(Exchange.id > found, Exchange.id <= upto))).all()
        writer.merge(conn, with_hours(accumulate({}, rows)))
        conn.execute(
            JobCursor.__table__.update()
            .where(JobCursor.job == BACKFILL_CURSOR)
            .values(position=upto, updated_at=dt.datetime.now(dt.UTC))
        )
    return len(rows), upto < end


def _age(store: Store, *, fine: int, coarse: int, older_than: int, limit: int) -> int:
    """Merge up to `limit` rows of period `fine` that started before `older_than` into rows of
    period `coarse`; the number merged. The rows are claimed by deleting them (SKIP LOCKED on
    PostgreSQL: two maintenance processes never merge one row twice)."""
    names = ", ".join(KEY_COLUMNS + VALUE_COLUMNS)
    if store.dialect == "postgresql":
        claim = (
            f"DELETE FROM traffic_rollups WHERE ctid IN (SELECT ctid FROM traffic_rollups WHERE period_seconds = %s "
            f"AND period_start < %s ORDER BY period_start LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING {names}"
        )
    else:
        claim = (
            f"DELETE FROM traffic_rollups WHERE rowid IN (SELECT rowid FROM traffic_rollups WHERE period_seconds = ? "
            f"AND period_start < ? ORDER BY period_start LIMIT ?) RETURNING {names}"
        )
    writer = RollupWriter(store.dialect)
    with store.begin() as conn:
        claimed = conn.exec_driver_sql(claim, (fine, older_than, limit)).all()
        cells: dict[Key, Cell] = {}
        for row in claimed:
            key = (row[0] // coarse * coarse, row[1], row[2], row[3], row[4], row[5], coarse)
            cell = Cell(row[7], row[8], row[9], row[10], row[11], Sketch.from_bytes(row[12]), row[13])
            mine = cells.get(key)
            if mine is None:
                cells[key] = cell
            else:
                mine.add(cell)
        writer.merge(conn, cells)
    return len(claimed)


def minutes_cutoff(now: float) -> int:
    """Minute rows that start before this (a whole hour) are deleted: their hours stay."""
    return int((now - MINUTES_FOR.total_seconds()) // HOUR * HOUR)


def maintain(store: Store, *, max_age: float | None = None, now: float | None = None) -> Maintained:
    """One run of the `rollups` maintenance job: a backfill chunk; minute rows past MINUTES_FOR
    deleted (their hour rows were written with them) and a chunk of hour rows past HOURS_FOR merged
    into day rows; the rows past `max_age` (seconds; None keeps them) deleted."""
    now = time.time() if now is None else now
    filled, more = backfill(store)
    table = TrafficRollup.__table__
    with store.begin() as conn:
        aged = conn.execute(
            table.delete().where(table.c.period_seconds == MINUTE, table.c.period_start < minutes_cutoff(now))
        ).rowcount
    cutoff = int((now - HOURS_FOR.total_seconds()) // DAY * DAY)  # whole days only
    merged = _age(store, fine=HOUR, coarse=DAY, older_than=cutoff, limit=AGE_CHUNK)
    aged += merged
    more = more or merged == AGE_CHUNK
    pruned = 0
    if max_age is not None:
        with store.begin() as conn:
            pruned = conn.execute(
                table.delete().where(table.c.period_start + table.c.period_seconds <= int(now - max_age))
            ).rowcount
    return Maintained(filled, aged, pruned, more)


# -- reading ----------------------------------------------------------------------------------


class RolledRow(NamedTuple):
    """One rollup row as the readers need it. The sketch stays serialised: a long window's rows are
    unpacked once each and summed (storage.pure.sketch.SketchSum), never built one by one."""

    period_start: int
    service: str
    method: str
    template: str
    requests: int
    errors: int
    client_errors: int
    durations: bytes
    example_path: str

    @property
    def sketch(self) -> Sketch:
        return Sketch.from_bytes(self.durations)


def plan_ranges(since: int, until: int, *, coarse: bool, now: float | None = None) -> list[tuple[int, int, bool]]:
    """[since, until) (whole minutes) as (start, end, hours) ranges: hour (and day) rows for the
    whole hours in the middle when `coarse` or where minute rows are gone (MINUTES_FOR), minute
    rows for the rest."""
    now = time.time() if now is None else now
    first, last = -(-since // HOUR) * HOUR, until // HOUR * HOUR
    split = last if coarse else max(first, min(last, minutes_cutoff(now)))
    if first >= split:
        return [(since, until, False)]
    ranges = [(since, first, False), (first, split, True), (split, until, False)]
    return [(start, end, hours) for start, end, hours in ranges if start < end]


def read_cells(
    store: Store, *, since: int, until: int, service: str | None = None, realm: str | None = None,
    coarse: bool = False, now: float | None = None,
) -> list[RolledRow]:  # fmt: skip
    """The rollup rows of [since, until) (epoch seconds, whole minutes; see plan_ranges), realms
    merged unless `realm` ("" for none) is given."""
    t = TrafficRollup.__table__
    ranges = []
    for start, end, hours in plan_ranges(since, until, coarse=coarse, now=now):
        period = t.c.period_seconds.in_((HOUR, DAY)) if hours else t.c.period_seconds == MINUTE
        ranges.append(and_(t.c.period_start >= start, t.c.period_start < end, period))
    if not ranges:
        return []
    query = select(
        t.c.period_start, t.c.service, t.c.method, t.c.template, t.c.requests, t.c.errors, t.c.client_errors,
        t.c.durations, t.c.example_path,
    ).where(or_(*ranges))  # fmt: skip
    if service is not None:
        query = query.where(t.c.service == service)
    if realm is not None:
        query = query.where(t.c.realm == realm)
    with store.connect() as conn:
        return [RolledRow._make(row) for row in conn.execute(query).all()]


def rolled_start(since: dt.datetime, *, now: float | None = None) -> int:
    """Where a window starting at `since` starts in the rollups: the next minute, or, where the rows
    have been aged (older than MINUTES_FOR, HOURS_FOR), the next hour or day: a row counts in a
    window when all of it is inside, and the part of the window before its first whole row is left
    out (exact figures are kept for the partial minute only)."""
    now = time.time() if now is None else now
    value = since.timestamp()
    if value < (now - HOURS_FOR.total_seconds()) // DAY * DAY:
        return int(-(-value // DAY) * DAY)
    if value < minutes_cutoff(now):
        return int(-(-value // HOUR) * HOUR)
    return minute_ceil(since)


def minute_floor(moment: dt.datetime) -> int:
    return int(moment.timestamp() // MINUTE * MINUTE)


def minute_ceil(moment: dt.datetime) -> int:
    value = moment.timestamp()
    return int(-(-value // MINUTE) * MINUTE)


