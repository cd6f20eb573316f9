"""Routing: which upstream a request goes to, as pure functions over plain data.

The gateway takes the first path segment as the service name
(`/identity/users/42` goes to service `identity` as `/users/42`); a service
may also have a listen port of its own, where every path goes to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# One definition of a service name, shared with the smart client's service:// URLs.
from passageway.service_url import SERVICE_NAME


class RouteError(ValueError):
    """A route or service definition is malformed."""


@dataclass(frozen=True, slots=True)
class Upstream:
    scheme: str
    host: str
    port: int
    base_path: str
    """Prefix put before the forwarded path ("" or "/api", never a trailing slash)."""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.base_path}"


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A service's health endpoint, probed by the proxy (proxy.health)."""

    path: str
    """Path and query, from '/', appended to the upstream's base path."""
    interval: float = 10.0
    timeout: float = 2.0


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    upstream: Upstream
    listen: tuple[str, int] | None = None
    """Own listen address: a plain reverse proxy for clients that cannot add a prefix."""
    health: HealthCheck | None = None
    contract: Path | None = None
    """`contract = "openapi.yaml"`: the OpenAPI document its traffic is checked against (not by the
    proxy: the maintenance role, storage.contracts); relative to the config file until loaded."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where one request goes."""

    service: str
    upstream: Upstream
    path: str
    """Path and query to send upstream, base path included."""


def parse_upstream(url: str) -> Upstream:
    """`http://host:port/base` -> Upstream; raises RouteError naming the problem."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise RouteError(f"bad upstream URL {url!r}: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise RouteError(f"bad upstream URL {url!r}: scheme must be http or https")
    if not parts.hostname:
        raise RouteError(f"bad upstream URL {url!r}: no host")
    if parts.query or parts.fragment:
        raise RouteError(f"bad upstream URL {url!r}: no query or fragment allowed")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    elif port == 0:
        raise RouteError(f"bad upstream URL {url!r}: port must be 1-65535")
    return Upstream(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def check_service_name(name: str) -> str:
    if not SERVICE_NAME.fullmatch(name):
        raise RouteError(
            f"bad service name {name!r}: use letters, digits, '_', '.' or '-' (at most 63)"
        )
    return name


def parse_health_path(path: str) -> str:
    """A health check's path: from '/', printable, no fragment."""
    if not path.startswith("/") or "#" in path or not path.isprintable() or " " in path:
        raise RouteError(f"bad health path {path!r}: expected a path from '/', e.g. /healthz")
    return path


def parse_route(spec: str) -> Service:
    """`NAME=URL` (the --route flag) -> Service."""
    name, sep, url = spec.partition("=")
    if not sep:
        raise RouteError(f"bad route {spec!r}: expected NAME=URL")
    return Service(check_service_name(name.strip()), parse_upstream(url.strip()))


def parse_listen(value: str, *, what: str = "listen address") -> tuple[str, int]:
    """`HOST:PORT`, `[::1]:PORT` or `PORT` -> (host, port); the host defaults to loopback."""
    text = str(value).strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise RouteError(f"bad {what} {value!r}: expected [HOST]:PORT")
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
    else:
        host, port_text = "127.0.0.1", text
    try:
        port = int(port_text)
    except ValueError:
        raise RouteError(f"bad {what} {value!r}: port must be a number") from None
    if not 0 < port < 65536:
        raise RouteError(f"bad {what} {value!r}: port must be 1-65535")
    return host or "127.0.0.1", port


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_prefix(path: str) -> tuple[str, str] | None:
    """`/NAME/rest?q` -> ("NAME", "/rest?q"): the gateway's service name and what follows it,
    from '/'. `path` is the request target as received; None when it does not start with '/'."""
    if not path.startswith("/"):
        return None
    rest = path[1:]
    end = len(rest)
    for sep in ("/", "?"):
        i = rest.find(sep)
        if i != -1 and i < end:
            end = i
    remainder = rest[end:]
    if not remainder.startswith("/"):
        remainder = "/" + remainder
    return rest[:end], remainder


def route_by_prefix(services: dict[str, Service], path: str) -> Target | None:
    """Gateway routing: the first path segment names the service.

    `path` is the request target as received (path and query). Returns None when
    the first segment is not a known service.
    """
    split = split_prefix(path)
    if split is None:
        return None
    service = services.get(split[0])
    if service is None:
        return None
    return Target(service.name, service.upstream, service.upstream.base_path + split[1])
