"""What a replay sends: a captured exchange plus edits -> a ReplayPlan, or an inspector_ui.errors
error naming the problem (BadRequest for a malformed edit, Unprocessable for what cannot be
replayed or carried, NotConfigured). Pure: no I/O (inspector_ui.replay.sending sends the plan).

A replay goes through the proxy, so it is captured like any request: to the gateway as
`/<service>/<path>` when the target is a configured service, or through the proxy's forward
port when it is any other URL. The request carries the X-Passageway-Replay mark (the id
replayed and a fresh uuid): the proxy removes it and records the exchange under that uuid
with `replay_of`. Unless `keep_trace`, it starts a trace of its own (its trace headers, as
captured, are moved to a fresh trace: inspector_ui.replay.retrace).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from passageway.addresses import AddressError, format_host, parse_host
from passageway.service_url import ServiceURL, ServiceURLError, is_service_url, parse_service_url
from passageway.wire import REPLAY_HEADER
from storage.queries import StoredBody

from ..errors import BadRequest, NotConfigured, Unprocessable
from .retrace import fresh_trace_headers

__all__ = [
    "HOP_BY_HOP", "NOT_CONFIGURED", "Overrides", "ReplayPlan", "ReplayRoutes",
    "decode_body_override", "header_bytes", "plan_replay", "replay_template",
]  # fmt: skip


HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length", REPLAY_HEADER.lower(),
})  # fmt: skip
"""Not copied from the capture: they describe the captured connection, or are recomputed."""


_DEFAULT_PORTS = {"http": 80, "https": 443}

NOT_CONFIGURED = "replay is not configured: the inspector does not know the proxy's address"


@dataclass(frozen=True, slots=True)
class Overrides:
    method: str | None = None
    url: str | None = None
    """Absolute URL: target and path at once."""
    path: str | None = None
    """Path and query, starting with '/'."""
    set_headers: Sequence[tuple[str, str]] = ()
    """Each replaces every header of that name (any case)."""
    remove_headers: Sequence[str] = ()
    body: bytes | None = None
    target: str | None = None
    """A configured service's name, or a base URL (scheme://host[:port][/base])."""
    keep_trace: bool = False
    """Send the captured trace headers as they are, so the replay joins its original's trace;
    by default it starts a trace of its own (inspector_ui.replay.retrace)."""


@dataclass(frozen=True, slots=True)
class ReplayRoutes:
    """Where replays go, from the inspector's settings."""

    services: Mapping[str, str]
    """Configured service name -> upstream base URL."""
    gateway: str | None
    """The proxy's gateway, e.g. http://127.0.0.1:8080; None: replay is not configured."""
    forward_proxy: str | None = None
    """The proxy's forward port as a proxy URL, for targets that are not services."""


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    method: str
    target_url: str
    """Where the request ends up (the upstream): what the guard checks."""
    send_url: str
    """Where the inspector sends it: the gateway URL, or target_url through the forward proxy."""
    via_forward_proxy: bool
    headers: tuple[tuple[str, str], ...]
    body: bytes
    service: str | None


def plan_replay(
    exchange: Mapping, request_body: StoredBody | None, overrides: Overrides, routes: ReplayRoutes
) -> ReplayPlan:
    """What to send to replay `exchange` (the API's detail dict) with `overrides`."""
    if routes.gateway is None:
        raise NotConfigured(NOT_CONFIGURED)
    if exchange.get("websocket"):
        raise Unprocessable("a WebSocket exchange cannot be replayed")
    method = (overrides.method or exchange["method"]).upper()
    if not method.isascii() or not method.isalpha() or len(method) > 32:
        raise BadRequest(f"bad method {method!r}")

    original = urlsplit(exchange["url"])
    service, base, path = _target(exchange, original, overrides, routes)
    if service is not None:
        target_url = _join(routes.services[service], path)
        send_url = _join(routes.gateway, f"/{service}{path}")
    else:
        target_url = _join(base, path)
        send_url = target_url

    body = overrides.body
    headers = [(name, value) for name, value in exchange["request_headers"] if name.lower() not in HOP_BY_HOP]
    if body is None:
        info = exchange.get("request_body")
        if info and info["truncated"]:
            raise Unprocessable(
                f"the captured request body was cut at {info['stored_size']:,} of {info['size']:,} bytes, so it "
                "cannot be replayed as captured: send the body with the replay"
            )
        body = request_body.data if request_body is not None else b""
    else:
        # The captured Content-Encoding described the captured bytes, not the new body.
        headers = [(n, v) for n, v in headers if n.lower() != "content-encoding"]
    removed = {name.lower() for name in overrides.remove_headers} | {name.lower() for name, _ in overrides.set_headers}
    headers = [(n, v) for n, v in headers if n.lower() not in removed]
    for name, value in overrides.set_headers:
        _check_header(name, value)
        headers.append((name, value))
    if not overrides.keep_trace:
        headers = fresh_trace_headers(headers, exchange["request_headers"])
    header_bytes(headers)  # every header, captured or edited, can be sent as it stands
    return ReplayPlan(
        method=method,
        target_url=target_url,
        send_url=send_url,
        via_forward_proxy=service is None,
        headers=tuple(headers),
        body=body,
        service=service,
    )


def replay_template(exchange: Mapping, request_body: StoredBody | None, decoded: bytes | None, routes: ReplayRoutes) -> dict:
    """What an as-captured replay would send, for an editor to start from: method, target
    (a service name or a base URL), path (relative to the target), headers (as plan_replay
    keeps them), and the body as text when it is UTF-8 (`decoded`: the body with its
    Content-Encoding undone, or None when it has none or it could not be undone), else as
    base64. A decoded body goes with the Content-Encoding header dropped: the editor sends
    what it shows."""
    original = urlsplit(exchange["url"])
    service, base, path = _target(exchange, original, Overrides(), routes)
    headers = [[name, value] for name, value in exchange["request_headers"] if name.lower() not in HOP_BY_HOP]
    info = exchange.get("request_body")
    text = data_base64 = None
    if request_body is not None:
        data = decoded if decoded is not None else request_body.data
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            data_base64 = base64.b64encode(request_body.data).decode("ascii")
        else:
            if decoded is not None:
                headers = [[n, v] for n, v in headers if n.lower() != "content-encoding"]
    return {
        "method": exchange["method"],
        "target": service if service is not None else base,
        "path": path,
        "headers": headers,
        "body": text,
        "body_base64": data_base64,
        "body_truncated": bool(info and info["truncated"]),
        "targets": sorted(routes.services),
    }


def _target(exchange: Mapping, original, overrides: Overrides, routes: ReplayRoutes) -> tuple[str | None, str, str]:
    """(service or None, base URL when not a service, path and query)."""
    if overrides.url is not None:
        if overrides.target is not None or overrides.path is not None:
            raise BadRequest("give either url, or target and/or path")
        if is_service_url(overrides.url):
            named = _service_url(overrides.url, routes)
            return named.name, "", named.path_and_query
        parts = _absolute(overrides.url, "url")
        path = parts.path or "/"
        path += f"?{parts.query}" if parts.query else ""
        origin = _canonical_origin(parts)
        service = _service_at(origin + (parts.path or "/"), routes.services)
        if service is not None:
            path = _strip_base(path, routes.services[service])
        return service, origin, path

    captured_path = original.path + (f"?{original.query}" if original.query else "")
    captured_service = exchange.get("service")
    if captured_service in routes.services:
        # The captured path is what the upstream got, its base path included; the gateway adds it again.
        captured_path = _strip_base(captured_path, routes.services[captured_service])
    path = overrides.path if overrides.path is not None else captured_path
    if not path.startswith("/"):
        raise BadRequest(f"path must start with '/': {path!r}")

    target = overrides.target
    if target is None:
        if captured_service in routes.services:
            return captured_service, "", path
        return None, f"{original.scheme}://{original.netloc}", path
    if target in routes.services:
        return target, "", path
    if is_service_url(target):
        named = _service_url(target, routes)
        if named.path_and_query != "/":
            raise BadRequest(f"target {target!r} names a path: give the service alone, and the path as path")
        return named.name, "", path
    if "://" in target:
        parts = _absolute(target, "target")
        origin = _canonical_origin(parts)
        base_path = parts.path.rstrip("/")
        service = _service_at(origin + base_path, routes.services)
        if service is not None and urlsplit(routes.services[service]).path.rstrip("/") == base_path:
            return service, "", path
        return None, origin + base_path, path
    known = ", ".join(sorted(routes.services)) or "none configured"
    raise BadRequest(f"unknown target {target!r}: not a configured service ({known}) or an http(s) URL")


def _service_url(url: str, routes: ReplayRoutes) -> ServiceURL:
    try:
        named = parse_service_url(url)
    except ServiceURLError as exc:
        raise BadRequest(str(exc)) from None
    if named.name not in routes.services:
        known = ", ".join(sorted(routes.services)) or "none configured"
        raise BadRequest(f"unknown service {named.name!r} in {url!r}: not a configured service ({known})")
    return named


def _absolute(url: str, what: str):
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise BadRequest(f"bad {what} {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"{what} must be an absolute http or https URL, not {url!r}")
    if parts.username is not None or parts.password is not None:
        raise BadRequest(f"{what} must not carry a user name or password")
    return parts


def _canonical_origin(parts) -> str:
    """scheme://host[:port] with the host as passageway.addresses reads it (0177.0.0.1 and
    [::ffff:127.0.0.1] are 127.0.0.1): the one spelling the guard approves and the sender sends.
    A host that is no address or name stays as written, for the guard to refuse."""
    host = _canonical_host(parts.hostname or "")
    port = f":{parts.port}" if parts.port is not None and parts.port != _DEFAULT_PORTS[parts.scheme] else ""
    return f"{parts.scheme}://{host}{port}"


def _canonical_host(host: str) -> str:
    try:
        return format_host(parse_host(host))
    except AddressError:
        return host.lower()


def _origin_key(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)
    return parts.scheme, _canonical_host(parts.hostname or ""), port


def _service_at(url: str, services: Mapping[str, str]) -> str | None:
    """The service whose upstream `url` is in: same scheme, host and port, and a path at or
    under the service's base path (the longest such base wins)."""
    key, path = _origin_key(url), urlsplit(url).path
    found: tuple[int, str] | None = None
    for name, base in services.items():
        base_path = urlsplit(base).path.rstrip("/")
        under = not base_path or path.rstrip("/") == base_path or path.startswith(base_path + "/")
        if _origin_key(base) == key and under and (found is None or len(base_path) > found[0]):
            found = (len(base_path), name)
    return found[1] if found else None


def _strip_base(path: str, service_url: str) -> str:
    base = urlsplit(service_url).path.rstrip("/")
    if base and (path == base or path.startswith(base + "/") or path.startswith(base + "?")):
        return path[len(base) :] or "/"
    return path


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + path


def _check_header(name: str, value: str) -> None:
    if not name or any(c in name for c in " \t\r\n:") or not name.isascii() or not name.isprintable():
        raise BadRequest(f"bad header name {name!r}")
    if "\r" in value or "\n" in value or "\x00" in value:
        raise BadRequest(f"bad value for header {name!r}: it contains a line break or NUL")


def header_bytes(headers: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Headers as the bytes sent: names in ASCII, values in UTF-8 without surrounding blanks.

    UTF-8, because the proxy records header bytes as UTF-8 text when they are valid UTF-8
    (proxy.flow_record.header_text), so a replay as captured sends the captured bytes; HTTP
    carries bytes above 0x7F as opaque obs-text. Unprocessable for what no request can carry:
    a lone surrogate (JSON allows "\\udc80", no encoding does), a form feed or vertical tab.
    """
    encoded = []
    for name, value in headers:
        _check_header(name, value)
        value = value.strip(" \t")
        if "\f" in value or "\v" in value:
            raise Unprocessable(f"bad value for header {name!r}: it contains a form feed or vertical tab")
        try:
            encoded.append((name.encode("ascii"), value.encode("utf-8")))
        except UnicodeEncodeError as exc:
            character = value[exc.start]
            raise Unprocessable(
                f"bad value for header {name!r}: it holds a lone surrogate (U+{ord(character):04X}) at character "
                f"{exc.start}, which no encoding can send"
            ) from None
    return encoded


def decode_body_override(text: str | None, base64_text: str | None) -> bytes | None:
    """The body an API caller supplied, as text (UTF-8) or base64; None when neither."""
    if text is not None and base64_text is not None:
        raise BadRequest("give body or body_base64, not both")
    if base64_text is not None:
        try:
            return base64.b64decode(base64_text, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("body_base64 is not valid base64") from None
    if text is None:
        return None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Unprocessable(
            f"body holds a lone surrogate (U+{ord(text[exc.start]):04X}) at character {exc.start}, which UTF-8 cannot "
            "carry: send a binary body as body_base64"
        ) from None
