"""The inspector's entry in storage.inspectors: where it listens, so that every proxy sharing the
database refuses to forward there, however the proxy was configured.

Registered before the inspector serves, refreshed every storage.inspectors.HEARTBEAT, removed when
it stops. A wildcard bind (0.0.0.0, ::) also registers this machine's own addresses: a proxy on
another machine cannot know them otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import secrets
import socket
from collections.abc import Iterable

from passageway.addresses import IPAddress, local_addresses
from storage.inspectors import HEARTBEAT, register_inspector, touch_inspector, unregister_inspector
from storage.store import Store, one_line

log = logging.getLogger(__name__)


def registered_addresses(host: str, port: int, machine_addresses: Iterable[IPAddress]) -> list[tuple[str, int]]:
    """What to register for a socket bound to host:port (host as getsockname gives it)."""
    bound = ipaddress.ip_address(host.partition("%")[0])
    if not bound.is_unspecified:
        return [(str(bound), port)]
    # On the same machine the wildcard row covers loopback; elsewhere loopback is someone else's.
    own = sorted((a for a in machine_addresses if not a.is_loopback), key=lambda a: (a.version, int(a)))
    return [(str(bound), port), *((str(address), port) for address in own)]


class InspectorRegistration:
    """Registers one listening socket's addresses, keeps them fresh, and removes them."""

    def __init__(self, store: Store, sock: socket.socket, *, heartbeat: float = HEARTBEAT.total_seconds()) -> None:
        self.store = store
        self.machine = socket.gethostname()
        self.inspector = f"{self.machine}:{os.getpid()}:{secrets.token_hex(4)}"
        self.host, self.port = sock.getsockname()[:2]
        self.heartbeat = heartbeat
        self.addresses: list[tuple[str, int]] = []
        self._task: asyncio.Task | None = None
        self._failing = False

    async def start(self) -> None:
        """Register (raises what the database raises), then keep the rows fresh."""
        await asyncio.to_thread(self._register)
        self._task = asyncio.create_task(self._keep_fresh(), name="passageway-inspector-registration")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await asyncio.to_thread(unregister_inspector, self.store, inspector=self.inspector)
        except Exception as exc:  # noqa: BLE001 - the rows go stale by themselves
            log.warning("cannot remove the inspector's address registration: %s", one_line(exc))

    def _register(self) -> None:
        machine_addresses = local_addresses() if ipaddress.ip_address(self.host.partition("%")[0]).is_unspecified else ()
        self.addresses = registered_addresses(self.host, self.port, machine_addresses)
        register_inspector(self.store, inspector=self.inspector, machine=self.machine, addresses=self.addresses)

    def _refresh(self) -> None:
        if touch_inspector(self.store, inspector=self.inspector) == 0:
            self._register()

    async def _keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await asyncio.to_thread(self._refresh)
            except Exception as exc:  # noqa: BLE001 - the database may be away; try again next beat
                if not self._failing:
                    log.warning("cannot refresh the inspector's address registration: %s (will retry)", one_line(exc))
                self._failing = True
            else:
                self._failing = False
