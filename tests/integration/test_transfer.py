"""passageway export / import: a HAR round trip between two stores, browser HARs, mitmproxy flow files."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from mitmproxy import io as mitmproxy_io
from mitmproxy.test import tflow

from storage.queries import get_body, get_exchange, list_exchanges
from storage.record import CapturedBody
from storage.store import open_store
from storage.writer import write_records
from tests.support.records import make_record

PASSAGEWAY = [sys.executable, "-m", "proxy"]
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "har"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*PASSAGEWAY, *args], capture_output=True, text=True, timeout=60)


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


def test_browser_and_mitmproxy_hars_import_once(tmp_path):
    for sample in sorted(SAMPLES.glob("*.har")):
        url = f"sqlite:///{tmp_path}/{sample.stem}.db"
        done = run("import", "--db", url, str(sample))
        assert done.returncode == 0, (sample.name, done.stderr)
        count = len(exchanges(url))
        assert count >= 2, sample.name
        again = run("import", "--db", url, str(sample))
        assert again.returncode == 0 and f"imported 0 exchange(s) from {sample}, {count} already stored" in again.stdout
        assert len(exchanges(url)) == count, f"{sample.name}: a second import added exchanges"


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


def test_bad_files_are_one_line_errors(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01not a flow")
    broken = tmp_path / "broken.har"
    broken.write_text('{"log": {"entries": [{"request": {}}]}}')
    for path, fragment in ((junk, "neither a HAR nor a mitmproxy flow file"), (broken, "request.method"),
                           (tmp_path / "missing.har", "No such file")):  # fmt: skip
        done = run("import", "--db", f"sqlite:///{tmp_path}/x.db", str(path))
        assert done.returncode == 2 and fragment in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1
    bad_query = run("export", "--db", f"sqlite:///{tmp_path}/x.db", "--har", "-", "--query", "stauts:1")
    assert bad_query.returncode == 2 and "unknown field" in bad_query.stderr


def test_redact_at_capture_keeps_secrets_out_of_the_database(tmp_path):
    import httpx

    from tests.support import free_port, running_upstream, start_process, wait_for

    port, url = free_port(), f"sqlite:///{tmp_path}/redacted.db"
    config = tmp_path / "passageway.toml"
    config.write_text('redact_at_capture = true\nredact_add = ["x-session"]\n')
    secrets = ["canary-bearer-1a2b", "canary-session-3c4d", "canary-password-5e6f", "canary-query-7a8b"]
    with running_upstream() as upstream:
        args = [*PASSAGEWAY, "proxy", "--config", str(config), "--db", url, "--listen", f"127.0.0.1:{port}",
                "--route", f"up={upstream.url}", "--certs-dir", str(tmp_path / "certs")]  # fmt: skip
        with start_process(args, port=port, name="passageway proxy", timeout=30):
            body = gzip.compress(json.dumps({"user": "ada", "password": secrets[2]}).encode())
            httpx.post(
                f"http://127.0.0.1:{port}/up/echo?token={secrets[3]}&page=1", content=body, timeout=10,
                headers={"Authorization": f"Bearer {secrets[0]}", "X-Session": secrets[1],
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
