"""The traces list reaches any age (issue 19): list_traces pages by keyset through `next_before`,
on SQLite and PostgreSQL, through the real writer. Following the cursor lists every trace once,
newest first, whatever the window, budget and page sizes; a trace behind 20,000 newer exchanges
is listed; `since` ends the paging with a null cursor."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from storage import traces
from storage.models import CAPTURE_BLOCK_IDS
from storage.sink import write_records
from storage.store import Store
from storage.traces import LIST_SCAN_ROWS, list_traces
from tests.storage.test_trace_queries import call
from tests.support.records import make_record
from tests.support.stores import reset_store


def every_page(store: Store, **params) -> list[dict]:
    """Each page of the list, following next_before until it is null."""
    pages = [list_traces(store, **params)]
    while pages[-1]["next_before"] is not None:
        assert len(pages) < 10_000, "the cursor does not move on"
        pages.append(list_traces(store, **params, before=pages[-1]["next_before"]))
    return pages


def listed(pages: list[dict]) -> list[str]:
    return [summary["trace_id"] for page in pages for summary in page["data"]]


# ---------------------------------------------------------------- every trace once, in order


@dataclass(frozen=True)
class Row:
    trace: int | None
    service: str
    failed: bool
    jitter: int
    """Seconds captured earlier than its place in the list says: another proxy's clock, a batch
    written late. Exchange n of N is captured (N - n) * 5 + jitter seconds before now."""


row_strategy = st.builds(
    Row,
    trace=st.one_of(st.none(), st.integers(0, 5)),
    service=st.sampled_from(["a", "b"]),
    failed=st.booleans(),
    jitter=st.integers(0, 30),
)
# A length drawn first: lists grown element by element stay mostly short.
rows_strategy = st.integers(0, 60).flatmap(lambda count: st.lists(row_strategy, min_size=count, max_size=count))


def age(rows: list[Row], n: int) -> int:
    return (len(rows) - n) * 5 + rows[n].jitter


def expected_list(rows: list[Row], ids: list[int], *, since_age: float, service: str | None,
                  min_calls: int, failed: bool, row_budget: int) -> list[tuple[str, int, bool]]:  # fmt: skip
    """(trace id, exchange count, cut) of each trace the list should hold, newest first: a trace's
    key is its newest exchange captured since, to or from `service`; the filters look at its
    first `row_budget` exchanges (a trace larger than the budget is listed as read in part)."""
    keys: dict[int, int] = {}
    members: dict[int, list[Row]] = {}
    for n, (row, exchange_id) in enumerate(zip(rows, ids, strict=True)):
        if row.trace is None:
            continue
        members.setdefault(row.trace, []).append(row)
        if age(rows, n) < since_age and (service is None or row.service == service):
            keys[row.trace] = exchange_id
    out = []
    for trace in sorted(keys, key=keys.__getitem__, reverse=True):
        read = members[trace][:row_budget]
        if len(read) >= min_calls and (not failed or any(row.failed for row in read)):
            out.append((f"t{trace}", len(read), len(members[trace]) > row_budget))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=rows_strategy,
    since_cut=st.integers(0, 50),
    scan_rows=st.integers(1, 12),
    scan_windows=st.integers(1, 3),
    row_budget=st.integers(1, 12),
    scan_chunk=st.integers(1, 4),
    limit=st.integers(1, 5),
    min_calls=st.integers(1, 3),
    failed=st.booleans(),
    service=st.sampled_from([None, "a"]),
)
def test_following_the_cursor_lists_every_trace_once_newest_first(
    store, monkeypatch, rows, since_cut, scan_rows, scan_windows, row_budget, scan_chunk,
    limit, min_calls, failed, service,
):  # fmt: skip
    reset_store(store)
    monkeypatch.setattr(traces, "LIST_SCAN_ROWS", scan_rows)
    monkeypatch.setattr(traces, "LIST_SCAN_WINDOWS", scan_windows)
    monkeypatch.setattr(traces, "LIST_ROW_BUDGET", row_budget)
    monkeypatch.setattr(traces, "_SCAN_CHUNK", scan_chunk)
    now = time.time()
    records = [
        call(now - age(rows, n), 0.0, 0.01, service=row.service, path=f"/{n}", status=503 if row.failed else 200,
             trace_id=None if row.trace is None else f"t{row.trace}")
        for n, row in enumerate(rows)
    ]  # fmt: skip
    ids = write_records(store, records) if records else []
    event(f"{len(rows) // 10 * 10}+ exchanges")
    # since falls among the exchanges (half a second off any capture): the older ones are out.
    since_age = (len(rows) - since_cut) * 5 + 15.5
    since = dt.datetime.fromtimestamp(now - since_age, dt.UTC)
    pages = every_page(store, since=since, service=service, limit=limit, min_calls=min_calls, failed=failed)
    assert all(len(page["data"]) <= limit for page in pages)
    got = [(s["trace_id"], s["exchange_count"], s["cut"]) for page in pages for s in page["data"]]
    assert got == expected_list(rows, ids, since_age=since_age, service=service, min_calls=min_calls,
                                failed=failed, row_budget=row_budget)  # fmt: skip


# ---------------------------------------------------------------- at any age, with the real window


def test_a_trace_behind_20000_newer_exchanges_is_listed(store, monkeypatch):
    now = time.time()
    since = dt.datetime.fromtimestamp(now - 3600, dt.UTC)
    old = [
        call(now - 600, 0.0, 0.2, trace_id="old-fail", service="web", span_id="f1", path="/checkout"),
        call(now - 600, 0.05, 0.1, trace_id="old-fail", service="billing", caller="web", span_id="f2",
             parent_span_id="f1", status=503),
    ]  # fmt: skip
    write_records(store, old)
    # Newer: LIST_SCAN_ROWS + 500 exchanges, one in a hundred a single-call trace of its own.
    newer = [
        call(now - 300 + n * 0.01, 0.0, 0.005, service="web", path="/x", trace_id=f"new-{n}" if n % 100 == 0 else None)
        for n in range(LIST_SCAN_ROWS + 500)
    ]
    for start in range(0, len(newer), 5000):
        write_records(store, newer[start : start + 5000])
    newest_first = [f"new-{n}" for n in reversed(range(0, LIST_SCAN_ROWS + 500, 100))] + ["old-fail"]

    # A call looks through several windows: the list holds it at once, as does `failed`.
    assert listed([list_traces(store, since=since, limit=500)]) == newest_first
    failing = list_traces(store, since=since, failed=True)
    assert listed([failing]) == ["old-fail"] and failing["next_before"] is None
    # Page by page, no trace twice, none missed.
    assert listed(every_page(store, since=since, limit=50)) == newest_first

    # One window a call: the first page ends at the newest 20,000 exchanges, the cursor goes on.
    monkeypatch.setattr(traces, "LIST_SCAN_WINDOWS", 1)
    first = list_traces(store, since=since, limit=500)
    assert listed([first]) == newest_first[: LIST_SCAN_ROWS // 100]
    assert first["next_before"] is not None
    second = list_traces(store, since=since, limit=500, before=first["next_before"])
    assert listed([second]) == newest_first[LIST_SCAN_ROWS // 100 :] and second["next_before"] is None
    assert second["data"][-1]["error_count"] == 1 and second["data"][-1]["root"]["path"] == "/checkout"
    # With a filter that matches nothing newer, the pages in between are empty but not the last.
    failing = every_page(store, since=since, failed=True)
    assert [len(page["data"]) for page in failing] == [0, 1] and failing[-1]["next_before"] is None


def test_since_ends_the_paging_with_a_null_cursor(store, monkeypatch):
    monkeypatch.setattr(traces, "LIST_SCAN_ROWS", 1000)
    monkeypatch.setattr(traces, "LIST_SCAN_WINDOWS", 1)
    now = time.time()
    # Three capture blocks of traces from two hours ago, then 1,500 exchanges of the last minutes.
    old_count, new_count = 3 * CAPTURE_BLOCK_IDS, 1500
    old = [call(now - 7200 + n * 0.01, 0, 0.005, trace_id=f"old-{n // 10}") for n in range(old_count)]
    new = [call(now - 120 + n * 0.01, 0, 0.005, trace_id=f"new-{n // 10}") for n in range(new_count)]
    for start in range(0, old_count, 5000):
        write_records(store, old[start : start + 5000])
    write_records(store, new)
    pages = every_page(store, since=dt.datetime.fromtimestamp(now - 3600, dt.UTC), limit=500)
    assert listed(pages) == [f"new-{n}" for n in reversed(range(new_count // 10))]
    # 1,000 ids a call: the second reaches the capture block where `since` begins and ends
    # there, not 12 calls later at the oldest exchange.
    assert len(pages) == 2 and pages[-1]["next_before"] is None


def test_a_cursor_below_everything_is_an_empty_last_page(store):
    write_records(store, [call(time.time() - 5, 0, 0.1, trace_id="only")])
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    assert list_traces(store, since=since, before=1) == {"data": [], "next_before": None}
    assert listed([list_traces(store, since=since, before=10**12)]) == ["only"]


@pytest.mark.parametrize("row_budget", [1, 3])
def test_a_trace_larger_than_the_row_budget_is_listed_in_part_and_the_pages_move_on(store, monkeypatch, row_budget):
    monkeypatch.setattr(traces, "LIST_ROW_BUDGET", row_budget)
    now = time.time()
    write_records(store, [call(now - 60, n / 100, n / 100 + 0.005, trace_id="big", span_id=f"b{n}") for n in range(5)])
    write_records(store, [call(now - 30, 0, 0.1, trace_id="small")])
    pages = every_page(store, since=dt.datetime.fromtimestamp(now - 3600, dt.UTC))
    summaries = [s for page in pages for s in page["data"]]
    assert [(s["trace_id"], s["exchange_count"], s["cut"]) for s in summaries] == [
        ("small", 1, False), ("big", row_budget, True),
    ]  # fmt: skip


@pytest.mark.parametrize("newer_exchange", ["of another service", "captured before since"])
def test_a_newer_exchange_that_does_not_count_leaves_the_trace_on_its_page(store, monkeypatch, newer_exchange):
    # One id a call: the newer exchange of `t` is on the page before its key's, which lists it.
    monkeypatch.setattr(traces, "LIST_SCAN_ROWS", 1)
    monkeypatch.setattr(traces, "LIST_SCAN_WINDOWS", 1)
    now = time.time()
    newer = {"service": "b"} if newer_exchange == "of another service" else {"captured_at": now - 7200}
    write_records(store, [
        call(now - 30, 0, 0.1, trace_id="t", service="a"),
        make_record(trace_id="t", **{"service": "a", "captured_at": now - 20, **newer}),
        call(now - 10, 0, 0.1, trace_id="u", service="a"),
    ])  # fmt: skip
    pages = every_page(store, since=dt.datetime.fromtimestamp(now - 3600, dt.UTC), service="a", limit=1)
    assert listed(pages) == ["u", "t"]
