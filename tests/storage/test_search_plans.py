"""The plans behind a search give the same pages as the search's plain meaning.

Two plans take shortcuts that must never change a result (storage.queries, search_sql):
- time terms (since:/after:/before:) also bound the id scan, through capture_blocks,
  though ids follow capture time only roughly;
- on SQLite, free text every result must contain is read from FTS5 newest first, within
  the newest ids, with the plain plan below them.
Here blocks hold 4 ids and the walk covers 3 ids, capture times are out of id order, and
every page of every query is checked against the records themselves (hypothesis).
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import storage.queries
import storage.rows
import storage.search_sql
from storage.indexer import index_pending
from storage.pure.record import CapturedBody
from storage.pure.search import text_tokens
from storage.queries import list_exchanges
from storage.rows import capture_blocks
from storage.sink import write_records
from storage.store import open_store
from tests.support.records import make_record
from tests.support.stores import reset_store

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
WORDS = ("alpha", "beta", "gamma", "alphabet")
SERVICES = ("users", "orders")


@pytest.fixture(autouse=True)
def small_blocks_and_window(monkeypatch):
    monkeypatch.setattr(storage.rows, "CAPTURE_BLOCK_IDS", 4)
    monkeypatch.setattr(storage.search_sql, "CAPTURE_BLOCK_IDS", 4)
    monkeypatch.setattr(storage.queries, "_TEXT_WALK_IDS", 3)
    monkeypatch.setattr(storage.queries, "_TEXT_SET_MAX", 2)


def test_capture_blocks_cover_each_block_of_ids():
    t = [T0 + dt.timedelta(seconds=s) for s in range(10)]
    pairs = [(9, t[5]), (1, t[3]), (2, t[1]), (3, t[2]), (4, t[0]), (8, t[7]), (10, t[6])]
    assert capture_blocks(pairs) == [(0, t[1], t[3]), (1, t[0], t[0]), (2, t[5], t[7])]


exchange = st.tuples(
    st.integers(0, 3600),  # seconds after T0: independent of the order of writing
    st.sampled_from(SERVICES),
    st.lists(st.sampled_from(WORDS), max_size=3),
)


def _record(second: int, service: str, words: list[str]):
    body = " ".join(words).encode()
    return make_record(
        captured_at=(T0 + dt.timedelta(seconds=second)).timestamp(),
        service=service,
        path=f"/{service}",
        query="",
        response_body=CapturedBody(data=body, size=len(body), truncated=False, content_type="text/plain"),
    )


def _matches(query: str, second: int, service: str, words: list[str]) -> bool:
    """The meaning of the few terms the strategy below makes, evaluated on the record."""
    at = T0 + dt.timedelta(seconds=second)
    for term in query.split():
        field, _, value = term.partition(":")
        if field == "after" and not at >= dt.datetime.fromisoformat(value):
            return False
        if field == "before" and not at < dt.datetime.fromisoformat(value):
            return False
        if field == "service" and service != value:
            return False
        if not value:  # a bare word: a token of the body or the URL that starts with it
            tokens = text_tokens(" ".join(words)) + text_tokens(f"http://users.internal:8000/{service}")
            if not any(token.startswith(term) for token in tokens):
                return False
    return True


query = st.lists(
    st.one_of(
        st.integers(0, 3600).map(lambda s: f"after:{(T0 + dt.timedelta(seconds=s)).isoformat()}"),
        st.integers(0, 3600).map(lambda s: f"before:{(T0 + dt.timedelta(seconds=s)).isoformat()}"),
        st.sampled_from(SERVICES).map(lambda s: f"service:{s}"),
        st.sampled_from((*WORDS, "alph", "users")),
    ),
    min_size=1,
    max_size=3,
).map(" ".join)


@pytest.fixture(scope="module")
def plans_store(tmp_path_factory):
    """One SQLite store for every example, emptied before each (reset_store: as if freshly migrated;
    a new file per example spent most of this test migrating)."""
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('plans')}/plans.db")
    yield store
    store.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(exchange, min_size=1, max_size=8), min_size=1, max_size=5), st.lists(query, min_size=1, max_size=4), st.integers(1, 4))
def test_every_page_matches_the_records_sqlite(plans_store, batches, queries, page_size):
    _check(reset_store(plans_store), batches, queries, page_size)


def test_every_page_matches_the_records_postgresql(pg_store):
    import random

    rng = random.Random(5)
    reset_store(pg_store)
    batches = [[(rng.randrange(3600), rng.choice(SERVICES), rng.sample(WORDS, rng.randrange(3))) for _ in range(7)] for _ in range(6)]
    queries = ["after:2026-11-01T00:30:00+00:00", "before:2026-11-01T00:20:00+00:00 service:orders",
               "alpha after:2026-11-01T00:10:00+00:00 before:2026-11-01T00:50:00+00:00", "gamma"]  # fmt: skip
    _check(pg_store, batches, queries, 2)


def _check(store, batches, queries, page_size):
    stored = []
    for batch in batches:
        ids = write_records(store, [_record(*fields) for fields in batch])
        stored.extend(zip(ids, batch, strict=True))
    while index_pending(store):
        pass
    for q in queries:
        expected = [id_ for id_, fields in sorted(stored, reverse=True) if _matches(q, *fields)]
        got, before = [], None
        while True:
            page = list_exchanges(store, q=q, limit=page_size, before=before)
            got.extend(row["id"] for row in page.data)
            if page.next is None:
                break
            before = page.next
        assert got == expected, q
