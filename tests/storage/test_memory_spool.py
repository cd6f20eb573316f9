"""storage.memory_spool: order, acknowledgement and bounds, as storage.spool's."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.memory_spool import MemorySpool


def records(count: int, start: int = 0) -> list[str]:
    return [f"record {i}" for i in range(start, start + count)]


def read_all(spool: MemorySpool) -> list[object]:
    out = []
    while True:
        items, _ = spool.read(1000)
        if not items:
            return out
        out += items


def test_records_come_back_in_order_and_ack_frees_their_room() -> None:
    spool = MemorySpool(max_records=50)
    for start in range(0, 40, 10):
        assert spool.append(records(10, start)) == 10
    assert spool.append(records(20, 40)) == 10  # the rest does not fit
    assert spool.append(records(1, 60)) == 0 and spool.pending_records == 50
    items, end = spool.read(30)
    assert items == records(30)
    assert spool.append(records(1, 60)) == 0  # read is not written: still held
    spool.ack(end, 30)
    assert spool.pending_records == 20
    assert spool.append(records(5, 60)) == 5
    assert read_all(spool) == records(20, 30) + records(5, 60)
    assert spool.pending_bytes == 0  # nothing on disk
    spool.close()


def test_items_are_held_instead_of_payloads_when_given() -> None:
    spool = MemorySpool(max_records=10)
    assert spool.append([b"encoded 0", b"encoded 1"], ["record 0", "record 1"]) == 2
    assert spool.read(10) == (["record 0", "record 1"], 2)


def test_it_speaks_for_itself_in_the_writer_s_messages() -> None:
    spool = MemorySpool(max_records=7)
    assert (str(spool), spool.limit, spool.durable, spool.lost_on_open) == ("the in-memory spool", "7 records", False, 0)
    with pytest.raises(ValueError):
        MemorySpool(max_records=0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["append", "append kept", "read", "ack"]), st.integers(1, 9)),
                max_size=60))  # fmt: skip
def test_every_record_is_read_in_order_once_and_held_until_acknowledged(steps) -> None:  # type: ignore[no-untyped-def]
    """A model: whatever the interleaving, reading yields the records taken, in order, each
    once; a record holds its room from append to ack; append takes what fits, from the front."""
    limit = 20
    spool = MemorySpool(max_records=limit)
    taken: list[str] = []  # every record the spool took, in order
    acked = 0
    read = 0  # records read, counted from the start
    last_read: tuple[int, int] | None = None  # (position, records since the last ack) to ack
    offered = 0
    for action, n in steps:
        if action.startswith("append"):
            batch = records(n, offered)
            offered += n
            room = limit - (len(taken) - acked)
            items = [f"item of {r}" for r in batch] if action == "append kept" else None
            count = spool.append(batch, items)
            assert count == max(0, min(n, room))
            taken += batch[:count]
        elif action == "read":
            items, end = spool.read(n)
            expected = taken[read : read + n]
            assert [item.removeprefix("item of ") for item in items] == expected  # type: ignore[union-attr]
            read += len(items)
            assert end == read  # positions count records
            last_read = (end, read - acked)
        elif action == "ack" and last_read is not None:
            spool.ack(*last_read)
            acked = read
            last_read = None
        assert spool.pending_records == len(taken) - acked
    assert [item.removeprefix("item of ") for item in read_all(spool)] == taken[read:]  # type: ignore[union-attr]
    spool.close()
