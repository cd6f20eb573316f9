"""is:fault and fault:MARK: exchanges an injected fault rule touched (proxy.faults), written
through the real write path and searched on SQLite and PostgreSQL; the spool keeps the mark."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite

from storage.pure.search import parse_query
from storage.queries import get_exchange, list_exchanges
from storage.record_codec import decode_record, encode_record
from storage.search_sql import compile_query
from storage.sink import write_records
from tests.support.records import make_record


@pytest.fixture
def ids(store) -> dict[str, int]:  # type: ignore[no-untyped-def]
    records = {
        "plain": make_record(),
        "status": make_record(fault="#3 status 503", status=503),
        "delay": make_record(fault="#4 delay 300 ms", path="/pay"),
        "tested": make_record(fault="#3 status 503", test_name="checkout"),
    }
    return dict(zip(records, write_records(store, list(records.values())), strict=True))


def _names(store, ids: dict[str, int], q: str) -> set[str]:  # type: ignore[no-untyped-def]
    by_id = {v: k for k, v in ids.items()}
    return {by_id[row["id"]] for row in list_exchanges(store, q=q, limit=100).data}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("is:fault", {"status", "delay", "tested"}),
        ("-is:fault", {"plain"}),
        ('fault:"#3 status 503"', {"status", "tested"}),
        ("fault:#4*", {"delay"}),
        ("fault:*delay*", {"delay"}),
        ("is:fault path:/pay", {"delay"}),
        ("is:fault -is:test", {"status", "delay"}),
    ],
)
def test_search(store, ids, q: str, expected: set[str]) -> None:  # type: ignore[no-untyped-def]
    assert _names(store, ids, q) == expected


def test_the_exchange_says_what_the_fault_did(store, ids) -> None:  # type: ignore[no-untyped-def]
    assert get_exchange(store, exchange_id=ids["delay"])["fault"] == "#4 delay 300 ms"
    summaries = {row["id"]: row["fault"] for row in list_exchanges(store, limit=10).data}
    assert summaries[ids["status"]] == "#3 status 503" and summaries[ids["plain"]] is None


@pytest.mark.parametrize(
    "fields", [{"fault": "#1 reset"}, {"fault": "#1 reset", "test_name": "t"}, {"test_name": "t"}, {}]
)
def test_the_spool_keeps_the_mark(fields) -> None:  # type: ignore[no-untyped-def]
    record = make_record(**fields)
    assert decode_record(encode_record(record)) == record


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_terms_name_the_partial_index_condition(dialect: str) -> None:
    compiled = str(
        compile_query(parse_query("fault:#3* is:fault"), dialect=dialect).compile(
            dialect=sqlite.dialect() if dialect == "sqlite" else postgresql.dialect(),
            compile_kwargs={"literal_binds": True},
        )
    )
    assert compiled.count("exchanges.fault IS NOT NULL") == 2


def test_sqlite_finds_faults_through_the_partial_index(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    write_records(sqlite_store, [make_record(fault="#1 reset"), make_record()])
    with sqlite_store.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(
            text("EXPLAIN QUERY PLAN SELECT id FROM exchanges WHERE fault IS NOT NULL ORDER BY id DESC LIMIT 50")))  # fmt: skip
    assert "ix_exchanges_fault_id" in plan
