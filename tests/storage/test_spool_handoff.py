"""A spool shared by two processes: a worker appends (Spool(shared=True)), the writer process
reads, acknowledges and deletes (SpoolReader). The appender runs in a child process here."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from storage.pure.pending import PendingNotice
from storage.queries import proxy_stats
from storage.record_codec import encode_record
from storage.spool import FRAME_OVERHEAD, Spool, SpoolBusy, SpoolReader, frame, worker_spool_dir
from storage.spool_handoff import SpoolAppender, SpoolDrain, SpoolSet, WriterBusy, read_worker_stats
from tests.support import wait_for
from tests.support.records import make_record


def payloads(count: int, start: int = 0, size: int = 100) -> list[bytes]:
    return [f"{i:08d}".encode() * (size // 8) for i in range(start, start + count)]


def _append_in_child(directory, start: int, count: int, per_append: int, max_bytes: int, ready, hold) -> None:  # type: ignore[no-untyped-def]
    spool = Spool(directory, max_bytes=max_bytes, segment_bytes=4_000, shared=True)
    ready.set()
    for first in range(start, start + count, per_append):
        spool.append(payloads(min(per_append, start + count - first), first))
        time.sleep(0.001)
    if hold is not None:
        hold.wait(30)
    spool.close()


def start_appender(directory, start=0, count=500, per_append=7, max_bytes=10_000_000, hold=None):  # type: ignore[no-untyped-def]
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    child = context.Process(target=_append_in_child, args=(directory, start, count, per_append, max_bytes, ready, hold))
    child.start()
    assert ready.wait(10)
    return child


def drain(reader: SpoolReader, want: int, timeout: float = 20.0) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        frames, end = reader.read(50)
        if frames:
            got += frames
            reader.ack(end, len(frames))
        else:
            time.sleep(0.005)
    return got


def test_records_appended_in_another_process_are_read_in_order_once(tmp_path) -> None:
    child = start_appender(tmp_path)
    reader = SpoolReader(tmp_path)
    got = drain(reader, 500)
    child.join(10)
    assert got == payloads(500)
    frames, _ = reader.read(10)
    assert frames == [] and reader.lost == 0
    # Wholly acknowledged segments are gone, the last one (appended to) stays.
    assert len(list(tmp_path.glob("*.seg"))) == 1
    assert reader.pending_bytes == 0 and reader.pending_records == 0
    reader.close()


def test_a_restarted_reader_starts_again_from_acked(tmp_path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=2_000, shared=True)
    spool.append(payloads(40))
    reader = SpoolReader(tmp_path)
    frames, end = reader.read(10)
    reader.ack(end, 10)
    reader.read(10)  # read, not acknowledged: the database may not have them (a kill -9 here)
    reader.close()
    again = SpoolReader(tmp_path)
    assert again.pending_records == 30 and again.acked_records == 10  # `acked` counts them for the counters
    assert drain(again, 30) == payloads(30, 10)
    spool.append(payloads(5, 40))
    assert drain(again, 5) == payloads(5, 40)
    again.close()
    spool.close()


def test_one_reader_per_directory(tmp_path) -> None:
    reader = SpoolReader(tmp_path)
    with pytest.raises(SpoolBusy, match="drained by another writer process"):
        SpoolReader(tmp_path)
    reader.close()
    SpoolReader(tmp_path).close()


def test_a_partial_frame_is_waited_for_while_the_appender_lives(tmp_path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000, shared=True)
    spool.append(payloads(3))
    segment = next(tmp_path.glob("*.seg"))
    whole = frame(payloads(1, 3)[0])
    with open(segment, "ab") as f:  # the appender is in the middle of its write
        f.write(whole[:30])
    reader = SpoolReader(tmp_path)
    frames, end = reader.read(10)
    assert frames == payloads(3)
    assert reader.read(10)[0] == [] and not reader.has_unread() and reader.lost == 0
    with open(segment, "ab") as f:
        f.write(whole[30:])
    assert reader.has_unread()
    assert reader.read(10)[0] == payloads(1, 3) and reader.lost == 0
    reader.close()
    spool.close()


def test_a_torn_tail_left_by_a_dead_appender_is_cut_off_and_counted(tmp_path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000, shared=True)
    spool.append(payloads(3))
    spool.close()  # the appender is gone
    segment = next(tmp_path.glob("*.seg"))
    size = segment.stat().st_size
    with open(segment, "ab") as f:
        f.write(frame(payloads(1, 3)[0])[:30])
    reader = SpoolReader(tmp_path)
    assert reader.read(10)[0] == payloads(3)
    assert reader.read(10)[0] == [] and reader.lost == 1
    assert segment.stat().st_size == size
    again = Spool(tmp_path, max_bytes=10_000_000, shared=True)  # a restarted worker appends after it
    assert again.lost_on_open == 0
    again.append(payloads(2, 4))
    assert reader.read(10)[0] == payloads(2, 4)
    reader.close()
    again.close()


def test_a_killed_appender_loses_nothing_it_had_appended(tmp_path) -> None:
    hold = multiprocessing.get_context("fork").Event()
    child = start_appender(tmp_path, count=300, hold=hold)
    reader = SpoolReader(tmp_path)
    first = drain(reader, 100)
    time.sleep(0.5)  # it has appended all 300 and waits
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    got = first + drain(reader, 300 - len(first))
    assert got == payloads(300) and reader.lost == 0
    reader.close()


def test_corrupt_frames_are_skipped_and_counted(tmp_path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000, shared=True)
    spool.append(payloads(5))
    segment = next(tmp_path.glob("*.seg"))
    data = bytearray(segment.read_bytes())
    data[FRAME_OVERHEAD + 2 * (FRAME_OVERHEAD + len(payloads(1)[0])) + 5] ^= 0xFF  # the third record's payload
    segment.write_bytes(bytes(data))
    reader = SpoolReader(tmp_path)
    frames, _ = reader.read(10)
    assert frames == payloads(2) + payloads(2, 3) and reader.lost == 1
    reader.close()
    spool.close()


def test_the_appenders_room_is_what_the_reader_has_not_acknowledged(tmp_path) -> None:
    record = FRAME_OVERHEAD + len(payloads(1)[0])
    spool = Spool(tmp_path, max_bytes=10 * record, segment_bytes=3 * record, shared=True)
    assert spool.append(payloads(15)) == 10  # full
    reader = SpoolReader(tmp_path)
    frames, end = reader.read(4)
    assert spool.append(payloads(1, 10)) == 0  # read is not acknowledged
    reader.ack(end, 4)
    assert spool.append(payloads(6, 10)) == 4
    assert spool.pending_bytes == 10 * record
    assert drain(reader, 10) == payloads(6, 4) + payloads(4, 10)
    reader.close()
    spool.close()


def test_the_spool_set_reads_every_worker_and_the_legacy_segments(tmp_path) -> None:
    legacy = Spool(tmp_path, max_bytes=10_000_000)
    legacy.append(payloads(3, 1000))
    legacy.close()
    one = Spool(worker_spool_dir(tmp_path, 1), max_bytes=10_000_000, shared=True)
    one.append(payloads(5))
    spools = SpoolSet(tmp_path)
    with pytest.raises(WriterBusy, match="another writer process already drains"):
        SpoolSet(tmp_path)
    two = Spool(worker_spool_dir(tmp_path, 2), max_bytes=10_000_000, shared=True)  # a worker that comes later
    two.append(payloads(4, 100))
    spools.refresh()
    got = []
    while spools.has_unread():
        frames, read = spools.read(3)
        got += frames
        spools.ack(read, len(frames))
    assert sorted(got) == sorted(payloads(3, 1000) + payloads(5) + payloads(4, 100))
    assert [g for g in got if g in payloads(5)] == payloads(5)  # each spool in order
    assert spools.pending_records == 0 and not list(tmp_path.glob("*.seg")) or legacy  # acknowledged
    spools.close()
    one.close()
    two.close()


# -- SpoolAppender (a worker) and SpoolDrain (the writer process), here in one process ----------


def notice(uuid: str) -> PendingNotice:
    return PendingNotice(uuid=uuid, proxy="p", started_at=time.time() - 2, method="GET", scheme="http",
                         host="h", port=80, path="/slow", query="", state="waiting")  # fmt: skip


def test_a_workers_records_and_notices_reach_the_database_through_the_writer(store, tmp_path) -> None:
    spool_dir = tmp_path / "spool"
    appender = SpoolAppender(store, spool=Spool(worker_spool_dir(spool_dir, 1), max_bytes=10_000_000, shared=True))
    appender.start()
    drain = SpoolDrain(store, SpoolSet(spool_dir), proxy_name="p")
    drain.start()
    try:
        records = [make_record(path=f"/handoff/{i}", proxy="p") for i in range(120)]
        for record in records:
            assert appender.submit(record)
        pending = notice("11111111-2222-3333-4444-555555555555")
        appender.announce([pending])
        with store.connect() as conn:
            count = lambda: conn.execute(text("SELECT count(*) FROM exchanges WHERE path LIKE '/handoff/%'")).scalar_one()  # noqa: E731
            wait_for(lambda: count() == 120, timeout=10)
        from storage.pending import list_pending

        wait_for(lambda: [row.notice.uuid for row in list_pending(store)] == [pending.uuid], timeout=10)
    finally:
        appender.close()
        drain.close()
    rows = {row["proxy"]: row for row in proxy_stats(store)}
    assert rows["p"]["written"] == 120 and rows["p"]["submitted"] == 120 and rows["p"]["spooled"] == 0
    assert rows["p/worker-1"]["submitted"] == 120 and rows["p/worker-1"]["stopped_at"] is not None
    assert rows["p"]["stopped_at"] is not None


def test_a_workers_counters_go_on_across_its_runs(sqlite_store, tmp_path) -> None:
    for run in (1, 2):
        appender = SpoolAppender(sqlite_store, spool=Spool(tmp_path, max_bytes=10_000_000, shared=True))
        appender.start()
        for i in range(5):
            appender.submit(make_record(path=f"/run{run}/{i}"))
        appender.close()
        assert appender.stats.submitted == 5 * run


def test_a_worker_never_touches_the_database(sqlite_store, tmp_path) -> None:
    spool = Spool(tmp_path / "worker-1", max_bytes=10_000_000, shared=True)
    appender = SpoolAppender(sqlite_store, spool=spool)
    appender.start()
    for i in range(10):
        appender.submit(make_record(path=f"/w/{i}"))
    appender.close()
    with sqlite_store.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM exchanges")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM proxy_stats")).scalar_one() == 0
    reader = SpoolReader(tmp_path / "worker-1")
    assert len(reader.read(100)[0]) == 10
    reader.close()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=30), st.data())
def test_whatever_the_reader_sees_of_a_write_it_reads_each_record_once_in_order(tmp_path_factory, records, data) -> None:
    """The appender's bytes become visible in any pieces; the reader, reading between them, ends
    with every record once, in order, and nothing counted lost."""
    directory = tmp_path_factory.mktemp("spool")
    spool = Spool(directory, max_bytes=10_000_000, shared=True)
    spool.append([b"first"])
    segment = next(directory.glob("*.seg"))
    stream = b"".join(frame(record) for record in records)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    reader = SpoolReader(directory)
    got, _ = reader.read(1000)
    previous = 0
    for cut in [*cuts, len(stream)]:
        with open(segment, "ab") as f:
            f.write(stream[previous:cut])
        previous = cut
        frames, end = reader.read(data.draw(st.integers(1, 5)))
        got += frames
        reader.ack(end, len(frames))
    while True:
        frames, end = reader.read(1000)
        if not frames:
            break
        got += frames
    assert got == [b"first", *records] and reader.lost == 0
    reader.close()
    spool.close()


def test_records_larger_than_one_read_and_batches_over_many_reads(tmp_path) -> None:
    spool = Spool(tmp_path, max_bytes=100_000_000, shared=True)
    big = [bytes([i]) * (3 * 1024 * 1024 + i) for i in range(3)]
    small = payloads(30_000)  # ~3 MiB: several reads for one batch
    spool.append(big[:1] + small + big[1:])
    reader = SpoolReader(tmp_path)
    assert drain(reader, 30_003) == big[:1] + small + big[1:]
    reader.close()
    spool.close()


def test_a_full_worker_spool_drops_counts_and_logs(sqlite_store, tmp_path, caplog) -> None:
    record_size = len(frame(encode_record(make_record(path="/full/00"))))
    spool = Spool(tmp_path, max_bytes=10 * record_size + record_size // 2, shared=True)
    appender = SpoolAppender(sqlite_store, spool=spool)
    appender.start()
    for i in range(25):
        appender.submit(make_record(path=f"/full/{i}"))
    appender.close()
    stats = read_worker_stats(tmp_path)
    assert stats["submitted"] == 25 and stats["dropped"] >= 14
    assert "DROPPED" in caplog.text and "is full" in caplog.text
