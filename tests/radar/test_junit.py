"""radar.junit: results as JUnit XML that CI systems read, checked with junitparser and ElementTree."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from junitparser import Error, Failure, JUnitXml

from radar.junit import failure_lines, junit_xml


def step(index: int, *, status: int | None = 200, error: str | None = None, asserts=()) -> dict:
    return {
        "index": index, "line": 1 + 4 * index, "method": "GET", "url": "http://h/x", "status": status,
        "duration_ms": 12.5 if status else None, "attempts": 1, "span_id": "ab" * 8, "exchange_id": None,
        "error": error, "captures": {}, "asserts": list(asserts),
    }  # fmt: skip


def check(line: int, text: str, passed: bool, expected: str = "200", actual: str = "200", message=None) -> dict:
    return {"line": line, "column": 1, "text": text, "passed": passed, "expected": expected, "actual": actual,
            "message": message}  # fmt: skip


def result(name: str, steps: list[dict], *, passed: bool, error: str | None = None, ms: float = 1500.0) -> dict:
    return {
        "id": None, "uuid": "u-" + name, "test": name, "file": f"tests/{name}.hurl", "realm": None, "source": "cli",
        "monitor": None, "started_at": "2026-01-01T00:00:00.000Z", "duration_ms": ms, "passed": passed,
        "error": error, "trace_id": "4b" * 16, "steps": steps, "overhead_ms": 0.1,
    }  # fmt: skip


RESULTS = [
    result("ok", [step(0, asserts=[check(2, "HTTP 200", True)])], passed=True, ms=250),
    result("broken", [
        step(0, asserts=[check(2, "HTTP 200", True)]),
        step(1, status=500, asserts=[
            check(6, "HTTP 200", False, "200", "500"),
            check(8, 'jsonpath "$.id" == 3', False, "int <3>", "none", "the JSONPath matched nothing"),
            check(9, 'header "Content-Type" contains "json"', True),
        ]),
    ], passed=False),  # fmt: skip
    result("unreachable", [step(0, status=None, error="connect_failed: cannot connect to http://h/x")], passed=False),
    result("undefined", [step(0, status=None, error="line 1, column 19: variable 'host' is not defined")],
           passed=False, error="step 1 (line 1): line 1, column 19: variable 'host' is not defined"),
    result("unparsable", [], passed=False, error="tests/unparsable.hurl:3:1: unsupported: [Multipart]"),
]


def link(result: dict, step: dict) -> str:
    return f"http://ui/?q=trace:{result['trace_id']}"


def test_a_suite_with_a_case_per_test_read_by_junitparser(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_bytes(junit_xml(RESULTS, link))
    suite = next(iter(JUnitXml.fromfile(str(path))))
    assert suite.name == "passageway"
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (5, 1, 3, 0)
    cases = {case.name: case for case in suite}
    assert cases["ok"].classname == "tests/ok.hurl" and cases["ok"].time == 0.25 and cases["ok"].is_passed
    broken = cases["broken"].result
    assert len(broken) == 1 and isinstance(broken[0], Failure) and broken[0].type == "assert"
    assert broken[0].message == "tests/broken.hurl:6: HTTP 200: expected 200, actual 500 (http://ui/?q=trace:" + "4b" * 16 + ")"
    assert broken[0].text.splitlines() == [
        f"tests/broken.hurl:6: HTTP 200: expected 200, actual 500 ({link(RESULTS[1], {})})",
        'tests/broken.hurl:8: jsonpath "$.id" == 3: expected int <3>, actual none (the JSONPath matched nothing) '
        f"({link(RESULTS[1], {})})",
    ]
    for name in ("unreachable", "undefined", "unparsable"):
        (error,) = cases[name].result
        assert isinstance(error, Error), name
    assert "connect_failed" in cases["unreachable"].result[0].message
    assert cases["unparsable"].result[0].message == "tests/unparsable.hurl: tests/unparsable.hurl:3:1: unsupported: [Multipart]"
    assert "variable 'host' is not defined" in cases["undefined"].result[0].message


def test_the_document_is_plain_well_formed_xml():
    root = ET.fromstring(junit_xml(RESULTS))
    assert root.tag == "testsuite" and root.get("tests") == "5" and float(root.get("time")) == 1.5 * 4 + 0.25
    assert [case.get("name") for case in root.iter("testcase")] == ["ok", "broken", "unreachable", "undefined", "unparsable"]
    assert [child.tag for case in root.iter("testcase") for child in case] == ["failure", "error", "error", "error"]


def test_characters_xml_cannot_hold_are_escaped():
    binary = result("binary", [step(0, asserts=[check(3, "bytes == hex,00;", False, "\x00\x01", "\x1b[31m<&>")])],
                    passed=False)  # fmt: skip
    root = ET.fromstring(junit_xml([binary]))
    text = root.find("testcase/failure").text
    assert "expected \\x00\\x01, actual \\x1b[31m<&>" in text


def test_an_empty_run_is_an_empty_suite():
    root = ET.fromstring(junit_xml([]))
    assert (root.get("tests"), root.get("failures"), list(root)) == ("0", "0", [])


def test_failure_lines_without_links():
    assert failure_lines(RESULTS[2]) == ["tests/unreachable.hurl:1: connect_failed: cannot connect to http://h/x"]
    assert failure_lines(RESULTS[0]) == []
