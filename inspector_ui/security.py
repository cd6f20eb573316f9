"""Security headers on every response, and the Host / Origin checks that stop DNS rebinding,
cross-site WebSocket hijacking from reading captured traffic, and cross-site requests from
changing anything (CSRF)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = (
    "default-src 'self'; script-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
"""Strict: no inline script, no third-party origin. `blob:` images are the UI's own object URLs
for captured PNG/JPEG/GIF/WebP bodies (never SVG), built from fetched bytes."""

DOCS_CSP = (
    "default-src 'self'; script-src 'self' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'; img-src 'self' data: https://fastapi.tiangolo.com; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
"""/docs only: Swagger UI's bundle and stylesheet come from the jsDelivr CDN (no inline script:
the page's init script is served from /static). Nothing captured is rendered there."""

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
        body = json.dumps({"detail": problem}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cross_site_problem(method: str, headers: Headers, host_header: str) -> str | None:
    """Why a state-changing request may have come from another site, or None.

    A browser's Origin and Sec-Fetch-Site, when sent, must say same origin (API clients such
    as curl and the CLI send neither). A POST must also carry a JSON body type, which a plain
    HTML form cannot send and a cross-origin fetch can only send after a CORS preflight this
    app never approves; other methods already need that preflight."""
    origin = headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != host_header.lower():
        return f"cross-site request refused: origin {origin!r} is not this inspector"
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {headers['sec-fetch-site']})"
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if method == "POST" and media_type != "application/json":
        return "a POST must have Content-Type: application/json (cross-site form posts are refused)"
    return None


def _hostname(host_header: str) -> str:
    """Host header without the port, lower-case, IPv6 brackets removed."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
