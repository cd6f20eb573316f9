"""storage.pure.redaction: known secret values (RedactionRules.values, the test secrets) are
followed wherever they appear, under any name, as values found by name are."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from storage.pure.redaction import DEFAULT_RULES, MARKER_RE, OutBody, OutExchange, Redaction, rules_from_config

KEY = b"k" * 32
SECRET = "s3cr3t/v@lue"


def exchange(query: str, body: bytes) -> OutExchange:
    detail = {
        "id": 1, "method": "GET", "url": f"http://echo.local/anything?{query}", "host": "echo.local",
        "path": "/anything", "query": query, "request_headers": [["X-Check", SECRET]],
        "response_headers": [["Content-Type", "application/json"]], "error": None, "tags": [],
    }  # fmt: skip
    return OutExchange(detail, None, OutBody(body, "application/json"))


def redacted(rules) -> str:
    redaction = Redaction(rules, KEY)
    body = json.dumps({"args": {"q": SECRET}, "url": f"http://echo.local/anything?q={quote(SECRET, safe='')}"})
    redaction.add(exchange(f"q={quote(SECRET, safe='')}", body.encode()))
    [out] = redaction.finish()
    return json.dumps(out.detail) + out.response_body.data.decode()


def test_a_known_value_is_redacted_under_a_name_no_rule_knows():
    text = redacted(DEFAULT_RULES.with_values(SECRET))
    assert SECRET not in text and quote(SECRET, safe="") not in text and json.dumps(SECRET)[1:-1] not in text
    assert len(set(MARKER_RE.findall(text))) == 1  # one value, one marker, everywhere


def test_without_the_value_the_same_exchange_goes_out_as_is():
    assert SECRET in redacted(DEFAULT_RULES)


def test_values_survive_adding_and_removing_rules():
    rules = rules_from_config(["x-session"], []).with_values(SECRET).with_added("*sessionid*").without("x-api-key")
    assert rules.values == {SECRET}


def test_values_must_be_strings():
    with pytest.raises(TypeError, match="values"):
        DEFAULT_RULES.with_values(b"bytes")  # type: ignore[arg-type]
