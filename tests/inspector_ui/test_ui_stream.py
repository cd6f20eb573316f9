"""WS /api/stream against a real uvicorn server and real databases."""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import threading
import time

import pytest
from ui_support import live_inspector
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from storage.sink import write_records
from storage.store import open_store
from tests.support.records import make_record

SAMPLES = 5
WRITER = """
import sys, time, uuid
from storage.store import open_store
from storage.sink import write_records
from storage.pure.record import ExchangeRecord, Timings
store = open_store(sys.argv[1])
sys.stdout.write("ready\\n"); sys.stdout.flush()
for line in sys.stdin:  # one exchange per "go"
    now = time.time()
    record = ExchangeRecord(uuid=uuid.uuid4().hex, captured_at=now, proxy="other-process", scheme="http",
        method="PUT", host="orders.internal", port=80, path="/orders/7", query="", http_version="HTTP/1.1",
        request_headers=[], request_body=None, timings=Timings(request_start=now), service="orders", status=204)
    (exchange_id,) = write_records(store, [record])
    sys.stdout.write(f"{exchange_id} {time.time()}\\n"); sys.stdout.flush()
store.close()
"""


def _hello(ws) -> dict:
    hello = json.loads(ws.recv(timeout=5))
    assert hello["type"] == "hello" and hello["protocol"] == 1
    return hello


@pytest.mark.exclusive  # a timing bound: nothing else runs beside it under xdist
@pytest.mark.parametrize("q", [None, "orders"], ids=["all", "free-text"])
def test_exchange_written_by_another_process_arrives_within_250ms(any_store, db_url, q):
    """A `?q=` viewer's exchange is indexed (by this inspector's maintenance, which tells the
    broadcaster at once) before it is matched: still fast."""
    write_records(any_store, [make_record()])
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, db_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "ready"  # imports and migrations done before timing
        url_q = "" if q is None else f"?q={q}"
        with live_inspector(any_store) as inspector, connect(inspector.ws + url_q) as ws:
            hello = _hello(ws)
            assert hello["last_id"] is not None
            time.sleep(0.3)  # the feed is established; nothing else arrives
            latencies = []
            for _ in range(SAMPLES):
                writer.stdin.write("go\n")
                writer.stdin.flush()
                message = json.loads(ws.recv(timeout=5))
                received_at = time.time()
                exchange_id, committed_at = writer.stdout.readline().split()
                assert message["type"] == "exchange"
                assert message["data"]["id"] == int(exchange_id) > hello["last_id"]
                assert message["data"]["proxy"] == "other-process" and message["data"]["status"] == 204
                latencies.append(received_at - float(committed_at))
            shown = ", ".join(f"{latency * 1000:.0f}" for latency in latencies)
            print(f"stream latency ({q or 'all'}) ms: {shown}")
            # One sample on a shared 2-core machine can land in a scheduling hiccup:
            # the typical delivery (median) must be within 250 ms, and none may stall.
            assert statistics.median(latencies) < 0.25, shown
            assert max(latencies) < 1.0, shown
    finally:
        writer.stdin.close()
        writer.wait(10)


@pytest.mark.exclusive  # a timing bound: the cross-process delivery within 1.5 s
def test_a_free_text_viewer_of_an_inspector_without_maintenance_gets_what_a_separate_maintain_indexes(any_store):
    """An inspector that leaves maintenance to `passageway maintain`: it indexes nothing itself,
    and its `?q=` viewers still get each exchange once the other process has indexed it."""
    from storage.maintenance import run_maintenance
    from storage.queries import index_backlog
    from storage.retention import RetentionPolicy

    with live_inspector(any_store, maintenance=False) as inspector, connect(inspector.ws + "?q=orders") as ws:
        assert inspector.server.app.state.maintenance is None
        _hello(ws)
        (waiting,) = write_records(any_store, [make_record(path="/orders/1")])
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1)
        assert index_backlog(any_store) == 1  # nobody indexes it

        other = open_store(any_store.url)  # the maintain process's own connections
        stop = threading.Event()
        maintain = threading.Thread(
            target=run_maintenance, args=(other,), kwargs={"retention_policy": RetentionPolicy(), "stop": stop}
        )
        maintain.start()
        try:
            # Its sweep indexes what waits, and the stream (still awaiting it: INDEX_WAIT) sends it.
            assert json.loads(ws.recv(timeout=5))["data"]["id"] == waiting
            for path in ("/orders/2", "/orders/3"):
                (new_id,) = write_records(any_store, [make_record(path=path)])
                written_at = time.monotonic()
                assert json.loads(ws.recv(timeout=5))["data"]["id"] == new_id
                latency = time.monotonic() - written_at
                assert latency < 1.5, latency
        finally:
            stop.set()
            maintain.join(10)
            other.close()


def test_every_exchange_of_a_batch_arrives_in_order(any_store):
    with live_inspector(any_store) as inspector, connect(inspector.ws) as ws:
        assert _hello(ws)["last_id"] is None
        time.sleep(0.2)
        other = open_store(any_store.url)  # a second connection pool, as another writer would have
        try:
            ids = write_records(other, [make_record(path=f"/b/{i}") for i in range(50)])
        finally:
            other.close()
        got = [json.loads(ws.recv(timeout=5))["data"]["id"] for _ in ids]
        assert got == ids


def test_slow_viewer_is_dropped_while_a_fast_one_keeps_receiving(store):
    """The slow viewer stops reading, so its TCP window and the server's write buffer fill;
    its queue then overflows and it is disconnected, while the fast viewer gets everything."""
    big = "x" * 8000
    total = 1200  # ~10 MB: far beyond socket buffers
    with live_inspector(store, stream_queue_size=20, stream_close_timeout=0.5) as inspector:
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", inspector.server.port))
        slow.sendall(
            b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert slow.recv(4096).startswith(b"HTTP/1.1 101")
        received: list[int] = []

        with connect(inspector.ws, max_size=None) as fast:
            _hello(fast)
            broadcaster = inspector.server.app.state.broadcaster
            deadline = time.monotonic() + 5
            while broadcaster.clients < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert broadcaster.clients == 2

            def read_fast():
                try:
                    while len(received) < total:
                        received.append(json.loads(fast.recv(timeout=10))["data"]["n"])
                except (TimeoutError, ConnectionClosed):
                    pass

            reader = threading.Thread(target=read_fast)
            reader.start()
            for start in range(0, total, 10):
                inspector.call(
                    lambda s=start: [broadcaster.publish({"type": "exchange", "data": {"n": n, "pad": big}}) for n in range(s, s + 10)]
                )
                time.sleep(0.002)  # the fast viewer keeps up; the slow one does not read at all
            reader.join(20)
            assert received == list(range(total))
            assert broadcaster.dropped == 1
            assert broadcaster.clients == 1

        # Reading what was buffered, the dropped viewer finds the 1013 close frame (when the server
        # could still queue it) or the end of the connection.
        slow.settimeout(10)
        tail = b""
        while chunk := slow.recv(65536):
            tail = (tail + chunk)[-200:]
            if b"\x88" + bytes([2 + 61]) + b"\x03\xf5too slow" in tail:
                break
        slow.close()


def test_viewer_that_overflows_gets_close_1013(store):
    with live_inspector(store, stream_queue_size=3) as inspector, connect(inspector.ws) as ws:
        _hello(ws)
        broadcaster = inspector.server.app.state.broadcaster
        while broadcaster.clients < 1:
            time.sleep(0.01)
        # ten messages in one loop turn: more than the queue holds before the sender can run
        inspector.call(lambda: [broadcaster.publish({"type": "exchange", "data": {"n": n}}) for n in range(10)])
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=5)
        assert closed.value.rcvd.code == 1013
        assert "too slow" in closed.value.rcvd.reason


def test_client_disconnect_is_cleaned_up(store):
    with live_inspector(store) as inspector:
        broadcaster = inspector.server.app.state.broadcaster
        for _ in range(3):
            with connect(inspector.ws) as ws:
                _hello(ws)
        deadline = time.monotonic() + 5
        while broadcaster.clients and time.monotonic() < deadline:
            time.sleep(0.01)
        assert broadcaster.clients == 0


def test_testclient_stream_hello_and_exchange(store, client):
    with client.websocket_connect("ws://127.0.0.1/api/stream") as ws:
        assert ws.receive_json() == {"type": "hello", "protocol": 1, "last_id": None}
        (exchange_id,) = write_records(store, [make_record()])
        message = ws.receive_json()
        assert message["type"] == "exchange" and message["data"]["id"] == exchange_id
