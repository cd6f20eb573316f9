"""storage.job_cursors.settled_position: how far an incremental job's cursor may move. On
PostgreSQL, concurrent writers commit exchange ids out of order, including the case an age test
of xmin misses: a writer whose transaction began (it wrote a body) before another's, which then
takes its exchange id after it."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from storage.api_shapes import summarise_new
from storage.job_cursors import settled_position
from storage.models import Exchange
from storage.sink import write_records
from tests.support.records import make_record
from tests.support.stores import reset_store


def write(store, **overrides) -> int:  # type: ignore[no-untyped-def]
    return write_records(store, [make_record(**overrides)])[0]


def insert_copy(conn, of: int) -> int:  # type: ignore[no-untyped-def]
    """A copy of exchange `of` inserted on `conn` (its transaction left open); its id."""
    columns = [column.name for column in Exchange.__table__.columns if column.name != "id"]
    copied = ", ".join("md5(random()::text)" if name == "uuid" else name for name in columns)
    return conn.exec_driver_sql(
        f"INSERT INTO exchanges ({', '.join(columns)}) SELECT {copied} FROM exchanges WHERE id = %s RETURNING id", (of,)
    ).scalar_one()


def test_sqlite_settles_at_the_highest_id(sqlite_store):
    assert settled_position(sqlite_store) == 0
    ids = [write(sqlite_store, path=f"/x/{n}") for n in range(3)]
    assert settled_position(sqlite_store) == ids[-1]


def test_postgresql_waits_for_a_writer_that_began_first_and_takes_its_id_last(pg_store):
    store = reset_store(pg_store)
    first = write(store, path="/a")
    assert settled_position(store) == first
    with store.engine.connect() as older, store.engine.connect() as younger:
        old = older.begin()
        older.execute(text("INSERT INTO job_cursors (job, position, updated_at) VALUES ('test-xid', 0, now())"))
        young = younger.begin()
        held = insert_copy(younger, first)  # the younger transaction takes the lower id, and stays open
        later = insert_copy(older, first)
        old.commit()  # the higher id is visible, written by a transaction older than the one still open
        assert held < later
        assert settled_position(store, wait=0.2) is None
        summarised = summarise_new(store)
        assert summarised.position <= first  # neither job passes `held` while it may still commit
        young.commit()
    assert settled_position(store) == later
    assert summarise_new(store).position == later


def test_postgresql_a_rolled_back_writer_holds_nothing_back(pg_store):
    store = reset_store(pg_store)
    first = write(store, path="/a")
    with store.engine.connect() as writer:
        transaction = writer.begin()
        insert_copy(writer, first)
        assert settled_position(store, wait=0.05) is None
        transaction.rollback()
    later = write(store, path="/b")
    assert settled_position(store) == later


@pytest.mark.parametrize("wait", [0.0, 0.3])
def test_postgresql_without_other_writers_answers_at_once(pg_store, wait):
    store = reset_store(pg_store)
    ids = [write(store, path=f"/x/{n}") for n in range(3)]
    assert settled_position(store, wait=wait) == ids[-1]
