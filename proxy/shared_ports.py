"""Listening sockets that several worker processes share (SO_REUSEPORT, Linux).

Each worker binds its own socket on the same address; the kernel spreads new connections
over them by a hash of the connection's addresses, and a connection then stays with the
worker that accepted it for its whole life (HTTP/2 streams, WebSockets, keep-alive).

mitmproxy 12.3 binds with asyncio.start_server(handler, host, port) in
mitmproxy.proxy.mode_servers and offers no option for reuse_port, so install() gives
that module an asyncio whose start_server passes it. Only the worker processes of a
supervised proxy install it: the supervisor has first checked, without SO_REUSEPORT, that
nothing else listens there, so a second proxy on the same port still fails to start.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import types

from mitmproxy.proxy import mode_servers


def supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def install() -> None:
    """Make mitmproxy's TCP listeners bind with SO_REUSEPORT (idempotent)."""
    if isinstance(mode_servers.asyncio, _ReusePortAsyncio):
        return
    mode_servers.asyncio = _ReusePortAsyncio()


class _ReusePortAsyncio(types.SimpleNamespace):
    """asyncio, except that start_server binds with reuse_port."""

    start_server = staticmethod(functools.partial(asyncio.start_server, reuse_port=True))

    def __getattr__(self, name: str) -> object:
        return getattr(asyncio, name)
