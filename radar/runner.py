"""Run one parsed Hurl file as one test: its entries in order, through Passageway, into a result.

Semantics (as Hurl's, https://hurl.dev/docs/entry.html):
- before a step, its `[Options]` `variable`s are set, then `delay` is waited;
- the request is rendered with the variables so far (realm, command line, secrets, earlier
  captures), sent, its captures are taken, then its implicit asserts (status, version, headers,
  body) and explicit `[Asserts]`: every assert of the step is evaluated and reported;
- `retry: N` sends the step again (after `retry-interval`) while a capture or an assert fails or
  there is no answer; `retry: -1` means until it passes, bounded by MAX_ATTEMPTS;
- the first failing step ends the test: the later ones are not run;
- nothing raises out of `run_test`: an undefined variable, a failed capture, no answer... each
  is the step's `error`, one line.

Secrets are variables like the others, but every value of one is replaced by `[secret:NAME]`
everywhere in the result (radar.secrets).
"""

from __future__ import annotations

import base64
import html
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from passageway.wire import ERROR_HEADER
from radar.judge import (
    CaptureError,
    ResponseFacts,
    capture_value,
    check_assert,
    implicit_asserts,
)
from radar.model import Entry, HurlFile, KeyValue, Request, Template
from radar.secrets import SecretMask
from radar.template import UndefinedVariable, render, render_json_body, render_value
from radar.transport import Reply, TestSession, TransportError, new_trace_id

__all__ = ["MAX_ATTEMPTS", "SessionFactory", "failed_to_run", "hurl_typed", "run_test", "template_text"]

MAX_ATTEMPTS = 60
"""Attempts of a step with `retry: -1` (and the most any `retry` gets)."""

SessionFactory = Callable[[str, str], TestSession]
"""(trace id, test name) -> the session a test's requests go through."""

CONTENT_TYPES = {"json": "application/json", "xml": "application/xml"}


class StepFailed(Exception):
    """Why a step could not be sent or judged (one line); ends the step and the test."""


def hurl_typed(text: str) -> Any:
    """A variable given as text, typed as Hurl types `--variable` and `variable:` values:
    true/false, null, integers, floats, `"quoted"` text (kept as text), anything else text."""
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return float(text)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def template_text(template: Template) -> str:
    """A template as written (`{{name}}` kept), for a step that could not be rendered."""
    return "".join(part if isinstance(part, str) else f"{{{{{part.name}}}}}" for part in template.parts)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _result(*, name: str, file: str, realm: str | None, source: str, monitor: str | None, trace_id: str) -> dict:
    return {
        "id": None, "uuid": str(uuid.uuid4()), "test": name, "file": file, "realm": realm, "source": source,
        "monitor": monitor, "started_at": _now(), "duration_ms": 0.0, "passed": False, "error": None,
        "trace_id": trace_id, "steps": [], "overhead_ms": 0.0,
    }  # fmt: skip


def failed_to_run(error: str, *, name: str, file: str, realm: str | None = None, source: str = "cli",
                  monitor: str | None = None, secrets: Mapping[str, str] | None = None) -> dict:  # fmt: skip
    """The result of a test that could not run at all (a parse error, an unreadable file)."""
    result = _result(name=name, file=file, realm=realm, source=source, monitor=monitor, trace_id=new_trace_id())
    result["error"] = error
    return SecretMask(secrets or {}).data(result)  # type: ignore[return-value]


def run_test(hurl: HurlFile, *, name: str, sessions: SessionFactory, variables: Mapping[str, Any] | None = None,
             secrets: Mapping[str, str] | None = None, realm: str | None = None, source: str = "cli",
             monitor: str | None = None, sleep: Callable[[float], None] = time.sleep) -> dict:  # fmt: skip
    """Run `hurl`'s entries in order; the test-run result (README, Running tests in CI)."""
    secrets = dict(secrets or {})
    known: dict[str, Any] = {**(variables or {}), **secrets}
    trace_id = new_trace_id()
    result = _result(name=name, file=hurl.filename, realm=realm, source=source, monitor=monitor, trace_id=trace_id)
    started = time.perf_counter()
    waited = 0.0  # HTTP round trips, delays and retry intervals: what is not the runner's own time

    def wait(seconds: float) -> None:
        nonlocal waited
        if seconds > 0:
            sleep(seconds)
            waited += seconds

    try:
        session = sessions(trace_id, name)
    except Exception as e:  # noqa: BLE001 - a result, never an exception: the runner must go on
        result["error"] = f"cannot start: {type(e).__name__}: {e}"
        session = None
    if session is not None:
        with session:
            for index, entry in enumerate(hurl.entries):
                step, known, round_trips = _run_step(index, entry, session, known, wait)
                waited += round_trips
                result["steps"].append(step)
                if step["error"] is not None and step["status"] is None and result["error"] is None:
                    result["error"] = f"step {index + 1} (line {step['line']}): {step['error']}"
                if not _passed(step):
                    break
    elapsed = (time.perf_counter() - started) * 1000
    result["duration_ms"] = round(elapsed, 3)
    result["overhead_ms"] = round(max(0.0, elapsed - waited * 1000), 3)
    result["passed"] = result["error"] is None and len(result["steps"]) == len(hurl.entries) and all(
        _passed(step) for step in result["steps"])  # fmt: skip
    return SecretMask(secrets).data(result)  # type: ignore[return-value]


def _passed(step: dict) -> bool:
    return step["error"] is None and all(item["passed"] for item in step["asserts"])


def _run_step(index: int, entry: Entry, session: TestSession, known: dict[str, Any],
              wait: Callable[[float], None]) -> tuple[dict, dict[str, Any], float]:  # fmt: skip
    """The step's result, the variables after it (its captures added when it passed) and the
    seconds its round trips took."""
    request = entry.request
    options = request.options
    step: dict[str, Any] = {
        "index": index, "line": entry.line, "method": request.method, "url": template_text(request.url),
        "status": None, "duration_ms": None, "attempts": 0, "span_id": None, "exchange_id": None, "error": None,
        "captures": {}, "asserts": [],
    }  # fmt: skip
    round_trips = 0.0
    variables = dict(known)
    try:
        for option in options.variables:
            variables[render(option.name, variables)] = hurl_typed(render(option.value, variables))
        wait(options.delay_ms / 1000)
        url, headers, body, cookies = render_request(request, variables)
        step["url"] = url
    except (UndefinedVariable, StepFailed) as e:
        step["error"] = str(e)
        return step, known, round_trips
    attempts = MAX_ATTEMPTS if options.retry < 0 else min(1 + options.retry, MAX_ATTEMPTS)
    for attempt in range(1, attempts + 1):
        step.update(attempts=attempt, error=None, captures={}, asserts=[], status=None, duration_ms=None)
        attempt_variables = dict(variables)
        try:
            reply = session.send(request.method, url, headers, body, cookies=cookies)
        except TransportError as e:
            step["error"] = str(e)
        else:
            round_trips += reply.duration_ms / 1000
            step.update(status=reply.status, duration_ms=round(reply.duration_ms, 3), span_id=reply.span_id)
            _judge(entry, reply, attempt_variables, step)
            if not _passed(step) and step["error"] is None:
                step["error"] = _proxy_error(reply)
        if _passed(step):
            return step, attempt_variables, round_trips
        if attempt < attempts:
            wait(options.retry_interval_ms / 1000)
    return step, known, round_trips


_PROXY_PAGE = re.compile(rb"<p>(.*?)</p>", re.S)


def _proxy_error(reply: Reply) -> str | None:
    """Why the proxy answered itself, when it did: Passageway says so in a header (no route,
    upstream timeout...), mitmproxy in its own error page (an upstream that refuses)."""
    headers = {name.lower(): value for name, value in reply.headers}
    kind = headers.get(ERROR_HEADER.lower())
    if kind is not None:
        try:
            detail = json.loads(reply.body).get("message") or ""
        except (ValueError, AttributeError):
            detail = reply.body[:200].decode("utf-8", "replace")
        return f"{kind}: {' '.join(str(detail).split())}".rstrip(": ")
    page = _PROXY_PAGE.search(reply.body[:2000]) if headers.get("server", "").startswith("mitmproxy") else None
    if reply.status == 502 and page is not None:
        detail = html.unescape(page.group(1).decode("utf-8", "replace"))
        return f"upstream_failed: the proxy got no answer: {' '.join(detail.split())}"
    return None


def _judge(entry: Entry, reply: Reply, variables: dict[str, Any], step: dict) -> None:
    """Captures (added to `variables`), then every assert; into `step`."""
    facts = ResponseFacts(reply.status, reply.version, reply.headers, reply.body, reply.duration_ms, reply.url)
    response = entry.response
    if response is None:
        return
    try:
        for capture in response.captures:
            value = capture_value(capture, facts, variables)
            variables[capture.name] = value
            step["captures"][capture.name] = render_value(value)
    except CaptureError as e:
        step["error"] = f"line {e.line}, column {e.column}: {e.message}"
    except UndefinedVariable as e:
        step["error"] = f"capture: {e}"
    results = []
    try:
        results += implicit_asserts(response, facts, variables)
        results += [check_assert(item, facts, variables) for item in response.asserts]
    except UndefinedVariable as e:
        step["error"] = step["error"] or f"assert: {e}"
    step["asserts"] = [
        {"line": r.line, "column": r.column, "text": r.text, "passed": r.passed, "expected": r.expected,
         "actual": r.actual, "message": r.message}
        for r in results
    ]  # fmt: skip


def render_request(request: Request, variables: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]], bytes | None, list[tuple[str, str]]]:
    """(URL with its [Query], headers, body, [Cookies]) of a request; UndefinedVariable or StepFailed."""

    def pairs(items: tuple[KeyValue, ...]) -> list[tuple[str, str]]:
        return [(render(item.name, variables), render(item.value, variables)) for item in items]

    url = render(request.url, variables)
    if request.query:
        url += ("&" if "?" in url else "?") + urlencode(pairs(request.query), quote_via=quote)
    headers = pairs(request.headers)
    given = {name.lower() for name, _ in headers}
    if request.basic_auth is not None and "authorization" not in given:
        user, password = pairs((request.basic_auth,))[0]
        credentials = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        headers.append(("Authorization", f"Basic {credentials}"))
    body: bytes | None = None
    content_type = None
    if request.form:
        if request.body is not None:
            raise StepFailed(f"line {request.line}: a request has either [Form] or a body, not both")
        body = urlencode(pairs(request.form)).encode()
        content_type = "application/x-www-form-urlencoded"
    elif request.body is not None:
        spec = request.body
        if spec.kind == "bytes":
            body = spec.data or b""
        elif spec.kind == "json" and spec.text is not None:
            body = render_json_body(spec.text, variables).encode()
        elif spec.text is not None:
            body = render(spec.text, variables).encode()
        content_type = CONTENT_TYPES.get(spec.kind)
    if content_type and "content-type" not in given:
        headers.append(("Content-Type", content_type))
    return url, headers, body, pairs(request.cookies)
