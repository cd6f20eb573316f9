"""POST /api/tests/run through a real `passageway proxy` to real upstreams (the test upstream,
httpbin echoing every request), from a real inspector (uvicorn), on SQLite and PostgreSQL:
results kept and linked to their captured exchanges, the target guard, and secrets in no
result, share or HAR.

Every target is on loopback; the guard's refusals never let a request leave."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

import httpx
import pytest

from storage.queries import get_exchange
from storage.store import open_store
from tests.inspector_ui.ui_support import live_inspector
from tests.support import free_port, running_upstream, start_process, wait_for
from tests.support.httpbin import running_httpbin

PASSAGEWAY = [sys.executable, "-m", "cli"]
SECRET = "Zq9/live+7731 kx"
JSON = {"Content-Type": "application/json"}


def secret_forms() -> set[str]:
    return {SECRET, quote(SECRET, safe=""), quote_plus(SECRET), quote(SECRET), json.dumps(SECRET)[1:-1]}


@dataclass
class Stack:
    api: str
    store: object
    upstream: object
    stranger: object
    """A loopback server that is no configured service: the guard must keep tests away from it."""
    httpbin: str

    def run(self, hurl: str, **fields) -> dict:
        answer = httpx.post(f"{self.api}/api/tests/run", json={"hurl": hurl, **fields}, headers=JSON, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def linked(self, run_id: int) -> dict:
        """The run once each of its answered steps is linked to its captured exchange."""

        def read() -> dict | None:
            run = httpx.get(f"{self.api}/api/test-runs/{run_id}", timeout=10).json()
            return run if all(s["exchange_id"] for s in run["steps"] if s["status"] is not None) else None

        return wait_for(read, timeout=10, message="the steps' exchanges were not captured")


@pytest.fixture(scope="module")
def stack(db_url, tmp_path_factory) -> Iterator[Stack]:
    port, forward_port, ui_port = free_port(), free_port(), free_port()
    certs_dir = tmp_path_factory.mktemp("certs")
    with running_upstream() as upstream, running_upstream() as stranger, running_httpbin() as httpbin:
        args = [
            *PASSAGEWAY, "proxy", "--db", db_url, "--listen", f"127.0.0.1:{port}", "--forward-port", str(forward_port),
            "--route", f"up={upstream.url}", "--route", f"bin={httpbin}", "--certs-dir", str(certs_dir),
            "--proxy-name", "api-tests-proxy",
        ]  # fmt: skip
        with start_process(args, port=port, name="passageway proxy", timeout=30) as process:
            process.wait_for_port(forward_port)
            store = open_store(db_url, migrate=False)
            settings = {
                "port": ui_port,
                "replay_gateway": f"http://127.0.0.1:{port}",
                "replay_forward_proxy": f"http://127.0.0.1:{forward_port}",
                # "self" names the inspector's own address: even as a service it is never a target.
                "replay_services": {"up": upstream.url, "bin": httpbin, "self": f"http://127.0.0.1:{ui_port}"},
                "replay_timeout": 10,
                "test_variables": {"who": "ada", "status": 200},
                "test_secrets": {"api_key": SECRET},
            }
            try:
                with live_inspector(store, **settings) as live:
                    yield Stack(live.http, store, upstream, stranger, httpbin)
            finally:
                store.close()


def test_a_test_runs_through_the_proxy_is_kept_and_links_to_its_exchanges(stack):
    hurl = (
        "GET service://up/echo?who={{who}}\nHTTP *\n[Asserts]\nstatus == {{status}}\njsonpath \"$.query\" == \"who=ada\"\n\n"
        f"GET {stack.upstream.url}/status/201\nHTTP 201\n"  # a plain URL of a configured service
    )
    result = stack.run(hurl, name="smoke")
    assert result["passed"] is True and result["error"] is None, result
    assert (result["test"], result["file"], result["source"]) == ("smoke", "smoke.hurl", "api")
    assert isinstance(result["id"], int) and [s["status"] for s in result["steps"]] == [200, 201]

    run = stack.linked(result["id"])
    assert run["uuid"] == result["uuid"] and run["passed"] is True
    for step in run["steps"]:
        exchange = get_exchange(stack.store, exchange_id=step["exchange_id"])
        assert exchange["trace_id"] == run["trace_id"] and exchange["test_name"] == "smoke"
    listed = httpx.get(f"{stack.api}/api/test-runs", params={"test": "smoke"}).json()["runs"]
    assert [r["id"] for r in listed] == [result["id"]] and listed[0]["source"] == "api"


def test_the_requests_variables_win_over_the_configured_ones(stack):
    result = stack.run('GET service://up/echo?who={{who}}\nHTTP 200\n[Asserts]\njsonpath "$.query" == "who=bob"\n',
                       variables={"who": "bob"})  # fmt: skip
    assert result["passed"] is True, result


def test_a_failing_assert_is_a_result_not_an_error(stack):
    result = stack.run("GET service://up/status/503\nHTTP 200\n", name="down")
    assert result["passed"] is False and result["error"] is None
    [check] = result["steps"][0]["asserts"]
    assert (check["passed"], check["expected"], check["actual"]) == (False, "200", "503")


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("{stranger}/echo", "127.0.0.1:{stranger_port} is not a configured service or the exchange's original host"),
        ("http://localhost:{stranger_port}/echo", "localhost:{stranger_port} is not a configured service"),
        ("http://[::ffff:127.0.0.1]:{stranger_port}/echo", "is not a configured service"),
        ("{inspector}/api/test-runs", "is the inspector itself"),
    ],
)
def test_plain_urls_reach_only_configured_services_never_the_inspector(stack, url, refusal):
    stack.stranger.requests.clear()
    values = {"stranger": stack.stranger.url, "stranger_port": stack.stranger.url.rsplit(":", 1)[1],
              "inspector": stack.api}  # fmt: skip
    result = stack.run(f"GET {url.format(**values)}\nHTTP 200\n", name="guarded")
    [step] = result["steps"]
    assert result["passed"] is False and step["status"] is None
    assert step["error"].startswith("refused: ") and refusal.format(**values) in step["error"], step["error"]
    assert result["error"] == f"step 1 (line 1): {step['error']}"
    assert len(stack.stranger.requests) == 0  # never sent


def test_a_secret_is_in_no_result_share_or_har(stack):
    hurl = (
        "GET service://bin/anything\n[Query]\nkey: {{api_key}}\nHTTP 200\n[Captures]\necho: jsonpath \"$.args.key\"\n"
        "[Asserts]\njsonpath \"$.args.key\" == \"{{api_key}}\"\n"
    )
    result = stack.run(hurl, name="secretive")
    assert result["passed"] is True, result
    answer = json.dumps(result)
    assert not [form for form in secret_forms() if form in answer]
    assert result["steps"][0]["captures"] == {"echo": "[secret:api_key]"}

    run = stack.linked(result["id"])
    assert not [form for form in secret_forms() if form in json.dumps(run)]
    exchange_id = run["steps"][0]["exchange_id"]
    captured = get_exchange(stack.store, exchange_id=exchange_id)
    assert quote(SECRET, safe="") in captured["query"]  # captured as sent: only what goes out is redacted

    share = httpx.post(f"{stack.api}/api/shares", json={"exchange_id": exchange_id}, headers=JSON).json()
    snapshot = httpx.get(f"{stack.api}{share['url']}/snapshot.json")
    assert snapshot.status_code == 200 and "/anything" in snapshot.text
    assert not [form for form in secret_forms() if form in snapshot.text]
    trace_share = httpx.post(f"{stack.api}/api/shares", json={"trace_id": run["trace_id"]}, headers=JSON).json()
    assert not [form for form in secret_forms() if form in httpx.get(f"{stack.api}{trace_share['url']}/snapshot.json").text]

    har = httpx.get(f"{stack.api}/api/har", params={"ids": str(exchange_id)})
    assert har.status_code == 200 and "/anything" in har.text
    assert not [form for form in secret_forms() if form in har.text]
