"""`passageway test new` end to end: real traffic with a secret Authorization header sent through a
real proxy to a real orders service (create, then read back by the new id), captured to SQLite and
PostgreSQL; the tests made from one exchange and from a search hold no captured secret, chain the
id, and run green at once with `passageway test run FILE --secret token=...` against the same
proxy and service. The inspector's GET /api/tests/new and /api/tests/new.hurl answer the same."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cli.main import main
from inspector_ui import InspectorSettings, create_app
from radar.hurl import parse_hurl
from storage.queries import list_exchanges
from storage.store import Store, open_store
from tests.support import free_port, start_process, wait_for
from tests.support.orders import running_orders

PASSAGEWAY = [sys.executable, "-m", "cli"]
TOKEN = "orders-token-6b1f0c2e9d"


@dataclass
class Environment:
    db_url: str
    store: Store
    gateway: str
    flags: list[str]
    """What `test run` needs to reach the proxy: --listen, --ui, --certs-dir."""
    orders_url: str
    trace_id: str
    """The trace of the captured flow: POST /orders then GET /orders/{id}."""
    created: int
    """The id the captured POST created."""

    def exchanges(self) -> list[dict]:
        return [e for e in list_exchanges(self.store, limit=1000).data if e["trace_id"] == self.trace_id]


@pytest.fixture(scope="module")
def environment(db_url, tmp_path_factory) -> Iterator[Environment]:
    directory = tmp_path_factory.mktemp("proxy")
    port, ui_port = free_port(), free_port()
    with running_orders(TOKEN) as orders_url:
        flags = ["--listen", f"127.0.0.1:{port}", "--ui", f"127.0.0.1:{ui_port}", "--certs-dir", str(directory / "certs")]
        args = [*PASSAGEWAY, "proxy", "--db", db_url, *flags, "--route", f"orders={orders_url}",
                "--spool-dir", str(directory / "spool")]  # fmt: skip
        with start_process(args, port=port, name="passageway proxy", timeout=30, cwd=directory):
            gateway = f"http://127.0.0.1:{port}"
            trace_id = secrets.token_hex(16)
            headers = {"Authorization": f"Bearer {TOKEN}", "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
            with httpx.Client(base_url=gateway, headers=headers, timeout=10) as client:
                created = client.post("/orders/orders", json={"item": "book", "quantity": 2})
                assert created.status_code == 201, created.text
                order_id = created.json()["id"]
                assert client.get(f"/orders/orders/{order_id}").json()["item"] == "book"
            store = open_store(db_url, migrate=False)
            try:
                env = Environment(db_url, store, gateway, flags, orders_url, trace_id, order_id)
                wait_for(lambda: len(env.exchanges()) == 2, timeout=15)
                yield env
            finally:
                store.close()


def passageway(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("PASSAGEWAY_")}
    return subprocess.run([*PASSAGEWAY, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=environ)


def test_new(env: Environment, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return passageway(cwd, "test", "new", "--db", env.db_url, "--route", f"orders={env.orders_url}", *args)


def test_run(env: Environment, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return passageway(cwd, "test", "run", *env.flags, *args)


test_new.__test__ = False  # helpers, not tests
test_run.__test__ = False


def exchange_id(env: Environment, method: str) -> int:
    return next(e["id"] for e in env.exchanges() if e["method"] == method)


def run_green(env: Environment, cwd: Path, name: str) -> dict:
    """Runs `name` with the token as a secret: it passes; the run's result."""
    ran = test_run(env, cwd, name, "--secret", f"token={TOKEN}", "--json", "result.json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.startswith(f"PASS {Path(name).stem} ") and TOKEN not in ran.stdout + ran.stderr
    [result] = json.loads((cwd / "result.json").read_text())
    return result


def test_a_test_from_one_exchange_hides_the_token_and_runs_green(environment, tmp_path):
    env = environment
    made = test_new(env, tmp_path, "--from-exchange", str(exchange_id(env, "POST")), "-o", "create.hurl")
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "create.hurl").read_text()
    assert TOKEN not in text and made.stdout == ""
    assert text.startswith("POST service://orders/orders\n") and "Authorization: Bearer {{token}}\n" in text
    assert 'jsonpath "$.item" == "book"\n' in text and 'jsonpath "$.id" isInteger\n' in text
    assert re.search(r"^duration < \d+$", text, re.M)
    assert made.stderr.splitlines() == [
        "wrote create.hurl (1 step)",
        "it needs secret token: pass --secret NAME=VALUE, or set [secrets] or PASSAGEWAY_SECRET_NAME",
        "run it: passageway test run create.hurl --secret token=...",
    ]
    result = run_green(env, tmp_path, "create.hurl")
    assert result["steps"][0]["status"] == 201
    # The test sends what --secret gives: without it, it cannot run; with another token, it is refused.
    missing = test_run(env, tmp_path, "create.hurl")
    assert missing.returncode == 1 and "variable 'token' is not defined" in missing.stdout, missing.stdout
    refused = test_run(env, tmp_path, "create.hurl", "--secret", "token=not-the-token")
    assert refused.returncode == 1 and "expected 201, actual 401" in refused.stdout, refused.stdout


def test_a_test_from_a_search_chains_the_new_id_and_runs_green(environment, tmp_path):
    env = environment
    made = test_new(env, tmp_path, "--from-search", f"trace:{env.trace_id}", "-o", "flows/orders.hurl")
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "flows/orders.hurl").read_text()
    assert TOKEN not in text and str(env.created) not in text
    assert [entry.request.method for entry in parse_hurl(text).entries] == ["POST", "GET"]
    assert 'order_id: jsonpath "$.id"\n' in text and "GET service://orders/orders/{{order_id}}\n" in text
    assert made.stderr.splitlines()[0] == "wrote flows/orders.hurl (2 steps)"
    result = run_green(env, tmp_path, "flows/orders.hurl")
    fresh = result["steps"][0]["captures"]["order_id"]
    assert int(fresh) > env.created  # the test made its own order and read that one back
    assert [step["status"] for step in result["steps"]] == [201, 200]


def test_without_a_file_the_test_goes_to_stdout(environment, tmp_path):
    env = environment
    made = test_new(env, tmp_path, "--from-exchange", str(exchange_id(env, "GET")))
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"GET service://orders/orders/{env.created}\n") and TOKEN not in made.stdout
    name = f"get-orders-orders-{env.created}.hurl"
    assert made.stderr.splitlines()[-1] == f"run it: save it as {name}, then passageway test run {name} --secret token=..."
    (tmp_path / name).write_text(made.stdout)
    run_green(env, tmp_path, name)


def test_a_reader_that_leaves_early_is_no_traceback(environment, tmp_path):
    """`passageway test new ... | head -1`: the pipe closes before the test is written."""
    env = environment
    args = [*PASSAGEWAY, "test", "new", "--db", env.db_url, "--from-exchange", str(exchange_id(env, "GET"))]
    environ = {key: value for key, value in os.environ.items() if not key.startswith("PASSAGEWAY_")}
    process = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environ)
    process.stdout.close()  # before the command writes a byte
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) in (0, 141), stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr


MISTAKES = [
    (["--from-exchange", "999999"], "exchange 999999 not found"),
    (["--from-search", "path:/nowhere/at/all"], "no exchange matches 'path:/nowhere/at/all'"),
    (["--from-search", "status:>>"], "--from-search: "),
    ([], "give one of --from-exchange ID or --from-search QUERY"),
    (["--from-exchange", "1", "--from-search", "method:GET"], "give one of --from-exchange ID or --from-search"),
    (["--from-search", "method:GET", "--limit", "0"], "limit must be between 1 and 100, not 0"),
    (["--from-exchange", "1", "--limit", "20"], "--limit goes with --from-search"),
    (["--from-exchange", "1", "-o", "file.hurl/inside.hurl"], "-o file.hurl/inside.hurl: cannot write: "),
]


def test_mistakes_exit_2_in_one_line(environment, tmp_path, monkeypatch, capsys):
    # In this process (the command's own main): a process per mistake costs seconds each.
    for name in [key for key in os.environ if key.startswith("PASSAGEWAY_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.hurl").write_text("not a directory")
    known = str(exchange_id(environment, "POST"))
    for args, message in MISTAKES:
        code = main(["test", "new", "--db", environment.db_url, *[known if word == "1" else word for word in args]])
        out, err = capsys.readouterr()
        assert code == 2 and out == "", (args, err)
        assert err.startswith(f"passageway: error: {message}") and len(err.strip().splitlines()) == 1, (args, err)


def test_the_inspector_answers_the_same_test(environment, tmp_path):
    env = environment
    post = exchange_id(env, "POST")
    cli_text = test_new(env, tmp_path, "--from-exchange", str(post)).stdout
    settings = InspectorSettings(db_url=env.db_url, port=0, maintenance=False, replay_services={"orders": env.orders_url})
    with TestClient(create_app(settings, store=env.store), base_url="http://127.0.0.1") as client:
        one = client.get("/api/tests/new", params={"exchange": post})
        assert one.status_code == 200, one.text
        assert one.json() == {"hurl": cli_text, "filename": "post-orders-orders.hurl", "secrets": ["token"], "captures": []}
        flow = client.get("/api/tests/new", params={"q": f"trace:{env.trace_id}", "limit": 20}).json()
        assert flow["filename"] == "orders-flow.hurl" and flow["captures"] == ["order_id"] and TOKEN not in flow["hurl"]
        download = client.get("/api/tests/new.hurl", params={"q": f"trace:{env.trace_id}"})
        assert download.status_code == 200 and download.text == flow["hurl"]
        assert download.headers["content-type"].startswith("text/plain")
        assert download.headers["content-disposition"] == 'attachment; filename="orders-flow.hurl"'
        assert "sandbox" in download.headers["content-security-policy"]
        assert client.get("/api/tests/new", params={"exchange": 999999}).status_code == 404
        assert client.get("/api/tests/new", params={"q": "path:/nowhere/at/all"}).status_code == 404
        assert client.get("/api/tests/new").status_code == 400
        assert client.get("/api/tests/new", params={"exchange": post, "q": "method:GET"}).status_code == 400
        assert client.get("/api/tests/new", params={"q": "status:>>"}).status_code == 400
