"""?q= on GET /api/exchanges and WS /api/stream: filtering, pagination, 400 / 1008 on a bad query."""

from __future__ import annotations

import json
import time

import pytest
from ui_support import live_inspector
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from storage.indexer import index_pending
from storage.sink import write_records
from storage.store import open_store
from tests.support.records import make_record


def test_q_filters_and_paginates_with_the_cursor(store, client):
    ids = write_records(
        store,
        [
            make_record(path=f"/n/{i}", status=500 if i % 2 else 200, service="orders")
            for i in range(7)
        ],
    )
    errors = sorted((id_ for i, id_ in enumerate(ids) if i % 2), reverse=True)
    seen, before = [], None
    while True:
        params = {"q": "status:5xx path:/n/*", "limit": 2} | (
            {"before": before} if before else {}
        )
        response = client.get("/api/exchanges", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [row["id"] for row in page["data"]]
        if page["next"] is None:
            break
        before = page["next"]
    assert seen == errors
    # combined with the existing filters; an empty q is no filter
    assert (
        client.get(
            "/api/exchanges", params={"q": "-status:5xx", "service": "nope"}
        ).json()["data"]
        == []
    )
    assert len(client.get("/api/exchanges", params={"q": ""}).json()["data"]) == 7


def test_free_text_over_the_api(store, client):
    (hit, _) = write_records(
        store, [make_record(path="/checkout/confirm"), make_record(path="/cart")]
    )
    index_pending(store)  # as the app's indexer does, without waiting for it
    data = client.get("/api/exchanges", params={"q": "checkout"}).json()["data"]
    assert [row["id"] for row in data] == [hit]


@pytest.mark.parametrize(
    ("q", "position", "fragment"),
    [
        (
            "method:GET stauts:404",
            11,
            'unknown field "stauts" (did you mean "status"?)',
        ),
        ('"open', 0, "unterminated quote"),
        ("a OR", 2, "OR needs a term on each side"),
        ("x" * 2001, 2000, "query too long (at most 2000 characters)"),
    ],
)
def test_bad_query_is_400_with_message_and_position(client, q, position, fragment):
    response = client.get("/api/exchanges", params={"q": q})
    assert response.status_code == 400
    body = response.json()
    assert body["position"] == position
    assert fragment in body["message"] and body["detail"] == body["message"]


def test_search_problem_is_in_the_openapi_document(client):
    responses = client.get("/api/openapi.json").json()["paths"]["/api/exchanges"][
        "get"
    ]["responses"]
    assert responses["400"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SearchProblem"
    )


def _hello(ws) -> dict:
    hello = json.loads(ws.recv(timeout=5))
    assert hello["type"] == "hello"
    return hello


def test_stream_sends_only_matching_exchanges(any_store):
    with (
        live_inspector(any_store) as inspector,
        connect(inspector.ws + "?q=status:5xx") as errors,
        connect(inspector.ws + "?q=status:5xx") as errors_too,
        connect(inspector.ws + "?q=checkout") as text,
        connect(inspector.ws) as everything,
    ):
        for ws in (errors, errors_too, text, everything):
            _hello(ws)
        time.sleep(0.2)
        other = open_store(any_store.url)
        try:
            ids = write_records(
                other,
                [
                    make_record(path="/a", status=200),
                    make_record(path="/b", status=503),
                    make_record(path="/checkout", status=200),
                    make_record(path="/c", status=500),
                ],
            )
        finally:
            other.close()
        got_all = [json.loads(everything.recv(timeout=5))["data"]["id"] for _ in ids]
        assert got_all == ids
        for ws in (errors, errors_too):
            assert [json.loads(ws.recv(timeout=5))["data"]["id"] for _ in range(2)] == [
                ids[1],
                ids[3],
            ]
        assert json.loads(text.recv(timeout=5))["data"]["id"] == ids[2]
        for ws in (errors, errors_too, text):
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.3)


def test_stream_with_a_bad_query_says_why_and_closes_1008(store):
    with (
        live_inspector(store) as inspector,
        connect(inspector.ws + "?q=stauts:5xx") as ws,
    ):
        error = json.loads(ws.recv(timeout=5))
        assert error == {
            "type": "error",
            "message": 'unknown field "stauts" (did you mean "status"?)',
            "position": 0,
        }
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
        assert info.value.rcvd.code == 1008
        assert "stauts" in info.value.rcvd.reason


def test_one_match_query_per_distinct_search_not_per_viewer(store, monkeypatch):
    import asyncio

    from inspector_ui import broadcast
    from storage.pure.search import parse_query

    calls: list[str] = []
    real = broadcast.match_ids

    def counting(store_, *, ids, q):
        calls.append(str(q))
        return real(store_, ids=ids, q=q)

    monkeypatch.setattr(broadcast, "match_ids", counting)
    ids = write_records(store, [make_record(status=200), make_record(status=503)])
    broadcaster = broadcast.Broadcaster(store)
    viewers = [
        broadcaster.subscribe(parse_query(q))
        for q in ("status:5xx", "status:5xx", "status:5XX", "is:error")
    ]

    asyncio.run(broadcaster.publish_ids(ids, indexed=False))
    assert sorted(calls) == ["is:error", "status:5xx"]  # the same canonical search once
    for viewer in viewers:
        assert viewer.pending == 1


def test_viewers_without_index_terms_are_not_held_back_by_indexing(store):
    import asyncio

    from inspector_ui.broadcast import Broadcaster
    from storage.pure.search import parse_query

    (new_id,) = write_records(store, [make_record(path="/orders/7", status=503)])  # queued, not yet indexed
    broadcaster = Broadcaster(store)
    everything = broadcaster.subscribe()
    structured = broadcaster.subscribe(parse_query("status:5xx"))
    free_text = broadcaster.subscribe(parse_query("orders"))

    asyncio.run(broadcaster.publish_ids([new_id], indexed=False))
    assert (everything.pending, structured.pending, free_text.pending) == (1, 1, 0)

    index_pending(store, ids=[new_id])
    asyncio.run(broadcaster.publish_ids([new_id], indexed=True))
    assert (everything.pending, structured.pending, free_text.pending) == (1, 1, 1)


@pytest.mark.parametrize("indexer", ["this process", "another process"])
def test_a_free_text_viewer_gets_a_new_exchange_once_it_is_indexed_by_whoever_indexes_it(store, indexer):
    """This process's maintenance tells the broadcaster (`indexed`) what it indexed; what another
    process indexed, the broadcaster finds gone from the search queue (INDEX_POLL)."""
    import asyncio

    from inspector_ui.broadcast import INDEX_POLL, Broadcaster
    from storage.pure.search import parse_query

    async def main() -> float:
        broadcaster = Broadcaster(store, poll_interval=0.02)
        viewer = broadcaster.subscribe(parse_query("orders"))
        running = asyncio.create_task(broadcaster.run())
        try:
            while not broadcaster.running:
                await asyncio.sleep(0.01)
            (new_id,) = await asyncio.to_thread(write_records, store, [make_record(path="/orders/7")])
            await asyncio.sleep(0.3)  # reported by the feed, awaited: not indexed, not sent
            assert viewer.pending == 0
            start = time.monotonic()
            assert await asyncio.to_thread(index_pending, store, ids=[new_id]) == [new_id]
            if indexer == "this process":
                broadcaster.indexed([new_id])
            message = json.loads(await asyncio.wait_for(viewer.next(), 5))
            assert message["data"]["id"] == new_id
            return time.monotonic() - start
        finally:
            running.cancel()

    latency = asyncio.run(main())
    assert latency < (0.1 if indexer == "this process" else INDEX_POLL + 0.5), latency


def test_exchanges_indexed_here_before_the_feed_reports_them_are_not_awaited(store):
    """This process's maintenance follows its own feed and may index an exchange before the
    broadcaster's feed reports it: the broadcaster remembers it and does not wait for a poll."""
    import asyncio

    from inspector_ui import broadcast
    from storage.pure.search import parse_query

    async def main() -> None:
        broadcaster = broadcast.Broadcaster(store, poll_interval=0.5)
        viewer = broadcaster.subscribe(parse_query("orders"))
        running = asyncio.create_task(broadcaster.run())
        try:
            while not broadcaster.running:
                await asyncio.sleep(0.01)
            (new_id,) = await asyncio.to_thread(write_records, store, [make_record(path="/orders/8")])
            broadcaster.indexed(await asyncio.to_thread(index_pending, store, ids=[new_id]))
            message = json.loads(await asyncio.wait_for(viewer.next(), 5))
            assert message["data"]["id"] == new_id
        finally:
            running.cancel()

    looks: list[list[int]] = []
    real_pending_ids = broadcast.pending_ids

    def counting(store_, *, ids):  # type: ignore[no-untyped-def]
        looks.append(list(ids))
        return real_pending_ids(store_, ids=ids)

    broadcast.pending_ids = counting
    try:
        asyncio.run(main())
    finally:
        broadcast.pending_ids = real_pending_ids
    assert looks == []


def test_exchanges_nobody_indexes_are_given_up_after_index_wait(store, monkeypatch, caplog):
    import asyncio

    from inspector_ui import broadcast
    from storage.pure.search import parse_query

    monkeypatch.setattr(broadcast, "INDEX_WAIT", 0.5)

    async def main() -> broadcast.Broadcaster:
        broadcaster = broadcast.Broadcaster(store, poll_interval=0.02)
        viewer = broadcaster.subscribe(parse_query("orders"))
        running = asyncio.create_task(broadcaster.run())
        try:
            while not broadcaster.running:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(write_records, store, [make_record(path="/orders/9") for _ in range(3)])
            deadline = time.monotonic() + 5
            while broadcaster.unindexed < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert viewer.pending == 0
            return broadcaster
        finally:
            running.cancel()

    assert asyncio.run(main()).unindexed == 3
    assert "were not indexed for search within" in caplog.text


def test_inspector_indexes_what_was_captured_before_it_started(store, make_client):
    (hit, _) = write_records(store, [make_record(path="/before/start"), make_record(path="/other")])
    client = make_client()  # its lifespan catches up with the search queue
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        data = client.get("/api/exchanges", params={"q": "before"}).json()["data"]
        if data:
            break
        time.sleep(0.02)
    assert [row["id"] for row in data] == [hit]
