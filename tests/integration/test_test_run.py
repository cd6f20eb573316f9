"""`passageway test run` as CI runs it: a real proxy process, real upstreams (the test upstream,
httpbin echoing every request, a flaky one), Hurl files on disk; exit codes, printed lines,
JUnit and JSON outputs, every step captured in the run's trace, and secrets in none of it."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from junitparser import Failure, JUnitXml

from storage.queries import list_exchanges
from storage.store import open_store
from tests.support import free_port, running_upstream, start_process, wait_for
from tests.support.flaky import running_flaky_upstream
from tests.support.httpbin import running_httpbin

PASSAGEWAY = [sys.executable, "-m", "cli"]
SECRET = "tok-3xq/Z+9 ünï"


@dataclass
class Proxy:
    db_url: str
    gateway_port: int
    forward_port: int
    ui_port: int
    certs_dir: Path

    def flags(self) -> list[str]:
        return ["--listen", f"127.0.0.1:{self.gateway_port}", "--forward-port", str(self.forward_port),
                "--ui", f"127.0.0.1:{self.ui_port}", "--certs-dir", str(self.certs_dir)]  # fmt: skip

    def exchanges(self) -> list[dict]:
        store = open_store(self.db_url, migrate=False)
        try:
            return list_exchanges(store, limit=1000).data
        finally:
            store.close()


@pytest.fixture(scope="module")
def upstreams():
    with running_upstream() as upstream, running_httpbin() as httpbin, running_flaky_upstream() as flaky:
        yield {"up": upstream.url, "bin": httpbin, "flaky": flaky}


@pytest.fixture(scope="module")
def proxy(upstreams, tmp_path_factory):
    directory = tmp_path_factory.mktemp("proxy")
    db_url = f"sqlite:///{directory / 'capture.db'}"
    port, forward_port, ui_port = free_port(), free_port(), free_port()
    routes = [arg for name, url in upstreams.items() for arg in ("--route", f"{name}={url}")]
    args = [
        *PASSAGEWAY, "proxy", "--db", db_url, "--listen", f"127.0.0.1:{port}", "--forward-port", str(forward_port),
        "--ui", f"127.0.0.1:{ui_port}", *routes, "--route", f"down=http://127.0.0.1:{free_port()}",
        "--certs-dir", str(directory / "certs"), "--upstream-timeout", "3", "--spool-dir", str(directory / "spool"),
    ]  # fmt: skip
    with start_process(args, port=port, name="passageway proxy", timeout=30, cwd=directory) as process:
        process.wait_for_port(forward_port)
        yield Proxy(db_url, port, forward_port, ui_port, directory / "certs")


def test_run(proxy: Proxy, cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("PASSAGEWAY_")}
    environ.update(env or {})
    return subprocess.run([*PASSAGEWAY, "test", "run", *proxy.flags(), *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=environ)  # fmt: skip


test_run.__test__ = False  # a helper, not a test


CHAINED = """\
# Captures chained between entries, cookies kept, a flaky upstream retried.
POST service://bin/anything
Content-Type: application/json
{"order": "{{order}}", "qty": 2}
HTTP 200
[Captures]
order_id: jsonpath "$.json.order"
[Asserts]
jsonpath "$.json.qty" == 2

GET service://bin/cookies/set?cart={{order_id}}
HTTP 302

GET service://bin/cookies
HTTP 200
[Asserts]
jsonpath "$.cookies.cart" == "{{order_id}}"

GET service://flaky/flaky/{{key}}?fail=2
[Options]
retry: 4
retry-interval: 50
HTTP 200
[Asserts]
jsonpath "$.attempt" == 3
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_passing_directory_of_tests_with_junit_and_json(proxy, tmp_path):
    write(tmp_path, "checks/chained.hurl", CHAINED)
    write(tmp_path, "checks/nested/plain.hurl", f"GET {proxy_url(proxy, 'up')}/json\nHTTP 200\n")
    result = test_run(proxy, tmp_path, "checks", "--variable", "order=A-17", "--variable", f"key={tmp_path.name}",
                      "--junit", "out/junit.xml", "--json", "out/results.json", "--jobs", "2")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"PASS chained \(4 steps, \d+ ms\)", lines[0]), lines
    assert re.fullmatch(r"PASS plain \(1 step, \d+ ms\)", lines[1]) and lines[2] == "2 of 2 tests passed"
    results = json.loads((tmp_path / "out/results.json").read_text())
    chained = results[0]
    assert chained["passed"] and chained["file"] == "checks/chained.hurl" and chained["source"] == "cli"
    assert [step["status"] for step in chained["steps"]] == [200, 302, 200, 200]
    assert chained["steps"][0]["captures"] == {"order_id": "A-17"} and chained["steps"][3]["attempts"] == 3
    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "out/junit.xml"))))
    assert (suite.tests, suite.failures, suite.errors) == (2, 0, 0)
    assert [(case.classname, case.name) for case in suite] == [("checks/chained.hurl", "chained"),
                                                               ("checks/nested/plain.hurl", "plain")]  # fmt: skip

    # Every step went through the proxy, in the run's trace, each attempt an exchange of its own.
    def captured() -> list[dict]:
        found = [e for e in proxy.exchanges() if e["trace_id"] == chained["trace_id"]]
        return found if len(found) == 6 else []

    exchanges = wait_for(captured, timeout=15)
    assert sorted(e["service"] for e in exchanges) == ["bin", "bin", "bin", "flaky", "flaky", "flaky"]
    plain = results[1]
    assert wait_for(lambda: [e for e in proxy.exchanges() if e["trace_id"] == plain["trace_id"]], timeout=15)


def proxy_url(proxy: Proxy, service: str) -> str:
    return f"http://127.0.0.1:{proxy.gateway_port}/{service}"


def test_a_failing_assert_exits_1_naming_file_line_expected_actual_and_the_exchange(proxy, tmp_path):
    write(tmp_path, "ok.hurl", "GET service://up/json\nHTTP 200\n")
    write(tmp_path, "broken.hurl", 'GET service://up/json\nHTTP 200\n\nGET service://up/status/404\nHTTP 200\n'
          '[Asserts]\nheader "Content-Type" contains "json"\nbody contains "404"\n\nGET service://up/json\n')  # fmt: skip
    result = test_run(proxy, tmp_path, "ok.hurl", "broken.hurl", "--junit", "junit.xml")
    assert result.returncode == 1, result.stdout + result.stderr
    ui = f"http://127.0.0.1:{proxy.ui_port}"
    lines = result.stdout.splitlines()
    assert lines[0].startswith("PASS ok")
    assert re.fullmatch(rf"FAIL broken \(step 2 failed, \d+ ms\) — trace: {ui}/traces/[0-9a-f]{{32}}", lines[1]), lines
    trace = lines[1].rsplit("/", 1)[1]
    assert lines[2] == f"  broken.hurl:5: HTTP 200 — expected 200, actual 404 — {ui}/?q=trace:{trace}"
    assert lines[3].startswith('  broken.hurl:7: header "Content-Type" contains "json" — expected contains "json", actual "text/plain')
    assert len(lines) == 5 and lines[4] == "1 of 2 tests passed"
    (case,) = [case for case in next(iter(JUnitXml.fromfile(str(tmp_path / "junit.xml")))) if case.name == "broken"]
    assert isinstance(case.result[0], Failure) and "broken.hurl:5: HTTP 200: expected 200, actual 404" in case.result[0].message


def test_a_parse_error_exits_2_before_anything_runs(proxy, tmp_path):
    write(tmp_path, "a_ok.hurl", "GET service://up/json?parse-error-run\nHTTP 200\n")
    write(tmp_path, "b_bad.hurl", "GET service://up/json\nHTTP 200\n[Multipart]\nfield: x\n")
    write(tmp_path, "c_bad.hurl", "GET service://up/json\nHTTP 200\n[Asserts]\nstatus ~= 3\n")
    result = test_run(proxy, tmp_path, ".")
    assert result.returncode == 2 and result.stdout == ""
    errors = result.stderr.splitlines()
    assert re.fullmatch(r"b_bad\.hurl:3:1: unsupported: .*Multipart.*", errors[0]), errors
    assert errors[1].startswith("c_bad.hurl:4:")
    assert errors[2] == "passageway: error: 2 of 3 files cannot run; nothing was run"
    assert not [e for e in proxy.exchanges() if "parse-error-run" in (e.get("query") or "")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere.hurl"], "passageway: error: nowhere.hurl: no such file or directory"),
        (["empty"], "passageway: error: empty: no .hurl files in this directory"),
        (["--jobs", "0", "t.hurl"], "passageway: error: --jobs must be at least 1, not 0"),
        (["--realm", "qa", "t.hurl"], "passageway: error: unknown realm 'qa': "),
        (["--variable", "oops", "t.hurl"], "passageway: error: flags: --variable wants NAME=VALUE, not 'oops'"),
    ],
)
def test_usage_mistakes_exit_2_in_one_line(proxy, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    write(tmp_path, "t.hurl", "GET service://up/json\n")
    write(tmp_path, "passageway.toml", '[realms.dev.services]\nup = "http://127.0.0.1:1"\n')
    result = test_run(proxy, tmp_path, *args)
    assert result.returncode == 2 and result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_an_undefined_variable_and_a_refusing_upstream_are_clear_messages(proxy, tmp_path):
    write(tmp_path, "undefined.hurl", "GET service://up/json\nHTTP 200\n\nGET service://up/{{missing}}\nHTTP 200\n")
    write(tmp_path, "refused.hurl", "GET service://down/x\nHTTP 200\n")
    write(tmp_path, "direct.hurl", f"GET http://127.0.0.1:{free_port()}/x\nHTTP 200\n")
    result = test_run(proxy, tmp_path, "undefined.hurl", "refused.hurl", "direct.hurl", "--json", "r.json")
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "  undefined.hurl:4: line 4, column 18: variable 'missing' is not defined — " in out
    for name in ("refused", "direct"):  # through the gateway, and a plain URL through the forward proxy
        assert re.search(rf"  {name}\.hurl:1: upstream_failed: the proxy got no answer: \[Errno 111\] Connect call failed .* — ", out), out
        assert re.search(rf"  {name}\.hurl:2: HTTP 200 — expected 200, actual 502 — ", out), out
    results = {r["test"]: r for r in json.loads((tmp_path / "r.json").read_text())}
    assert results["undefined"]["error"] == "step 2 (line 4): line 4, column 18: variable 'missing' is not defined"


ECHO = """\
POST service://bin/anything
Authorization: Bearer {{api_token}}
[Query]
token: {{api_token}}
[BasicAuth]
ci: {{password}}
[Form]
password: {{password}}
HTTP 201
[Asserts]
jsonpath "$.form.password" == "{{password}}"
body contains "not in the echo"
"""


def test_secrets_never_appear_in_stdout_junit_or_json(proxy, tmp_path):
    write(tmp_path, "echo.hurl", ECHO)
    password = "pw-" + SECRET
    result = test_run(proxy, tmp_path, "echo.hurl", "--secret", f"password={password}", "--junit", "j.xml",
                      "--json", "r.json", env={"PASSAGEWAY_SECRET_api_token": SECRET})  # fmt: skip
    assert result.returncode == 1, result.stderr
    outputs = {
        "stdout": result.stdout, "stderr": result.stderr,
        "junit": (tmp_path / "j.xml").read_text(), "json": (tmp_path / "r.json").read_text(),
    }  # fmt: skip
    assert "[secret:password]" in outputs["stdout"] and "[secret:api_token]" in outputs["json"]
    assert "expected 201, actual 200" in outputs["junit"]
    for secret in (SECRET, password):
        forms = {secret, quote(secret, safe=""), quote(secret), json.dumps(secret)[1:-1],
                 json.dumps(secret, ensure_ascii=False)[1:-1], base64.b64encode(f"ci:{secret}".encode()).decode()}
        for where, text in outputs.items():
            for form in forms:
                assert form not in text, (where, form)
    (run,) = json.loads(outputs["json"])
    assert run["steps"][0]["asserts"][1]["passed"]  # the secret itself was sent and echoed
