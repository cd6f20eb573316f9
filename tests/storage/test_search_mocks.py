"""is:mock and mock:GLOB: exchanges a simulated service's recordings answered (proxy.mocks),
written through the real write path and searched on SQLite and PostgreSQL; the spool keeps the
mark, and a record spooled before the mark existed still reads."""

from __future__ import annotations

import msgpack
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
        "stored": make_record(mock="#1234"),
        "har": make_record(mock="har:entry 7", path="/orders"),
        "missed": make_record(mock="no-match", status=404),
        "faulted": make_record(mock="#1234", fault="#3 status 503", status=503),
    }
    return dict(zip(records, write_records(store, list(records.values())), strict=True))


def _names(store, ids: dict[str, int], q: str) -> set[str]:  # type: ignore[no-untyped-def]
    by_id = {v: k for k, v in ids.items()}
    return {by_id[row["id"]] for row in list_exchanges(store, q=q, limit=100).data}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("is:mock", {"stored", "har", "missed", "faulted"}),
        ("-is:mock", {"plain"}),
        ('mock:"#1234"', {"stored", "faulted"}),
        ("mock:har:*", {"har"}),
        ("mock:no-match", {"missed"}),
        ("is:mock -mock:no-match", {"stored", "har", "faulted"}),
        ("is:mock path:/orders", {"har"}),
        ("is:mock is:fault", {"faulted"}),
    ],
)
def test_search(store, ids, q: str, expected: set[str]) -> None:  # type: ignore[no-untyped-def]
    assert _names(store, ids, q) == expected


def test_the_exchange_says_which_recording_answered(store, ids) -> None:  # type: ignore[no-untyped-def]
    assert get_exchange(store, exchange_id=ids["har"])["mock"] == "har:entry 7"
    summaries = {row["id"]: row["mock"] for row in list_exchanges(store, limit=10).data}
    assert summaries[ids["stored"]] == "#1234" and summaries[ids["plain"]] is None


@pytest.mark.parametrize(
    "fields",
    [{"mock": "#1"}, {"mock": "#1", "fault": "#2 reset"}, {"mock": "no-match", "test_name": "t"}, {"fault": "#1 reset"}, {}],
)
def test_the_spool_keeps_the_mark(fields) -> None:  # type: ignore[no-untyped-def]
    record = make_record(**fields)
    assert decode_record(encode_record(record)) == record


def test_a_record_spooled_before_the_mark_reads() -> None:
    # An older proxy wrote every field up to `fault`: the trailing optional field defaults.
    record = make_record(fault="#1 reset")
    values = msgpack.unpackb(encode_record(record), raw=False)
    assert len(values) == 1 + 34  # kind + the fields up to fault
    assert decode_record(msgpack.packb(values, use_bin_type=True)).mock is None


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_terms_name_the_partial_index_condition(dialect: str) -> None:
    compiled = str(
        compile_query(parse_query("mock:#1* is:mock"), dialect=dialect).compile(
            dialect=sqlite.dialect() if dialect == "sqlite" else postgresql.dialect(),
            compile_kwargs={"literal_binds": True},
        )
    )
    assert compiled.count("exchanges.mock IS NOT NULL") == 2


def test_sqlite_finds_mocks_through_the_partial_index(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    write_records(sqlite_store, [make_record(mock="#1"), make_record()])
    with sqlite_store.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(
            text("EXPLAIN QUERY PLAN SELECT id FROM exchanges WHERE mock IS NOT NULL ORDER BY id DESC LIMIT 50")))  # fmt: skip
    assert "ix_exchanges_mock_id" in plan
