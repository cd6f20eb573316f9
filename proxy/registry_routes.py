"""RegistryRoutes: routes to self-registered services, learned from the store off the event loop.

Threads: a proxy.refresher.Refresher reads the registry (storage.registry.routable: this proxy's
realm, the instances that are up) every `refresh_interval` seconds, builds a new immutable table
(proxy.balancing.build_table) and swaps it in as `table`; while the database is away the last
table stays, and the outage is logged once. A second thread probes the ejected instances every
`probe_interval` seconds (the health path, or a TCP connect when an instance has none) and hands
each success back to the event loop. mitmproxy's loop only reads `table` (an attribute read),
picks an instance (proxy.balancing.Balancer) and counts connection outcomes; it never waits on
the database or the network for routing.

The Router (proxy.router) asks `route(name)` only for names no configured service has, so a proxy
without registered services pays one dict lookup for a gateway miss, and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from mitmproxy import http

from storage.registry import routable
from storage.store import Store

from .balancing import DEFAULT_EJECT_AFTER, EMPTY_TABLE, Balancer, Endpoint, RouteTable, build_table, connection_outcome
from .flow_record import META_ERROR_KIND, classify_error
from .health import status_is_up, tls_verify
from .refresher import STOP_TIMEOUT, Refresher
from .routing import Upstream

logger = logging.getLogger(__name__)

REFRESH_INTERVAL = 2.0
"""Seconds between two reads of the registry: how soon a registration reaches this proxy."""
PROBE_INTERVAL = 1.0
"""Seconds between two probes of each ejected instance."""
PROBE_TIMEOUT = 2.0
PROBE_WORKERS = 8
"""Ejected instances probed at once (a black-holed one waits out its timeout without delaying the others)."""
FIRST_READ_WAIT = 2.0
"""How long start-up waits for the first read, so a fresh proxy routes what is registered at once."""

META_ENDPOINT = "passageway.endpoint"
"""The Endpoint a flow was sent to, until its connection outcome is counted."""


def registered_endpoints(table: RouteTable, service: str) -> tuple[Endpoint, ...]:
    pool = table.pools.get(service)
    return pool.endpoints if pool is not None else ()


class RegistryRoutes:
    """mitmproxy addon: the registry's route table, the balancer, and the threads that feed them."""

    def __init__(
        self,
        store: Store,
        *,
        realm: str | None,
        configured: Mapping[str, Upstream],
        eject_after: int = DEFAULT_EJECT_AFTER,
        upstream_ca: Path | None = None,
        upstream_insecure: bool = False,
        refresh_interval: float = REFRESH_INTERVAL,
        probe_interval: float = PROBE_INTERVAL,
        probe_timeout: float = PROBE_TIMEOUT,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.realm = realm
        self.configured = dict(configured)
        self.verify = tls_verify(upstream_ca, upstream_insecure)
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.table: RouteTable = EMPTY_TABLE
        """Swapped whole by the refresh thread; read (never changed) on the event loop."""
        self.balancer = Balancer(eject_after=eject_after, rng=rng)
        self._retained: RouteTable = EMPTY_TABLE
        self._loop: asyncio.AbstractEventLoop | None = None
        self.refresher = Refresher(
            self.read,
            what="the service registry",
            keeping=lambda: f"routing by the last {len(self.table.pools)} service(s) read",
            interval=refresh_interval,
            thread_name="passageway-registry",
            logger=logger,
        )
        self._stop = threading.Event()
        self._prober: threading.Thread | None = None
        self._reported_skips: frozenset[str] = frozenset()

    # --- mitmproxy hooks (on the event loop) ---

    def running(self) -> None:
        if self._prober is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._stop.clear()
        self._prober = threading.Thread(target=self._probe_forever, name="passageway-registry-probes", daemon=True)
        self._prober.start()
        self.refresher.start(first_read_wait=FIRST_READ_WAIT)

    def done(self) -> None:
        self.refresher.stop()
        prober, self._prober = self._prober, None
        self._stop.set()
        if prober is not None:
            prober.join(STOP_TIMEOUT)

    def route(self, name: str) -> Endpoint | None:
        """The instance of registered service `name` this request goes to; None if none is registered."""
        table = self.table
        if table is not self._retained:  # a new table: drop what was learned about departed instances
            self.balancer.retain(table)
            self._retained = table
        pool = table.pools.get(name)
        return None if pool is None else self.balancer.pick(pool)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if (endpoint := flow.metadata.pop(META_ENDPOINT, None)) is not None:
            self._count(endpoint, connected=True, error_kind=None)

    def error(self, flow: http.HTTPFlow) -> None:
        if (endpoint := flow.metadata.pop(META_ENDPOINT, None)) is not None:
            kind = flow.metadata.get(META_ERROR_KIND) or (classify_error(flow.error.msg) if flow.error else None)
            self._count(endpoint, connected=flow.server_conn.timestamp_tcp_setup is not None, error_kind=kind)

    def _count(self, endpoint: Endpoint, *, connected: bool, error_kind: str | None) -> None:
        outcome = connection_outcome(connected=connected, error_kind=error_kind)
        if outcome is True and self.balancer.connected(endpoint):
            logger.info(
                "instance %s of %s (%s) accepts connections again",
                endpoint.instance, endpoint.service, endpoint.upstream.url,
            )  # fmt: skip
        elif outcome is False and self.balancer.failed(endpoint):
            logger.warning(
                "instance %s of %s (%s) is ejected after %d connection failures in a row; probing it",
                endpoint.instance, endpoint.service, endpoint.upstream.url, self.balancer.eject_after,
            )  # fmt: skip

    def _readmit(self, endpoint: Endpoint) -> None:
        """On the event loop: a probe of `endpoint` succeeded."""
        if self.table.pools.get(endpoint.service) is None:
            return
        if self.balancer.readmit(endpoint):
            logger.info(
                "instance %s of %s (%s) answers its probe: back in the rotation",
                endpoint.instance, endpoint.service, endpoint.upstream.url,
            )  # fmt: skip

    # --- the refresh thread ---

    def refresh(self) -> bool:
        """Read the registry once and swap in the new table if it changed; False when the read failed."""
        return self.refresher.read_once()

    def read(self) -> None:
        """Read the registry (blocking) and swap in the new table if it changed; raises what the store raises."""
        table = build_table(routable(self.store, realm=self.realm), configured=self.configured)
        self._report(table)
        if not table.same_routes(self.table):
            self.table = table

    def _report(self, table: RouteTable) -> None:
        """Log what changed about the services (rare), and each malformed row once."""
        old = self.table
        for name in sorted(table.pools.keys() - old.pools.keys()):
            logger.info("registered service %s is routable: %d instance(s)", name, len(table.pools[name].endpoints))
        for name in sorted(old.pools.keys() - table.pools.keys()):
            logger.info("registered service %s is no longer routable: no instance is up", name)
        for name in sorted(table.shadowed - old.shadowed):
            logger.warning("service %s is registered at another address than it is configured with: the configured route wins", name)
        skips = frozenset(table.skipped)
        for reason in sorted(skips - self._reported_skips):
            logger.warning("a registration is not routable: %s", reason)
        self._reported_skips = skips

    # --- the probe thread ---

    def _probe_forever(self) -> None:
        # A fresh connection per probe: a probe must see whether the instance accepts new ones.
        limits = httpx.Limits(max_keepalive_connections=0)
        with (
            httpx.Client(verify=self.verify, trust_env=False, follow_redirects=False, limits=limits) as client,
            ThreadPoolExecutor(PROBE_WORKERS, thread_name_prefix="passageway-registry-probe") as workers,
        ):
            while not self._stop.wait(self.probe_interval):
                # Replaced whole on the loop, never changed in place: safe to read from here.
                table = self.table
                ejected = tuple(e for e in self.balancer.ejected if e in registered_endpoints(table, e.service))
                if not ejected:
                    continue
                for endpoint, ok in zip(ejected, workers.map(lambda e: self.probe(client, e), ejected), strict=True):
                    if ok and self._loop is not None:
                        with contextlib.suppress(RuntimeError):  # the loop has ended: the proxy is stopping
                            self._loop.call_soon_threadsafe(self._readmit, endpoint)

    def probe(self, client: httpx.Client, endpoint: Endpoint) -> bool:
        """True when `endpoint` answers its health path with 2xx/3xx (or accepts a TCP connection,
        when it has no health path) within the probe timeout. Never raises."""
        upstream = endpoint.upstream
        try:
            if endpoint.health is None:
                with socket.create_connection((upstream.host, upstream.port), timeout=self.probe_timeout):
                    return True
            # Headers only: the status is the answer.
            with client.stream("GET", upstream.url + endpoint.health, timeout=self.probe_timeout) as response:
                return status_is_up(response.status_code)
        except (OSError, httpx.HTTPError):
            return False
