"""`service://NAME/path?query` URLs, and where the Passageway gateway serves them.

Pure string work, no I/O and no third-party imports: the proxy CLI and the inspector's replay use
these functions too. The path and query are kept byte for byte (percent-encoding included): the
gateway routes by the first path segment, so `service://identity/users/42?x=1` is
`GATEWAY/identity/users/42?x=1`, and the service sees `/users/42?x=1`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SERVICE_SCHEME = "service"
SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")

_PREFIX = SERVICE_SCHEME + "://"
# Whitespace and control characters are never valid in a URL; sent on, they would be encoded
# (or worse, split a request line) somewhere the caller cannot see.
_INVALID_CHARACTER = re.compile(r"[\x00-\x20\x7f]")
# A dot segment (also percent-encoded) would be normalised away by an HTTP client or server and
# leave the service's prefix: service://identity/../billing would reach billing.
_DOT_SEGMENT = re.compile(r"(?:\.|%2e){1,2}", re.IGNORECASE)
_GATEWAY = re.compile(r"https?://(\[[0-9a-f:.]+\]|[^/?#@\s:\[\]]+)(:[0-9]{1,5})?(/[^?#\s]*)?", re.IGNORECASE)


class ServiceURLError(ValueError):
    """A service URL (or gateway URL) that cannot be routed; the message names the problem."""


@dataclass(frozen=True)
class ServiceURL:
    """A parsed `service://` URL: the service's name and what follows it ("/" at least)."""

    name: str
    path_and_query: str


def is_service_url(url: str) -> bool:
    """True for `service://...` (the scheme is case-insensitive, as every URL scheme)."""
    return url[: len(_PREFIX)].lower() == _PREFIX


def check_service_name(name: str) -> str:
    """`name` if it is a valid service name, else ServiceURLError."""
    if not SERVICE_NAME.fullmatch(name):
        raise ServiceURLError(
            f"invalid service name {name!r}: use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit")
    return name


def parse_service_url(url: str) -> ServiceURL:
    """Split `service://NAME/path?query`; ServiceURLError (one line) for anything the gateway cannot route."""
    if not is_service_url(url):
        raise ServiceURLError(f"not a service URL (expected service://NAME/path): {url!r}")
    if _INVALID_CHARACTER.search(url):
        raise ServiceURLError(f"service URL contains whitespace or a control character: {url!r}")
    if "#" in url:
        raise ServiceURLError(f"service URL has a fragment, which is never sent to a service: {url!r}")
    rest = url[len(_PREFIX):]
    end = next((i for i, c in enumerate(rest) if c in "/?"), len(rest))
    authority, path_and_query = rest[:end], rest[end:]
    if "@" in authority:
        raise ServiceURLError(f"service URL has user information; put credentials in headers: {url!r}")
    if ":" in authority:
        raise ServiceURLError(f"service URL has a port; the gateway knows where the service listens: {url!r}")
    if not authority:
        raise ServiceURLError(f"service URL names no service (expected service://NAME/path): {url!r}")
    check_service_name(authority)
    if path_and_query.startswith("?") or not path_and_query:
        path_and_query = "/" + path_and_query
    path = path_and_query.split("?", 1)[0]
    if any(_DOT_SEGMENT.fullmatch(segment) for segment in path.split("/")):
        raise ServiceURLError(f"service URL path has a '.' or '..' segment, which could leave the service: {url!r}")
    return ServiceURL(authority, path_and_query)


def check_gateway(gateway: str) -> str:
    """The gateway's base URL without a trailing slash; ServiceURLError unless `http(s)://HOST[:PORT][/base]`."""
    if not _GATEWAY.fullmatch(gateway):
        raise ServiceURLError(f"gateway must be http(s)://HOST[:PORT][/base path], not {gateway!r}")
    return gateway.rstrip("/")


def gateway_url(gateway: str, url: str) -> str:
    """Where `url` goes through `gateway`: a service URL becomes GATEWAY/NAME/path?query; any other URL is unchanged."""
    if not is_service_url(url):
        return url
    target = parse_service_url(url)
    return f"{check_gateway(gateway)}/{target.name}{target.path_and_query}"
