"""How a test's requests reach their targets: through Passageway, so that every step is captured.

`service://NAME/path` goes to the gateway (`{gateway}/NAME/path`); a plain http(s) URL goes
through the forward proxy when one runs (trusting the proxy's CA for HTTPS), else directly.
Every request carries the run's W3C trace (`traceparent: 00-{trace}-{span}-01`, a new span per
send) and `X-Passageway-Test: {test name}`. As Hurl does, redirects are not followed, cookies
set by responses are sent back on later requests of the same test (one jar per `TestSession`),
and nothing is asked compressed: the body is kept exactly as received.
"""

from __future__ import annotations

import secrets
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import certifi
import httpx

from passageway.service_url import ServiceURLError, gateway_url, is_service_url
from passageway.wire import TEST_HEADER

__all__ = ["Connections", "Reply", "Route", "TestSession", "TransportError", "new_span_id", "new_trace_id"]

USER_AGENT = "passageway-test"
MAX_CONNECTIONS = 100


@dataclass(frozen=True)
class Route:
    """Where a test's requests go."""

    gateway: str
    """The proxy's gateway base URL (http://127.0.0.1:8080)."""
    forward_proxy: str | None = None
    """http://127.0.0.1:PORT when the proxy runs a forward proxy: plain URLs go through it."""
    proxy_ca: Path | None = None
    """The proxy's CA (mitmproxy-ca-cert.pem), trusted for HTTPS through the forward proxy."""
    timeout: float = 30.0


@dataclass(frozen=True)
class Reply:
    status: int
    version: str
    """"HTTP/1.1", "HTTP/2"."""
    headers: tuple[tuple[str, str], ...]
    """In wire order, duplicates kept."""
    body: bytes
    """As received (still content-encoded, if the server encoded it)."""
    duration_ms: float
    """From sending the request to the last byte of the body."""
    url: str
    """The URL the request went to (the gateway's for a service URL)."""
    span_id: str


class TransportError(Exception):
    """No answer. kind: bad_url, bad_request (a header that cannot be sent), refused (TestSession's
    check_url), connect_failed, timeout, proxy_failed, read_failed, protocol_error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    span = secrets.token_hex(8)
    return span if span != "0" * 16 else new_span_id()  # all zeros is invalid in W3C trace context


class Connections:
    """Connection pools shared by the sessions of a run (thread-safe); close() when the run ends."""

    def __init__(self, route: Route) -> None:
        self.route = route
        limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
        self.direct = httpx.HTTPTransport(verify=_verify(None), limits=limits)
        self._proxied = (
            httpx.HTTPTransport(proxy=route.forward_proxy, verify=_verify(route.proxy_ca), limits=limits)
            if route.forward_proxy
            else None
        )

    def mounts(self) -> dict[str, httpx.BaseTransport]:
        """Plain URLs through the forward proxy (if any); the gateway itself always directly."""
        if self._proxied is None:
            return {"all://": self.direct}
        gateway = httpx.URL(self.route.gateway)
        port = f":{gateway.port}" if gateway.port else ""
        return {"all://": self._proxied, f"{gateway.scheme}://{gateway.host}{port}": self.direct}

    def close(self) -> None:
        self.direct.close()
        if self._proxied is not None:
            self._proxied.close()

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _verify(extra_ca: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certifi.where())
    if extra_ca is not None:
        context.load_verify_locations(cafile=str(extra_ca))
    return context


class TestSession:
    """One test's requests: its trace, its name, its cookie jar. Used by one thread at a time."""

    __test__ = False  # not a pytest class, whatever its name

    def __init__(self, route: Route, trace_id: str, test_name: str, *, connections: Connections | None = None,
                 check_url: Callable[[str], None] | None = None) -> None:  # fmt: skip
        """`check_url(url)` is called with each plain http(s) URL before it is sent (service URLs
        go through the gateway and are not checked); it raises TransportError (kind "refused")
        to stop the request: a guard for tests whose author is not trusted with the network."""
        self.route = route
        self.trace_id = trace_id
        self.test_name = test_name
        self.check_url = check_url
        self._own = connections is None
        self._connections = connections or Connections(route)
        self._client = httpx.Client(
            transport=self._connections.direct, mounts=self._connections.mounts(), trust_env=False, follow_redirects=False, timeout=route.timeout,
            headers={"Accept": "*/*", "User-Agent": USER_AGENT},
        )  # fmt: skip
        del self._client.headers["Accept-Encoding"]  # as Hurl: nothing asked compressed unless the test says so

    @property
    def cookies(self) -> httpx.Cookies:
        return self._client.cookies

    def target(self, url: str) -> str:
        """Where `url` is sent: a service URL through the gateway; TransportError(bad_url) if it cannot be."""
        try:
            target = gateway_url(self.route.gateway, url) if is_service_url(url) else url
        except ServiceURLError as e:
            raise TransportError("bad_url", str(e)) from None
        if not target.lower().startswith(("http://", "https://")):
            raise TransportError("bad_url", f"expected service://NAME/path or an http(s) URL, not {url!r}")
        if self.check_url is not None and not is_service_url(url):
            self.check_url(target)
        return target

    def send(self, method: str, url: str, headers: Sequence[tuple[str, str]] = (), body: bytes | None = None,
             *, cookies: Sequence[tuple[str, str]] = ()) -> Reply:  # fmt: skip
        """One request; `cookies` are sent besides the jar's (a step's [Cookies])."""
        target = self.target(url)
        span_id = new_span_id()
        own = {"traceparent", TEST_HEADER.lower()}
        sent = [(name, value) for name, value in headers if name.lower() not in own]
        sent += [("traceparent", f"00-{self.trace_id}-{span_id}-01"), (TEST_HEADER, self.test_name)]
        try:
            # Values as UTF-8 bytes, as curl (and so Hurl) sends them; names must be ASCII tokens.
            encoded = [(name.encode("ascii"), value.encode("utf-8")) for name, value in sent]
        except UnicodeEncodeError as e:
            raise TransportError("bad_request", f"a header name must be ASCII: {e.object!r}") from None
        try:
            request = self._client.build_request(method, target, headers=encoded, content=body)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
            raise TransportError("bad_url", f"{target}: {e}") from None
        except ValueError as e:
            raise TransportError("bad_request", f"{target}: {e}") from None
        if cookies:
            pairs = "; ".join(f"{name}={value}" for name, value in cookies)
            jar = request.headers.get("cookie")
            request.headers["Cookie"] = f"{jar}; {pairs}" if jar else pairs
        started = time.perf_counter()
        try:
            response = self._client.send(request, stream=True)
            try:
                data = b"".join(response.iter_raw())
            finally:
                response.close()
        except httpx.TimeoutException:
            raise TransportError("timeout", f"no answer from {target} within {self.route.timeout:g} s") from None
        except httpx.ProxyError as e:
            raise TransportError("proxy_failed", f"{target} through {self.route.forward_proxy}: {_reason(e)}") from None
        except httpx.ConnectError as e:
            raise TransportError("connect_failed", f"cannot connect to {target}: {_reason(e)}") from None
        except httpx.UnsupportedProtocol as e:
            raise TransportError("bad_url", f"{target}: {e}") from None
        except (httpx.ReadError, httpx.WriteError) as e:
            raise TransportError("read_failed", f"{target}: {_reason(e)}") from None
        except httpx.RemoteProtocolError as e:
            raise TransportError("protocol_error", f"{target}: {_reason(e)}") from None
        except httpx.HTTPError as e:
            raise TransportError("connect_failed", f"{target}: {_reason(e)}") from None
        duration_ms = (time.perf_counter() - started) * 1000
        return Reply(
            status=response.status_code,
            version=response.http_version,
            headers=tuple((name.decode("latin-1"), value.decode("latin-1")) for name, value in response.headers.raw),
            body=data,
            duration_ms=duration_ms,
            url=target,
            span_id=span_id,
        )

    def close(self) -> None:
        if self._own:  # the client closes its transports, which are shared otherwise
            self._client.close()

    def __enter__(self) -> TestSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(error: Exception) -> str:
    """The innermost cause's words ("[Errno 111] Connection refused"), on one line."""
    text = str(error) or type(error).__name__
    return " ".join(text.split())
