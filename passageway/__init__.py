"""Passageway's smart client for services: `service://` URLs through the gateway, retries, traces.

Depends only on the standard library and httpx, so a service can use it without the proxy.

Exports: Client, AsyncClient, RetryPolicy, ServiceURLError, TraceContext, TraceContextMiddleware,
current_trace, start_trace, parse_service_url, gateway_url, parse_traceparent, format_traceparent,
and the header and extension names ATTEMPT_HEADER, CALLER_HEADER, TRACEPARENT_HEADER,
RETRY_EXTENSION. Imported on their own: passageway.addresses, what an address is (for the guards
of the proxy and of replay), and passageway.wire, every header Passageway itself sends.
"""

from __future__ import annotations

from .client import AsyncClient, Client
from .retry import RETRY_EXTENSION, RetryPolicy
from .service_url import ServiceURL, ServiceURLError, gateway_url, parse_service_url
from .tracecontext import (
    TRACEPARENT_HEADER,
    TraceContext,
    TraceContextMiddleware,
    current_trace,
    format_traceparent,
    parse_traceparent,
    start_trace,
)
from .wire import ATTEMPT_HEADER, CALLER_HEADER

__all__ = [
    "ATTEMPT_HEADER",
    "CALLER_HEADER",
    "RETRY_EXTENSION",
    "TRACEPARENT_HEADER",
    "AsyncClient",
    "Client",
    "RetryPolicy",
    "ServiceURL",
    "ServiceURLError",
    "TraceContext",
    "TraceContextMiddleware",
    "current_trace",
    "format_traceparent",
    "gateway_url",
    "parse_service_url",
    "parse_traceparent",
    "start_trace",
]
