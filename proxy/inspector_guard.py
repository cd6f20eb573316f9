"""InspectorGuard: no listener of this proxy forwards to an inspector, however the address is spelled.

Where inspectors listen comes from two places: the proxy's own `ui` setting (flag, environment or
file; `passageway up` passes its --ui on), and the addresses running inspectors registered in the
store (storage.inspectors), reloaded every REFRESH_INTERVAL seconds on a thread of the guard's own
and swapped in whole. passageway.addresses decides what an address is and which listener it reaches.

Checked at three points, each a set lookup on the port first, so ordinary traffic pays nothing more:

- requestheaders: a request's final destination (after the Router): a 403 JSON answer, recorded
  as a "killed" exchange;
- http_connect: a CONNECT to an inspector gets a 403 instead of a tunnel;
- server_connect, the backstop: every connection the proxy opens (raw TCP in a tunnel, a name that
  resolves to an inspector) is killed before it is made. At an inspector's port the host is read by
  libc itself (a numeric parse, no DNS), and a name is resolved off the event loop and the
  connection pinned to the address that was checked, so a second DNS answer cannot differ.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence

from mitmproxy import http
from mitmproxy.proxy import server_hooks

from passageway.addresses import (
    IPAddress,
    Listener,
    Listeners,
    ip_literal,
    is_loopback_name,
    is_own_address,
    listeners_of,
)
from passageway.wire import ERROR_HEADER
from storage.inspectors import live_inspector_addresses
from storage.store import Store

from .flow_record import META_ERROR_KIND, META_ERROR_MESSAGE
from .refresher import Refresher

logger = logging.getLogger(__name__)

REFRESH_INTERVAL = 2.0
"""Seconds between two loads of the registered inspectors: how long a newly started inspector
that this proxy was not told about may go unrefused."""


def refusal_response(listener: Listener) -> http.Response:
    body = {"error": "refused", "message": f"Passageway does not forward requests to an inspector ({listener})."}
    return http.Response.make(
        403, json.dumps(body).encode() + b"\n", {"Content-Type": "application/json", ERROR_HEADER: "refused"}
    )


def system_lookup(host: str, port: int) -> list[str]:
    """Every address getaddrinfo gives for host (blocking: call it off the event loop)."""
    return [sockaddr[0] for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _address(text: str) -> IPAddress:
    """An address as getaddrinfo gives it (maybe with %scope), IPv4-mapped as IPv4."""
    address = ipaddress.ip_address(text.partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class InspectorGuard:
    """mitmproxy addon: refuses every request and connection that would reach an inspector."""

    def __init__(
        self,
        store: Store | None,
        *,
        configured: Sequence[tuple[str, int]],
        refresh_interval: float = REFRESH_INTERVAL,
        is_own: Callable[[IPAddress], bool] = is_own_address,
        lookup: Callable[[str, int], list[str]] = system_lookup,
    ) -> None:
        self.store = store
        self.lookup = lookup
        self.configured = tuple(listener for host, port in configured for listener in listeners_of(host, port))
        self.is_own = is_own
        self.listeners = Listeners(self.configured)
        """Everything refused now; replaced whole by reload(), never changed in place."""
        self._registered: tuple[Listener, ...] = ()
        self._resolved: dict[Listener, tuple[Listener, ...]] = {}
        """Each configured name's addresses, as last resolved (kept while resolving fails)."""
        self.refresher = Refresher(
            self.reload,
            what="the inspectors' addresses",
            keeping=lambda: "still refusing the last known",
            interval=refresh_interval,
            thread_name="passageway-inspector-guard",
            logger=logger,
        )

    # --- what is refused: loaded off the event loop ---

    def reload(self) -> None:
        """Read the registered inspectors and resolve configured names (blocking: DNS and the
        database), then swap the new set in. Raises what the store raises when it cannot be read;
        the previous registrations stay refused meanwhile."""
        self._resolve_configured()
        if self.store is not None:
            rows = live_inspector_addresses(self.store)
            self._registered = tuple(listener for host, port in rows for listener in listeners_of(host, port))
        resolved = [listener for addresses in self._resolved.values() for listener in addresses]
        listeners = Listeners([*self.configured, *resolved, *self._registered])
        if listeners != self.listeners:
            self.listeners = listeners
            logger.info("refusing to forward to inspectors at %s", ", ".join(sorted(map(str, listeners))))

    def _resolve_configured(self) -> None:
        for listener in self.configured:
            if isinstance(listener.host, str):
                try:
                    answers = self.lookup(listener.host, listener.port)
                except (OSError, UnicodeError):
                    continue  # the last answer (or the name alone) stays refused
                self._resolved[listener] = tuple(Listener(_address(answer), listener.port) for answer in answers)

    def running(self) -> None:
        # proxy.runner read them before serving (inspector_guard): the next read is an interval away.
        self.refresher.start(first_read_wait=None)

    def done(self) -> None:
        self.refresher.stop()

    # --- the checks (on the event loop) ---

    def reached(self, host: str, port: int) -> Listener | None | str:
        """The listener host:port reaches; None when it reaches none; `host` itself when it is a
        name that only resolving can judge. Only call with a port in self.listeners.ports."""
        address = ip_literal(host)
        if address is not None:
            return self.listeners.reached_by(address, port, is_own=self.is_own)
        name = host.lower().removesuffix(".")
        listener = self.listeners.reached_by(name, port, is_own=self.is_own)
        if listener is not None or is_loopback_name(name):
            return listener
        return name

    async def reached_after_resolving(self, name: str, port: int) -> tuple[Listener | None, list[str]]:
        """Resolve `name` off the loop: the listener any of its addresses reaches, and the addresses.
        OSError when it does not resolve."""
        answers = await asyncio.get_running_loop().run_in_executor(None, self.lookup, name, port)
        if not answers:
            raise OSError(f"{name} resolves to no address")
        for answer in answers:
            listener = self.listeners.reached_by(_address(answer), port, is_own=self.is_own)
            if listener is not None:
                return listener, answers
        return None, answers

    def refuse(self, flow: http.HTTPFlow, listener: Listener) -> None:
        request = flow.request
        logger.warning(
            "refused %s %s from %s: it reaches the inspector at %s",
            request.method, _authority(request.host, request.port), flow.client_conn.peername, listener,
        )  # fmt: skip
        flow.metadata[META_ERROR_KIND] = "killed"
        flow.metadata[META_ERROR_MESSAGE] = f"refused: the target is an inspector ({listener})"
        flow.response = refusal_response(listener)

    def requestheaders(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.response is not None or flow.request.port not in self.listeners.ports:
            return None
        return self._check_request(flow)

    def http_connect(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        return self.requestheaders(flow)

    def _check_request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        found = self.reached(flow.request.host, flow.request.port)
        if isinstance(found, Listener):
            self.refuse(flow, found)
        elif isinstance(found, str):
            return self._check_request_name(flow, found)
        return None

    async def _check_request_name(self, flow: http.HTTPFlow, name: str) -> None:
        # Only for a nicer answer: server_connect checks (and pins) again where it counts.
        try:
            listener, _ = await self.reached_after_resolving(name, flow.request.port)
        except (OSError, UnicodeError):
            return
        if listener is not None:
            self.refuse(flow, listener)

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> Awaitable[None] | None:
        server = data.server
        if server.address is None or server.address[1] not in self.listeners.ports or server.error:
            return None
        host, port = server.address
        try:
            # libc's own reading of a literal (no DNS): the connection will read it the same way.
            numeric = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        except (OSError, UnicodeError):
            return self._check_connection_name(data, host, port)
        for *_, sockaddr in numeric:
            listener = self.listeners.reached_by(_address(sockaddr[0]), port, is_own=self.is_own)
            if listener is not None:
                self._kill(data, listener)
                return None
        return None

    async def _check_connection_name(self, data: server_hooks.ServerConnectionHookData, name: str, port: int) -> None:
        server = data.server
        try:
            listener, answers = await self.reached_after_resolving(name, port)
        except (OSError, UnicodeError) as exc:
            # Refused rather than left to a second lookup, which could answer differently.
            server.error = f"refused: cannot resolve {name} ({exc}) at an inspector's port"
            return
        if listener is not None:
            self._kill(data, listener)
            return
        # Connect to what was checked. The name stays the TLS server name.
        if server.sni is None:
            server.sni = data.client.sni or name
        server.address = (answers[0], port)

    def _kill(self, data: server_hooks.ServerConnectionHookData, listener: Listener) -> None:
        address = _authority(*data.server.address)
        logger.warning("refused a connection to %s from %s: it reaches the inspector at %s", address, data.client.peername, listener)
        data.server.error = f"refused: {address} is an inspector ({listener})"
