"""Real Hurl files from Hurl's integration tests (tests/data/hurl, README there): each one parses
or is refused by name at the construct, exactly as this table says, so a regression either way
(a supported file refused, an unsupported construct let through) fails."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from radar.hurl import HurlError, parse_hurl

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hurl"

EXPECTED = {
    "tests_failed/assert_body_json/assert_body_json_ok.hurl": "ok",
    "tests_failed/assert_header/assert_header_value.hurl": "ok",
    "tests_failed/assert_status/assert_status.hurl": "ok",
    "tests_failed/body/body_binary.hurl": "10:1: unsupported: XML body",
    "tests_failed/cookies/cookies.hurl": "ok",
    "tests_failed/invalid_jsonpath/invalid_jsonpath.hurl": "ok",
    "tests_failed/multipart_form_data/multipart_form_data.hurl": "2:1: unsupported: section [MultipartFormData]",
    "tests_failed/query/query_header_not_found.hurl": "ok",
    "tests_failed/query/query_invalid_json.hurl": "ok",
    "tests_failed/query/query_match_none.hurl": "ok",
    "tests_failed/template/template_variable_not_found.hurl": "ok",
    "tests_ok/assert/assert_body.hurl": "13:1: unsupported: file body",
    "tests_ok/assert/assert_header.hurl": "12:18: unsupported: filter toDate",
    "tests_ok/assert/assert_match.hurl": "ok",
    "tests_ok/assert/assert_regex.hurl": "7:6: unsupported: filter regex",
    "tests_ok/assert/assert_status_code.hurl": "ok",
    "tests_ok/basic_authentication/basic_authentication.hurl": "ok",
    "tests_ok/bytes/bytes.hurl": "7:10: unsupported: file value",
    "tests_ok/captures/captures.hurl": "5:26: unsupported: filter regex",
    "tests_ok/cookie/cookies.hurl": "64:24: unsupported: filter dateFormat",
    "tests_ok/delay/delay.hurl": "24:6: unsupported: filter toInt",
    "tests_ok/empty/empty_sections.hurl": "7:1: unsupported: section [MultipartFormData]",
    "tests_ok/empty_value_header/empty_value_header.hurl": "2:1: unsupported: header without value `Name;`",
    "tests_ok/entry/entry.hurl": "3:1: unsupported: option output",
    "tests_ok/expect/expect.hurl": "ok",
    "tests_ok/form_params/form_params.hurl": "ok",
    "tests_ok/function/function.hurl": "3:7: unsupported: function newUuid",
    "tests_ok/header/headers.hurl": "52:1: unsupported: header without value `Name;`",
    "tests_ok/hello/hello.hurl": "20:1: unsupported: file body",
    "tests_ok/ipv6/ipv6.hurl": "4:1: unsupported: query ip",
}


def test_the_table_covers_the_whole_corpus():
    on_disk = {str(path.relative_to(CORPUS)) for path in CORPUS.rglob("*.hurl")}
    assert on_disk == set(EXPECTED)
    assert len(on_disk) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_file_parses_or_is_refused_by_name(name):
    text = (CORPUS / name).read_text(encoding="utf-8")
    try:
        hurl = parse_hurl(text, name)
    except HurlError as error:
        assert error.filename == name
        assert f"{error.line}:{error.column}: {error.message}" == EXPECTED[name]
        return
    assert EXPECTED[name] == "ok"
    # Nothing was swallowed: one entry per request line of the file.
    request_lines = re.findall(r"^[ \t]*[A-Z]+[ \t]+\S", text, re.MULTILINE)
    assert len(hurl.entries) == len([line for line in request_lines if not line.lstrip().startswith("HTTP")])
