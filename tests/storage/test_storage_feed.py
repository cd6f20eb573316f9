"""Change feed: ids written by another connection arrive quickly on both databases."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tests.support.records import make_record

from storage import open_change_feed, write_records


@pytest.mark.exclusive  # a timing bound: nothing else runs beside it under xdist
def test_feed_yields_new_ids(store) -> None:  # type: ignore[no-untyped-def]
    write_records(store, [make_record()])  # existing rows are not replayed

    timers: list[threading.Timer] = []

    async def main() -> tuple[list[int], list[int], float]:
        async with open_change_feed(store, poll_interval=0.05) as feed:
            ids: list[int] = []
            result: list[int] = []
            started = 0.0

            def writer() -> None:
                nonlocal started
                started = time.monotonic()
                ids.extend(write_records(store, [make_record() for _ in range(3)]))

            timers.append(threading.Timer(0.1, writer))
            timers[0].start()
            async for batch in feed:
                result += batch
                if len(result) >= 3:
                    break
            return ids, result, time.monotonic() - started

    ids, result, latency = asyncio.run(asyncio.wait_for(main(), 10))
    timers[0].join(10)  # the feed may see the commit before write_records() has returned the ids
    assert result == sorted(ids)
    assert latency < 0.25, latency


def test_sqlite_feed_logs_an_outage_once_and_its_end(sqlite_store, caplog) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    write_records(sqlite_store, [make_record()])

    async def main() -> list[int]:
        async with open_change_feed(sqlite_store, poll_interval=0.01) as feed:
            with sqlite_store.engine.begin() as conn:  # break the poll: no exchanges table
                conn.execute(text("ALTER TABLE exchanges RENAME TO exchanges_away"))

            def repair() -> None:
                with sqlite_store.engine.begin() as conn:
                    conn.execute(text("ALTER TABLE exchanges_away RENAME TO exchanges"))
                write_records(sqlite_store, [make_record()])

            threading.Timer(0.3, repair).start()  # ~30 failed polls meanwhile
            async for batch in feed:
                return batch
        return []

    with caplog.at_level("WARNING", logger="storage.feed"):
        assert len(asyncio.run(asyncio.wait_for(main(), 10))) == 1
    messages = [r.getMessage() for r in caplog.records if r.name == "storage.feed"]
    assert len(messages) == 2, messages
    assert messages[0].startswith("change feed poll failed: ")
    assert "works again" in messages[1]


def test_postgresql_catch_up_finds_an_id_committed_late_while_disconnected(pg_store) -> None:  # type: ignore[no-untyped-def]
    """Ids are taken at insert and committed later, so two writers commit out of id order. An
    id below the newest one delivered, committed while the feed was reconnecting, must still
    be delivered (by the catch-up after the reconnect)."""
    import psycopg
    from sqlalchemy import text

    from storage.models import Exchange

    store = pg_store
    conninfo = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    columns = [c.name for c in Exchange.__table__.columns if c.name not in ("id", "uuid")]

    write_records(store, [make_record() for _ in range(3)])  # older than the feed: never delivered

    async def main() -> tuple[int, list[int]]:
        async with open_change_feed(store) as feed:
            batches = feed.__aiter__()
            late = psycopg.connect(conninfo)  # a writer that took its id and has not committed yet
            late_id = late.execute("SELECT nextval(pg_get_serial_sequence('exchanges', 'id'))").fetchone()[0]
            (early_id,) = await asyncio.to_thread(write_records, store, [make_record()])
            assert early_id > late_id and await asyncio.wait_for(batches.__anext__(), 5) == [early_id]
            with store.engine.connect() as admin:  # cut the feed's LISTEN connection
                admin.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE application_name = 'passageway-feed' AND datname = current_database()"))  # fmt: skip
            late.execute(
                f"INSERT INTO exchanges (id, uuid, {', '.join(columns)}) SELECT %s, 'late-' || uuid, "
                f"{', '.join(columns)} FROM exchanges WHERE id = %s",
                (late_id, early_id),
            )
            late.execute("SELECT pg_notify('passageway_exchanges', %s)", (str(late_id),))
            late.commit()  # while the feed reconnects: its notification is lost to it
            late.close()
            found: list[int] = []
            while late_id not in found:
                found += await asyncio.wait_for(batches.__anext__(), 10)
            return late_id, found

    late_id, found = asyncio.run(asyncio.wait_for(main(), 20))
    assert found == [late_id]  # neither the early id again nor anything older than the feed
