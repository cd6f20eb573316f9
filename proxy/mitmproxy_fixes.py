"""Fixes to mitmproxy that a long-running capturing proxy needs, applied once at start.

Each says what it fixes, which mitmproxy it was checked against, and the upstream issue;
remove it once mitmproxy fixes the cause.
"""

from __future__ import annotations

import logging

from mitmproxy.connection import ConnectionState, Server
from mitmproxy.proxy.layers import http as http_layers

log = logging.getLogger(__name__)

_original_get_connection = http_layers.HttpLayer.get_connection


def _get_connection_forgetting_closed(self, event, *, reuse=True):  # type: ignore[no-untyped-def]
    """HttpLayer.get_connection, after dropping the upstream connections that are closed for good.

    mitmproxy 12.3 keeps the layer of every upstream connection a client connection ever
    used until the client disconnects (HttpLayer.connections; mitmproxy issue #4456). An
    HTTP/2 client in front of an HTTP/1 upstream gets a new upstream connection per request
    (they are never shared between streams), so one long-lived HTTP/2 client grew the proxy
    by about 10 KB per request, and by its bodies. A closed connection is never chosen again
    (get_connection skips it), so forgetting it changes nothing else."""
    for connection in [
        c for c in self.connections
        if isinstance(c, Server) and c.state == ConnectionState.CLOSED and c is not self.context.server
        and c not in self.waiting_for_establishment
    ]:  # fmt: skip
        del self.connections[connection]
    return (yield from _original_get_connection(self, event, reuse=reuse))


def install() -> None:
    """Apply every fix (idempotent)."""
    http_layers.HttpLayer.get_connection = _get_connection_forgetting_closed  # type: ignore[method-assign]
