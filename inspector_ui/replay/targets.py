"""Replay target guard: may a captured request be replayed to this URL? (SSRF protection)

A replay goes to a configured service, to the exchange's original host, or, when
the inspector runs with allow-any-target, to a public address. It never goes to
the inspector itself. Loopback, private and other internal addresses are allowed
only for configured services. What an address is, its class and whether it reaches
the inspector are passageway.addresses' answers, the same the proxy's guard uses;
the only I/O is the `resolve` function the caller passes in (and a bind() test of
this machine's addresses when the inspector listens on every interface).

An approval covers one request to the approved addresses. The sender must connect
only to `ApprovedTarget.addresses`: resolving the name again could give a
different answer (DNS rebinding). It must also not follow redirects, because the
guard has not checked the new target a redirect names.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from passageway.addresses import (
    AddressError,
    IPAddress,
    Listener,
    Listeners,
    classify,
    format_address,
    is_loopback_name,
    is_own_address,
    parse_host,
)

from ..errors import Refused

Resolver = Callable[[str, int], list[str]]

_DEFAULT_PORTS = {"http": 80, "https": 443}

_REFUSED_WHAT = {
    "metadata": "a cloud metadata address",
    "loopback": "a loopback address",
    "private": "a private address",
    "link-local": "a link-local address",
    "shared": "a shared (carrier-grade NAT) address",
    "unspecified": "an unspecified (this-host) address",
    "multicast": "a multicast address",
    "reserved": "a reserved or documentation address",
}

_PORT = re.compile(r":[0-9]{1,5}")


class TargetRefused(Refused):
    """The guard will not approve this replay target; the message gives the reason on one line."""


@dataclass(frozen=True)
class ApprovedTarget:
    """Where one replay may go. Connect only to `addresses`, send `host` as Host/SNI, follow no redirects."""

    scheme: str
    host: str
    """Lowercase ASCII DNS name, or an IP address in canonical form (IPv6 without brackets)."""
    port: int
    addresses: tuple[str, ...]
    """Every address the host resolved to at check time, all of them checked."""
    reason: str
    """"service:<name>", "original host" or "allow-any"."""

    @property
    def origin(self) -> str:
        """scheme://host[:port] as approved, in canonical form (no default port): what the sender sends to."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if _DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}"


def parse_host_address(host: str) -> IPAddress | None:
    """The IP address an IP-literal host means to HTTP clients and libc, or None for a DNS name
    (passageway.addresses.parse_host); TargetRefused for a host that is neither."""
    normalized = _normalize_host(host)
    return None if isinstance(normalized, str) else normalized


def check_target(
    url: str,
    *,
    services: Mapping[str, str],
    original_url: str | None,
    inspector_addresses: Collection[tuple[str, int]],
    allow_any: bool,
    resolve: Resolver,
    is_own: Callable[[IPAddress], bool] = is_own_address,
) -> ApprovedTarget:
    """Approve `url` as a replay target, or raise TargetRefused saying why.

    `services` maps service names to base URLs. `original_url` is the captured
    exchange's URL. `inspector_addresses` lists the (host, port) pairs the
    inspector listens on. `resolve(host, port)` returns IP strings and raises
    OSError when resolution fails. Every address a name resolves to is checked,
    so one private record among public ones is enough to refuse. Whether an address
    reaches the inspector is passageway.addresses.reaches' rule; `is_own(address)`
    says whether an address is this machine's (a wildcard-bound inspector answers there).
    """
    target = _parse_origin(url)
    reason = _reason_allowed(target, services, original_url, allow_any)
    trusted = reason.startswith("service:")
    if not trusted and isinstance(target.host, str) and is_loopback_name(target.host):
        # RFC 6761: these names are loopback whatever a resolver says.
        raise TargetRefused(f"refused: {target.host} is a loopback name and is not a configured service")
    addresses = _addresses_of(target.host, target.port, resolve)
    listeners = Listeners(
        Listener(address, port)
        for host, port in inspector_addresses
        for address in _addresses_of(_normalize_host(host), port, resolve)
    )
    for address in addresses:
        if listeners.reached_by(address, target.port, is_own=is_own):
            raise TargetRefused(_inspector_refusal(target, address))
        if not trusted and (kind := classify(address)) != "public":
            raise TargetRefused(_address_refusal(target, address, kind))
    return ApprovedTarget(
        scheme=target.scheme,
        host=str(target.host),
        port=target.port,
        addresses=tuple(str(address) for address in addresses),
        reason=reason,
    )


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the operating system's getaddrinfo, the resolver the sender's connection would use.

    This blocks, so async code should run check_target in a thread. On failure it
    raises socket.gaierror, which is an OSError.
    """
    return [sockaddr[0] for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: IPAddress | str
    port: int
    written_host: str = field(compare=False)
    """The host as the URL spelled it, for messages."""


def _parse_origin(url: str) -> _Origin:
    # urlsplit silently drops tabs and newlines and strips surrounding spaces; refuse them instead.
    if _has_space_or_control(url):
        raise TargetRefused(f"refused: URL {url!r} contains whitespace or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise TargetRefused(f"refused: {url!r} is not a valid URL ({error})") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise TargetRefused(f"refused: scheme {parts.scheme!r} is not http or https")
    if "@" in parts.netloc:
        raise TargetRefused("refused: URLs with credentials (user:pass@) are not replayed")
    if parts.netloc.startswith("["):
        end = parts.netloc.find("]") + 1
        written_host, port_text = parts.netloc[:end], parts.netloc[end:]
    else:
        written_host, colon, port_digits = parts.netloc.partition(":")
        port_text = colon + port_digits
    if not written_host:
        raise TargetRefused(f"refused: {url!r} has no host")
    if not port_text:
        port = _DEFAULT_PORTS[parts.scheme]
    elif _PORT.fullmatch(port_text) and 1 <= int(port_text[1:]) <= 65535:
        port = int(port_text[1:])
    else:
        raise TargetRefused(f"refused: port {port_text[1:]!r} is not a number from 1 to 65535")
    return _Origin(parts.scheme, _normalize_host(written_host), port, written_host)


def _normalize_host(host: str) -> IPAddress | str:
    """The address an IP-literal host means, or the lowercase ASCII DNS name; refuses anything else."""
    try:
        return parse_host(host)
    except AddressError as error:
        raise TargetRefused(f"refused: {error}") from None


def _reason_allowed(target: _Origin, services: Mapping[str, str], original_url: str | None, allow_any: bool) -> str:
    for name, base_url in services.items():
        if _origin_or_none(base_url) == target:
            return f"service:{name}"
    if original_url is not None and _origin_or_none(original_url) == target:
        return "original host"
    if allow_any:
        return "allow-any"
    raise TargetRefused(
        f"refused: {format_address(target.host, target.port)} is not a configured service or the exchange's "
        "original host (other targets need the allow-any-target setting)"
    )


def _origin_or_none(url: str) -> _Origin | None:
    # An unusable configured or captured URL matches no target, so it can only refuse, never approve.
    try:
        return _parse_origin(url)
    except TargetRefused:
        return None


def _addresses_of(host: IPAddress | str, port: int, resolve: Resolver) -> tuple[IPAddress, ...]:
    if not isinstance(host, str):
        return (host,)
    try:
        answers = resolve(host, port)
    except (OSError, UnicodeError) as error:
        raise TargetRefused(f"refused: cannot resolve {host}: {error}") from None
    if not answers:
        raise TargetRefused(f"refused: {host} resolves to no address")
    return tuple(dict.fromkeys(_resolved_address(host, answer) for answer in answers))


def _resolved_address(host: str, answer: str) -> IPAddress:
    try:
        address = ipaddress.ip_address(answer.partition("%")[0])
    except ValueError:
        raise TargetRefused(f"refused: the resolver gave {answer!r} for {host}, which is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _inspector_refusal(target: _Origin, address: IPAddress) -> str:
    if isinstance(target.host, str):
        return f"refused: {format_address(target.host, target.port)} resolves to {address}, the inspector itself"
    return f"refused: {format_address(address, target.port)} is the inspector itself"


def _address_refusal(target: _Origin, address: IPAddress, kind: str) -> str:
    what = _REFUSED_WHAT[kind]
    if isinstance(target.host, str):
        said = f"{target.host} resolves to {address}, {what},"
    elif target.written_host != str(address):
        said = f"{target.written_host} is {address}, {what},"
    else:
        said = f"{address} is {what}"
    if kind == "metadata":  # suggesting a service entry would be wrong here
        return f"refused: {said.removesuffix(',')}"
    return f"refused: {said} and is not a configured service"


def _has_space_or_control(text: str) -> bool:
    return any(char.isspace() or not char.isprintable() for char in text)
