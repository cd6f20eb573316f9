"""Copy-as snippets (curl, HTTPie, Python httpx, JavaScript fetch) for a captured request: pure functions.

Every method, URL, header and body is hostile. Shell snippets single-quote
every word (shlex.quote), so `'`, `$()`, backticks and newlines stay inside
the quotes. A word holding other control characters (ESC, ^C, C1...) is written
as $'...' with escapes instead, so no raw control character reaches a terminal
on paste (an ESC[201~ would end bracketed paste and a ^C cancel the open quote).
A shell argument cannot carry NUL, so NUL characters are left out of arguments
(with a comment saying so); bodies that are binary or hold NUL are read from a
file, never written raw. Python and JavaScript snippets use
repr() and JSON string literals, so no value can end its literal.

Lone surrogates (storage.pure.surrogates) stay escapes in every language, so a snippet always
encodes as UTF-8: repr() and ASCII JSON write them as \\uXXXX already; a shell word
holding one is $'...' quoted with the byte a surrogateescape'd one stands for (\\xHH,
what was on the wire) or, for any other, \\uXXXX.

A snippet targets the proxy's gateway by default (`snippet_target`): `http://gateway/<service>/path`,
so the pasted command is captured too; the upstream's own address is a choice, and the fallback
(with a comment saying why) when the gateway cannot carry the request.

Hop-by-hop headers, Host (the tool derives it from the URL), Content-Length
and HTTP/2 pseudo-headers are left out; duplicates and order are kept.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from storage.pure.surrogates import LONE_SURROGATE, escape_surrogates

__all__ = [
    "BODY_FILE", "SKIPPED_HEADERS", "SnippetRequest", "SnippetTarget", "as_curl", "as_fetch", "as_httpie",
    "as_python_httpx", "httpie_item", "snippet_headers", "snippet_target",
]  # fmt: skip

BODY_FILE = "body.bin"
"""File name shell snippets read a binary body from."""

SKIPPED_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
})  # fmt: skip
"""Lower-case names left out of every snippet: they describe the captured connection or are recomputed."""

_NUL_NOTE = "# NUL characters were removed from some arguments: a shell argument cannot carry them."
_CONTINUE = " \\\n  "


@dataclass(frozen=True, slots=True)
class SnippetRequest:
    """The request a snippet reproduces."""

    method: str
    url: str
    headers: Sequence[tuple[str, str]] = ()
    """In wire order, duplicates kept, as captured (filtering happens here)."""
    body: bytes | None = None
    """Decoded body bytes, or None for no body."""
    body_is_text: bool = True
    """False forces binary handling even when the bytes happen to be UTF-8."""
    body_note: str | None = None
    """Why the body is missing (withheld by redaction): written as a comment."""
    target_note: str | None = None
    """Why the snippet does not go through the gateway, when it was asked to: written as a comment."""


@dataclass(frozen=True, slots=True)
class SnippetTarget:
    """Where a snippet sends its request."""

    url: str
    via_gateway: bool
    note: str | None = None
    """Why it goes straight to the upstream although the gateway was asked for; None otherwise."""


_NO_GATEWAY = "the proxy's gateway address is not known to this inspector: this goes straight to the upstream"
_NO_SERVICE = (
    "this exchange was not sent to a configured service, so the gateway cannot route it: "
    "this goes straight to the upstream"
)


def snippet_target(
    url: str, *, service: str | None, services: Mapping[str, str], gateway: str | None, via_gateway: bool = True
) -> SnippetTarget:
    """Where a snippet of a request captured at `url` (what the upstream got) sends it.

    Through the gateway (`via_gateway`, the default): `gateway` + `/<service>` + the path without
    the service's base path + the query, so a pasted command is captured like the original. That
    needs the gateway's address (`gateway`, None when unknown) and a configured service (`services`:
    name -> upstream base URL, the replay targets); otherwise the captured URL, with a note saying why.
    """
    if not via_gateway:
        return SnippetTarget(url, False)
    if gateway is None:
        return SnippetTarget(url, False, _NO_GATEWAY)
    if service is None or service not in services:
        return SnippetTarget(url, False, _NO_SERVICE)
    parts = urlsplit(url)
    path = parts.path or "/"
    base = urlsplit(services[service]).path.rstrip("/")
    if base and (path == base or path.startswith(base + "/")):
        path = path[len(base) :] or "/"
    query = f"?{parts.query}" if parts.query else ""
    return SnippetTarget(f"{gateway.rstrip('/')}/{service}{path}{query}", True)


def snippet_headers(request: SnippetRequest) -> list[tuple[str, str]]:
    """The headers a snippet sends: the captured ones minus SKIPPED_HEADERS and pseudo-headers."""
    return [(n, v) for n, v in request.headers if not n.startswith(":") and n.lower() not in SKIPPED_HEADERS]


def _body_text(request: SnippetRequest) -> str | None:
    """The body as text when it is meant as text and is UTF-8; None otherwise (or when there is no body)."""
    if request.body is None or not request.body_is_text:
        return None
    try:
        return request.body.decode("utf-8")
    except UnicodeDecodeError:
        return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ANSI_C = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _ansi_c_quote(value: str) -> str:
    """$'...' quoting (bash, zsh, ksh, POSIX.1-2024): control characters as escapes, never raw."""
    out = []
    for ch in value:
        if ch in _ANSI_C:
            out.append(_ANSI_C[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif 0x80 <= ord(ch) <= 0x9F:
            out.append(f"\\u{ord(ch):04x}")  # a C1 control as its character, not a raw byte
        else:
            out.append(ch)
    return "$'" + escape_surrogates("".join(out), _shell_surrogate) + "'"


def _shell_surrogate(char: str) -> str:
    code = ord(char)
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


class _Shell:
    """Builds one shell command, word by word, quoting each word."""

    def __init__(self) -> None:
        self.comments: list[str] = []
        self.lines: list[str] = []
        self.dropped_nul = False

    def word(self, value: str) -> str:
        if "\x00" in value:
            self.dropped_nul = True
            value = value.replace("\x00", "")
        if _CONTROL.search(value.replace("\n", "")) or LONE_SURROGATE.search(value):
            return _ansi_c_quote(value)
        return shlex.quote(value)

    def render(self, suffix: str = "") -> str:
        comments = self.comments + ([_NUL_NOTE] if self.dropped_nul else [])
        return "".join(c + "\n" for c in comments) + _CONTINUE.join(self.lines) + suffix


def _check_file(body_file: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9._][A-Za-z0-9._/-]*", body_file):
        raise ValueError("body_file must be a plain file name (letters, digits, '.', '_', '-', '/')")


_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _note_comment(request: SnippetRequest, prefix: str) -> list[str]:
    """The target and body notes, a comment line each: captured text in them cannot end the comment."""
    lines = []
    if request.target_note is not None:
        lines.append(f"{prefix} Not through the gateway: {_LINE_BREAKING.sub('?', request.target_note)}")
    if request.body_note is not None:
        lines.append(f"{prefix} The request body is left out: {_LINE_BREAKING.sub('?', request.body_note)}")
    return lines


def _binary_comment(request: SnippetRequest, body_file: str) -> str:
    size = len(request.body or b"")
    return f"# The request body is binary ({size} bytes): save it as {body_file} first."


def as_curl(request: SnippetRequest, *, body_file: str = BODY_FILE) -> str:
    """A curl command, one option a line; a binary body is read from `body_file`."""
    _check_file(body_file)
    sh = _Shell()
    sh.comments.extend(_note_comment(request, "#"))
    text = _body_text(request)
    if text is not None and "\x00" in text:
        text = None  # cannot be an argument: send it from the file
    has_body = request.body is not None
    first = "curl"
    if request.method == "HEAD" and not has_body:
        first += " --head"
    elif request.method != "GET" or has_body:
        first += f" -X {sh.word(request.method)}"
    url = sh.word(request.url)
    # A URL that looks like an option must not be read as one.
    sh.lines.append(f"{first} --url {url}" if request.url.startswith("-") else f"{first} {url}")
    compressed = False
    for name, value in snippet_headers(request):
        if name.lower() == "accept-encoding" and re.search(r"gzip|deflate|br|zstd", value, re.I):
            compressed = True
        # curl reads "Name:" as "remove this header"; "Name;" sends it empty.
        sh.lines.append(f"-H {sh.word(f'{name}: {value}' if value else f'{name};')}")
    if compressed:
        sh.lines.append("--compressed")
    if text is not None:
        sh.lines.append(f"--data-raw {sh.word(text)}")  # --data-raw: a leading @ is not a file name
    elif has_body:
        sh.comments.append(_binary_comment(request, body_file))
        sh.lines.append(f"--data-binary {sh.word('@' + body_file)}")
    return sh.render()


_HTTPIE_SPECIAL = re.compile(r"([:;=@\\])")


def _httpie_escape(text: str) -> str:
    # HTTPie splits request items on the first unescaped separator (: ; = @ and their
    # combinations); a backslash makes the next separator character literal.
    return _HTTPIE_SPECIAL.sub(r"\\\1", text)


def httpie_item(name: str, value: str) -> str:
    """One HTTPie header item (before shell quoting): `Name:value`, or `Name;` for an empty value."""
    escaped = _httpie_escape(name)
    return f"{escaped}:{_httpie_escape(value)}" if value else f"{escaped};"


def as_httpie(request: SnippetRequest, *, body_file: str = BODY_FILE) -> str:
    """An HTTPie (3.x) command; a text body goes in --raw, a binary one on stdin from `body_file`."""
    _check_file(body_file)
    sh = _Shell()
    sh.comments.extend(_note_comment(request, "#"))
    text = _body_text(request)
    if text is not None and "\x00" in text:
        text = None
    head = ["http"]
    if text is not None:
        head.append(f"--raw {sh.word(text)}")
    items = [request.method, request.url] + [httpie_item(n, v) for n, v in snippet_headers(request)]
    if any(item.startswith("-") for item in items):
        head.append("--")  # nothing after this is an option
    sh.lines.append(" ".join(head + [sh.word(request.method), sh.word(request.url)]))
    sh.lines.extend(sh.word(item) for item in items[2:])
    suffix = ""
    if request.body is not None and text is None:
        sh.comments.append(_binary_comment(request, body_file))
        suffix = f" < {sh.word(body_file)}"
    return sh.render(suffix)


def as_python_httpx(request: SnippetRequest) -> str:
    """A Python script using httpx; every value is a repr() literal."""
    lines = [
        "import httpx",
        "",
        *_note_comment(request, "#"),
        "response = httpx.request(",
        f"    {request.method!r},",
        f"    {request.url!r},",
    ]
    headers = snippet_headers(request)
    if headers:
        lines.append("    headers=[")
        lines.extend(f"        ({name!r}, {value!r})," for name, value in headers)
        lines.append("    ],")
    if request.body is not None:
        text = _body_text(request)
        lines.append(f"    content={text!r}," if text is not None else f"    content={request.body!r},")
    lines += [")", "print(response.status_code, response.reason_phrase)", "print(response.text)", ""]
    return "\n".join(lines)


def _js(value: str) -> str:
    """A JavaScript string literal: JSON, ASCII only (so U+2028/U+2029 and friends are escaped too)."""
    return json.dumps(value, ensure_ascii=True)


def as_fetch(request: SnippetRequest) -> str:
    """JavaScript using fetch (browser or Node 18+); every value is a JSON string literal."""
    lines = [
        "// Browsers drop forbidden headers (Cookie, Accept-Encoding, Origin, ...); Node.js sends them.",
        *_note_comment(request, "//"),
        f"const response = await fetch({_js(request.url)}, {{",
        f"  method: {_js(request.method)},",
    ]
    headers = snippet_headers(request)
    if headers:
        lines.append("  headers: [")
        lines.extend(f"    [{_js(name)}, {_js(value)}]," for name, value in headers)
        lines.append("  ],")
    if request.body is not None:
        text = _body_text(request)
        if text is not None:
            lines.append(f"  body: {_js(text)},")
        else:
            encoded = base64.b64encode(request.body).decode("ascii")
            lines.append(f"  body: Uint8Array.from(atob({_js(encoded)}), (c) => c.charCodeAt(0)),")
    lines += ["});", "console.log(response.status, await response.text());", ""]
    return "\n".join(lines)
