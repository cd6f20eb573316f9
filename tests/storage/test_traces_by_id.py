"""A trace is found by its id at any age: through the trace_id index, not among the newest exchanges."""

from __future__ import annotations

from storage import write_records
from storage.store import Store
from storage.traces import LIST_SCAN_ROWS, get_trace, trace_exchange_ids
from tests.support.records import make_record

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_an_old_trace_is_found_past_the_newest_exchanges(store: Store) -> None:
    t0 = 1_780_000_000.0
    write_records(store, [make_record(captured_at=t0, service="a", path="/first", trace_id=TRACE, span_id="00f067aa0ba902b7"),
                          make_record(captured_at=t0 + 1, service="b", path="/second", trace_id=TRACE)])  # fmt: skip
    newer = [make_record(captured_at=t0 + 10 + i * 0.001, service="a", path="/x") for i in range(LIST_SCAN_ROWS + 500)]
    for start in range(0, len(newer), 5000):
        write_records(store, newer[start : start + 5000])
    found = get_trace(store, trace_id=TRACE)
    assert found is not None and found["trace_id"] == TRACE
    assert len(trace_exchange_ids(store, trace_id=TRACE, limit=10)[0]) == 2
    plan_sql = (
        "EXPLAIN QUERY PLAN SELECT id FROM exchanges WHERE trace_id IS NOT NULL AND trace_id = 'x'"
        if store.dialect == "sqlite"
        else "EXPLAIN SELECT id FROM exchanges WHERE trace_id IS NOT NULL AND trace_id = 'x'"
    )
    with store.connect() as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql("ANALYZE exchanges")
        plan = " ".join(str(row) for row in conn.exec_driver_sql(plan_sql))
    assert "ix_exchanges_trace_id" in plan
