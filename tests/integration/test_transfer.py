"""passageway export / import: a HAR round trip between two stores, browser HARs, real tools'
HARs again and again, mitmproxy flow files, and what the inspector makes of an import."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mitmproxy import io as mitmproxy_io
from mitmproxy.io.har import request_to_flow
from mitmproxy.test import tflow

from cli.main import main
from inspector_ui import InspectorSettings, create_app
from storage.pure.record import CapturedBody
from storage.queries import get_body, get_exchange, list_exchanges
from storage.sink import write_records
from storage.store import open_store
from tests.support.postgres import fresh_postgres_database
from tests.support.records import make_record

PASSAGEWAY = [sys.executable, "-m", "cli"]
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "har"
REAL = SAMPLES / "real"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*PASSAGEWAY, *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def run_here(capsys, caplog):
    """run(), through the command's own main in this process: a process costs a second or more of
    imports each. What the process would have logged (WARNING and up) joins stderr. The tests
    above and below keep real processes for both commands."""

    def runner(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        caplog.clear()
        code = main(list(args))
        out, err = capsys.readouterr()
        logged = "".join(f"{r.levelname} {r.getMessage()}\n" for r in caplog.records if r.levelno >= logging.WARNING)
        return subprocess.CompletedProcess(args, code, out, err + logged)

    return runner


def exchanges(url: str) -> list[dict]:
    store = open_store(url)
    try:
        rows = list_exchanges(store, limit=1000).data
        out = []
        for row in reversed(rows):
            detail = get_exchange(store, exchange_id=row["id"])
            bodies = [get_body(store, exchange_id=row["id"], side=side) for side in ("request", "response")]
            out.append((detail["method"], detail["url"], detail["status"], detail["request_headers"],
                        detail["response_headers"], [b.data if b else None for b in bodies]))  # fmt: skip
        return out
    finally:
        store.close()


def test_a_raw_har_round_trip_keeps_the_exchanges(tmp_path):
    source, target = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
    store = open_store(source)
    body = json.dumps({"name": "Ada", "token": "t-123"}).encode()
    write_records(store, [
        make_record(method="POST", path="/users", query="x=1&x=2", request_body=CapturedBody(body, len(body), False, content_type="application/json")),
        make_record(path="/binary", response_body=CapturedBody(bytes(range(256)), 256, False, content_type="application/octet-stream")),
        make_record(path="/down", status=None, reason=None, response_headers=None, response_body=None, error_kind="timeout", error_message="upstream timed out"),
    ])  # fmt: skip
    store.close()
    har = tmp_path / "out.har"
    exported = run("export", "--db", source, "--har", str(har), "--raw")
    assert exported.returncode == 0 and "exported 3 exchange(s)" in exported.stdout, exported.stderr
    imported = run("import", "--db", target, str(har))
    assert imported.returncode == 0 and "imported 3 exchange(s)" in imported.stdout, imported.stderr
    assert exchanges(target) == exchanges(source)
    redacted = run("export", "--db", source, "--har", "-")
    assert redacted.returncode == 0 and "t-123" not in redacted.stdout and "[redacted:" in redacted.stdout
    assert json.loads(redacted.stdout)["log"]["version"] == "1.2"


SAMPLE_FILES = ("chrome.har", "firefox.har", "mitmproxy.har")


def test_the_samples_are_the_ones_tested():
    assert sorted(path.name for path in SAMPLES.glob("*.har")) == sorted(SAMPLE_FILES)


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_browser_and_mitmproxy_hars_import_once(name, tmp_path, run_here):
    sample = SAMPLES / name
    url = f"sqlite:///{tmp_path}/{sample.stem}.db"
    done = run("import", "--db", url, str(sample))
    assert done.returncode == 0, done.stderr
    count = len(exchanges(url))
    assert count >= 2
    again = run_here("import", "--db", url, str(sample))
    assert again.returncode == 0 and f"imported 0 exchange(s) from {sample}, {count} already stored" in again.stdout
    assert len(exchanges(url)) == count, "a second import added exchanges"


def test_a_mitmproxy_flow_file_imports_once(tmp_path):
    flows = tmp_path / "flows.mitm"
    with flows.open("wb") as handle:
        writer = mitmproxy_io.FlowWriter(handle)
        for n in range(3):
            flow = tflow.tflow(resp=True)
            flow.request.path = f"/flow/{n}"
            writer.add(flow)
        failed = tflow.tflow(err=True)
        writer.add(failed)
    url = f"sqlite:///{tmp_path}/flows.db"
    for expected in ("imported 4 exchange(s)", "imported 0 exchange(s) from " + str(flows) + ", 4 already stored"):
        done = run("import", "--db", url, str(flows))  # flow ids are the exchanges' uuids: once only
        assert done.returncode == 0 and expected in done.stdout, done.stdout + done.stderr
    rows = exchanges(url)
    assert len(rows) == 4 and [r[1].rsplit("/", 2)[-2:] for r in rows[:3]] == [["flow", "0"], ["flow", "1"], ["flow", "2"]]


def test_bad_files_are_one_line_errors(tmp_path, run_here):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01not a flow")
    broken = tmp_path / "broken.har"
    broken.write_text('{"log": {"entries": [{"request": {}}]}}')
    empty, blank, no_entries, status_text = (tmp_path / f"{name}.har" for name in ("empty", "blank", "none", "ok"))
    empty.write_bytes(b"")
    blank.write_bytes(b"\xef\xbb\xbf \n")
    no_entries.write_text('{"log": {"version": "1.2", "entries": []}}')
    status_text.write_text(json.dumps({"log": {"entries": [{"startedDateTime": "2026-11-28T09:15:02Z",
        "request": {"method": "GET", "url": "http://a/"}, "response": {"status": "OK"}}]}}))  # fmt: skip
    for path, fragment in ((junk, "neither a HAR nor a mitmproxy flow file"), (broken, "request.method"),
                           (tmp_path / "missing.har", "No such file"), (empty, "the file is empty"),
                           (blank, "the file is empty"), (no_entries, "the HAR has no entries"),
                           (status_text, "response.status is not an HTTP status: 'OK'")):  # fmt: skip
        # a real process for a flow file and a HAR; the rest through main in this process
        done = (run if path in (junk, broken) else run_here)("import", "--db", f"sqlite:///{tmp_path}/x.db", str(path))
        assert done.returncode == 2 and fragment in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1
    bad_query = run_here("export", "--db", f"sqlite:///{tmp_path}/x.db", "--har", "-", "--query", "stauts:1")
    assert bad_query.returncode == 2 and "unknown field" in bad_query.stderr


def test_redact_at_capture_keeps_secrets_out_of_the_database(tmp_path):
    import httpx

    from tests.support import free_port, running_upstream, start_process, wait_for

    port, url = free_port(), f"sqlite:///{tmp_path}/redacted.db"
    config = tmp_path / "passageway.toml"
    config.write_text('redact_at_capture = true\nredact_add = ["x-session"]\n[secrets]\napi = "canary-test-9z8y"\n')
    secrets = ["canary-bearer-1a2b", "canary-session-3c4d", "canary-password-5e6f", "canary-query-7a8b",
               "canary-test-9z8y"]  # the last a test secret, sent where no rule names it
    with running_upstream() as upstream:
        args = [*PASSAGEWAY, "proxy", "--config", str(config), "--db", url, "--listen", f"127.0.0.1:{port}",
                "--route", f"up={upstream.url}", "--certs-dir", str(tmp_path / "certs")]  # fmt: skip
        with start_process(args, port=port, name="passageway proxy", timeout=30):
            body = gzip.compress(json.dumps({"user": "ada", "password": secrets[2]}).encode())
            httpx.post(
                f"http://127.0.0.1:{port}/up/echo?token={secrets[3]}&page=1&q={secrets[4]}", content=body, timeout=10,
                headers={"Authorization": f"Bearer {secrets[0]}", "X-Session": secrets[1], "X-Note": secrets[4],
                         "Content-Type": "application/json", "Content-Encoding": "gzip"},
            )  # fmt: skip
            wait_for(lambda: len(exchanges(url)) == 1, timeout=10)
        # the upstream got the real request; the store never saw the secrets
        assert upstream.requests.last.header("authorization") == f"Bearer {secrets[0]}"
    database = (tmp_path / "redacted.db").read_bytes()
    wal = tmp_path / "redacted.db-wal"
    stored = database + (wal.read_bytes() if wal.exists() else b"")
    for secret in secrets:
        assert secret.encode() not in stored, secret
    method, url_text, status, request_headers, _, (request_body, _) = exchanges(url)[0]
    assert "[redacted:" in url_text and "page=1" in url_text
    assert [v[:17] for n, v in request_headers if n.lower() == "authorization"] == ["Bearer [redacted:"]
    assert json.loads(request_body)["user"] == "ada"  # stored decoded (bodies are compressed in the file)
    assert all(secret.encode() not in request_body for secret in secrets)


def test_an_export_redacts_the_test_secrets_values_and_a_raw_one_keeps_them(tmp_path):
    url, secret = f"sqlite:///{tmp_path}/plain.db", "canary-test-4u5v"
    har = tmp_path / "plain.har"
    entry = {"startedDateTime": "2026-11-28T09:15:02Z",
             "request": {"method": "GET", "url": f"http://a.example/x?q={secret}", "headers": [{"name": "X-Note", "value": secret}]},
             "response": {"status": 200, "content": {"mimeType": "text/plain", "text": f"echo {secret}"}}}  # fmt: skip
    har.write_text(json.dumps({"log": {"entries": [entry]}}))
    assert run("import", "--db", url, str(har)).returncode == 0
    config = tmp_path / "passageway.toml"
    config.write_text(f'[secrets]\napi = "{secret}"\n')
    redacted = run("export", "--config", str(config), "--db", url, "--har", "-")
    assert redacted.returncode == 0 and json.loads(redacted.stdout)["log"]["entries"]
    assert secret not in redacted.stdout
    assert secret in run("export", "--config", str(config), "--db", url, "--har", "-", "--raw").stdout


# --- real tools' HARs, again and again -----------------------------------------------------------


@contextlib.contextmanager
def database(kind: str, tmp_path: Path, name: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/{name}.db"
    else:
        with fresh_postgres_database("passageway_transfer") as url:
            yield url


def stored_bodies(url: str) -> list[list[str | None]]:
    """SHA-256 of each stored request and response body, oldest exchange first."""
    store = open_store(url)
    try:
        ids = sorted(row["id"] for row in list_exchanges(store, limit=1000).data)
        return [[hashlib.sha256(b.data).hexdigest() if (b := get_body(store, exchange_id=i, side=side)) else None
                 for side in ("request", "response")] for i in ids]  # fmt: skip
    finally:
        store.close()


@pytest.mark.parametrize(("name", "kind"), [("firefox.har", "sqlite"), ("chrome.har", "postgresql")])
def test_a_real_har_goes_round_and_round_through_the_commands(name, kind, tmp_path):
    """Import, export, import elsewhere, export: equal counts, times, phases and bodies; mitmproxy
    reads the export; and the export imported where it came from adds nothing."""
    source = json.loads((REAL / name).read_bytes().decode("utf-8-sig"))["log"]["entries"]
    assert source, "the per-entry comparisons below need entries"
    files, bodies = [REAL / name], []
    for trip in (1, 2):
        with database(kind, tmp_path, f"trip{trip}") as url:
            done = run("import", "--db", url, str(files[-1]))
            assert done.returncode == 0 and f"imported {len(source)} exchange(s)" in done.stdout, done.stderr
            files.append(tmp_path / f"trip{trip}.har")
            done = run("export", "--db", url, "--raw", "--har", str(files[-1]))
            assert done.returncode == 0 and f"exported {len(source)} exchange(s)" in done.stdout, done.stderr
            bodies.append(stored_bodies(url))
            if trip == 1:
                again = run("import", "--db", url, str(files[-1]))
                assert f"imported 0 exchange(s) from {files[-1]}, {len(source)} already stored" in again.stdout
    first, second = (json.loads(path.read_text(encoding="utf-8"))["log"]["entries"] for path in files[1:])
    assert bodies[0] == bodies[1]
    for was, one, two in zip(source, first, second, strict=True):
        assert abs(one["time"] - was["time"]) <= 1.0 and two["time"] == one["time"]
        assert two["timings"] == one["timings"]
        assert {k: one["timings"][k] for k in was.get("timings") or {}} == was.get("timings", {})
        assert two["request"]["url"] == one["request"]["url"] == request_to_flow(two).request.url
    stored = [body for pair in bodies[0] for body in pair if body]
    assert stored, "the body comparison below needs bodies"
    read = [hashlib.sha256(flow.request.content).hexdigest() for flow in map(request_to_flow, second)
            if flow.request.content] + [hashlib.sha256(flow.response.content).hexdigest()
                                         for flow in map(request_to_flow, second) if flow.response.content]
    assert sorted(read) == sorted(stored)


def test_a_search_right_after_an_import_finds_what_it_imported(tmp_path, run_here):
    """Free text and header: terms read the search index, which no inspector built here."""
    url = f"sqlite:///{tmp_path}/search.db"
    har = tmp_path / "words.har"
    entry = {"startedDateTime": "2026-11-28T09:15:02Z",
             "request": {"method": "GET", "url": "http://a.example/x", "headers": [{"name": "X-Colour", "value": "teal"}]},
             "response": {"status": 200, "content": {"mimeType": "text/plain", "text": "a zebracorn appears"}}}  # fmt: skip
    other = {**entry, "request": {**entry["request"], "url": "http://a.example/y"}}
    har.write_text(json.dumps({"log": {"entries": [entry, other]}}))
    assert run_here("import", "--db", url, str(har)).returncode == 0
    for query in ("zebracorn", "header:x-colour=teal", "zebracorn path:/y"):
        done = run_here("export", "--db", url, "--query", query, "--har", "-")
        assert done.returncode == 0 and done.stderr == "", (query, done.stderr)
        entries = json.loads(done.stdout)["log"]["entries"]
        assert len(entries) == (1 if "path:" in query else 2), query
    store = open_store(url)  # captured while no inspector ran: the export catches the index up
    body = CapturedBody(b"zebracorn too", 13, False, content_type="text/plain")
    write_records(store, [make_record(path="/captured", response_body=body)])
    store.close()
    done = run("export", "--db", url, "--query", "zebracorn", "--har", "-")  # a real process catches up too
    assert len(json.loads(done.stdout)["log"]["entries"]) == 3


SURROGATE = "\ud83d"


@pytest.fixture
def odd_import(tmp_path, run_here) -> Iterator[tuple[dict, TestClient, int]]:
    """An imported HAR entry with \\ud83d in its URL, a header name and value and the bodies;
    an inspector on its store: (the entry, a client, its exchange id)."""
    url = f"sqlite:///{tmp_path}/odd.db"
    har = tmp_path / "odd.har"
    entry = {"startedDateTime": "2026-11-28T09:15:02Z",
             "request": {"method": "POST", "url": f"http://a.example/{SURROGATE}?q={SURROGATE}",
                         "headers": [{"name": f"X-{SURROGATE}", "value": f"v{SURROGATE}"}],
                         "postData": {"mimeType": "text/plain", "text": f"sent{SURROGATE}"}},
             "response": {"status": 200, "headers": [{"name": "X-Odd", "value": SURROGATE}],
                          "content": {"mimeType": "text/plain", "text": f"got{SURROGATE}"}}}  # fmt: skip
    har.write_text(json.dumps({"log": {"entries": [entry]}}))  # ASCII: \\ud83d escapes
    assert run_here("import", "--db", url, str(har)).returncode == 0  # the tests below run real processes
    store = open_store(url)
    try:
        app = create_app(InspectorSettings(db_url=url, port=0), store=store)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            (summary,) = client.get("/api/exchanges").json()["data"]
            yield entry, client, summary["id"]
    finally:
        store.close()


def test_lone_surrogates_export_escaped(odd_import, tmp_path):
    """It used to die with a UnicodeEncodeError traceback and leave a 0-byte file."""
    entry, client, _ = odd_import
    db = str(client.app.state.settings.db_url)
    out = tmp_path / "out.har"
    for args in (["--har", str(out), "--raw"], ["--har", "-"]):
        done = run("export", "--db", db, *args)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    text = out.read_text(encoding="utf-8")
    assert "\\ud83d" in text
    exported = json.loads(text)["log"]["entries"][0]
    assert exported["request"]["url"] == entry["request"]["url"]
    assert exported["request"]["headers"] == entry["request"]["headers"]
    assert exported["response"]["headers"] == entry["response"]["headers"]


def test_lone_surrogates_in_the_json_api_and_snippets(odd_import):
    entry, client, exchange_id = odd_import
    detail = client.get(f"/api/exchanges/{exchange_id}")
    assert detail.status_code == 200 and "\\ud83d" in detail.text
    assert detail.json()["url"] == entry["request"]["url"]
    assert [f"X-{SURROGATE}", f"v{SURROGATE}"] in detail.json()["request_headers"]
    for fmt in ("curl", "httpie", "python", "fetch"):
        snippet = client.get(f"/api/exchanges/{exchange_id}/snippet", params={"format": fmt})
        assert snippet.status_code == 200 and "a.example" in snippet.text, fmt


def test_sharing_an_import_with_lone_surrogates(odd_import):
    entry, client, exchange_id = odd_import
    share = client.post("/api/shares", json={"exchange_id": exchange_id})
    assert share.status_code == 201
    snapshot = client.get(share.json()["url"] + "/snapshot.json")
    assert snapshot.status_code == 200 and "\\ud83d" in snapshot.text
    assert snapshot.json()["exchanges"][0]["url"] == entry["request"]["url"]


def test_the_har_endpoint_with_lone_surrogates(odd_import):
    _, client, _ = odd_import
    for params in ({"raw": "true"}, {}):
        answer = client.get("/api/har", params=params)
        assert answer.status_code == 200 and answer.json()["log"]["entries"], params


def test_the_live_stream_carries_an_import_with_lone_surrogates(odd_import, tmp_path):
    """WS /api/stream: the summary of an exchange whose URL holds \\ud83d arrives, escaped."""
    from websockets.sync.client import connect

    from tests.inspector_ui.ui_support import live_inspector

    entry, client, _ = odd_import
    db = str(client.app.state.settings.db_url)
    store = open_store(db)
    try:
        with live_inspector(store) as inspector, connect(inspector.ws) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "hello"
            har = tmp_path / "again.har"
            again = {**entry, "startedDateTime": "2026-11-28T10:00:00Z"}
            har.write_text(json.dumps({"log": {"entries": [again]}}))
            assert run("import", "--db", db, str(har)).returncode == 0
            message = ws.recv(timeout=10)
            assert "\\ud83d" in message and json.loads(message)["data"]["url"] == entry["request"]["url"]
    finally:
        store.close()


def test_an_import_under_redact_at_capture_stores_no_secret(tmp_path):
    """redact_at_capture means nothing secret is written: a HAR imported into that store too."""
    canaries = ("Bearer imp0rt-bearer-canary", "imp0rt-json-canary", "imp0rt-title-canary")
    har = {"log": {"version": "1.2", "creator": {"name": "test", "version": "1"},
                   "pages": [{"id": "p", "title": f"https://shop.local/?token={canaries[2]}",
                              "startedDateTime": "2026-11-28T09:15:02Z", "pageTimings": {}}],
                   "entries": [{
        "startedDateTime": "2026-11-28T09:15:02Z", "time": 5, "pageref": "p",
        "request": {"method": "POST", "url": "https://shop.local/login", "httpVersion": "HTTP/1.1",
                    "headers": [{"name": "Authorization", "value": canaries[0]}], "cookies": [], "queryString": [],
                    "headersSize": -1, "bodySize": 40,
                    "postData": {"mimeType": "application/json", "text": json.dumps({"password": canaries[1]})}},
        "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "headers": [], "cookies": [],
                     "content": {"size": 40, "mimeType": "application/json",
                                 "text": json.dumps({"echo": {"password": canaries[1]}, "seen": canaries[1]})},
                     "redirectURL": "", "headersSize": -1, "bodySize": 40},
        "cache": {}, "timings": {"send": 1, "wait": 3, "receive": 1}}]}}  # fmt: skip
    source = tmp_path / "secrets.har"
    source.write_text(json.dumps(har))
    config = tmp_path / "passageway.toml"
    config.write_text("redact_at_capture = true\n")
    db = f"sqlite:///{tmp_path}/redacted.db"
    done = run("import", "--config", str(config), "--db", db, str(source))
    assert done.returncode == 0, done.stderr
    raw = tmp_path / "raw.har"
    assert run("export", "--db", db, "--raw", "--har", str(raw)).returncode == 0
    stored = raw.read_text(encoding="utf-8")
    assert "shop.local/login" in stored and "[redacted:" in stored
    assert [c for c in canaries if c.split()[-1] in stored] == []
