"""Replay through the real proxy to real upstreams: as captured, edited, retargeted; and refusals.

A `passageway proxy` process routes /users to one upstream and /users2 to a second; the
inspector app (in process) replays through that proxy's gateway. Every target here is
on loopback; the refusals never let a request leave.
"""

from __future__ import annotations

import datetime as dt
import gzip
import http.client
import json
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient

from inspector_ui import create_app
from inspector_ui.settings import InspectorSettings
from storage.pure.diff import DEFAULT_NOISE_HEADERS
from storage.queries import get_exchange, list_exchanges
from storage.store import Store, open_store
from tests.support import ManagedProcess, free_port, running_upstream, start_process, wait_for

PASSAGEWAY = [sys.executable, "-m", "cli"]


@dataclass
class ReplayStack:
    process: ManagedProcess
    store: Store
    gateway: str
    first: object
    second: object
    settings: InspectorSettings

    def send(self, method: str, path: str, **kwargs) -> int:
        """Send through the proxy; the id of the captured exchange."""
        marker = f"replay-test-{uuid.uuid4().hex}"
        headers = {"X-Request-ID": marker, **kwargs.pop("headers", {})}
        httpx.request(method, self.gateway + path, headers=headers, timeout=10, **kwargs)
        return wait_for(lambda: self._find(marker), timeout=10, message="the request was not captured")

    def _find(self, request_id: str) -> int | None:
        # Without a traceparent, X-Request-ID is the exchange's trace id.
        return next((row["id"] for row in list_exchanges(self.store, limit=50).data if row["trace_id"] == request_id), None)


@pytest.fixture(scope="module")
def stack(db_url, tmp_path_factory) -> Iterator[ReplayStack]:
    port, forward_port = free_port(), free_port()
    certs_dir = tmp_path_factory.mktemp("certs")
    with running_upstream() as first, running_upstream() as second:
        args = [
            *PASSAGEWAY, "proxy", "--db", db_url, "--listen", f"127.0.0.1:{port}",
            "--forward-port", str(forward_port), "--route", f"users={first.url}", "--route", f"users2={second.url}",
            "--body-cap", "64", "--certs-dir", str(certs_dir), "--proxy-name", "replay-proxy",
        ]  # fmt: skip
        with start_process(args, port=port, name="passageway proxy", timeout=30) as process:
            store = open_store(db_url, migrate=False)
            settings = InspectorSettings(
                db_url=db_url,
                port=free_port(),
                replay_gateway=f"http://127.0.0.1:{port}",
                replay_forward_proxy=f"http://127.0.0.1:{forward_port}",
                replay_services={"users": first.url, "users2": second.url},
                replay_timeout=10,
            )
            try:
                yield ReplayStack(process, store, f"http://127.0.0.1:{port}", first, second, settings)
            finally:
                store.close()


@pytest.fixture(scope="module")
def client(stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack.settings, store=stack.store), base_url="http://127.0.0.1") as test_client:
        yield test_client


def replay(client, exchange_id: int, **edits) -> httpx.Response:
    return client.post(f"/api/exchanges/{exchange_id}/replay", json=edits)


def test_replay_as_captured_is_captured_and_linked(stack, client):
    body = json.dumps({"name": "Ada"}).encode()
    original = stack.send("POST", "/users/echo?x=1", content=body, headers={"Content-Type": "application/json", "X-Token": "t1"})
    before = len(stack.first.requests)
    response = replay(client, original)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["replay_of"] == original and created["status"] == 200
    received = stack.first.requests.last
    assert len(stack.first.requests) == before + 1
    assert (received.method, received.path, received.query, received.body) == ("POST", "/echo", "x=1", body)
    assert received.header("x-token") == "t1" and received.header("x-passageway-replay") is None
    copy = get_exchange(stack.store, exchange_id=created["id"])
    assert copy["replay_of"] == original and copy["service"] == "users" and copy["path"] == "/echo"
    assert not any(name.lower() == "x-passageway-replay" for name, _ in copy["request_headers"])
    listed = client.get("/api/exchanges", params={"q": "is:replay"}).json()["data"]
    assert created["id"] in [row["id"] for row in listed]


def test_an_edited_replay_sends_the_edits(stack, client):
    original = stack.send("GET", "/users/echo?a=1", headers={"X-Remove-Me": "1", "X-Keep": "k"})
    response = replay(
        client, original, method="PUT", path="/echo?b=2", set_headers=[["X-Keep", "changed"], ["X-New", "n"]],
        remove_headers=["x-remove-me"], body='{"edited": true}',
    )  # fmt: skip
    assert response.status_code == 201, response.text
    received = stack.first.requests.last
    assert (received.method, received.query, received.body) == ("PUT", "b=2", b'{"edited": true}')
    assert received.header_values("x-keep") == ["changed"] and received.header("x-new") == "n"
    assert received.header("x-remove-me") is None


def test_a_replay_retargeted_to_another_service(stack, client):
    original = stack.send("GET", "/users/echo?to=second")
    before = len(stack.second.requests)
    for target in ("users2", stack.second.url):  # by name, and by the service's own URL
        response = replay(client, original, target=target)
        assert response.status_code == 201, response.text
        assert get_exchange(stack.store, exchange_id=response.json()["id"])["service"] == "users2"
    assert len(stack.second.requests) == before + 2 and stack.second.requests.last.query == "to=second"


def test_a_truncated_body_is_replayed_only_with_a_body_supplied(stack, client):
    original = stack.send("POST", "/users/echo", content=b"x" * 200)  # the proxy keeps 64 bytes
    refused = replay(client, original)
    assert refused.status_code == 422 and "cut at 64 of 200 bytes" in refused.json()["detail"]
    supplied = replay(client, original, body="y" * 10)
    assert supplied.status_code == 201 and stack.first.requests.last.body == b"y" * 10


@pytest.mark.parametrize(
    ("edits", "status", "fragment"),
    [
        ({"target": "nope"}, 400, "unknown target 'nope'"),
        ({"path": "no-slash"}, 400, "must start with '/'"),
        ({"set_headers": [["Bad Name", "x"]]}, 400, "bad header name"),
        ({"url": "ftp://127.0.0.1/x"}, 400, "absolute http or https URL"),
        ({"body": "a", "body_base64": "YQ=="}, 400, "not both"),
    ],
)
def test_bad_edits_are_refused_with_a_message(stack, client, edits, status, fragment):
    original = stack.send("GET", "/users/echo")
    sent = len(stack.first.requests)
    response = replay(client, original, **edits)
    assert response.status_code == status and fragment in response.json()["detail"]
    assert len(stack.first.requests) == sent


def test_targets_outside_the_services_are_refused_before_anything_is_sent(stack, client):
    original = stack.send("GET", "/users/echo")
    inspector = f"http://127.0.0.1:{stack.settings.port}"
    for target in (f"http://127.0.0.1:{free_port()}", inspector, "http://localhost:9"):
        response = replay(client, original, target=target)
        assert response.status_code == 403, (target, response.text)
        assert response.json()["detail"].startswith("refused")
    assert replay(client, 10**9).status_code == 404


def test_an_unreachable_proxy_is_a_502(stack):
    settings = stack.settings.model_copy(update={"replay_gateway": f"http://127.0.0.1:{free_port()}"})
    original = stack.send("GET", "/users/echo")
    with TestClient(create_app(settings, store=stack.store), base_url="http://127.0.0.1") as other:
        response = replay(other, original)
    assert response.status_code == 502 and "cannot send the replay through the proxy" in response.json()["detail"]


def test_the_replay_command_asks_a_running_inspector(stack, tmp_path):
    ui_port = free_port()
    gateway_port = stack.gateway.rsplit(":", 1)[1]
    common = ["--listen", f"127.0.0.1:{gateway_port}", "--route", f"users={stack.first.url}",
              "--route", f"users2={stack.second.url}", "--ui", f"127.0.0.1:{ui_port}"]  # fmt: skip
    original = stack.send("GET", "/users/echo?cli=1")
    with start_process([*PASSAGEWAY, "ui", "--db", stack.settings.db_url, *common], port=ui_port, name="passageway ui"):
        body = tmp_path / "body.bin"
        body.write_bytes(b"\x00\x01binary")
        done = subprocess.run(
            [*PASSAGEWAY, "replay", str(original), "--to", "users2", "--method", "POST", "--set-header", "X-Cli: yes",
             "--data", f"@{body}", "--ui", f"127.0.0.1:{ui_port}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        new_id = int(re.search(r"replayed as #(\d+): status 200", done.stdout)[1])
        received = stack.second.requests.last
        assert (received.method, received.query, received.body) == ("POST", "cli=1", b"\x00\x01binary")
        assert received.header("x-cli") == "yes"
        assert get_exchange(stack.store, exchange_id=new_id)["replay_of"] == original
        refused = subprocess.run(
            [*PASSAGEWAY, "replay", str(original), "--to", "http://169.254.169.254", "--ui", f"127.0.0.1:{ui_port}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert refused.stderr.count("\n") == 1 and "refused: 169.254.169.254:80 is not a configured service" in refused.stderr
        token = uuid.uuid4().hex[:10]
        for n in range(3):
            stack.send("GET", f"/users/cli-bulk-{token}/{n}")
        bulk = subprocess.run(
            [*PASSAGEWAY, "replay", "--query", f"path:/cli-bulk-{token}/*", "--rate", "20", "--ui", f"127.0.0.1:{ui_port}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert bulk.returncode == 0, bulk.stderr
        assert "replaying 3 exchange(s)" in bulk.stdout and "done: sent 3, failed 0, 0 response(s) differ" in bulk.stdout
        # Ctrl-C cancels a running bulk replay and says how far it got (cli.run's handler gives way here).
        for n in range(20):
            stack.send("GET", f"/users/cli-slow-{token}/{n}")
        slow = subprocess.Popen(
            [*PASSAGEWAY, "replay", "--query", f"path:/cli-slow-{token}/*", "--rate", "2", "--ui", f"127.0.0.1:{ui_port}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert slow.stdout is not None
        assert slow.stdout.readline().startswith("replaying 20 exchange(s)")
        assert "/20 done" in slow.stdout.readline()
        slow.send_signal(signal.SIGINT)
        out, err = slow.communicate(timeout=30)
        assert slow.returncode == 130 and "Traceback" not in err, err
        assert re.search(r"^cancelled: sent \d+, failed 0, \d+ differ$", out, re.M), out


def test_a_replay_compared_with_its_original(stack, client):
    original = stack.send("POST", "/users/echo", content=b'{"n": 1}', headers={"Content-Type": "application/json"})
    same = replay(client, original).json()["id"]
    edited = replay(client, original, body='{"n": 2}', set_headers=[["X-Extra", "1"]]).json()["id"]
    unchanged = client.get("/api/diff", params={"a": original, "b": same}).json()
    # The upstream echoes the request: its body and the Date header differ only in noise.
    assert unchanged["request_body"]["kind"] == "same" and unchanged["request_headers"]["added"] == []
    changed = client.get("/api/diff", params={"a": original, "b": edited}).json()
    assert changed["same"] is False
    assert changed["request_body"]["kind"] == "json"
    assert changed["request_body"]["changes"] == [{"path": "$.n", "op": "changed", "a": 1, "b": 2}]
    assert ["x-extra", "1"] in changed["request_headers"]["added"]
    assert set(changed["response_headers"]["noise"]) <= DEFAULT_NOISE_HEADERS  # e.g. the echo's length
    assert client.get("/api/diff", params={"a": original, "b": 10**9}).status_code == 404


@pytest.mark.exclusive  # a timing bound: nothing else runs beside it under xdist
def test_a_bulk_replay_keeps_its_rate_and_counts_what_differs(stack, client):
    token = uuid.uuid4().hex[:10]
    with httpx.Client(base_url=stack.gateway, timeout=10) as http:
        for n in range(200):
            http.get(f"/users/bulk-{token}/{n}")
    query = f"path:/bulk-{token}/*"
    wait_for(lambda: len(list_exchanges(stack.store, q=query, limit=1000).data) == 200, timeout=20)
    started = client.post("/api/replays", json={"q": query, "rate": 50, "concurrency": 8})
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    job = wait_for(lambda: (j := client.get(f"/api/replays/{job_id}").json())["state"] == "done" and j, timeout=30)
    assert (job["total"], job["sent"], job["failed"], job["differ"]) == (200, 200, 0, 0)
    replays = [row for row in list_exchanges(stack.store, q=f"{query} is:replay", limit=1000).data]
    assert len(replays) == 200 and {r["replay_of"] for r in replays} == {r["of"] for r in job["results"]}
    times = sorted(dt.datetime.fromisoformat(r["captured_at"]) for r in replays)
    span = (times[-1] - times[0]).total_seconds()
    assert abs(span - 199 / 50) <= 0.1 * 199 / 50, span  # the issue's bound: the rate within 10%
    assert job_id in [j["id"] for j in client.get("/api/replays").json()["data"]]


def test_a_bulk_replay_can_be_cancelled_and_reports_differences(stack, client):
    token = uuid.uuid4().hex[:10]
    for n in range(5):
        stack.send("GET", f"/users/cancel-{token}/{n}")
    query = f"path:/cancel-{token}/*"
    # Retargeted to /echo the responses differ from the originals' 404s.
    differing = client.post("/api/replays", json={"q": query, "rate": 100, "path": "/echo"}).json()
    done = wait_for(lambda: (j := client.get(f"/api/replays/{differing['id']}").json())["state"] == "done" and j)
    assert (done["sent"], done["differ"]) == (5, 5)
    slow = client.post("/api/replays", json={"q": query, "rate": 0.5}).json()
    cancelled = client.delete(f"/api/replays/{slow['id']}").json()
    assert cancelled["state"] == "cancelled" and cancelled["sent"] < 5
    assert client.post("/api/replays", json={"q": "stauts:500"}).json()["position"] == 0
    assert client.delete("/api/replays/nope").status_code == 404


def test_the_replay_template_is_the_editor_starting_point(stack, client):
    body = gzip.compress(b'{"name": "Ada"}')
    original = stack.send("PATCH", "/users/echo?t=1", content=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    template = client.get(f"/api/exchanges/{original}/replay").json()
    assert (template["method"], template["target"], template["path"]) == ("PATCH", "users", "/echo?t=1")
    assert template["body"] == '{"name": "Ada"}' and template["targets"] == ["users", "users2"]
    assert not any(name.lower() in ("content-encoding", "host", "content-length") for name, _ in template["headers"])
    # Sent back as the editor would (its headers authoritative), it replays the same request.
    names = [name for name, _ in get_exchange(stack.store, exchange_id=original)["request_headers"]]
    sent = replay(client, original, method=template["method"], target=template["target"], path=template["path"],
                  set_headers=template["headers"], remove_headers=names, body=template["body"])  # fmt: skip
    assert sent.status_code == 201, sent.text
    assert stack.first.requests.last.body == b'{"name": "Ada"}' and stack.first.requests.last.method == "PATCH"


def test_a_replay_as_captured_sends_exactly_the_captured_headers(stack, client):
    marker = f"raw-{uuid.uuid4().hex}"
    connection = http.client.HTTPConnection("127.0.0.1", int(stack.gateway.rsplit(":", 1)[1]), timeout=10)
    connection.putrequest("GET", "/users/echo?raw=1", skip_accept_encoding=True)  # like curl: no Accept-Encoding
    connection.putheader("X-Request-ID", marker)
    connection.putheader("Accept", "text/plain")
    connection.endheaders()
    connection.getresponse().read()
    connection.close()
    original = wait_for(lambda: stack._find(marker), timeout=10)
    replayed = replay(client, original, keep_trace=True).json()["id"]
    diff = client.get("/api/diff", params={"a": original, "b": replayed}).json()
    assert diff["request_headers"] == {"added": [], "removed": [], "changed": [], "noise": []}, diff["request_headers"]
    # By default the replay starts a trace of its own: only its request id (here its trace id) differs.
    fresh = replay(client, original).json()["id"]
    diff = client.get("/api/diff", params={"a": original, "b": fresh}).json()
    assert diff["request_headers"] == {"added": [], "removed": [], "changed": [], "noise": ["x-request-id"]}


@pytest.mark.parametrize("host", ["0177.0.0.1", "[::ffff:127.0.0.1]", "2130706433", "0x7f.1"])
def test_any_spelling_of_a_services_address_replays_to_that_service(stack, client, host):
    # The guard reads these as the service's 127.0.0.1; the replay goes where the guard approved.
    original = stack.send("GET", "/users/echo")
    response = replay(client, original, url=f"http://{host}:{stack.first.port}/echo?spelled=1")
    assert response.status_code == 201, response.text
    assert get_exchange(stack.store, exchange_id=response.json()["id"])["service"] == "users"
    assert stack.first.requests.last.query == "spelled=1"


def test_non_ascii_header_values_are_sent_as_utf8(stack, client):
    original = stack.send("GET", "/users/echo", headers={"X-Name": "café".encode()})
    as_captured = replay(client, original)
    assert as_captured.status_code == 201, as_captured.text
    assert stack.first.requests.last.header("x-name").encode("latin-1") == "café".encode()
    edited = replay(client, original, set_headers=[["X-Name", "naïve ☕"]])
    assert edited.status_code == 201, edited.text
    assert stack.first.requests.last.header("x-name").encode("latin-1") == "naïve ☕".encode()


@pytest.mark.parametrize(
    ("edits", "fragment"),
    [
        ({"set_headers": [["X-Bad", "a\udc80"]]}, "header 'X-Bad': it holds a lone surrogate (U+DC80)"),
        ({"body": "ab\ud800"}, "body holds a lone surrogate (U+D800)"),
    ],
)
def test_what_http_cannot_carry_is_a_422_and_nothing_is_sent(stack, client, edits, fragment):
    original = stack.send("GET", "/users/echo")
    sent = len(stack.first.requests)
    # As JSON allows it (an escaped lone surrogate); httpx's json= would not encode it.
    response = client.post(f"/api/exchanges/{original}/replay", content=json.dumps(edits),
                           headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 422 and fragment in response.json()["detail"], response.text
    assert len(stack.first.requests) == sent


def test_a_bulk_replay_with_an_unsendable_header_is_refused_before_it_starts(stack, client):
    job = {"q": "method:GET", "set_headers": [["X-Bad", "\udc80"]]}
    response = client.post("/api/replays", content=json.dumps(job), headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "lone surrogate" in response.json()["detail"], response.text


# ---------------------------------------------------------------- issue 16: a replay's own trace


def send_traced(stack: ReplayStack, method: str, path: str, **headers: str) -> tuple[int, str]:
    """Send with a fresh traceparent (and tracestate) through the proxy: (exchange id, trace id)."""
    trace_id = uuid.uuid4().hex
    headers = {"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01", "tracestate": "vendor=x", **headers}
    httpx.request(method, stack.gateway + path, headers=headers, timeout=10)
    found = wait_for(
        lambda: next((r["id"] for r in list_exchanges(stack.store, limit=50).data if r["trace_id"] == trace_id), None),
        timeout=10, message="the traced request was not captured",
    )  # fmt: skip
    return found, trace_id


def test_a_replay_starts_a_trace_of_its_own_linked_to_its_original(stack, client):
    original, trace_id = send_traced(stack, "GET", "/users/echo?traced=1", **{"X-Request-ID": "req-1"})
    before = client.get(f"/api/traces/{trace_id}").json()
    replayed = replay(client, original)
    assert replayed.status_code == 201, replayed.text
    copy = get_exchange(stack.store, exchange_id=replayed.json()["id"])
    assert copy["replay_of"] == original and copy["trace_id"] not in (None, trace_id)
    received = stack.first.requests.last
    assert trace_id not in received.header("traceparent") and copy["trace_id"] in received.header("traceparent")
    assert received.header("tracestate") is None and received.header("x-request-id") not in (None, "req-1")
    # The original's trace is as it was; the new one is the replay's, and says what it replays.
    assert client.get(f"/api/traces/{trace_id}").json()["exchange_count"] == before["exchange_count"] == 1
    own = client.get(f"/api/traces/{copy['trace_id']}").json()
    assert (own["replay_of"], own["replay_of_trace_id"], own["nodes"][0]["exchange_id"]) == (original, trace_id, copy["id"])
    listed = client.get("/api/traces", params={"since": "1h", "limit": 500}).json()["data"]
    root = next(t["root"] for t in listed if t["trace_id"] == copy["trace_id"])
    assert (root["replay_of"], root["replay_of_trace_id"]) == (original, trace_id)


def test_an_edited_replay_starts_its_own_trace_too_and_keep_trace_keeps_it(stack, client):
    original, trace_id = send_traced(stack, "POST", "/users/echo?traced=2", content=b"{}")
    captured = get_exchange(stack.store, exchange_id=original)["request_headers"]
    names = [name for name, _ in captured]
    rows = [[n, v] for n, v in captured if n.lower() not in ("host", "content-length")]
    # As the editor sends it: every header row back, the captured values included.
    edited = replay(client, original, set_headers=[*rows, ["X-Edited", "1"]], remove_headers=names, body='{"a": 1}')
    assert edited.status_code == 201, edited.text
    assert get_exchange(stack.store, exchange_id=edited.json()["id"])["trace_id"] != trace_id
    kept = replay(client, original, keep_trace=True, set_headers=[["X-Edited", "2"]])
    assert kept.status_code == 201, kept.text
    assert get_exchange(stack.store, exchange_id=kept.json()["id"])["trace_id"] == trace_id
    assert trace_id in stack.first.requests.last.header("traceparent")
    assert stack.first.requests.last.header("tracestate") == "vendor=x"
    # Kept in the trace, the replay does not stretch it: drawn from its original's start.
    trace = client.get(f"/api/traces/{trace_id}").json()
    assert trace["exchange_count"] == 2 and trace["replay_count"] == 1
    first, replay_node = trace["nodes"][0], trace["nodes"][1]
    assert trace["duration_ms"] == first["duration_ms"] and replay_node["replay_of"] == original
    assert replay_node["replay_shift_ms"] > 0 and replay_node["offset_ms"] - replay_node["replay_shift_ms"] < 1


def test_a_bulk_replay_starts_a_trace_per_replay_unless_kept(stack, client):
    token = uuid.uuid4().hex[:10]
    originals = dict(send_traced(stack, "GET", f"/users/traced-{token}/{n}") for n in range(3))
    query = f"path:/traced-{token}/* -is:replay"

    def run(**options) -> dict[int, str]:
        started = client.post("/api/replays", json={"q": query, "rate": 50, **options})
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        job = wait_for(lambda: (j := client.get(f"/api/replays/{job_id}").json())["state"] == "done" and j, timeout=30)
        assert job["sent"] == 3, job
        return {r["of"]: get_exchange(stack.store, exchange_id=r["id"])["trace_id"] for r in job["results"]}

    fresh = run()
    assert set(fresh) == set(originals)
    assert all(fresh[of] != originals[of] for of in fresh) and len(set(fresh.values())) == 3
    assert run(keep_trace=True) == originals
