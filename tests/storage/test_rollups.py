"""storage.rollups: written with each batch (once), aged, pruned, backfilled, and read back."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

from sqlalchemy import func, select

from storage import write_records
from storage.models import JobCursor, TrafficRollup
from storage.pending import expire_pending
from storage.pure.pending import PendingNotice
from storage.pure.sketch import Sketch
from storage.rollups import HOUR, backfill, backfilled, maintain, read_cells, uncount
from storage.sink import DatabaseSink
from storage.store import Store
from tests.support.records import make_record

T0 = 1_780_000_020.0  # 20 s into a minute


def totals(store: Store, period: int = 60) -> tuple[int, int, int]:
    """Requests, errors and rows of one period's rows (each batch writes minutes and hours)."""
    t = TrafficRollup.__table__
    with store.connect() as conn:
        row = conn.execute(
            select(func.sum(t.c.requests), func.sum(t.c.errors), func.count()).where(t.c.period_seconds == period)
        ).one()
    return (row[0] or 0, row[1] or 0, row[2])


def test_a_batch_is_rolled_up_once_even_when_written_twice(store: Store) -> None:
    records = [
        make_record(captured_at=T0 + i, service="identity", path=f"/users/{i}", status=500 if i == 3 else 200,
                    duration_ms=float(i + 1))
        for i in range(10)
    ] + [make_record(captured_at=T0, service=None, path="/x")]  # fmt: skip
    sink = DatabaseSink(store)
    batch = sink.prepare(records)
    sink.write(batch)
    sink.write(batch)  # a retry after a lost acknowledgement
    assert totals(store) == (10, 1, 2)  # one minute, one endpoint, two status classes
    assert totals(store, HOUR) == (10, 1, 2)
    cells = read_cells(store, since=0, until=2**40, service="identity")
    assert sorted((c.template, c.requests, c.errors) for c in cells) == [("/users/{id}", 1, 1), ("/users/{id}", 9, 0)]


def test_batches_merge_counts_and_sketches(store: Store) -> None:
    for i in range(50):
        write_records(store, [make_record(captured_at=T0 + 0.5, service="a", path="/p", status=200, duration_ms=float(i))])
    (cell,) = read_cells(store, since=0, until=2**40)
    assert cell.requests == 50 and cell.sketch.count == 50
    assert cell.sketch.quantile(100) == 49.0
    assert abs(cell.sketch.quantile(50) - 24.0) <= 0.005 * 24


def test_concurrent_writers_lose_no_update(store: Store) -> None:
    def write(offset: int) -> None:
        sink = DatabaseSink(store)
        for i in range(20):
            records = [make_record(captured_at=T0 + 0.001 * (offset * 1000 + i), service=s, path="/p",
                                   status=200, duration_ms=1.0) for s in ("a", "b", "c")]  # fmt: skip
            if offset % 2:
                records.reverse()
            sink.write(sink.prepare(records))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert totals(store)[:1] == totals(store, HOUR)[:1] == (240,)
    assert sum(c.sketch.count for c in read_cells(store, since=0, until=2**40)) == 240


def test_ageing_merges_minutes_into_hours_and_retention_prunes(store: Store) -> None:
    now = T0 + 10 * 86400
    records = [make_record(captured_at=T0 + 60 * i, service="a", path="/p", status=200, duration_ms=float(i))
               for i in range(100)]  # fmt: skip
    write_records(store, records)
    assert totals(store)[2] == 100
    while maintain(store, now=now).more:
        pass
    assert totals(store)[2] == 0  # the minutes are gone, their hours stay
    cells = read_cells(store, since=0, until=2**40, now=now)
    assert sum(c.requests for c in cells) == 100
    assert all(c.period_start % HOUR == 0 for c in cells) and len(cells) <= 3
    merged = Sketch()
    for c in cells:
        merged.merge(c.sketch)
    assert merged.quantile(100) == 99.0
    maintain(store, now=now, max_age=86400)
    assert totals(store, HOUR) == (0, 0, 0)


def test_backfill_rolls_up_what_was_stored_before(store: Store) -> None:
    write_records(store, [make_record(captured_at=T0 + i, service="a", path="/p") for i in range(5)])
    t = TrafficRollup.__table__
    with store.begin() as conn:  # as if these had been stored before migration 0016
        conn.execute(t.delete())
        conn.execute(JobCursor.__table__.delete().where(JobCursor.job.in_(["rollups_backfill", "rollups_backfill_end"])))
        conn.execute(JobCursor.__table__.insert(), [
            {"job": "rollups_backfill", "position": 0, "updated_at": dt.datetime.now(dt.UTC)},
            {"job": "rollups_backfill_end", "position": 2**40, "updated_at": dt.datetime.now(dt.UTC)},
        ])  # fmt: skip
        top = conn.execute(select(func.max(t.c.period_start))).scalar()
    assert top is None and not backfilled(store)
    with store.begin() as conn:
        conn.execute(JobCursor.__table__.update().where(JobCursor.job == "rollups_backfill_end").values(position=5))
    assert backfill(store, chunk=3) == (3, True)
    assert backfill(store, chunk=3) == (2, False)
    assert backfilled(store) and totals(store)[0] == totals(store, HOUR)[0] == 5


def test_rolled_figures_are_the_exact_ones_on_small_data(store: Store) -> None:
    from storage.traffic_stats import (
        TimeWindow,
        rolled_service_stats,
        rolled_service_summaries,
        service_stats,
        service_summaries,
    )
    from tests.storage.test_traffic_stats import fill

    now = dt.datetime.now(dt.UTC)
    fill(store, now.timestamp())
    write_records(store, [make_record(captured_at=now.timestamp() - 0.5, service="identity", path="/users/9",
                                      status=200, duration_ms=3.0)])  # the current, partial minute  # fmt: skip
    for seconds, buckets in ((3600, 60), (86400, 60), (7 * 86400, 60), (900, 60)):
        window = TimeWindow.ending(now, seconds=seconds, buckets=buckets)
        for endpoint in (None, ("GET", "/users/{id}")):
            exact = service_stats(store, service="identity", window=window, endpoint=endpoint)
            rolled = rolled_service_stats(store, service="identity", window=window, endpoint=endpoint)
            for key in ("totals", "endpoints", "endpoints_total", "bucket_seconds", "rows"):
                assert rolled[key] == exact[key], (seconds, key)
            if window.bucket_seconds < 3600 or window.bucket_seconds % 3600 == 0:
                assert rolled["series"] == exact["series"], seconds
            else:  # 7 days in 60 buckets of 2.8 h, from hour rows: an hour counts in the bucket it starts in
                assert_hours_count_where_they_start(rolled["series"], exact["series"])
    exact = service_summaries(store, since=now - dt.timedelta(minutes=15), until=now)
    rolled = rolled_service_summaries(store, since=now - dt.timedelta(minutes=15), until=now)
    assert rolled["services"] == exact["services"]


def assert_hours_count_where_they_start(rolled: list[dict], exact: list[dict]) -> None:
    """The README's rule for series of hour rows whose buckets are not whole hours: a request
    counts in the bucket where its hour starts, the same as its own or the one before (a bucket
    is longer than an hour), so the running totals of requests are ahead by at most one bucket."""
    assert [b["t"] for b in rolled] == [b["t"] for b in exact]
    ahead = behind = 0
    for index, bucket in enumerate(rolled):
        ahead += bucket["requests"]
        behind += exact[index]["requests"]
        following = behind + (exact[index + 1]["requests"] if index + 1 < len(exact) else 0)
        assert behind <= ahead <= following, (bucket["t"], ahead, behind, following)
    assert ahead == behind


def test_hours_past_35_days_become_days(store: Store) -> None:
    records = [make_record(captured_at=T0 + 3600 * i, service="a", path="/p", status=200, duration_ms=float(i + 1))
               for i in range(30)]  # fmt: skip
    write_records(store, records)
    now = T0 + 40 * 86400
    while maintain(store, now=now).more:
        pass
    assert totals(store, HOUR)[2] == 0
    days = totals(store, 86400)
    assert days[0] == 30 and days[2] <= 3  # 30 hours touch at most 3 days
    cells = read_cells(store, since=0, until=2**40, now=now)
    merged = Sketch()
    for c in cells:
        merged.merge(c.sketch)
    assert (merged.count, merged.quantile(100)) == (30, 30.0)


def test_an_unknown_outcome_replaced_by_its_real_record_counts_once(store: Store) -> None:
    sink = DatabaseSink(store)
    late = PendingNotice(
        uuid=uuid.uuid4().hex, proxy="p1", started_at=T0 + 1, method="POST", scheme="http", host="orders.local",
        port=80, path="/orders/7", query="", state="waiting", service="orders", realm="dev",
    )  # fmt: skip
    sink.announce([late])
    assert expire_pending(store, now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)) == [late.uuid]
    assert totals(store) == totals(store, HOUR) == (1, 1, 1)  # the unknown outcome counts, as an error
    record = make_record(uuid=late.uuid, captured_at=late.started_at, service="orders", realm="dev", method="POST",
                         path="/orders/7", status=201, duration_ms=5.0)  # fmt: skip
    batch = sink.prepare([record])
    sink.write(batch, announced=[(late.started_at, late.uuid)])
    sink.write(batch, announced=[(late.started_at, late.uuid)])  # a retry: nothing left to replace
    assert totals(store) == totals(store, HOUR) == (1, 0, 1)  # the real record alone (status class 2)
    (row,) = read_cells(store, since=0, until=2**40, service="orders")
    assert (row.requests, row.errors, row.sketch.count, row.sketch.quantile(50)) == (1, 0, 1, 5.0)


def test_uncount_takes_out_only_what_the_rollups_counted(store: Store) -> None:
    placeholder = (T0, "a", "dev", "GET", "/p", None, None, "unknown_outcome", 0, 0)  # SOURCE_COLUMNS
    write_records(store, [make_record(captured_at=T0, service="a", path="/p", status=None, duration_ms=None,
                                      error_kind="unknown_outcome")])  # fmt: skip
    assert totals(store)[:2] == (1, 1)
    with store.begin() as conn:  # ids up to 10 stored before migration 0016, the backfill at 5
        conn.execute(JobCursor.__table__.delete().where(JobCursor.job.in_(["rollups_backfill", "rollups_backfill_end"])))
        conn.execute(JobCursor.__table__.insert(), [
            {"job": "rollups_backfill", "position": 5, "updated_at": dt.datetime.now(dt.UTC)},
            {"job": "rollups_backfill_end", "position": 10, "updated_at": dt.datetime.now(dt.UTC)},
        ])  # fmt: skip
        assert uncount(conn, [(7, *placeholder)]) == 0  # the backfill has yet to count it
        assert uncount(conn, [(3, *placeholder[:6], 12.0, *placeholder[7:])]) == 0  # a duration stays counted
        assert uncount(conn, [(3, *placeholder)]) == 1
    assert totals(store) == totals(store, HOUR) == (0, 0, 0)  # its rows, left empty, are gone
