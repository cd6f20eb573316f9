"""radar.runner.run_test against real upstreams (httpbin, the test upstream, a flaky one): steps in
order, captures chained, cookies, retries, every assert reported, the first failing step last,
every problem a clear message in the result, and secrets out of it in every form."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote

import pytest

from radar.hurl import parse_hurl
from radar.runner import MAX_ATTEMPTS, failed_to_run, hurl_typed, run_test
from radar.transport import Connections, Route, TestSession
from tests.support import free_port, running_upstream
from tests.support.flaky import running_flaky_upstream
from tests.support.httpbin import running_httpbin


@pytest.fixture(scope="module")
def httpbin():
    with running_httpbin() as url:
        yield url


@pytest.fixture(scope="module")
def upstream():
    with running_upstream() as server:
        yield server


@pytest.fixture(scope="module")
def flaky():
    with running_flaky_upstream() as url:
        yield url


class Clock:
    """Records the waits a run asks for instead of sleeping them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def run(text: str, *, gateway: str = "http://127.0.0.1:1", sleep=None, **how) -> dict:
    route = Route(gateway=gateway, timeout=5)
    with Connections(route) as connections:
        return run_test(
            parse_hurl(text, "checks/t.hurl"), name="t",
            sessions=lambda trace, name: TestSession(route, trace, name, connections=connections),
            sleep=sleep or Clock(), **how,
        )  # fmt: skip


def failed_asserts(result: dict) -> list[dict]:
    return [a for step in result["steps"] for a in step["asserts"] if not a["passed"]]


def test_steps_in_order_with_captures_chained_and_cookies(httpbin):
    result = run(f"""
GET {httpbin}/cookies/set?session={{{{sid}}}}
HTTP 302

POST {httpbin}/anything
Content-Type: application/json
{{"user": "{{{{user}}}}", "n": {{{{n}}}}}}
HTTP 200
[Captures]
echoed_user: jsonpath "$.json.user"
echoed_n: jsonpath "$.json.n"
session: jsonpath "$.headers.Cookie"
[Asserts]
jsonpath "$.json.n" == 3

GET {httpbin}/anything/{{{{echoed_user}}}}
[Query]
n: {{{{echoed_n}}}}
[Cookies]
extra: yes
HTTP 200
[Asserts]
jsonpath "$.url" endsWith "/anything/ada?n=3"
jsonpath "$.headers.Cookie" contains "session=s-42"
jsonpath "$.headers.Cookie" contains "extra=yes"
header "Content-Type" == "application/json"
""", variables={"sid": "s-42", "user": "ada", "n": 3})
    assert result["passed"], json.dumps(result, indent=1)
    assert [s["status"] for s in result["steps"]] == [302, 200, 200]
    assert [s["index"] for s in result["steps"]] == [0, 1, 2]
    assert result["steps"][1]["captures"] == {"echoed_user": "ada", "echoed_n": "3", "session": "session=s-42"}
    assert result["steps"][2]["url"] == f"{httpbin}/anything/ada?n=3"
    assert result["error"] is None and result["file"] == "checks/t.hurl" and result["test"] == "t"
    assert re.fullmatch(r"[0-9a-f]{32}", result["trace_id"])
    assert all(re.fullmatch(r"[0-9a-f]{16}", s["span_id"]) and s["attempts"] == 1 for s in result["steps"])
    assert len({s["span_id"] for s in result["steps"]}) == 3
    assert result["started_at"].endswith("Z") and result["duration_ms"] >= sum(s["duration_ms"] for s in result["steps"])
    assert 0 <= result["overhead_ms"] < result["duration_ms"]


def test_form_basic_auth_and_options(httpbin):
    clock = Clock()
    result = run(f"""
POST {httpbin}/anything
[Options]
variable: who=grace
variable: n=7
delay: 250
[BasicAuth]
grace: pw
[Form]
name: {{{{who}}}}
count: {{{{n}}}}
HTTP 200
[Asserts]
jsonpath "$.form.name" == "grace"
jsonpath "$.form.count" == "7"
jsonpath "$.headers.Authorization" == "Basic {base64.b64encode(b"grace:pw").decode()}"
jsonpath "$.headers.Content-Type" == "application/x-www-form-urlencoded"
""", sleep=clock)
    assert result["passed"], failed_asserts(result) or result["steps"][0]["error"]
    assert clock.waits == [0.25]


def test_every_assert_of_the_failing_step_is_reported_and_later_steps_not_run(upstream):
    result = run(f"""
GET {upstream.url_for("/json")}
HTTP 200

GET {upstream.url_for("/status/404")}
HTTP 200
[Asserts]
status == 404
status > 500
body contains "status"
duration < 60000

GET {upstream.url_for("/json")}
HTTP 200
""")
    assert not result["passed"] and result["error"] is None
    assert len(result["steps"]) == 2
    failed = result["steps"][1]
    assert [(a["line"], a["passed"]) for a in failed["asserts"]] == [(6, False), (8, True), (9, False), (10, True), (11, True)]
    status = failed["asserts"][0]
    assert (status["text"], status["expected"], status["actual"]) == ("HTTP 200", "200", "404")
    assert failed["asserts"][2]["text"] == "status > 500"


def test_retries_until_a_flaky_upstream_answers(flaky):
    clock = Clock()
    result = run(f"""
GET {flaky}/flaky/a?fail=3
[Options]
retry: 5
retry-interval: 10
HTTP 200
[Asserts]
jsonpath "$.attempt" == 4
""", sleep=clock)
    assert result["passed"] and result["steps"][0]["attempts"] == 4
    assert clock.waits == [0.01] * 3


def test_retries_are_bounded_and_the_last_attempt_is_reported(flaky):
    result = run(f"GET {flaky}/flaky/b?fail=100\n[Options]\nretry: 2\nHTTP 200\n")
    step = result["steps"][0]
    assert not result["passed"] and step["attempts"] == 3 and step["status"] == 503
    assert failed_asserts(result)[0]["actual"] == "503"


def test_retry_until_it_passes_is_bounded_too(upstream):
    result = run(f"GET {upstream.url_for('/status/500')}\n[Options]\nretry: -1\nretry-interval: 0\nHTTP 200\n")
    assert not result["passed"] and result["steps"][0]["attempts"] == MAX_ATTEMPTS


def test_an_undefined_variable_stops_the_test_before_anything_is_sent(upstream):
    upstream.requests.clear()
    result = run(f"GET {upstream.url_for('/json')}\nHTTP 200\n\nGET http://{{{{host}}}}/x\nHTTP 200\n")
    assert not result["passed"] and len(result["steps"]) == 2
    step = result["steps"][1]
    assert step["error"] == "line 4, column 12: variable 'host' is not defined"
    assert step["url"] == "http://{{host}}/x" and step["status"] is None and step["attempts"] == 0
    assert result["error"] == "step 2 (line 4): line 4, column 12: variable 'host' is not defined"
    assert len(upstream.requests) == 1


def test_a_capture_that_matches_nothing_fails_its_step(upstream):
    result = run(f"GET {upstream.url_for('/json')}\nHTTP 200\n[Captures]\nmissing: jsonpath \"$.nope\"\n\nGET {upstream.url_for('/json')}\n")
    assert not result["passed"] and len(result["steps"]) == 1
    assert result["steps"][0]["error"] == "line 4, column 1: capture missing: the jsonpath query matched nothing"


def test_a_refused_connection_is_the_steps_error():
    port = free_port()
    result = run(f"GET http://127.0.0.1:{port}/x\nHTTP 200\n")
    step = result["steps"][0]
    assert not result["passed"] and step["status"] is None
    assert step["error"].startswith("connect_failed: cannot connect to http://127.0.0.1:") and "\n" not in step["error"]


def test_a_bad_service_url_is_the_steps_error():
    result = run("GET service://identity/../billing\n")
    assert result["steps"][0]["error"].startswith("bad_url: ")


def test_a_test_that_cannot_run_has_a_result_too():
    result = failed_to_run("t.hurl:3:1: unsupported: [Multipart]", name="t", file="t.hurl", source="api")
    assert result["error"] == "t.hurl:3:1: unsupported: [Multipart]" and result["steps"] == []
    assert not result["passed"] and result["source"] == "api" and result["id"] is None


SECRET = "s3cr3t/p@ss wörd+1"


def test_secrets_are_sent_but_never_appear_in_the_result(httpbin):
    result = run(f"""
POST {httpbin}/anything
Authorization: Bearer {{{{token}}}}
[Query]
token: {{{{token}}}}
[BasicAuth]
user: {{{{token}}}}
[Form]
password: {{{{token}}}}
HTTP 200
[Captures]
echoed: jsonpath "$.form.password"
[Asserts]
jsonpath "$.form.password" == "{{{{token}}}}"
jsonpath "$.args.token" == "{{{{token}}}}"
body contains "never there"
""", secrets={"token": SECRET}, variables={"token": "overridden by the secret"})
    step = result["steps"][0]
    assert step["asserts"][1]["passed"] and step["asserts"][2]["passed"]  # the secret itself was sent
    assert step["asserts"][1]["expected"] == '"[secret:token]"'
    assert step["captures"] == {"echoed": "[secret:token]"}
    assert "[secret:token]" in step["url"]
    assert "[secret:token]" in step["asserts"][3]["actual"]  # the echoed body, every form masked
    text = json.dumps(result, ensure_ascii=False)
    for form in (SECRET, quote(SECRET, safe=""), quote(SECRET), json.dumps(SECRET)[1:-1],
                 base64.b64encode(f"user:{SECRET}".encode()).decode()):  # fmt: skip
        assert form not in text and form not in json.dumps(result), form


def test_a_secret_in_an_error_message_is_masked():
    result = run("GET http://{{host}}/x\n", secrets={"hostname": "never-defined-value"}, variables={})
    assert "never-defined-value" not in json.dumps(result)
    result = run("GET http://127.0.0.1:1/{{key}}\n", secrets={"key": "path-secret-9"})
    assert "path-secret-9" not in json.dumps(result) and "[secret:key]" in result["steps"][0]["error"]


@pytest.mark.parametrize(("text", "value"), [("3", 3), ("2.5", 2.5), ("true", True), ("null", None), ('"3"', "3"), ("a=b", "a=b")])
def test_hurl_typed(text, value):
    assert hurl_typed(text) == value and type(hurl_typed(text)) is type(value)
