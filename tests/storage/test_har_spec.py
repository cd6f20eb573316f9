"""Exports follow the HAR 1.2 specification (required fields and their types), checked over
generated exchanges (test_har's strategy) and over every sample re-exported through the store."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings

from storage.pure.har import HarSource, export_har
from tests.storage.test_har import exchanges

NUMBER = (int, float)
ISO_8601 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
# HAR 1.2: object -> (field, type) pairs every instance must have.
REQUIRED = {
    "log": [("version", str), ("creator", dict), ("entries", list)],
    "creator": [("name", str), ("version", str)],
    "entry": [("startedDateTime", str), ("time", NUMBER), ("request", dict), ("response", dict), ("cache", dict),
              ("timings", dict)],
    "request": [("method", str), ("url", str), ("httpVersion", str), ("cookies", list), ("headers", list),
                ("queryString", list), ("headersSize", int), ("bodySize", int)],
    "response": [("status", int), ("statusText", str), ("httpVersion", str), ("cookies", list), ("headers", list),
                 ("content", dict), ("redirectURL", str), ("headersSize", int), ("bodySize", int)],
    "pair": [("name", str), ("value", str)],
    "cookie": [("name", str), ("value", str)],
    "postData": [("mimeType", str)],
    "content": [("size", int), ("mimeType", str)],
    "timings": [("send", NUMBER), ("wait", NUMBER), ("receive", NUMBER)],
}  # fmt: skip


def problems(har: dict) -> list[str]:
    found: list[str] = []

    def need(kind: str, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            found.append(f"{where}: not an object")
            return
        for name, types in REQUIRED[kind]:
            if name not in value:
                found.append(f"{where}.{name}: missing")
            elif not isinstance(value[name], types) or isinstance(value[name], bool):
                found.append(f"{where}.{name}: {type(value[name]).__name__}")

    need("log", har.get("log"), "log")
    log = har.get("log", {})
    if log.get("version") != "1.2":
        found.append("log.version is not 1.2")
    need("creator", log.get("creator"), "log.creator")
    for n, entry in enumerate(log.get("entries", [])):
        where = f"entries[{n}]"
        need("entry", entry, where)
        if not ISO_8601.fullmatch(str(entry.get("startedDateTime"))):
            found.append(f"{where}.startedDateTime: not ISO 8601 with an offset")
        request, response, timings = entry.get("request", {}), entry.get("response", {}), entry.get("timings", {})
        need("request", request, f"{where}.request")
        need("response", response, f"{where}.response")
        need("timings", timings, f"{where}.timings")
        for side, message in (("request", request), ("response", response)):
            for field in ("headers", "cookies") + (("queryString",) if side == "request" else ()):
                for m, item in enumerate(message.get(field, [])):
                    need("cookie" if field == "cookies" else "pair", item, f"{where}.{side}.{field}[{m}]")
        if "postData" in request:
            need("postData", request["postData"], f"{where}.request.postData")
        need("content", response.get("content"), f"{where}.response.content")
        for phase in ("blocked", "dns", "connect", "send", "wait", "receive", "ssl"):
            value = timings.get(phase, -1)
            if not isinstance(value, NUMBER) or (value < 0 and value != -1):
                found.append(f"{where}.timings.{phase}: {value!r} (a duration, or -1)")
        spent = sum(timings.get(p, -1) for p in ("blocked", "dns", "connect", "send", "wait", "receive") if timings.get(p, -1) >= 0)
        if abs(spent - entry.get("time", 0)) > 0.01:
            found.append(f"{where}: timings sum to {spent}, time is {entry.get('time')}")
        if timings.get("ssl", -1) > timings.get("connect", -1) >= 0:
            found.append(f"{where}: ssl is longer than connect (connect includes ssl)")
    return found


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(exchanges())
def test_generated_exports_follow_the_spec(case):
    har = json.loads(json.dumps(export_har([HarSource(*case)], creator_version="1.0")))
    assert problems(har) == []


def test_the_checker_catches_what_it_should():
    broken = {"log": {"version": "1.1", "creator": {"name": "x"}, "entries": [
        {"startedDateTime": "yesterday", "time": 5, "request": {"method": "GET"}, "response": {}, "cache": {},
         "timings": {"send": 1, "wait": 1, "receive": -2}}]}}  # fmt: skip
    found = problems(broken)
    assert "log.version is not 1.2" in found and "log.creator.version: missing" in found
    assert any("startedDateTime" in p for p in found) and any("timings.receive" in p for p in found)
    assert any("request.url: missing" in p for p in found)
