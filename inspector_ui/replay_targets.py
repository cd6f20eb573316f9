"""Replay target guard: may a captured request be replayed to this URL? (SSRF protection)

A replay goes to a configured service, to the exchange's original host, or, when
the inspector runs with allow-any-target, to a public address. It never goes to
the inspector itself. Loopback, private and other internal addresses are allowed
only for configured services. Parsing and classification are pure; the only I/O
is the `resolve` function the caller passes in.

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

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

_DEFAULT_PORTS = {"http": 80, "https": 443}

# Listed on their own so the refusal names the real danger; most also sit in a
# range refused below, but two look ordinary and are only caught here.
_METADATA = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",  # AWS, GCP, Azure, OCI, DigitalOcean instance metadata
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "169.254.170.23",  # AWS EKS Pod Identity agent
        "100.100.100.200",  # Alibaba Cloud (inside 100.64/10)
        "168.63.129.16",  # Azure WireServer: a public address reachable only from inside Azure
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fd00:ec2::23",  # AWS EKS Pod Identity agent over IPv6
    )
)

# First match wins. Documentation and benchmarking ranges are "reserved", not
# "public": nothing legitimate is reached there, and some networks reuse them inside.
_CLASS_RANGES = tuple(
    (kind, tuple(ipaddress.ip_network(text) for text in networks))
    for kind, networks in (
        ("unspecified", ("0.0.0.0/8", "::/128")),  # connecting to 0.0.0.0 reaches this host
        ("loopback", ("127.0.0.0/8", "::1/128")),
        ("link-local", ("169.254.0.0/16", "fe80::/10")),
        ("private", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")),
        ("shared", ("100.64.0.0/10",)),  # carrier-grade NAT
        ("multicast", ("224.0.0.0/4", "ff00::/8")),
        (
            "reserved",
            (
                "240.0.0.0/4",  # future use; includes the 255.255.255.255 broadcast
                "192.0.0.0/24",  # IETF protocol assignments
                "192.0.2.0/24",  # TEST-NET-1 (documentation)
                "198.51.100.0/24",  # TEST-NET-2 (documentation)
                "203.0.113.0/24",  # TEST-NET-3 (documentation)
                "198.18.0.0/15",  # benchmarking
                "192.88.99.0/24",  # deprecated 6to4 relay anycast
                "2001::/23",  # IETF protocol assignments, including Teredo
                "2001:db8::/32",  # documentation
                "3fff::/20",  # documentation
            ),
        ),
    )
)
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

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

_IPV4_NUMBER = re.compile(r"0x[0-9a-f]*|[0-9]+")  # one inet_aton part, after lowercasing
_DNS_NAME = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*")
_PORT = re.compile(r":[0-9]{1,5}")


class TargetRefused(Exception):
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


def parse_host_address(host: str) -> IPAddress | None:
    """The IP address an IP-literal host means to HTTP clients and libc, or None for a DNS name.

    Accepts every inet_aton spelling (`2130706433`, `0x7f000001`, `0177.0.0.1`,
    `127.1`, trailing dot) and IPv6 with or without brackets and zone id.
    IPv4-mapped IPv6 comes back as the IPv4 address, because that is what the
    kernel connects to. Raises TargetRefused for a host that is neither a clean
    IP literal nor a valid DNS name, including one with surrounding whitespace.
    """
    normalized = _normalize_host(host)
    return None if isinstance(normalized, str) else normalized


def classify(address: IPAddress) -> str:
    """Which kind of address this is, judging an IPv4-carrying IPv6 address by the IPv4 it reaches.

    One of "metadata", "unspecified", "loopback", "link-local", "private",
    "shared", "multicast", "reserved", "public".
    """
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(int(address))
    if address in _METADATA:
        return "metadata"
    if isinstance(address, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(address)) is not None:
        return classify(embedded)
    for kind, networks in _CLASS_RANGES:
        if any(address in network for network in networks):
            return kind
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST_V6:
        return "reserved"
    return "public"


def check_target(
    url: str,
    *,
    services: Mapping[str, str],
    original_url: str | None,
    inspector_addresses: Collection[tuple[str, int]],
    allow_any: bool,
    resolve: Resolver,
) -> ApprovedTarget:
    """Approve `url` as a replay target, or raise TargetRefused saying why.

    `services` maps service names to base URLs. `original_url` is the captured
    exchange's URL. `inspector_addresses` lists the (host, port) pairs the
    inspector listens on. `resolve(host, port)` returns IP strings and raises
    OSError when resolution fails. Every address a name resolves to is checked,
    so one private record among public ones is enough to refuse.
    """
    target = _parse_origin(url)
    reason = _reason_allowed(target, services, original_url, allow_any)
    trusted = reason.startswith("service:")
    if not trusted and isinstance(target.host, str) and _is_localhost_name(target.host):
        # RFC 6761: these names are loopback whatever a resolver says.
        raise TargetRefused(f"refused: {target.host} is a loopback name and is not a configured service")
    addresses = _addresses_of(target.host, target.port, resolve)
    listeners = [
        (address, port)
        for host, port in inspector_addresses
        for address in _addresses_of(_normalize_host(host), port, resolve)
    ]
    for address in addresses:
        if _is_listener(address, target.port, listeners):
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
    if _has_space_or_control(host):
        raise TargetRefused(f"refused: host {host!r} contains whitespace or control characters")
    if host.startswith("[") and host.endswith("]"):
        return _parse_ipv6(host[1:-1])
    if ":" in host:
        return _parse_ipv6(host)
    name = host.lower()
    if not name.isascii():
        try:
            # Runs the mapping clients apply (nameprep), which can turn fullwidth digits into an IP literal.
            name = name.encode("idna").decode("ascii").lower()
        except UnicodeError as error:
            raise TargetRefused(f"refused: host {host!r} is not a valid internationalized name ({error})") from None
    name = name.removesuffix(".")
    if not name:
        raise TargetRefused("refused: the host is empty")
    if len(name) > 253:
        raise TargetRefused(f"refused: host {host[:40]!r}... is longer than a DNS name can be")
    # As in the WHATWG URL standard: a numeric last label makes the host an IPv4 literal or nothing.
    if _IPV4_NUMBER.fullmatch(name.rpartition(".")[2]):
        return _parse_ipv4(name, host)
    if not _DNS_NAME.fullmatch(name) or any(len(label) > 63 for label in name.split(".")):
        raise TargetRefused(f"refused: host {host!r} is not a valid DNS name (letters, digits, '-' and '.' only)")
    return name


def _parse_ipv4(name: str, written: str) -> ipaddress.IPv4Address:
    """inet_aton: 1 to 4 parts, each decimal, 0x-hex or 0-octal; the last part fills the remaining bytes."""
    parts = name.split(".")
    numbers = [_ipv4_number(part) for part in parts]
    last = numbers[-1]
    if (
        len(parts) > 4
        or last is None
        or any(number is None or number > 255 for number in numbers[:-1])
        or last >= 256 ** (5 - len(parts))
    ):
        raise TargetRefused(f"refused: host {written!r} is not a valid IPv4 address")
    value = last
    for index, number in enumerate(numbers[:-1]):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _ipv4_number(part: str) -> int | None:
    if not _IPV4_NUMBER.fullmatch(part):
        return None
    if part.startswith("0x"):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8) if set(part) <= set("01234567") else None
    return int(part)


def _parse_ipv6(text: str) -> IPAddress:
    # The zone id ("%eth0", or "%25eth0" percent-encoded in a URL) picks an interface; it does not change the class.
    address_text, percent, zone = text.partition("%")
    try:
        if percent and not zone:
            raise ValueError("empty zone id")
        address = ipaddress.IPv6Address(address_text)
    except ValueError:
        raise TargetRefused(f"refused: host {text!r} is not a valid IPv6 address") from None
    return address.ipv4_mapped or address


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address that traffic to this IPv6 address reaches through the kernel, a NAT64 or a 6to4 relay."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):  # :: and ::1 are themselves
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def _reason_allowed(target: _Origin, services: Mapping[str, str], original_url: str | None, allow_any: bool) -> str:
    for name, base_url in services.items():
        if _origin_or_none(base_url) == target:
            return f"service:{name}"
    if original_url is not None and _origin_or_none(original_url) == target:
        return "original host"
    if allow_any:
        return "allow-any"
    raise TargetRefused(
        f"refused: {_host_port(target.host, target.port)} is not a configured service or the exchange's "
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


def _is_listener(address: IPAddress, port: int, listeners: list[tuple[IPAddress, int]]) -> bool:
    """Would a connection to (address, port) reach one of the inspector's listening sockets?"""
    kind = classify(address)
    for listen_address, listen_port in listeners:
        if listen_port != port:
            continue
        listen_kind = classify(listen_address)
        if (
            address == listen_address
            # A wildcard listener answers on every local address.
            or (listen_kind == "unspecified" and kind in ("loopback", "unspecified"))
            # Connecting to 0.0.0.0 or :: reaches this host's loopback.
            or (kind == "unspecified" and listen_kind == "loopback")
        ):
            return True
    return False


def _inspector_refusal(target: _Origin, address: IPAddress) -> str:
    if isinstance(target.host, str):
        return f"refused: {_host_port(target.host, target.port)} resolves to {address}, the inspector itself"
    return f"refused: {_host_port(address, target.port)} is the inspector itself"


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


def _is_localhost_name(name: str) -> bool:
    return name == "localhost" or name.endswith(".localhost")


def _has_space_or_control(text: str) -> bool:
    return any(char.isspace() or not char.isprintable() for char in text)


def _host_port(host: IPAddress | str, port: int) -> str:
    return f"[{host}]:{port}" if isinstance(host, ipaddress.IPv6Address) else f"{host}:{port}"
