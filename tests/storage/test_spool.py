"""storage.spool: order, acknowledgement, bounds, and what survives a crash."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.spool import FRAME_OVERHEAD, Spool, SpoolBusy, SpoolError


def payloads(count: int, start: int = 0, size: int = 100) -> list[bytes]:
    return [f"{i:08d}".encode() * (size // 8) for i in range(start, start + count)]


def as_payload(entry: object) -> bytes:
    """read() gives the item given to append() while it is in memory (here: the payload as str)."""
    return entry.encode() if isinstance(entry, str) else entry  # type: ignore[return-value]


def read_all(spool: Spool) -> list[bytes]:
    out = []
    while True:
        frames, _ = spool.read(1000)
        if not frames:
            return out
        out += map(as_payload, frames)


def segments(directory) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(p.name for p in directory.glob("*.seg"))


def test_records_come_back_in_order_and_ack_frees_segments(tmp_path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=2_000)
    for start in range(0, 100, 10):
        assert spool.append(payloads(10, start)) == 10
    assert len(segments(tmp_path)) > 3 and spool.pending_records == 100
    frames, end = spool.read(60)
    assert frames == payloads(60)
    spool.ack(end, 60)
    assert spool.pending_records == 40
    frames, end = spool.read(1000)
    assert frames == payloads(40, 60)
    spool.ack(end, 40)
    assert spool.pending_records == 0 and spool.pending_bytes == 0
    assert len(segments(tmp_path)) == 1  # the one still appended to
    spool.close()


def test_unacknowledged_records_are_read_again_after_a_restart(tmp_path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=1_000)
    spool.append(payloads(30))
    frames, end = spool.read(10)
    spool.ack(end, 10)
    spool.read(10)  # read, never acknowledged: the database may not have them
    spool.close()
    again = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=1_000)
    assert again.pending_records == 20 and again.lost_on_open == 0
    assert read_all(again) == payloads(20, 10)
    again.append(payloads(5, 30))  # positions go on after the old segments
    assert read_all(again) == payloads(5, 30)
    again.close()


def test_a_second_process_cannot_take_a_spool_in_use(tmp_path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000_000)
    with pytest.raises(SpoolBusy, match="in use by another proxy"):
        Spool(tmp_path, max_bytes=1_000_000)
    spool.close()
    Spool(tmp_path, max_bytes=1_000_000).close()  # free again


def test_an_unusable_directory_is_one_line(tmp_path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SpoolError, match=r"cannot use spool directory .*file/spool"):
        Spool(tmp_path / "file" / "spool", max_bytes=1_000_000)


def test_the_spool_is_private(tmp_path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1_000_000)
    spool.append(payloads(1))
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    (segment,) = (tmp_path / "spool").glob("*.seg")
    assert stat.S_IMODE(segment.stat().st_mode) == 0o600
    spool.close()


def test_a_full_spool_takes_what_fits_and_room_comes_back_after_ack(tmp_path) -> None:
    record = len(payloads(1)[0]) + FRAME_OVERHEAD
    spool = Spool(tmp_path, max_bytes=record * 20, segment_bytes=record * 5)
    for start in (0, 5, 10):  # a segment each
        assert spool.append(payloads(5, start)) == 5
    assert spool.append(payloads(15, 15)) == 5  # the rest does not fit
    assert spool.append(payloads(1, 30)) == 0
    frames, end = spool.read(10)
    spool.ack(end, 10)
    assert spool.append(payloads(5, 30)) == 5  # two segments wholly acknowledged were deleted
    assert read_all(spool) == payloads(10, 10) + payloads(5, 30)
    spool.close()


def test_a_torn_last_write_is_cut_off_and_counted(tmp_path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append(payloads(10))
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    with open(segment, "ab") as f:  # the crash came in the middle of the next write
        f.write(b"PWS1" + (500).to_bytes(4, "little") + b"\0\0\0\0" + b"half a record")
    again = Spool(tmp_path, max_bytes=1_000_000)
    assert again.lost_on_open == 1 and again.pending_records == 10
    assert read_all(again) == payloads(10)
    again.append(payloads(2, 10))  # appended after the cut, not after the torn bytes
    assert read_all(again) == payloads(2, 10)
    again.close()


def test_a_corrupt_frame_is_skipped_and_the_rest_kept(tmp_path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append(payloads(10))
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[3 * (len(payloads(1)[0]) + FRAME_OVERHEAD) + FRAME_OVERHEAD + 5] ^= 0xFF  # a bit flip inside the 4th record
    segment.write_bytes(bytes(data))
    again = Spool(tmp_path, max_bytes=1_000_000)
    assert again.lost_on_open == 1
    assert read_all(again) == payloads(3) + payloads(6, 4)
    again.close()


def test_a_lost_acked_file_replays_everything_still_on_disk(tmp_path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append(payloads(5))
    frames, end = spool.read(3)
    spool.ack(end, 3)
    spool.close()
    (tmp_path / "acked").unlink()
    again = Spool(tmp_path, max_bytes=1_000_000)
    assert read_all(again) == payloads(5)  # duplicates are harmless: inserts are idempotent
    again.close()


def test_a_reader_that_keeps_up_gets_the_items_from_memory(tmp_path, monkeypatch) -> None:
    import storage.spool

    spool = Spool(tmp_path, max_bytes=10_000_000)
    batch = payloads(5)
    spool.append(batch, [p.decode() for p in batch])
    frames, end = spool.read(3)
    assert frames == [p.decode() for p in batch[:3]]  # the items themselves: nothing decoded
    frames, end = spool.read(10)
    assert frames == [p.decode() for p in batch[3:]]
    spool.ack(end, 5)
    # Fallen behind by more than RECENT_BYTES: the rest comes from disk, in order, then memory again.
    monkeypatch.setattr(storage.spool, "RECENT_BYTES", 300)
    first, second, third = payloads(2, 5), payloads(2, 7), payloads(2, 9)
    for batch in (first, second):
        spool.append(batch, [p.decode() for p in batch])
    frames, _ = spool.read(1)
    assert frames == [first[0].decode()]  # from memory
    assert spool.read(10)[0] == [first[1].decode()]  # the rest of what memory holds
    assert spool.read(10)[0] == second  # it did not fit in memory: read from disk
    spool.append(third, [p.decode() for p in third])  # the reader caught up: memory again
    assert spool.read(10)[0] == [p.decode() for p in third]
    spool.close()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["append", "append kept", "read", "ack", "reopen"]), st.integers(1, 7)),
                max_size=40))  # fmt: skip
def test_every_record_is_read_in_order_until_acknowledged(tmp_path_factory, steps) -> None:  # type: ignore[no-untyped-def]
    """A model: whatever the interleaving, reading yields the appended records in order, and a
    reopened spool starts again at the first unacknowledged one."""
    directory = tmp_path_factory.mktemp("spool")
    spool = Spool(directory, max_bytes=10_000_000, segment_bytes=700)
    appended: list[bytes] = []
    acked = 0  # records acknowledged
    read = 0  # records read since the last (re)open, counted from acked
    last_read: tuple[int, int] | None = None  # (position, records read) to ack
    for action, n in steps:
        if action.startswith("append"):
            batch = payloads(n, len(appended), size=40 + 8 * n)
            items = [p.decode() for p in batch] if action == "append kept" else None
            assert spool.append(batch, items) == n
            appended += batch
        elif action == "read":
            frames, end = spool.read(n)
            expected = appended[acked + read : acked + read + n]
            got = list(map(as_payload, frames))  # up to n; fewer where memory's part ends
            assert got == expected[: len(got)] and (got or not expected)
            read += len(frames)
            last_read = (end, read) if frames or last_read is None else last_read
        elif action == "ack" and last_read is not None:
            position, count = last_read
            spool.ack(position, count)
            acked += count
            read -= count
            last_read = None
        elif action == "reopen":
            spool.close()
            spool = Spool(directory, max_bytes=10_000_000, segment_bytes=700)
            read, last_read = 0, None
            assert spool.pending_records == len(appended) - acked
    assert read_all(spool) == appended[acked + read :]
    spool.close()
    assert len(os.listdir(directory)) <= 3 + len(appended)  # lock, acked, segments
