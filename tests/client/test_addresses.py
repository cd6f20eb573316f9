"""passageway.addresses: one parser for what an address is, and whether host:port reaches a listener.

The inspector's replay guard tests (tests/inspector_ui/test_replay_targets.py) cover the
spellings and classes through check_target; these cover the module's own surface, and check
the parser against libc itself.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passageway.addresses import (
    AddressError,
    Listener,
    Listeners,
    classify,
    format_address,
    ip_literal,
    is_loopback_name,
    is_own_address,
    listeners_of,
    local_addresses,
    parse_fib_trie,
    parse_host,
    parse_if_inet6,
    reaches,
)

ip = ipaddress.ip_address


def libc_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """What getaddrinfo makes of `host` as a numeric host (no DNS), IPv4-mapped as IPv4."""
    try:
        infos = socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    address = ip(infos[0][4][0].partition("%")[0])
    return address.ipv4_mapped or address if isinstance(address, ipaddress.IPv6Address) else address


def never_own(address) -> bool:
    return False


# -- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", ip("127.0.0.1")),
        ("2130706433", ip("127.0.0.1")),
        ("0x7f.0.0.1", ip("127.0.0.1")),
        ("0177.0.0.1", ip("127.0.0.1")),
        ("127.1", ip("127.0.0.1")),
        ("127.0.0.1.", ip("127.0.0.1")),
        ("[::ffff:127.0.0.1]", ip("127.0.0.1")),
        ("::ffff:7f00:1", ip("127.0.0.1")),
        ("[fe80::1%25eth0]", ip("fe80::1")),
        ("Example.COM.", "example.com"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("localhost", "localhost"),
    ],
)
def test_parse_host(host, expected):
    assert parse_host(host) == expected


@pytest.mark.parametrize("host", ["", " 127.0.0.1", "1.2.3.256", "under_score.example", "[::1", "fe80::1%"])
def test_parse_host_refuses_with_one_line(host):
    with pytest.raises(AddressError) as caught:
        parse_host(host)
    assert "\n" not in str(caught.value)


def test_ip_literal_is_none_for_names_and_for_what_no_resolver_reads_as_an_address():
    assert ip_literal("2130706433") == ip("127.0.0.1")
    for host in ("example.com", "under_score.example", "1.2.3.256", "", "a b"):
        assert ip_literal(host) is None


@given(st.text())
def test_ip_literal_never_raises(host):
    ip_literal(host)


@given(st.text(alphabet="0123456789abcdefxX.:%[]lo", max_size=24))
def test_every_literal_libc_accepts_parses_to_the_same_address(host):
    # The guard's parser must never read a literal differently from the resolver the
    # connection uses; it may accept more (a trailing dot, brackets), never less.
    expected = libc_literal(host)
    if expected is not None:
        assert ip_literal(host) == expected, host


@given(st.ip_addresses(v=4))
def test_libc_and_the_parser_agree_on_every_ipv4_spelling(address):
    value, octets = int(address), address.packed
    for spelling in (
        str(value), f"0x{value:x}", f"0{value:o}", ".".join(f"0{o:o}" for o in octets),
        ".".join(f"0x{o:x}" for o in octets), f"{octets[0]}.{value & 0xFFFFFF}", f"::ffff:{address}",
    ):  # fmt: skip
        assert libc_literal(spelling) == address == ip_literal(spelling), spelling


def test_loopback_names():
    assert all(map(is_loopback_name, ["localhost", "LOCALHOST.", "api.localhost"]))
    assert not any(map(is_loopback_name, ["localhost.example", "notlocalhost", "example.com"]))


def test_format_address_brackets_ipv6_only():
    assert format_address(ip("::1"), 80) == "[::1]:80"
    assert format_address(ip("127.0.0.1"), 80) == "127.0.0.1:80"
    assert format_address("example.com", 80) == "example.com:80"


@pytest.mark.parametrize(
    ("address", "kind"),
    [("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"), ("100.64.1.1", "shared"),
     ("10.1.1.1", "private"), ("127.0.0.5", "loopback"), ("0.0.0.0", "unspecified"), ("8.8.8.8", "public")],
)  # fmt: skip
def test_classify(address, kind):
    assert classify(ip(address)) == kind


# -- reaching a listener ----------------------------------------------------------------------

OWN = {ip("192.0.2.2"), ip("fd00::2")}


def own(address) -> bool:
    return address in OWN


@pytest.mark.parametrize(
    ("target", "listener", "expected"),
    [
        # A wildcard listener: every loopback, unspecified and own address.
        ("127.0.0.1", "0.0.0.0", True),
        ("127.9.9.9", "0.0.0.0", True),
        ("::1", "0.0.0.0", True),
        ("0.0.0.0", "0.0.0.0", True),
        ("192.0.2.2", "0.0.0.0", True),
        ("fd00::2", "::", True),
        ("::ffff:192.0.2.2", "::", True),
        ("192.0.2.3", "0.0.0.0", False),
        ("8.8.8.8", "::", False),
        # A loopback listener: every loopback and unspecified address, not the LAN address.
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.2", "127.0.0.1", True),
        ("::1", "127.0.0.1", True),
        ("::ffff:127.0.0.1", "127.0.0.1", True),
        ("0.0.0.0", "127.0.0.1", True),
        ("::", "::1", True),
        ("192.0.2.2", "127.0.0.1", False),
        # A listener on one address: that address, and 0.0.0.0 when the address is ours.
        ("192.0.2.2", "192.0.2.2", True),
        ("::ffff:192.0.2.2", "192.0.2.2", True),
        ("0.0.0.0", "192.0.2.2", True),
        ("0.0.0.0", "198.51.100.7", False),
        ("127.0.0.1", "192.0.2.2", False),
        ("fe80::1%eth0", "fe80::1", True),
    ],
)
def test_reaches(target, listener, expected):
    assert reaches(ip(target.partition("%")[0]), 8081, Listener(ip(listener), 8081), is_own=own) is expected


def test_another_port_never_reaches():
    assert not reaches(ip("127.0.0.1"), 8082, Listener(ip("127.0.0.1"), 8081), is_own=own)
    assert not reaches(ip("127.0.0.1"), 8082, Listener(ip("0.0.0.0"), 8081), is_own=lambda a: True)


def test_names_reach_only_a_listener_of_that_name_or_as_localhost():
    assert reaches("Inspector.Corp.", 8081, Listener("inspector.corp", 8081), is_own=never_own)
    assert not reaches("other.corp", 8081, Listener("inspector.corp", 8081), is_own=never_own)
    assert reaches("localhost", 8081, Listener(ip("127.0.0.1"), 8081), is_own=never_own)
    assert reaches("api.localhost", 8081, Listener(ip("::1"), 8081), is_own=never_own)
    assert not reaches("example.com", 8081, Listener(ip("0.0.0.0"), 8081), is_own=lambda a: True)
    assert not reaches(ip("127.0.0.1"), 8081, Listener("inspector.corp", 8081), is_own=never_own)


@given(st.ip_addresses(), st.integers(1, 65535))
def test_an_address_always_reaches_its_own_listener(address, port):
    assert reaches(address, port, Listener(address, port), is_own=never_own)


def test_own_addresses_are_asked_only_when_the_port_matches():
    asked = []
    listeners = Listeners([Listener(ip("0.0.0.0"), 8081)])
    assert listeners.reached_by(ip("192.0.2.2"), 9000, is_own=asked.append) is None
    assert asked == []


def test_listeners_of_a_configured_address():
    assert listeners_of("127.0.0.1", 8081) == (Listener(ip("127.0.0.1"), 8081),)
    assert listeners_of("2130706433", 8081) == (Listener(ip("127.0.0.1"), 8081),)
    assert listeners_of("[::1]", 8081) == (Listener(ip("::1"), 8081),)
    assert listeners_of("localhost", 8081) == (Listener(ip("127.0.0.1"), 8081), Listener(ip("::1"), 8081))
    assert listeners_of("Inspector.Corp", 8081) == (Listener("inspector.corp", 8081),)


def test_listeners_are_found_by_port_and_deduplicated():
    listeners = Listeners([Listener(ip("127.0.0.1"), 8081), Listener(ip("127.0.0.1"), 8081), Listener(ip("::"), 9000)])
    assert listeners.ports == {8081, 9000} and len(listeners) == 2
    assert listeners.reached_by("localhost", 8081, is_own=never_own) == Listener(ip("127.0.0.1"), 8081)
    assert listeners.reached_by(ip("::1"), 9000, is_own=never_own) == Listener(ip("::"), 9000)
    assert listeners.reached_by(ip("10.0.0.1"), 8081, is_own=never_own) is None
    assert Listeners(reversed(list(listeners))) == listeners


# -- this machine -------------------------------------------------------------------------------


def test_every_local_address_is_own_and_documentation_addresses_are_not():
    addresses = local_addresses()
    assert ip("127.0.0.1") in addresses
    for address in addresses:
        assert is_own_address(address), address
    assert is_own_address(ip("127.0.0.2")) and is_own_address(ip("::"))
    assert not is_own_address(ip("203.0.113.9")) and not is_own_address(ip("2001:db8::9"))


FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
     +-- 192.0.2.0/24 2 0 2
        |-- 192.0.2.0
           /24 link UNICAST
        |-- 192.0.2.2
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
           |-- 127.0.0.1
              /32 host LOCAL
"""

IF_INET6 = """fd000000000000000000000000000002 04 40 00 82     eth0
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
"""


def test_proc_files_are_read_for_local_addresses():
    assert parse_fib_trie(FIB_TRIE) == {ip("127.0.0.1"), ip("192.0.2.2")}
    assert parse_if_inet6(IF_INET6) == {ip("fd00::2"), ip("fe80::fc:ff:fe00:1"), ip("::1")}
    assert parse_fib_trie("") == set() == parse_if_inet6("")
