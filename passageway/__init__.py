"""Passageway's smart client for services: `service://` URLs through the gateway, retries, traces.

Depends only on the standard library and httpx, so a service can use it without the proxy.

Exports: Client, AsyncClient, RetryPolicy, ServiceURLError, TraceContext, TraceContextMiddleware,
current_trace, start_trace, parse_service_url, gateway_url, parse_traceparent, format_traceparent,
SmartService and smart_service (one line makes an ASGI app a smart service: /healthz, /readyz,
/metrics, heartbeat registration; passageway.service), ServiceConfigError, JsonLogFormatter and
install_json_logging (JSON log lines carrying the trace; passageway.jsonlog), and the header and
extension names ATTEMPT_HEADER, CALLER_HEADER, TRACEPARENT_HEADER, RETRY_EXTENSION. Imported on
their own: passageway.addresses, what an address is (for the guards of the proxy and of replay),
passageway.wire, every header Passageway itself sends, and passageway.metrics, the Prometheus
registry and text format behind /metrics.
"""

from __future__ import annotations

from .client import AsyncClient, Client
from .jsonlog import JsonLogFormatter, install_json_logging
from .retry import RETRY_EXTENSION, RetryPolicy
from .service import ServiceConfigError, SmartService, smart_service
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
    "JsonLogFormatter",
    "RetryPolicy",
    "ServiceURL",
    "ServiceConfigError",
    "ServiceURLError",
    "SmartService",
    "TraceContext",
    "TraceContextMiddleware",
    "current_trace",
    "format_traceparent",
    "gateway_url",
    "install_json_logging",
    "parse_service_url",
    "parse_traceparent",
    "smart_service",
    "start_trace",
]
