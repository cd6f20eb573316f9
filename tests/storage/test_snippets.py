"""storage.pure.snippets: exact outputs, and hostile values (hypothesis) that parse back to exactly themselves."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.pure.snippets import (
    SnippetRequest,
    SnippetTarget,
    as_curl,
    as_fetch,
    as_httpie,
    as_python_httpx,
    httpie_item,
    snippet_headers,
    snippet_target,
)

POST = SnippetRequest(
    method="POST",
    url="https://api.local/users?page=2",
    headers=[
        ("Host", "api.local"),
        ("Content-Type", "application/json"),
        ("Content-Length", "8"),
        ("Connection", "keep-alive"),
        ("X-Tag", "a"),
        ("X-Tag", "it's $(id)"),
        ("Accept-Encoding", "gzip, br"),
    ],
    body=b'{"a": 1}',
)


# --- exact outputs -------------------------------------------------------------------------------


def test_curl_exact() -> None:
    assert as_curl(POST) == (
        "curl -X POST 'https://api.local/users?page=2' \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        "  -H 'X-Tag: a' \\\n"
        "  -H 'X-Tag: it'\"'\"'s $(id)' \\\n"
        "  -H 'Accept-Encoding: gzip, br' \\\n"
        "  --compressed \\\n"
        "  --data-raw '{\"a\": 1}'"
    )


def test_curl_get_head_empty_header_and_binary_body() -> None:
    assert as_curl(SnippetRequest("GET", "http://a.local/", [("X-Empty", "")])) == (
        "curl http://a.local/ \\\n  -H 'X-Empty;'"
    )
    assert as_curl(SnippetRequest("HEAD", "http://a.local/")) == "curl --head http://a.local/"
    assert as_curl(SnippetRequest("PUT", "http://a.local/f", body=b"\x89PNG\x00", body_is_text=False)) == (
        "# The request body is binary (5 bytes): save it as body.bin first.\n"
        "curl -X PUT http://a.local/f \\\n"
        "  --data-binary @body.bin"
    )


def test_curl_text_body_starting_with_at_is_not_a_file() -> None:
    assert as_curl(SnippetRequest("POST", "http://a/", body=b"@/etc/passwd")).endswith("--data-raw @/etc/passwd")


def test_httpie_exact() -> None:
    assert as_httpie(POST) == (
        "http --raw '{\"a\": 1}' POST 'https://api.local/users?page=2' \\\n"
        "  Content-Type:application/json \\\n"
        "  X-Tag:a \\\n"
        "  'X-Tag:it'\"'\"'s $(id)' \\\n"
        "  'Accept-Encoding:gzip, br'"
    )
    assert httpie_item("X", "") == "X;"
    assert httpie_item("X", "@file:a=b") == r"X:\@file\:a\=b"


def test_httpie_binary_body_from_stdin() -> None:
    assert as_httpie(SnippetRequest("PUT", "http://a.local/f", body=b"\xff", body_is_text=False)) == (
        "# The request body is binary (1 bytes): save it as body.bin first.\n"
        "http PUT http://a.local/f < body.bin"
    )


def test_python_exact() -> None:
    assert as_python_httpx(POST) == (
        "import httpx\n"
        "\n"
        "response = httpx.request(\n"
        "    'POST',\n"
        "    'https://api.local/users?page=2',\n"
        "    headers=[\n"
        "        ('Content-Type', 'application/json'),\n"
        "        ('X-Tag', 'a'),\n"
        "        ('X-Tag', \"it's $(id)\"),\n"
        "        ('Accept-Encoding', 'gzip, br'),\n"
        "    ],\n"
        "    content='{\"a\": 1}',\n"
        ")\n"
        "print(response.status_code, response.reason_phrase)\n"
        "print(response.text)\n"
    )


def test_fetch_exact() -> None:
    assert as_fetch(SnippetRequest("PUT", "https://a.local/f", [("X", "\u2028</script>")], b"\x00\xff", False)) == (
        "// Browsers drop forbidden headers (Cookie, Accept-Encoding, Origin, ...); Node.js sends them.\n"
        'const response = await fetch("https://a.local/f", {\n'
        '  method: "PUT",\n'
        "  headers: [\n"
        '    ["X", "\\u2028</script>"],\n'
        "  ],\n"
        '  body: Uint8Array.from(atob("AP8="), (c) => c.charCodeAt(0)),\n'
        "});\n"
        "console.log(response.status, await response.text());\n"
    )


def test_shell_control_characters_are_never_raw() -> None:
    evil = "x\x1b[201~\x03\nrm -rf ~\n'"
    snippet = as_curl(SnippetRequest("GET", "http://a/", [("X", evil)]))
    assert "\x1b" not in snippet and "\x03" not in snippet
    assert "-H $'X: x\\x1b[201~\\x03\\nrm -rf ~\\n\\''" in snippet


def test_shell_nul_is_dropped_with_a_note() -> None:
    snippet = as_curl(SnippetRequest("GET", "http://a/", [("X", "a\x00b")]))
    assert "\x00" not in snippet
    assert snippet.startswith("# NUL characters were removed")
    assert "-H 'X: ab'" in snippet


def test_hostile_body_file_name_is_refused() -> None:
    with pytest.raises(ValueError):
        as_curl(SnippetRequest("PUT", "http://a/", body=b"\xff"), body_file="x'; rm -rf ~")


# --- hostile values --------------------------------------------------------------------------------

FRAGMENTS = ["'", '"', "$(id)", "`id`", "\n", "\r", "\x00", "\x1b[201~", "\x03", "\\", "\\'", "-", "--x", "@", ":",
             ";", "=", "#", "!", "*", "~", " ", "\t", "\u2028", "\u0085", "</script>", "${x}", "é", "\U0001f600"]  # fmt: skip
HOSTILE = st.lists(st.one_of(st.text(max_size=4), st.sampled_from(FRAGMENTS)), max_size=6).map("".join)
NAMES = HOSTILE.filter(lambda s: not s.startswith(":") and s.lower() not in {"host", "content-length"})


@st.composite
def requests(draw: Any) -> SnippetRequest:
    body = draw(st.one_of(st.none(), st.binary(max_size=20), HOSTILE.map(lambda s: s.encode())))
    return SnippetRequest(
        method=draw(st.one_of(st.sampled_from(["GET", "POST", "HEAD"]), HOSTILE)),
        url=draw(HOSTILE),
        headers=draw(st.lists(st.tuples(NAMES, HOSTILE), max_size=4)),
        body=body,
        body_is_text=draw(st.booleans()),
    )


def text_body(request: SnippetRequest) -> str | None:
    if request.body is None or not request.body_is_text:
        return None
    try:
        return request.body.decode()
    except UnicodeDecodeError:
        return None


def expected_curl_argv(request: SnippetRequest) -> list[str]:
    text = text_body(request)
    if text is not None and "\x00" in text:
        text = None
    argv = ["curl"]
    if request.method == "HEAD" and request.body is None:
        argv.append("--head")
    elif request.method != "GET" or request.body is not None:
        argv += ["-X", request.method]
    argv += ["--url", request.url] if request.url.startswith("-") else [request.url]
    compressed = False
    for name, value in snippet_headers(request):
        compressed |= name.lower() == "accept-encoding" and bool(re.search("gzip|deflate|br|zstd", value, re.I))
        argv += ["-H", f"{name}: {value}" if value else f"{name};"]
    if compressed:
        argv.append("--compressed")
    if text is not None:
        argv += ["--data-raw", text]
    elif request.body is not None:
        argv += ["--data-binary", "@body.bin"]
    return [a.replace("\x00", "") for a in argv]


def expected_httpie_argv(request: SnippetRequest) -> list[str]:
    text = text_body(request)
    if text is not None and "\x00" in text:
        text = None
    items = [request.method, request.url] + [httpie_item(n, v) for n, v in snippet_headers(request)]
    argv = ["http"] + (["--raw", text] if text is not None else []) + (["--"] if any(i.startswith("-") for i in items) else [])
    return [a.replace("\x00", "") for a in argv + items]


SHELL_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def argv_words(request: SnippetRequest) -> list[str]:
    return [request.method, request.url, *(x for h in request.headers for x in h), text_body(request) or ""]


@settings(max_examples=300)
@given(req=requests())
def test_shell_snippets_shlex_back_to_the_values(req: SnippetRequest) -> None:
    # shlex knows only POSIX quoting; words with control characters use $'...' (checked in bash below).
    if any(SHELL_CONTROL.search(w) for w in argv_words(req)):
        return
    for render, expected in ((as_curl, expected_curl_argv), (as_httpie, expected_httpie_argv)):
        snippet = render(req)
        assert "\x00" not in snippet
        words = [w for w in shlex.split(snippet.removesuffix(" < body.bin"), comments=True) if w != "\n"]
        assert words == [w for w in expected(req) if w != "\n"]


BASH = shutil.which("bash")


def bash_argv(snippet: str, command: str, cwd: Path) -> list[str]:
    script = f"{command}() {{ printf '%s\\0' {command} \"$@\"; }}\n{snippet}\n"
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], cwd=cwd, capture_output=True, check=True,
                          env={"LC_ALL": "C.UTF-8", "PATH": os.environ.get("PATH", "/usr/bin:/bin")})  # fmt: skip
    return done.stdout.decode("utf-8").split("\0")[:-1]


@pytest.mark.skipif(BASH is None, reason="bash not installed")
@settings(max_examples=150, deadline=None)
@given(req=requests())
def test_shell_snippets_in_bash_give_exactly_the_values(req: SnippetRequest, tmp_path_factory: Any) -> None:
    cwd = tmp_path_factory.getbasetemp()
    (cwd / "body.bin").write_bytes(b"")
    snippet = as_curl(req)
    assert not SHELL_CONTROL.search(snippet), "no raw control character in a shell snippet"
    assert bash_argv(snippet, "curl", cwd) == expected_curl_argv(req)
    snippet = as_httpie(req)
    assert not SHELL_CONTROL.search(snippet)
    assert bash_argv(snippet, "http", cwd) == expected_httpie_argv(req)


def _call(tree: ast.Module) -> ast.Call:
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "httpx.request"]
    assert len(calls) == 1
    return calls[0]


@settings(max_examples=300)
@given(req=requests())
def test_python_snippet_parses_to_exactly_the_values(req: SnippetRequest) -> None:
    tree = ast.parse(as_python_httpx(req))
    call = _call(tree)
    assert [ast.literal_eval(a) for a in call.args] == [req.method, req.url]
    keywords = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    assert keywords.get("headers", []) == snippet_headers(req)
    text = text_body(req)
    assert keywords.get("content") == (text if text is not None else req.body)
    # Nothing but the one call and two prints: no value became code.
    assert [type(n).__name__ for n in tree.body] == ["Import", "Assign", "Expr", "Expr"]


JS_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')


@settings(max_examples=300)
@given(req=requests())
def test_fetch_snippet_literals_are_json(req: SnippetRequest) -> None:
    snippet = as_fetch(req)
    assert snippet.isascii()
    literals = [json.loads(m) for m in JS_STRING.findall(snippet)]
    expected = [req.url, req.method, *(x for h in snippet_headers(req) for x in h)]
    if req.body is not None:
        text = text_body(req)
        expected.append(text if text is not None else __import__("base64").b64encode(req.body).decode())
    assert literals == expected
    # Outside the literals, the snippet is the fixed template.
    skeleton = JS_STRING.sub('""', snippet)
    assert "(c) => c.charCodeAt(0)" in skeleton or req.body is None or text_body(req) is not None
    assert len(skeleton.splitlines()) == len(snippet.splitlines())


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node not installed")
def test_fetch_snippets_run_in_node_with_exactly_the_values(tmp_path: Path) -> None:
    cases = [
        SnippetRequest("POST", "https://a/?q='\"`${x}`", [("X-" + f.strip() or "X", f) for f in FRAGMENTS], f.encode())
        for f in FRAGMENTS
    ] + [SnippetRequest("PUT", "https://a/", [], bytes(range(256)), False)]
    bodies = []
    for i, case in enumerate(cases):
        bodies.append(f"async function case{i}() {{\n{as_fetch(case)}}}\nawait case{i}();\n")
    script = (
        "const seen = [];\n"
        "globalThis.fetch = async (url, init) => { seen.push([url, init.method, init.headers ?? [],"
        " init.body === undefined ? null : typeof init.body === 'string' ? init.body : Array.from(init.body)]);"
        " return { status: 0, text: async () => '' }; };\n"
        "console.log = () => {};\n" + "".join(bodies) + "process.stdout.write(JSON.stringify(seen));\n"
    )
    path = tmp_path / "snippets.mjs"
    path.write_text(script)
    seen = json.loads(subprocess.run([NODE, str(path)], capture_output=True, check=True, text=True).stdout)
    for case, (url, method, headers, body) in zip(cases, seen, strict=True):
        assert (url, method) == (case.url, case.method)
        assert [tuple(h) for h in headers] == snippet_headers(case)
        text = text_body(case)
        assert body == (text if text is not None else list(case.body or b""))


# --- where a snippet sends (issue 16: the gateway by default) -------------------------------------

SERVICES = {"billing": "http://10.0.0.5:9000", "users": "http://users.internal:8000/api/v2/"}


def test_snippet_target_goes_through_the_gateway_with_the_service_prefix() -> None:
    found = snippet_target(
        "http://10.0.0.5:9000/orders?page=2", service="billing", services=SERVICES, gateway="http://passageway:8080"
    )
    assert found == SnippetTarget("http://passageway:8080/billing/orders?page=2", True, None)


def test_snippet_target_takes_the_services_base_path_off() -> None:
    # The captured URL is what the upstream got (its base path included); the gateway adds it again.
    found = snippet_target(
        "http://users.internal:8000/api/v2/users/42", service="users", services=SERVICES, gateway="http://gw:8080/"
    )
    assert found.url == "http://gw:8080/users/users/42"
    root = snippet_target("http://users.internal:8000/api/v2", service="users", services=SERVICES, gateway="http://gw")
    assert root.url == "http://gw/users/"
    other = snippet_target("http://users.internal:8000/api/v20/x", service="users", services=SERVICES, gateway="http://gw")
    assert other.url == "http://gw/users/api/v20/x"  # /api/v20 is not under /api/v2


def test_snippet_target_upstream_is_a_choice_and_the_fallback_says_why() -> None:
    url = "http://10.0.0.5:9000/orders"
    chosen = snippet_target(url, service="billing", services=SERVICES, gateway="http://gw", via_gateway=False)
    assert chosen == SnippetTarget(url, False, None)
    unknown = snippet_target(url, service="billing", services=SERVICES, gateway=None)
    assert unknown.url == url and not unknown.via_gateway and "not known" in (unknown.note or "")
    stray = snippet_target(url, service=None, services=SERVICES, gateway="http://gw")
    assert stray.url == url and "not sent to a configured service" in (stray.note or "")
    assert snippet_target(url, service="gone", services=SERVICES, gateway="http://gw").via_gateway is False


@pytest.mark.parametrize("render", [as_curl, as_httpie, as_python_httpx, as_fetch])
def test_target_note_is_one_comment_line(render) -> None:
    request = SnippetRequest(method="GET", url="http://h/x", target_note="evil\nrm -rf /\u2028x")
    out = render(request)
    [line] = [line for line in out.splitlines() if "Not through the gateway" in line]
    assert line.lstrip().startswith(("#", "//")) and "rm -rf /" in line
    assert "\nrm -rf" not in out


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40))
@settings(max_examples=200, deadline=None)
def test_snippet_target_keeps_the_path_and_query_after_the_service(tail: str) -> None:
    path = "/" + quote(tail, safe="/")
    found = snippet_target(f"http://10.0.0.5:9000{path}?q=1", service="billing", services=SERVICES, gateway="http://gw")
    assert found.url == f"http://gw/billing{path}?q=1"
