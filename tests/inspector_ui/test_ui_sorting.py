"""GET /api/exchanges?sort=&order=&cursor=: the list sorted by duration, size or status, paged
with the page's `next`, on SQLite and PostgreSQL; bad values are one-line errors."""

from __future__ import annotations

import pytest

from storage.sink import write_records
from tests.support.records import make_record


@pytest.fixture
def sorted_client(any_store, make_client):
    durations = [30.0, 2.5, 900.0, 30.0, 120.0]
    ids = write_records(any_store, [make_record(path=f"/d/{i}", duration_ms=d) for i, d in enumerate(durations)])
    return make_client(app_store=any_store), ids


def test_sorted_pages_follow_next_as_cursor(sorted_client):
    client, _ids = sorted_client
    seen, cursor = [], None
    while True:
        params = {"sort": "duration", "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/exchanges", params=params).json()
        seen += [(s["duration_ms"], s["id"]) for s in page["data"]]
        if page["next"] is None:
            break
        cursor = page["next"]
    assert [d for d, _ in seen] == [900.0, 120.0, 30.0, 30.0, 2.5]
    assert seen[2][1] > seen[3][1]  # the tie: newer first
    ascending = client.get("/api/exchanges", params={"sort": "duration", "order": "asc"}).json()
    assert [s["duration_ms"] for s in ascending["data"]] == [2.5, 30.0, 30.0, 120.0, 900.0]


def test_the_default_order_still_pages_with_before(sorted_client):
    client, ids = sorted_client
    page = client.get("/api/exchanges", params={"limit": 2, "sort": "time", "order": "desc"}).json()
    assert page["next"] == ids[-2]


@pytest.mark.parametrize(
    ("query", "status", "mentions"),
    [
        ("sort=path", 422, "sort"),
        ("sort=duration&order=sideways", 422, "order"),
        ("sort=duration&before=3", 422, "cursor="),
        ("cursor=12~3", 422, "before="),
        ("sort=size&cursor=big~3", 422, "not a page cursor"),
    ],
)
def test_bad_sort_parameters_are_one_line_errors(sorted_client, query, status, mentions):
    client, _ = sorted_client
    response = client.get(f"/api/exchanges?{query}")
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/")
    text = response.text
    assert mentions in text and "Traceback" not in text
