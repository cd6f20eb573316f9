"""What a network address is, read the way HTTP clients and libc read it: one parser and one
rule for "does this host:port reach that listening socket", shared by the proxy's inspector
guard and the inspector's replay guard.

Everything above the last section is pure (strings and `ipaddress` objects in, answers out).
The last section asks the operating system about this machine: `is_own_address` (one bind()
on a UDP socket, no packet sent) and `local_addresses` (reads /proc). Neither does DNS, so the
proxy may call them on its event loop. Standard library only: services import this package.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AddressError",
    "IPAddress",
    "Listener",
    "Listeners",
    "classify",
    "format_address",
    "format_host",
    "ip_literal",
    "is_loopback_name",
    "is_own_address",
    "listeners_of",
    "local_addresses",
    "parse_fib_trie",
    "parse_host",
    "parse_if_inet6",
    "reaches",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressError(ValueError):
    """A host that is neither an IP literal nor a valid DNS name; the message says why, on one line."""


# -- parsing --------------------------------------------------------------------------------

_IPV4_NUMBER = re.compile(r"0x[0-9a-f]*|[0-9]+")  # one inet_aton part, after lowercasing
_DNS_NAME = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*")


def parse_host(host: str) -> IPAddress | str:
    """The address an IP-literal host means, or the host as a lowercase ASCII DNS name.

    IPv4 in every spelling inet_aton accepts (`2130706433`, `0x7f000001`, `0177.0.0.1`,
    `127.1`), with a trailing dot, or in Unicode digits that IDNA maps to ASCII (what Python's
    socket module and browsers do); IPv6 with or without brackets and zone id (dropped: it
    picks an interface, not an address). IPv4-mapped IPv6 comes back as the IPv4 address, the
    one the kernel connects to. A name is IDNA-encoded, lowercased and loses a trailing dot.
    Raises AddressError for anything else, including surrounding whitespace, and for a host
    whose last label is numeric but which is no IPv4 address (WHATWG URL's rule: `1.2.3.256`
    is an error, not a name).
    """
    if _has_space_or_control(host):
        raise AddressError(f"host {host!r} contains whitespace or control characters")
    if host.startswith("[") and host.endswith("]"):
        return _parse_ipv6(host[1:-1])
    if ":" in host:
        return _parse_ipv6(host)
    name = host.lower()
    if not name.isascii():
        try:
            # The mapping clients apply (nameprep), which can turn fullwidth digits into an IP literal.
            name = name.encode("idna").decode("ascii").lower()
        except UnicodeError as error:
            raise AddressError(f"host {host!r} is not a valid internationalized name ({error})") from None
    name = name.removesuffix(".")
    if not name:
        raise AddressError("the host is empty")
    if len(name) > 253:
        raise AddressError(f"host {host[:40]!r}... is longer than a DNS name can be")
    if _IPV4_NUMBER.fullmatch(name.rpartition(".")[2]):
        return _parse_ipv4(name, host)
    if not _DNS_NAME.fullmatch(name) or any(len(label) > 63 for label in name.split(".")):
        raise AddressError(f"host {host!r} is not a valid DNS name (letters, digits, '-' and '.' only)")
    return name


def ip_literal(host: str) -> IPAddress | None:
    """The address when `host` is an IP literal in any spelling parse_host knows, else None.

    Never raises: for traffic, a host that is no clean literal is a name for the resolver to
    judge (names with '_' resolve too), so whoever must be sure resolves it.
    """
    try:
        parsed = parse_host(host)
    except AddressError:
        return None
    return None if isinstance(parsed, str) else parsed


def is_loopback_name(name: str) -> bool:
    """`localhost` and `*.localhost`: loopback whatever a resolver says (RFC 6761)."""
    name = name.lower().removesuffix(".")
    return name == "localhost" or name.endswith(".localhost")


def format_host(host: IPAddress | str) -> str:
    """The host as a URL writes it: IPv6 in brackets."""
    return f"[{host}]" if isinstance(host, ipaddress.IPv6Address) else str(host)


def format_address(host: IPAddress | str, port: int) -> str:
    return f"{format_host(host)}:{port}"


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
        raise AddressError(f"host {written!r} is not a valid IPv4 address")
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
    # The zone id ("%eth0", or "%25eth0" percent-encoded in a URL) picks an interface; it does not change the address.
    address_text, percent, zone = text.partition("%")
    try:
        if percent and not zone:
            raise ValueError("empty zone id")
        address = ipaddress.IPv6Address(address_text)
    except ValueError:
        raise AddressError(f"host {text!r} is not a valid IPv6 address") from None
    return address.ipv4_mapped or address


def _has_space_or_control(text: str) -> bool:
    return any(char.isspace() or not char.isprintable() for char in text)


# -- classification ---------------------------------------------------------------------------

# Listed on their own so a refusal names the real danger; most also sit in a range below,
# but two look ordinary and are only caught here.
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

# First match wins. Documentation and benchmarking ranges are "reserved", not "public":
# nothing legitimate is reached there, and some networks reuse them inside.
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


def classify(address: IPAddress) -> str:
    """What kind of address this is, judging an IPv4-carrying IPv6 address by the IPv4 it reaches.

    One of "metadata", "unspecified", "loopback", "link-local", "private", "shared" (CGNAT),
    "multicast", "reserved", "public".
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


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address that traffic to this IPv6 address reaches through the kernel, a NAT64 or a 6to4 relay."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):  # :: and ::1 are themselves
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


# -- listeners: does host:port reach this socket? ------------------------------------------------

_LOOPBACK_NAME_ADDRESSES = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))


@dataclass(frozen=True, slots=True)
class Listener:
    """A listening socket's address: an IP (0.0.0.0 or :: for every interface), or a name that
    has not been resolved (matched by name until whoever holds it adds its addresses)."""

    host: IPAddress | str
    port: int

    def __str__(self) -> str:
        return format_address(self.host, self.port)


def listeners_of(host: str, port: int) -> tuple[Listener, ...]:
    """The listeners a configured `host:port` stands for: its address; both loopbacks for
    `localhost`; else the name itself (lowercase). Never raises."""
    address = ip_literal(host)
    if address is not None:
        return (Listener(address, port),)
    name = host.strip("[]").lower().removesuffix(".")
    if is_loopback_name(name):
        return tuple(Listener(loopback, port) for loopback in _LOOPBACK_NAME_ADDRESSES)
    return (Listener(name, port),)


def reaches(
    target: IPAddress | str, port: int, listener: Listener, *, is_own: Callable[[IPAddress], bool]
) -> bool:
    """Whether a connection to target:port could end at `listener`.

    `target` is an address, or a name (only `localhost` names and a listener of the same name
    are judged; resolving is the caller's business). `is_own(address)` says whether an address
    belongs to this machine; it is asked only when the port matches.

    The rules lean towards "yes" wherever the kernel's answer depends on more than the
    addresses: a wildcard listener is reached by every loopback, unspecified or own address; a
    loopback listener by every loopback and unspecified address, of either family (a name like
    localhost may have bound either); any other by its own address, and by an unspecified one
    when it is this machine's (connecting to 0.0.0.0 reaches this host).
    """
    if port != listener.port:
        return False
    if isinstance(target, str):
        if isinstance(listener.host, str):
            return target.lower().removesuffix(".") == listener.host
        if not is_loopback_name(target):
            return False
        return any(reaches(address, port, listener, is_own=is_own) for address in _LOOPBACK_NAME_ADDRESSES)
    if isinstance(listener.host, str):
        return False
    target, own = _unscoped(target), _unscoped(listener.host)
    if target == own:
        return True
    target_kind, listener_kind = _local_kind(target), _local_kind(own)
    if listener_kind == "unspecified":
        return target_kind in ("loopback", "unspecified") or is_own(target)
    if listener_kind == "loopback":
        return target_kind in ("loopback", "unspecified")
    return target_kind == "unspecified" and is_own(own)


def _local_kind(address: IPAddress) -> str:
    """"unspecified", "loopback" or "other": all that decides which local sockets an address reaches."""
    if address.is_unspecified or address in _THIS_NETWORK:
        return "unspecified"
    return "loopback" if address.is_loopback else "other"


_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")  # connecting to any of these reaches this host


def _unscoped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id:
            return ipaddress.IPv6Address(int(address))
    return address


class Listeners:
    """A fixed set of listeners, looked up by port first: the common answer, "no listener on
    this port", is one set lookup."""

    __slots__ = ("_by_port", "ports")

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        by_port: dict[int, list[Listener]] = {}
        for listener in dict.fromkeys(listeners):
            by_port.setdefault(listener.port, []).append(listener)
        self._by_port = {port: tuple(group) for port, group in by_port.items()}
        self.ports = frozenset(self._by_port)

    def __iter__(self):
        return (listener for group in self._by_port.values() for listener in group)

    def __len__(self) -> int:
        return sum(len(group) for group in self._by_port.values())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Listeners) and set(self) == set(other)

    def __repr__(self) -> str:
        return f"Listeners({sorted(map(str, self))})"

    def reached_by(
        self, target: IPAddress | str, port: int, *, is_own: Callable[[IPAddress], bool]
    ) -> Listener | None:
        """The first listener a connection to target:port could end at, or None."""
        for listener in self._by_port.get(port, ()):
            if reaches(target, port, listener, is_own=is_own):
                return listener
        return None


# -- this machine (system calls, no DNS) --------------------------------------------------------


def is_own_address(address: IPAddress) -> bool:
    """Whether `address` is one of this machine's: bind() on a UDP socket succeeds exactly then.
    No packet is sent and nothing is resolved; it costs a socket and a system call."""
    address = _unscoped(address)
    if address.is_loopback or address.is_unspecified:
        return True
    if isinstance(address, ipaddress.IPv4Address):
        return _binds(socket.AF_INET, (str(address), 0))
    # A link-local address only binds with its interface; it is ours if it binds on any.
    scopes = [0]
    if address.is_link_local:
        try:
            scopes = [index for index, _ in socket.if_nameindex()]
        except OSError:
            return False
    return any(_binds(socket.AF_INET6, (str(address), 0, 0, scope)) for scope in scopes)


def _binds(family: int, sockaddr: tuple) -> bool:
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind(sockaddr)
    except OSError:
        return False
    return True


def local_addresses() -> frozenset[IPAddress]:
    """This machine's addresses: every local IPv4 and IPv6 address the kernel lists in /proc
    (Linux), plus the source addresses of the default routes (any system). Never raises."""
    found: set[IPAddress] = set()
    for path, parse in ((Path("/proc/net/fib_trie"), parse_fib_trie), (Path("/proc/net/if_inet6"), parse_if_inet6)):
        try:
            found |= parse(path.read_text())
        except (OSError, ValueError):
            pass
    # connect() on UDP only picks a route and a source address; nothing is sent.
    for family, probe in ((socket.AF_INET, ("192.0.2.1", 9)), (socket.AF_INET6, ("2001:db8::1", 9))):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect(probe)
                found.add(_unscoped(ipaddress.ip_address(sock.getsockname()[0].partition("%")[0])))
        except (OSError, ValueError):
            pass
    return frozenset(found)


def parse_fib_trie(text: str) -> set[IPAddress]:
    """The local IPv4 addresses in Linux's /proc/net/fib_trie: each `|-- ADDRESS` leaf followed by a `/32 host LOCAL` line."""
    found: set[IPAddress] = set()
    leaf: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|-- "):
            leaf = stripped[4:].strip()
        elif leaf is not None and stripped.startswith("/32 ") and stripped.endswith(" LOCAL"):
            found.add(ipaddress.IPv4Address(leaf))
    return found


def parse_if_inet6(text: str) -> set[IPAddress]:
    """The IPv6 addresses in Linux's /proc/net/if_inet6: the first field of each line, 32 hex digits."""
    found: set[IPAddress] = set()
    for line in text.splitlines():
        fields = line.split()
        if fields and len(fields[0]) == 32:
            found.add(ipaddress.IPv6Address(int(fields[0], 16)))
    return found
