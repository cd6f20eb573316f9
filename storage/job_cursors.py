"""How far an incremental job may read the exchanges by id: the settled position.

Jobs that derive something from every exchange once (the inferred API's summaries,
storage.api_shapes; the contract check, storage.contracts) keep a cursor: the last exchange id
they took in (table job_cursors), advanced in the transaction that stores what they derived. A
cursor may only pass ids that are final, or an exchange committed later under a lower id would
be skipped for good.

- SQLite has one writer at a time, and AUTOINCREMENT ids: whatever a reader sees, every lower id
  is final. The settled position is the highest id.
- PostgreSQL hands ids out from a sequence as rows are inserted, and transactions commit in any
  order: while one proxy's writer has ids 51 and 53 uncommitted, another's 52 and 54 may be
  visible (their inserts interleave). Age comparisons of the rows' xmin with the running
  transactions do not see this (a writer gets its transaction id with its first statement, before
  it takes exchange ids). So: note the highest visible id and the transactions in progress at
  that moment (pg_stat_activity's backend_xid, this database's); once each of those has ended,
every id up to the noted one is
  final: an id taken later is higher (a sequence only grows), and one taken earlier belonged to a
  transaction that had committed, rolled back or was among those in progress. The one gap left is
  an insert that has taken its id but not yet its transaction id (microseconds, inside a
  statement). pg_stat_activity shows another role's transaction ids only to members of
  pg_read_all_stats: proxies and inspectors of one database share a role, as the README's team
  deployment does.
"""

from __future__ import annotations

import time

from sqlalchemy import func, select

from storage.models import Exchange
from storage.store import Store

__all__ = ["SETTLE_WAIT", "settled_position"]

SETTLE_WAIT = 2.0
"""Seconds settled_position waits on PostgreSQL for the transactions in progress to end (a
capture batch takes milliseconds; a longer one is someone's open transaction)."""
_SETTLE_POLL = 0.01
_RUNNING_HERE = (
    "SELECT array_agg(backend_xid::text) FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
)
"""The transaction ids of this database's other sessions that have written something and not
ended (transactions of other databases of the cluster hold no exchange ids)."""


def settled_position(store: Store, *, wait: float = SETTLE_WAIT) -> int | None:
    """The highest exchange id a job's cursor may move to now (0 without exchanges); None on
    PostgreSQL when a transaction in progress did not end within `wait` seconds (try again later).

    Call it before the job's own transaction: a transaction of the caller's that holds a lock
    would be among those waited for."""
    if store.dialect != "postgresql":
        with store.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(Exchange.id), 0))).scalar_one())
    with store.connect() as conn:
        newest, running = conn.exec_driver_sql(
            f"SELECT (SELECT coalesce(max(id), 0) FROM exchanges), ({_RUNNING_HERE})"
        ).one()
        conn.rollback()  # pg_stat_activity is read once per transaction: each poll needs its own
        deadline = time.monotonic() + wait
        while running:
            if time.monotonic() >= deadline:
                return None
            time.sleep(_SETTLE_POLL)
            running = conn.exec_driver_sql(
                _RUNNING_HERE + " AND backend_xid::text = ANY(%s)",
                (running,),
            ).scalar()
            conn.rollback()
        return int(newest)
