"""Change feed: ids written by another connection arrive quickly on both databases."""

from __future__ import annotations

import asyncio
import threading
import time

from storage_support import make_record

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
