"""The replay target guard: IP-literal parsing, address classes and check_target's rules.

Every name goes through a dict-backed fake resolver; real resolution is blocked
for the whole module except the one test of system_resolver.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector_ui.replay.targets import (
    ApprovedTarget,
    TargetRefused,
    check_target,
    classify,
    parse_host_address,
    system_resolver,
)

REAL_GETADDRINFO = socket.getaddrinfo
PUBLIC_IP = "93.184.216.34"
INSPECTOR = [("127.0.0.1", 8081)]
RECORDS = {
    "api.example": [PUBLIC_IP],
    "internal.example": ["10.0.0.5"],
    "split.example": [PUBLIC_IP, "192.168.1.10"],
    "mapped.example": ["::ffff:10.0.0.1"],
    "users.internal": ["10.1.2.3"],
    "ui.example": ["127.0.0.1"],
    "localhost": ["127.0.0.1", "::1"],
    "xn--bcher-kva.example": [PUBLIC_IP],
    "empty.example": [],
    "garbage.example": ["not-an-ip"],
}


def fake_resolver(host: str, port: int) -> list[str]:
    try:
        return RECORDS[host]
    except KeyError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


@pytest.fixture(autouse=True)
def no_real_resolution(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to resolve a real name")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def check(url: str, **overrides) -> ApprovedTarget:
    """check_target with nothing allowed beyond what the test passes."""
    options = {
        "services": {},
        "original_url": None,
        "inspector_addresses": INSPECTOR,
        "allow_any": False,
        "resolve": fake_resolver,
    } | overrides
    return check_target(url, **options)


def refusal(url: str, **overrides) -> str:
    with pytest.raises(TargetRefused) as caught:
        check(url, **overrides)
    message = str(caught.value)
    assert message.startswith("refused: ") and "\n" not in message
    return message


# -- parsing and classification ---------------------------------------------------------

SPELLINGS = [
    ("169.254.169.254", "169.254.169.254", "metadata"),
    ("10.0.0.1", "10.0.0.1", "private"),
    ("100.64.0.1", "100.64.0.1", "shared"),
    ("172.16.5.4", "172.16.5.4", "private"),
    ("192.168.1.1", "192.168.1.1", "private"),
    ("::ffff:127.0.0.1", "127.0.0.1", "loopback"),
    ("::FFFF:7F00:1", "127.0.0.1", "loopback"),
    ("::ffff:a9fe:a9fe", "169.254.169.254", "metadata"),
    ("::127.0.0.1", "::7f00:1", "loopback"),
    ("[::1]", "::1", "loopback"),
    ("[fe80::1%25eth0]", "fe80::1", "link-local"),
    ("fe80::1%eth0", "fe80::1", "link-local"),
    ("2130706433", "127.0.0.1", "loopback"),
    ("3232235777", "192.168.1.1", "private"),
    ("0177.0.0.1", "127.0.0.1", "loopback"),
    ("017700000001", "127.0.0.1", "loopback"),
    ("0x7f.0.0.1", "127.0.0.1", "loopback"),
    ("0X7F000001", "127.0.0.1", "loopback"),
    ("0x7f.1", "127.0.0.1", "loopback"),
    ("127.1", "127.0.0.1", "loopback"),
    ("127.0.1", "127.0.0.1", "loopback"),
    ("127.0.0.1.", "127.0.0.1", "loopback"),
    ("0.0.0.0", "0.0.0.0", "unspecified"),
    ("0", "0.0.0.0", "unspecified"),
    ("[::]", "::", "unspecified"),
    ("64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe", "metadata"),
    ("2002:a9fe:a9fe::1", "2002:a9fe:a9fe::1", "metadata"),
    ("2002:5db8:d822::1", "2002:5db8:d822::1", "public"),
    ("１２７。０。０。１", "127.0.0.1", "loopback"),  # fullwidth digits and dots, mapped by IDNA
]


@pytest.mark.parametrize(("host", "address", "kind"), SPELLINGS)
def test_every_ip_spelling_parses_to_the_address_it_reaches(host, address, kind):
    parsed = parse_host_address(host)
    assert parsed == ipaddress.ip_address(address)
    assert classify(parsed) == kind


@pytest.mark.parametrize("host", ["example.com", "Example.COM.", "xn--bcher-kva.example", "0x7f.example", "a-b.c"])
def test_a_dns_name_is_not_an_address(host):
    assert parse_host_address(host) is None


@pytest.mark.parametrize(
    "host",
    [
        " 127.0.0.1",
        "127.0.0.1 ",
        "127.0.0.1\n",
        "",
        ".",
        "1.2.3.256",
        "1.2.3.4.5",
        "256.1",
        "09.0.0.1",
        "4294967296",
        "example.123",
        "foo.0x1",
        "127.0.0.1..",
        "a..b",
        "under_score.example",
        "%31%32%37.0.0.1",
        "[127.0.0.1]",
        "[::1",
        "::ffff:0177.0.0.1",
        "fe80::1%",
        "[v1.future]",
        "a" * 64 + ".example",
    ],
)
def test_anything_else_is_refused_rather_than_guessed(host):
    with pytest.raises(TargetRefused):
        parse_host_address(host)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.170.2", "metadata"),
        ("100.100.100.200", "metadata"),
        ("168.63.129.16", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("0.1.2.3", "unspecified"),
        ("127.255.255.254", "loopback"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "reserved"),
        ("198.51.100.1", "reserved"),
        ("203.0.113.1", "reserved"),
        ("198.18.0.1", "reserved"),
        ("2001:db8::1", "reserved"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved"),  # Teredo
        ("100::1", "reserved"),  # outside global unicast
        ("172.32.0.1", "public"),
        ("8.8.8.8", "public"),
        ("2606:4700:4700::1111", "public"),
        ("64:ff9b::808:808", "public"),
    ],
)
def test_classify(address, kind):
    assert classify(ipaddress.ip_address(address)) == kind


def test_a_zone_id_does_not_change_the_class():
    assert classify(ipaddress.IPv6Address("fe80::1%eth0")) == "link-local"
    assert classify(ipaddress.IPv6Address("fd00:ec2::254%eth0")) == "metadata"


def ipv4_spellings(address: ipaddress.IPv4Address) -> list[str]:
    value, octets = int(address), address.packed
    return [
        str(value),
        f"0x{value:x}",
        f"0X{value:X}",
        f"0{value:o}",
        ".".join(f"0{octet:o}" for octet in octets),
        ".".join(f"0x{octet:x}" for octet in octets),
        f"{octets[0]}.{value & 0xFFFFFF}",
        f"{octets[0]}.{octets[1]}.{value & 0xFFFF}",
        f"0x{octets[0]:x}.0{octets[1]:o}.{octets[2]}.{octets[3]}",
        f"{address}.",
        f"::ffff:{address}",
        f"[::ffff:{address}]",
        f"::ffff:{value >> 16:x}:{value & 0xFFFF:x}",
        f"0:0:0:0:0:FFFF:{value >> 16:X}:{value & 0xFFFF:X}",
    ]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.ip_addresses(v=4))
def test_every_spelling_of_an_ipv4_address_parses_and_classifies_the_same(address):
    for spelling in ipv4_spellings(address):
        parsed = parse_host_address(spelling)
        assert parsed == address, spelling
        assert classify(parsed) == classify(address), spelling


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.ip_addresses(v=4))
def test_ipv6_embeddings_classify_as_the_ipv4_they_reach(address):
    value = int(address)
    for embedding in (0xFFFF << 32, 0x64FF9B << 96, 0x2002 << 112):
        shift = 80 if embedding >> 112 == 0x2002 else 0
        carrier = ipaddress.IPv6Address(embedding | value << shift)
        assert classify(carrier) == classify(address), carrier


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.ip_addresses(v=4), st.integers(min_value=0, max_value=13))
def test_allow_any_approves_a_literal_exactly_when_it_is_public(address, spelling_index):
    spelling = ipv4_spellings(address)[spelling_index]
    host = spelling if spelling.startswith("[") or ":" not in spelling else f"[{spelling}]"
    url = f"http://{host}:9999/"
    if classify(address) == "public":
        assert check(url, allow_any=True).addresses == (str(address),)
    else:
        with pytest.raises(TargetRefused):
            check(url, allow_any=True)


# -- check_target: addresses refused even with allow-any ------------------------------------

REFUSED_EVEN_WITH_ALLOW_ANY = [
    ("http://169.254.169.254/latest/meta-data/", "refused: 169.254.169.254 is a cloud metadata address"),
    ("http://10.0.0.1/", "refused: 10.0.0.1 is a private address and is not a configured service"),
    ("http://100.64.0.1/", "a shared (carrier-grade NAT) address"),
    ("http://172.16.5.4/", "a private address"),
    ("http://192.168.1.1/", "a private address"),
    ("http://[::ffff:127.0.0.1]/", "refused: [::ffff:127.0.0.1] is 127.0.0.1, a loopback address, and is not"),
    ("http://[::ffff:a9fe:a9fe]/", "refused: [::ffff:a9fe:a9fe] is 169.254.169.254, a cloud metadata address"),
    ("http://[::1]/", "a loopback address"),
    ("http://[fe80::1%25eth0]/", "a link-local address"),
    ("http://[fe80::1%eth0]/", "a link-local address"),
    ("http://2130706433/", "refused: 2130706433 is 127.0.0.1, a loopback address"),
    ("http://3232235777/", "refused: 3232235777 is 192.168.1.1, a private address"),
    ("http://0177.0.0.1/", "is 127.0.0.1, a loopback address"),
    ("http://017700000001/", "is 127.0.0.1, a loopback address"),
    ("http://0x7f.0.0.1/", "is 127.0.0.1, a loopback address"),
    ("http://0x7f000001/", "is 127.0.0.1, a loopback address"),
    ("http://127.1/", "is 127.0.0.1, a loopback address"),
    ("http://127.0.0.1./", "is 127.0.0.1, a loopback address"),
    ("http://0.0.0.0/", "an unspecified (this-host) address"),
    ("http://0/", "refused: 0 is 0.0.0.0, an unspecified (this-host) address"),
    ("http://[::]/", "an unspecified (this-host) address"),
    ("http://[64:ff9b::a9fe:a9fe]/", "a cloud metadata address"),
    ("http://[2002:a9fe:a9fe::1]/", "a cloud metadata address"),
    ("http://224.0.0.1/", "a multicast address"),
    ("http://203.0.113.7/", "a reserved or documentation address"),
    ("http://localhost/", "refused: localhost is a loopback name and is not a configured service"),
    ("http://LOCALHOST./", "refused: localhost is a loopback name"),
    ("http://foo.localhost/", "refused: foo.localhost is a loopback name"),
    (
        "http://internal.example/",
        "refused: internal.example resolves to 10.0.0.5, a private address, and is not a configured service",
    ),
    ("http://split.example/", "refused: split.example resolves to 192.168.1.10, a private address"),
    ("http://mapped.example/", "refused: mapped.example resolves to 10.0.0.1, a private address"),
]


@pytest.mark.parametrize(("url", "expected"), REFUSED_EVEN_WITH_ALLOW_ANY)
def test_internal_addresses_are_refused_even_with_allow_any(url, expected):
    assert expected in refusal(url, allow_any=True)


@pytest.mark.parametrize(("url", "expected"), REFUSED_EVEN_WITH_ALLOW_ANY)
def test_internal_addresses_are_refused_as_the_original_host(url, expected):
    assert expected in refusal(url, original_url=url)


# -- check_target: what is approved -----------------------------------------------------------


def test_a_configured_service_on_loopback_is_allowed():
    approved = check("http://127.0.0.1:9001/users/42?x=1", services={"users": "http://127.0.0.1:9001"})
    assert approved == ApprovedTarget("http", "127.0.0.1", 9001, ("127.0.0.1",), "service:users")


def test_a_configured_service_by_name_on_a_private_address_is_allowed():
    approved = check("http://users.internal:9001/u", services={"users": "http://Users.Internal:9001/base"})
    assert approved == ApprovedTarget("http", "users.internal", 9001, ("10.1.2.3",), "service:users")


def test_a_configured_localhost_service_is_allowed():
    approved = check("http://localhost:9001/", services={"dev": "http://localhost:9001"})
    assert approved.addresses == ("127.0.0.1", "::1")
    assert approved.reason == "service:dev"


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9002/", "https://127.0.0.1:9001/", "http://localhost:9001/", "http://127.0.0.2:9001/"],
)
def test_only_the_services_exact_scheme_host_and_port_match(url):
    assert "is not a configured service or the exchange's original host" in refusal(
        url, services={"users": "http://127.0.0.1:9001"}
    )


def test_an_unusable_service_url_matches_nothing():
    assert "not a configured service" in refusal("http://10.0.0.1/", services={"bad": "ftp://10.0.0.1/"})


def test_the_original_host_is_allowed_when_public():
    approved = check("https://api.example/v1/orders?id=3", original_url="https://api.example/v1/orders")
    assert approved == ApprovedTarget("https", "api.example", 443, (PUBLIC_IP,), "original host")


def test_the_original_host_on_another_port_needs_allow_any():
    assert "not a configured service" in refusal("https://api.example:8443/", original_url="https://api.example/")


def test_allow_any_approves_a_public_address():
    approved = check(f"http://{PUBLIC_IP}:8080/", allow_any=True)
    assert approved == ApprovedTarget("http", PUBLIC_IP, 8080, (PUBLIC_IP,), "allow-any")


def test_a_public_target_is_refused_without_allow_any():
    expected = "refused: api.example:443 is not a configured service or the exchange's original host"
    assert refusal("https://api.example/").startswith(expected)


def test_names_are_lowercased_idna_encoded_and_lose_their_trailing_dot():
    approved = check("http://BÜCHER.example./", allow_any=True)
    assert (approved.host, approved.addresses) == ("xn--bcher-kva.example", (PUBLIC_IP,))


def test_an_ipv6_service_is_compared_by_address():
    approved = check("http://[0:0::1]:9001/", services={"v6": "http://[::1]:9001"})
    assert (approved.host, approved.reason) == ("::1", "service:v6")


def test_approved_target_is_frozen():
    approved = check(f"http://{PUBLIC_IP}/", allow_any=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        approved.host = "10.0.0.1"  # type: ignore[misc]


# -- check_target: never the inspector -----------------------------------------------------


@pytest.mark.parametrize("listening", [[("127.0.0.1", 8081)], [("0.0.0.0", 8081)], [("::", 8081)]])
@pytest.mark.parametrize(
    "how",
    [
        {"services": {"ui": "http://127.0.0.1:8081"}},
        {"original_url": "http://127.0.0.1:8081/api/exchanges"},
        {"allow_any": True},
    ],
)
def test_the_inspector_itself_is_refused_whatever_allowed_it(listening, how):
    message = refusal("http://127.0.0.1:8081/api/exchanges", inspector_addresses=listening, **how)
    assert message == "refused: 127.0.0.1:8081 is the inspector itself"


@pytest.mark.parametrize(
    "url",
    ["http://0.0.0.0:8081/", "http://[::ffff:127.0.0.1]:8081/", "http://2130706433:8081/", "http://127.1:8081/"],
)
def test_other_spellings_of_the_inspector_are_refused(url):
    assert "is the inspector itself" in refusal(url, services={"ui": url})


def test_a_name_resolving_to_the_inspector_is_refused():
    message = refusal("http://ui.example:8081/", services={"ui": "http://ui.example:8081"})
    assert message == "refused: ui.example:8081 resolves to 127.0.0.1, the inspector itself"


def test_any_loopback_address_is_the_inspector_when_it_listens_on_every_address():
    services = {"dev": "http://localhost:8081", "v6": "http://[::1]:8081"}
    for url in services.values():
        assert "the inspector itself" in refusal(url, services=services, inspector_addresses=[("0.0.0.0", 8081)])


def test_the_inspector_listening_on_a_name_is_resolved():
    message = refusal(
        "http://[::1]:8081/", services={"v6": "http://[::1]:8081"}, inspector_addresses=[("localhost", 8081)]
    )
    assert message == "refused: [::1]:8081 is the inspector itself"


def test_a_service_on_the_inspectors_host_but_another_port_is_allowed():
    services = {"users": "http://127.0.0.1:9001"}
    approved = check("http://127.0.0.1:9001/", services=services, inspector_addresses=[("0.0.0.0", 8081)])
    assert approved.reason == "service:users"


def test_any_loopback_address_counts_as_an_inspector_on_loopback():
    # One rule for the proxy and the replay guard (passageway.addresses.reaches): on loopback,
    # "which socket answers" is left to the kernel, so every loopback address is refused.
    for url in ("http://127.0.0.2:8081/", "http://[::1]:8081/"):
        assert "is the inspector itself" in refusal(url, services={"other": url})


def test_this_machines_own_address_is_the_inspector_when_it_listens_on_every_address():
    services = {"lan": "http://10.0.0.7:8081"}
    message = refusal(
        "http://10.0.0.7:8081/", services=services, inspector_addresses=[("0.0.0.0", 8081)],
        is_own=lambda address: str(address) == "10.0.0.7",
    )  # fmt: skip
    assert message == "refused: 10.0.0.7:8081 is the inspector itself"
    other = check("http://10.0.0.7:8081/", services=services, inspector_addresses=[("0.0.0.0", 8081)],
                  is_own=lambda address: False)  # fmt: skip
    assert other.reason == "service:lan"


def test_the_approved_origin_is_canonical():
    services = {"users": "http://127.0.0.1:9001"}
    assert check("http://0177.0.0.1:9001/x", services=services).origin == "http://127.0.0.1:9001"
    assert check("http://[::ffff:127.0.0.1]:9001/", services=services).origin == "http://127.0.0.1:9001"
    assert check("http://[0:0::1]:9001/", services={"v6": "http://[::1]:9001"}).origin == "http://[::1]:9001"
    assert check("HTTPS://BÜCHER.example./", allow_any=True).origin == "https://xn--bcher-kva.example"


# -- check_target: malformed targets and resolution failures ---------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://api.example/", "scheme 'ftp' is not http or https"),
        ("file:///etc/passwd", "scheme 'file' is not http or https"),
        ("gopher://api.example:70/", "scheme 'gopher'"),
        ("ws://api.example/", "scheme 'ws'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("/relative/path", "scheme ''"),
        ("http://user:pass@api.example/", "credentials (user:pass@)"),
        ("http://user@api.example/", "credentials"),
        ("http://api.example\\@127.0.0.1/", "credentials"),
        ("http:///path", "has no host"),
        ("http://:80/", "has no host"),
        ("http://api.example:0/", "port '0' is not a number from 1 to 65535"),
        ("http://api.example:65536/", "port '65536'"),
        ("http://api.example:99999/", "port '99999'"),
        ("http://api.example:-1/", "port '-1'"),
        ("http://api.example:abc/", "port 'abc'"),
        ("http://api.example:/", "port ''"),
        ("http://api.example:80:80/", "port '80:80'"),
        ("http://api.example:+80/", "port '+80'"),
        ("http://[::1]x/", "port"),
        ("http://[::1/", "is not a valid URL"),
        (" http://api.example/", "contains whitespace or control characters"),
        ("http://api.example\t/", "contains whitespace or control characters"),
        ("http://api.ex\nample/", "contains whitespace or control characters"),
        ("http://under_score.example/", "is not a valid DNS name"),
        ("http://example.123/", "is not a valid IPv4 address"),
        ("http://1.2.3.256/", "is not a valid IPv4 address"),
        ("http://%31%32%37.0.0.1/", "is not a valid IPv4 address"),
        ("http://%6cocalhost/", "is not a valid DNS name"),
        ("http://unknown.example/", "refused: cannot resolve unknown.example: [Errno -2] Name or service not known"),
        ("http://empty.example/", "refused: empty.example resolves to no address"),
        ("http://garbage.example/", "the resolver gave 'not-an-ip' for garbage.example, which is not an IP address"),
    ],
)
def test_malformed_targets_and_failed_resolution_are_refused(url, expected):
    assert expected in refusal(url, allow_any=True)


def test_https_is_allowed_and_the_scheme_is_case_insensitive():
    approved = check("HTTPS://api.example/", allow_any=True)
    assert (approved.scheme, approved.port) == ("https", 443)


def test_system_resolver_resolves_localhost(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", REAL_GETADDRINFO)
    addresses = system_resolver("localhost", 80)
    assert addresses
    assert {classify(ipaddress.ip_address(address)) for address in addresses} == {"loopback"}
