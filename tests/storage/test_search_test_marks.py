"""is:test and test:NAME: exchanges that API test steps sent, parsed and searched on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite

from storage.pure.search import QueryError, parse_query
from storage.queries import get_exchange, list_exchanges
from storage.search_sql import compile_query
from storage.sink import write_records
from tests.support.records import make_record


@pytest.mark.parametrize(
    ("query", "field", "op", "value", "negated"),
    [
        ("is:test", "is", "=", "test", False),
        ("-is:test", "is", "=", "test", True),
        ("test:checkout", "test", "=", "checkout", False),
        ("test:check*", "test", "glob", "check*", False),
        ('test:"smoke tests"', "test", "=", "smoke tests", False),
        ("-test:checkout", "test", "=", "checkout", True),
    ],
)
def test_parse(query: str, field: str, op: str, value: str, negated: bool) -> None:
    (term,) = parse_query(query).terms
    assert (term.field, term.op, term.value, term.negated) == (field, op, value, negated)
    assert parse_query(str(parse_query(query))) == parse_query(query)


def test_a_test_term_needs_a_name() -> None:
    with pytest.raises(QueryError, match="test: needs a value"):
        parse_query("test:")


@pytest.fixture
def ids(store) -> dict[str, int]:  # type: ignore[no-untyped-def]
    records = {
        "plain": make_record(),
        "checkout": make_record(test_name="checkout", path="/cart"),
        "checkout_eu": make_record(test_name="checkout-eu"),
        "login": make_record(test_name="login flow"),
    }
    return dict(zip(records, write_records(store, list(records.values())), strict=True))


def _names(store, ids: dict[str, int], q: str) -> set[str]:  # type: ignore[no-untyped-def]
    by_id = {v: k for k, v in ids.items()}
    return {by_id[row["id"]] for row in list_exchanges(store, q=q, limit=100).data}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("is:test", {"checkout", "checkout_eu", "login"}),
        ("-is:test", {"plain"}),
        ("test:checkout", {"checkout"}),
        ("test:checkout*", {"checkout", "checkout_eu"}),
        ("test:CHECKOUT", set()),
        ('test:"login flow"', {"login"}),
        ("-test:checkout", {"plain", "checkout_eu", "login"}),
        ("test:checkout OR test:login*", {"checkout", "login"}),
        ("is:test path:/cart", {"checkout"}),
    ],
)
def test_search(store, ids, q: str, expected: set[str]) -> None:  # type: ignore[no-untyped-def]
    assert _names(store, ids, q) == expected


def test_the_exchange_says_which_test_sent_it(store, ids) -> None:  # type: ignore[no-untyped-def]
    assert get_exchange(store, exchange_id=ids["checkout"])["test_name"] == "checkout"
    assert get_exchange(store, exchange_id=ids["plain"])["test_name"] is None
    summaries = {row["id"]: row["test_name"] for row in list_exchanges(store, limit=10).data}
    assert summaries[ids["login"]] == "login flow" and summaries[ids["plain"]] is None


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_terms_name_the_partial_index_condition(dialect: str) -> None:
    # The planner may use ix_exchanges_test_name_id (WHERE test_name IS NOT NULL) only when the
    # query implies that condition; spelled out, it is implied on both databases.
    compiled = str(
        compile_query(parse_query("test:checkout* is:test"), dialect=dialect).compile(
            dialect=sqlite.dialect() if dialect == "sqlite" else postgresql.dialect(),
            compile_kwargs={"literal_binds": True},
        )
    )
    assert compiled.count("exchanges.test_name IS NOT NULL") == 2


def test_sqlite_finds_a_test_through_its_index(sqlite_store) -> None:  # type: ignore[no-untyped-def]
    write_records(sqlite_store, [make_record(test_name="checkout"), make_record()])
    with sqlite_store.connect() as conn:
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                text("EXPLAIN QUERY PLAN SELECT id FROM exchanges WHERE test_name IS NOT NULL AND test_name = 'checkout'")
            )
        )
    assert "ix_exchanges_test_name_id" in plan
