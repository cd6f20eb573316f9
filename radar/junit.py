"""Test-run results as JUnit XML, the report CI systems read (Jenkins, GitLab, GitHub actions...).

One `<testsuite name="passageway">`; one `<testcase classname=FILE name=TEST time=SECONDS>` per
test; a failed test holds a `<failure type="assert">` listing each failed assert as
`FILE:LINE: TEXT: expected X, actual Y` with its exchange link, a test that could not run an
`<error>`. Pure: results in (already free of secrets), bytes out.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence

__all__ = ["failure_lines", "junit_xml"]

SUITE = "passageway"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot hold (a binary body's bytes in an `actual`)."""


def _xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def failure_lines(result: dict, link: Callable[[dict, dict], str | None] | None = None) -> list[str]:
    """What failed in a test, one line each: `FILE:LINE: TEXT: expected X, actual Y` per failed
    assert (with `link(result, step)` after it when given), `FILE:LINE: ERROR` per step error."""
    lines = []
    for step in result["steps"]:
        where = link(result, step) if link else None
        suffix = f" ({where})" if where else ""
        if step["error"]:
            lines.append(f"{result['file']}:{step['line']}: {step['error']}{suffix}")
        for item in step["asserts"]:
            if not item["passed"]:
                said = f"expected {item['expected']}, actual {item['actual']}"
                if item.get("message"):
                    said += f" ({item['message']})"
                lines.append(f"{result['file']}:{item['line']}: {item['text']}: {said}{suffix}")
    return lines


def _could_not_run(result: dict) -> bool:
    """No request got an answer: the test did not run (a parse error, an undefined variable, no upstream)."""
    return not result["passed"] and all(step["status"] is None for step in result["steps"])


def junit_xml(results: Sequence[dict], link: Callable[[dict, dict], str | None] | None = None) -> bytes:
    """The JUnit XML document of `results` (test-run result dicts)."""
    suite = ET.Element("testsuite", name=SUITE)
    failures = errors = 0
    total = 0.0
    for result in results:
        seconds = result["duration_ms"] / 1000
        total += seconds
        case = ET.SubElement(
            suite, "testcase", classname=_xml_text(result["file"]), name=_xml_text(result["test"]), time=f"{seconds:.3f}"
        )
        if result["passed"]:
            continue
        lines = failure_lines(result, link)
        if result["error"] and result["error"] not in "\n".join(lines):
            lines.insert(0, f"{result['file']}: {result['error']}")
        lines = [_xml_text(line) for line in lines]
        message = lines[0] if lines else "failed"
        if _could_not_run(result):
            errors += 1
            node = ET.SubElement(case, "error", message=message, type="error")
        else:
            failures += 1
            node = ET.SubElement(case, "failure", message=message, type="assert")
        node.text = "\n".join(lines)
    suite.set("tests", str(len(results)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", "0")
    suite.set("time", f"{total:.3f}")
    ET.indent(suite)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True) + b"\n"
