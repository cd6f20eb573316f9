"""Security headers on every response, and the Host / Origin checks that stop DNS rebinding,
cross-site WebSocket hijacking from reading captured traffic, and cross-site requests from
changing anything (CSRF)."""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import problems

API_CSP = (
    "default-src 'self'; script-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
"""Strict: no inline script, no third-party origin. `blob:` images are the UI's own object URLs
for captured PNG/JPEG/GIF/WebP bodies (never SVG), built from fetched bytes."""

DOCS_CSP = (
    "default-src 'self'; script-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
"""/docs only: Swagger UI is served from here (no inline script: the page's init script is a file);
its stylesheet draws its icons as `data:` images. Nothing captured is rendered there."""

BODY_CSP = "default-src 'none'; sandbox"
"""Captured bodies: even if a browser ignored the attachment disposition, nothing may run."""

COMMON_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
)


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response; a response's own CSP (bodies) wins."""

    def __init__(self, app: ASGIApp, *, docs_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        csp = DOCS_CSP if path in self.docs_paths else API_CSP
        is_api = path.startswith("/api/") or path == "/api"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("content-security-policy", csp)
                for name, value in COMMON_HEADERS:
                    headers.setdefault(name, value)
                if is_api:
                    headers.setdefault("cache-control", "no-store")  # captured traffic is full of secrets
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HostGuardMiddleware:
    """Rejects requests whose Host is not ours (DNS rebinding) and browser WebSockets from other origins."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: frozenset[str] | None) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host_header = headers.get("host", "")
        problem, status = None, 421
        if self.allowed_hosts is not None and _hostname(host_header) not in self.allowed_hosts:
            problem = f"host {host_header!r} is not allowed (see InspectorSettings.allowed_hosts)"
        elif scope["type"] == "websocket":
            origin = headers.get("origin")
            # Browsers always send Origin on WebSockets and the same-origin policy does not apply
            # to them, so a page elsewhere could otherwise read the live stream.
            if origin is not None and urlsplit(origin).netloc.lower() != host_header.lower():
                problem, status = f"origin {origin!r} may not open this WebSocket", 403
        elif scope["method"] not in SAFE_METHODS:
            problem = cross_site_problem(scope["method"], headers, host_header)
            status = 403
        if problem is None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": problem[:120]})
            return
        await problems.problem(status, problem)(scope, receive, send)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cross_site_problem(method: str, headers: Headers, host_header: str) -> str | None:
    """Why a state-changing request may have come from another site, or None.

    A browser's Origin and Sec-Fetch-Site, when sent, must say same origin (API clients such
    as curl and the CLI send neither). A POST must also carry a JSON body type, which a plain
    HTML form cannot send and a cross-origin fetch can only send after a CORS preflight this
    app never approves; other methods already need that preflight. Even an empty POST (a
    replay as captured): a page elsewhere can send one with no type and no preflight, and
    then only Origin would stand in its way, which privacy tools and old browsers may drop."""
    origin = headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != host_header.lower():
        return f"cross-site request refused: origin {origin!r} is not this inspector"
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {headers['sec-fetch-site']})"
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if method == "POST" and media_type != "application/json":
        return "a POST must have Content-Type: application/json, even with no body (cross-site form posts are refused)"
    return None


def _hostname(host_header: str) -> str:
    """Host header without the port, lower-case, IPv6 brackets removed."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


TOKEN_COOKIE = "passageway_token"
OPEN_PREFIXES = ("/s/", "/static/")
"""Served without the inspector token: share pages (their link is their credential) and the
static files, which hold no captured data."""


class TokenMiddleware:
    """An inspector reachable from the network needs its token (InspectorSettings.token).

    Accepted as `Authorization: Bearer <token>` (API clients) or the HttpOnly, SameSite=Strict
    cookie a browser gets by opening any page once with `?token=<token>` (answered with a
    redirect to the same address without it, so the token leaves the address bar and the
    history). Compared with hmac.compare_digest. A WebSocket without it is closed before
    it is accepted."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def _valid(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode("utf-8", "replace"), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"].startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        cookie = _cookie(headers.get("cookie", ""), TOKEN_COOKIE)
        if (scheme.lower() == "bearer" and self._valid(credential.strip())) or self._valid(cookie):
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        offered = next((value for name, value in query if name == "token"), None)
        if scope["type"] == "http" and scope["method"] == "GET" and self._valid(offered):
            rest = urlencode([(name, value) for name, value in query if name != "token"])
            # raw_path: the path as sent, escapes and all (`path` is decoded).
            sent_path = scope.get("raw_path") or quote(scope["path"]).encode()
            location = same_site_path(sent_path.decode("latin-1")) + (f"?{rest}" if rest else "")
            secure = "; Secure" if scope.get("scheme") == "https" else ""
            await _respond(send, 303, b"", [
                (b"location", location.encode("latin-1", "replace")),
                (b"set-cookie", f"{TOKEN_COOKIE}={self.token.decode()}; Path=/; HttpOnly; SameSite=Strict{secure}".encode()),
            ])  # fmt: skip
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "this inspector needs its token"})
            return
        problem = (
            "this inspector needs its token: open the address printed when it started (it ends in ?token=...), "
            "or send Authorization: Bearer <token>"
        )
        await problems.problem(401, problem)(scope, receive, send)


PATH_CHARACTERS = "/%!$&'()*+,;=:@"
"""Kept as they are in a redirect's path (with letters, digits and -._~): RFC 3986's pchar, and `%`
so that the client's own escapes stay escapes."""


def same_site_path(path: str) -> str:
    """`path` as a Location that stays on this site. A browser reads `//evil.example/x`, and
    `/\\evil.example/x` or `/<tab>/evil.example/x` the same way, as another site: everything outside
    PATH_CHARACTERS is percent-encoded and the leading slashes become one."""
    return "/" + quote(path, safe=PATH_CHARACTERS).lstrip("/")


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
