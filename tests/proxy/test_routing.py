import pytest
from hypothesis import given, strategies as st

from proxy.routing import RouteError, Service, parse_listen, parse_route, parse_upstream, route_by_prefix


def services(*specs: str) -> dict[str, Service]:
    return {s.name: s for s in map(parse_route, specs)}


def test_prefix_routes_to_upstream_with_query_kept():
    target = route_by_prefix(services("identity=http://127.0.0.1:9001"), "/identity/users/42?x=1")
    assert target is not None
    assert (target.service, target.upstream.host, target.upstream.port, target.path) == (
        "identity", "127.0.0.1", 9001, "/users/42?x=1",
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/identity", "/"), ("/identity/", "/"), ("/identity?x=1", "/?x=1"), ("/identity//a", "//a")],
)
def test_prefix_edges(path, expected):
    target = route_by_prefix(services("identity=http://h:1"), path)
    assert target is not None and target.path == expected


def test_base_path_is_prepended():
    target = route_by_prefix(services("api=https://example.test/v2/"), "/api/users")
    assert target is not None
    assert (target.upstream.scheme, target.upstream.port, target.path) == ("https", 443, "/v2/users")


@pytest.mark.parametrize("path", ["/", "/unknown/x", "/identityx/a", "", "*", "/?identity"])
def test_unknown_prefix_is_none(path):
    assert route_by_prefix(services("identity=http://h:1"), path) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("identity", "expected NAME=URL"),
        ("=http://h:1", "bad service name"),
        ("a b=http://h:1", "bad service name"),
        ("x=ftp://h", "scheme must be http or https"),
        ("x=http://", "no host"),
        ("x=http://h:99999", "bad upstream URL"),
        ("x=http://h:0", "port must be 1-65535"),
        ("x=http://h/?q=1", "no query"),
    ],
)
def test_bad_routes_name_the_problem(spec, message):
    with pytest.raises(RouteError, match=message):
        parse_route(spec)


def test_parse_listen_forms():
    assert parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_listen("[::1]:8080") == ("::1", 8080)
    assert parse_listen("9000") == ("127.0.0.1", 9000)
    for bad in ("host:", "host:x", "h:0", "[::1]8080"):
        with pytest.raises(RouteError):
            parse_listen(bad)


def test_ipv6_upstream_url():
    assert parse_upstream("http://[::1]:9001").url == "http://[::1]:9001"


BASES = {"a": "", "b.c-d": "/base"}
# Any text, and text after each service's prefix (and near misses), so most examples route.
any_path = st.one_of(st.text(), st.builds(lambda name, rest: "/" + name + rest, st.sampled_from(["a", "b.c-d", "b", "ab"]), st.text()))


@given(any_path)
def test_route_by_prefix_sends_the_rest_under_the_base_path(path):
    target = route_by_prefix(services("a=http://h:1", "b.c-d=http://h:2/base"), path)
    if target is None:
        return
    prefix = "/" + target.service
    rest = path.removeprefix(prefix)
    assert path.startswith(prefix) and rest[:1] in ("", "/", "?"), "the whole first segment names the service"
    assert target.path == BASES[target.service] + ("" if rest.startswith("/") else "/") + rest
