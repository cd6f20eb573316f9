"""Change feed: ids written by another connection arrive quickly on both databases."""

from __future__ import annotations

import asyncio
import threading
import time

from tests.support.records import make_record

from storage import open_change_feed, write_records


def test_feed_yields_new_ids(store) -> None:  # type: ignore[no-untyped-def]
    write_records(store, [make_record()])  # existing rows are not replayed

    async def main() -> tuple[list[int], list[int], float]:
        async with open_change_feed(store, poll_interval=0.05) as feed:
            ids: list[int] = []
            result: list[int] = []
            started = 0.0

            def writer() -> None:
                nonlocal started
                started = time.monotonic()
                ids.extend(write_records(store, [make_record() for _ in range(3)]))

            threading.Timer(0.1, writer).start()
            async for batch in feed:
                result += batch
                if len(result) >= 3:
                    break
            return ids, result, time.monotonic() - started

    ids, result, latency = asyncio.run(asyncio.wait_for(main(), 10))
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
