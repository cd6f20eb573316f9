from urllib.parse import urlsplit

import pytest
from hypothesis import given, strategies as st

from passageway.service_url import (
    SERVICE_NAME,
    ServiceURL,
    ServiceURLError,
    check_gateway,
    gateway_url,
    is_service_url,
    parse_service_url,
)
from proxy.routing import parse_route, route_by_prefix

names = st.from_regex(SERVICE_NAME, fullmatch=True)
# Path and query characters a URL may carry, percent-escapes included (kept verbatim).
url_text = st.lists(
    st.one_of(st.sampled_from("abcXYZ019-._~!$&'()*+,;=:@/%"), st.sampled_from(["%2F", "%20", "%3F", "%E2%82%AC"])),
    max_size=20,
).map("".join)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("service://identity/users/42", ServiceURL("identity", "/users/42")),
        ("service://identity", ServiceURL("identity", "/")),
        ("service://identity/", ServiceURL("identity", "/")),
        ("service://identity?x=1", ServiceURL("identity", "/?x=1")),
        ("SERVICE://Id_1.v2-b/a%2Fb?q=%20&q=2", ServiceURL("Id_1.v2-b", "/a%2Fb?q=%20&q=2")),
        ("service://a//double?", ServiceURL("a", "//double?")),
        ("service://a/x?next=/../y", ServiceURL("a", "/x?next=/../y")),  # dots in the query are data
        ("service://a/.../..x", ServiceURL("a", "/.../..x")),
    ],
)
def test_parse(url, expected):
    assert parse_service_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://identity/users", "not a service URL"),
        ("service:/identity", "not a service URL"),
        ("service://", "names no service"),
        ("service:///users", "names no service"),
        ("service://?x", "names no service"),
        ("service://user:pw@identity/", "user information"),
        ("service://@identity/", "user information"),
        ("service://identity:8080/", "port"),
        ("service://identity/users#top", "fragment"),
        ("service://-identity/", "invalid service name"),
        ("service://iden tity/", "whitespace"),
        ("service://identity/a\r\nHost: x", "control character"),
        ("service://" + "a" * 64 + "/", "invalid service name"),
        ("service://idént/", "invalid service name"),
        ("service://identity/../billing/x", "'..' segment"),
        ("service://identity/%2e%2E/billing", "'..' segment"),
        ("service://identity/a/./b", "'..' segment"),
        ("service://identity/..", "'..' segment"),
    ],
)
def test_rejected_with_a_one_line_message(url, problem):
    with pytest.raises(ServiceURLError) as info:
        parse_service_url(url)
    message = str(info.value)
    assert problem in message and "\n" not in message.replace(repr(url), "")


@pytest.mark.parametrize(
    ("gateway", "url", "expected"),
    [
        ("http://127.0.0.1:8080", "service://identity/users/42", "http://127.0.0.1:8080/identity/users/42"),
        ("http://127.0.0.1:8080/", "service://identity", "http://127.0.0.1:8080/identity/"),
        ("https://gw.internal/base/", "service://billing/a%2Fb?x=1&x=%20", "https://gw.internal/base/billing/a%2Fb?x=1&x=%20"),
        ("http://gw:1", "service://a?q", "http://gw:1/a/?q"),
        ("http://gw:1", "https://example.test/x?y#z", "https://example.test/x?y#z"),
        ("http://gw:1", "/relative", "/relative"),
    ],
)
def test_gateway_url(gateway, url, expected):
    assert gateway_url(gateway, url) == expected


@pytest.mark.parametrize("gateway", ["http://gw", "HTTPS://gw.internal:8443/base/", "http://[::1]:8080", "http://127.0.0.1"])
def test_good_gateway(gateway):
    assert check_gateway(gateway) == gateway.rstrip("/")


@pytest.mark.parametrize(
    "gateway", ["127.0.0.1:8080", "ftp://gw", "http://", "http://gw/x?y", "http://u@gw", "http://gw/#f", "http://gw:port",
                "http://gw:", "http://gw base"],
)
def test_bad_gateway(gateway):
    with pytest.raises(ServiceURLError, match="gateway must be"):
        check_gateway(gateway)


@given(name=names, path=url_text, query=st.none() | url_text)
def test_gateway_route_round_trip(name, path, query):
    """What the client sends, the gateway routes back to the same service with the same path and query."""
    url = f"service://{name}/{path}" + ("" if query is None else f"?{query}")
    try:
        target = parse_service_url(url)
    except ServiceURLError as error:
        assert "segment" in str(error)  # the only thing generated paths can get wrong
        return
    sent = gateway_url("http://gw:8080/base", url)
    assert sent == f"http://gw:8080/base/{name}{target.path_and_query}"
    split = urlsplit(sent)
    assert (split.query or None) == (query or None)
    routed = route_by_prefix({name: parse_route(f"{name}=http://10.0.0.5:9001")}, sent[len("http://gw:8080/base"):])
    assert routed is not None and routed.service == name and routed.path == target.path_and_query


@given(st.text(max_size=40))
def test_only_service_urls_are_rewritten(text):
    if not is_service_url(text):
        assert gateway_url("http://gw", text) == text
