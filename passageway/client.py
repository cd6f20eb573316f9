"""The smart client: httpx.Client / httpx.AsyncClient that speak `service://`, retry, and trace.

They are httpx clients (subclasses), so all of httpx works as usual: get/post/stream/request/
build_request + send, base_url (`base_url="service://identity"` too), headers, timeouts, auth,
event hooks, limits, transports. What changes is `send()`, which every request goes through:

1. `service://NAME/path?query` is rewritten to `GATEWAY/NAME/path?query` (and its Host header to
   the gateway's) before httpx picks a transport, so proxies and mounts see the real URL.
2. Trace headers: `traceparent` (unless the request has one: the current trace's, else a new
   trace per call) and `X-Passageway-Caller` (when the client knows its service's name).
3. Retries, with `X-Passageway-Attempt: N` on each attempt and the same `traceparent` on all.

What is retried, and why it is safe. A request is retried only if it is idempotent: by method
(RetryPolicy.methods), or because the caller said so (`extensions={RETRY_EXTENSION: True}`);
`extensions={RETRY_EXTENSION: False}` turns retries off. A request whose body is a one-shot stream
(a generator, a file) is never retried: it cannot be sent twice. Each attempt is sent with
`stream=True`, so the decision is made on the response head alone:

- errors before a response head arrives: connect refused or timed out, the connection reset or
  closed before any response (a stale keep-alive connection, a server restarting), and write/read
  timeouts. A read timeout means the server may have acted, which is fine for an idempotent
  request; note that each attempt gets the full timeout again. A pool timeout is not retried (the
  client itself is saturated; waiting again would not help).
- responses whose status is in RetryPolicy.statuses (502, 503, 504). The retried response is
  closed first, so its connection is released. Retry-After (seconds or an HTTP date) sets the
  wait, never beyond max_backoff.
- nothing once the body is being read: an error mid-body reaches the caller as from httpx.

When the attempts run out the caller gets the last response, or the last error, exactly as httpx
would have given it.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from .retry import RETRY_EXTENSION, RetryPolicy
from .service_url import check_gateway, check_service_name, gateway_url, is_service_url
from .tracecontext import TRACEPARENT_HEADER, current_trace, new_trace
from .wire import ATTEMPT_HEADER, CALLER_HEADER

DEFAULT_GATEWAY = "http://127.0.0.1:8080"
GATEWAY_ENV = "PASSAGEWAY_URL"
SERVICE_ENV = "PASSAGEWAY_SERVICE"

RETRYABLE_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.RemoteProtocolError,
)


class _SmartClientSettings:
    """What both clients share: the gateway, the caller's name, the retry policy, and the per-request steps."""

    def __init__(self, gateway: str | None, service: str | None, retry: RetryPolicy | None) -> None:
        self.gateway = check_gateway(gateway or os.environ.get(GATEWAY_ENV) or DEFAULT_GATEWAY)
        name = service or os.environ.get(SERVICE_ENV) or None
        self.service = check_service_name(name) if name is not None else None
        self.retry = RetryPolicy() if retry is None else retry
        if not isinstance(self.retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, not {type(self.retry).__name__}")

    def prepare(self, request: httpx.Request) -> int:
        """Route and label `request` in place; return how many attempts it gets."""
        url = str(request.url)
        if is_service_url(url):
            request.url = httpx.URL(gateway_url(self.gateway, url))
            request.headers["Host"] = request.url.netloc.decode("ascii")
        if TRACEPARENT_HEADER not in request.headers:
            request.headers[TRACEPARENT_HEADER] = (current_trace() or new_trace()).traceparent
        if self.service is not None and CALLER_HEADER not in request.headers:
            request.headers[CALLER_HEADER] = self.service
        declared = request.extensions.get(RETRY_EXTENSION)
        if declared is not None and not isinstance(declared, bool):
            raise TypeError(f"extensions[{RETRY_EXTENSION!r}] must be True or False, not {declared!r}")
        if not isinstance(request.stream, httpx.ByteStream):
            return 1  # a one-shot body stream cannot be sent again
        return self.retry.attempts_for(request.method, declared)

    def wait_before(self, retry: int, response: httpx.Response | None) -> float:
        """Seconds to wait before retry number `retry`, after `response` (None after an error)."""
        retry_after = response.headers.get("Retry-After") if response is not None else None
        return self.retry.delay(retry, retry_after=retry_after, now=datetime.now(UTC), random=random.random)


class _SmartClient:
    """The arguments and properties both clients add to httpx's."""

    def __init__(self, *, gateway: str | None = None, service: str | None = None,
                 retry: RetryPolicy | None = None, **httpx_kwargs: Any) -> None:
        self._smart = _SmartClientSettings(gateway, service, retry)
        super().__init__(**httpx_kwargs)

    @property
    def gateway(self) -> str:
        return self._smart.gateway

    @property
    def service(self) -> str | None:
        return self._smart.service

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._smart.retry


class Client(_SmartClient, httpx.Client):
    """A synchronous httpx.Client that sends `service://` URLs through Passageway, retries, and traces.

    `gateway` defaults to $PASSAGEWAY_URL, else http://127.0.0.1:8080; `service` (this service's
    own name, sent as X-Passageway-Caller) to $PASSAGEWAY_SERVICE. Other arguments are httpx's.
    """

    def send(self, request: httpx.Request, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        attempts = self._smart.prepare(request)
        attempt = 1
        while True:
            request.headers[ATTEMPT_HEADER] = str(attempt)
            try:
                response = super().send(request, stream=True, **kwargs)
            except RETRYABLE_ERRORS:
                if attempt == attempts:
                    raise
                time.sleep(self._smart.wait_before(attempt, None))
            else:
                if attempt == attempts or response.status_code not in self._smart.retry.statuses:
                    break
                delay = self._smart.wait_before(attempt, response)
                response.close()
                time.sleep(delay)
            attempt += 1
        if not stream:
            try:
                response.read()
            except BaseException:
                response.close()
                raise
        return response


class AsyncClient(_SmartClient, httpx.AsyncClient):
    """The asyncio twin of Client: same arguments, same behaviour; waits never block the event loop.

    Safe for concurrent use: a call's state lives in the call (and its trace in its task's context).
    """

    async def send(self, request: httpx.Request, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        attempts = self._smart.prepare(request)
        attempt = 1
        while True:
            request.headers[ATTEMPT_HEADER] = str(attempt)
            try:
                response = await super().send(request, stream=True, **kwargs)
            except RETRYABLE_ERRORS:
                if attempt == attempts:
                    raise
                await asyncio.sleep(self._smart.wait_before(attempt, None))
            else:
                if attempt == attempts or response.status_code not in self._smart.retry.statuses:
                    break
                delay = self._smart.wait_before(attempt, response)
                await response.aclose()
                await asyncio.sleep(delay)
            attempt += 1
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response
