"""Routes from the registry and balancing across instances, as pure logic over plain data.

The registry (storage.registry) lists the instances of each self-registered service; a proxy
reads it off its event loop (proxy.registry_routes) and turns the rows into a `RouteTable` here:
one `Pool` per service name, its instances as `Endpoint`s. Configured services win over a
registration of the same name, so those names are left out of the table (and kept as
`shadowed`, to say so).

`Balancer` picks an instance per request, on the event loop, and keeps what it learns:

- Round robin over the instances that can take traffic. Chosen over least-outstanding requests
  because it keeps no per-request state: a count of open requests must be given back by a
  response or error hook, and flows that never finish (WebSockets, server-sent events, flows
  killed or cut off by a stopping proxy) would leak counts and starve an instance for good. The
  instances of one service in dev and staging are copies of one build on similar machines, where
  round robin spreads load as well; each proxy starts its rotation at a random place so that
  several proxies do not send their first requests to the same instance.
- Passive ejection: `eject_after` connection failures in a row (refused, unreachable, timed out
  before connecting) take an instance out of the rotation; any connection it accepts resets the
  count. An ejected instance comes back when a probe of its health path (or a TCP connect, when
  it has none) succeeds, or when a request that reached it anyway connected.
- Preference tiers: instances neither ejected nor declaring themselves unready (`ready: false`
  in their heartbeat) first; then the unready ones that are not ejected; and when every instance
  is ejected, all of them ("fail open", as Envoy's panic threshold does): ejection is a guess from
  a few failures, a request still gets its chance at an instance that came back before the probe
  saw it, and when none has, the client gets the same 502 `connect_failed` it would have got from
  the instance itself, which smart clients retry.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from .routing import RouteError, Upstream, check_service_name, parse_health_path, parse_upstream

DEFAULT_EJECT_AFTER = 3
"""Connection failures in a row that eject an instance: a refused connection is unambiguous, and
each one costs a client a retry."""

CONNECTION_FAILURES = frozenset({"connect_failed", "timeout"})
"""Error kinds (proxy.flow_record.classify_error) that, before any connection was made, count
against an instance. A client that went away or a flow killed by an addon say nothing about it."""


class RegistryRow(Protocol):
    """What the table is built from (storage.registry.Routable)."""

    name: str
    instance: str
    url: str
    health: str | None
    ready: bool | None


def host_header(upstream: Upstream) -> str:
    """The Host an upstream is sent: its host, and its port unless the scheme's default."""
    host = f"[{upstream.host}]" if ":" in upstream.host else upstream.host
    default = 443 if upstream.scheme == "https" else 80
    return host if upstream.port == default else f"{host}:{upstream.port}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One instance of a registered service, as the proxy routes to it. Equal across table
    refreshes while the instance keeps its id, URL and health path, so what the balancer learned
    about it (failures, ejection) survives a refresh."""

    service: str
    instance: str
    upstream: Upstream
    health: str | None
    """Health path from '/', after the upstream's base path; None: probed by a TCP connect."""
    authority: str = field(compare=False)
    """The Host header requests to it carry (host_header(upstream))."""


@dataclass(frozen=True, slots=True)
class Pool:
    """The instances of one service, sorted by instance id."""

    name: str
    endpoints: tuple[Endpoint, ...]
    unready: frozenset[Endpoint] = frozenset()
    """Instances whose last heartbeat said `ready: false`."""


@dataclass(frozen=True, slots=True)
class RouteTable:
    """An immutable snapshot of the registry's routes: swapped whole, never changed."""

    pools: Mapping[str, Pool]
    shadowed: frozenset[str] = frozenset()
    """Registered names left out because a configured service of that name wins and points
    elsewhere. An instance at the configured address is that service announcing itself: no
    conflict, and the configured route serves it all the same."""
    skipped: tuple[str, ...] = ()
    """Why rows were left out (a malformed URL or name), one line each."""

    def same_routes(self, other: RouteTable) -> bool:
        return self.pools == other.pools and self.shadowed == other.shadowed


EMPTY_TABLE = RouteTable(MappingProxyType({}))


def build_table(rows: Iterable[RegistryRow], *, configured: Mapping[str, Upstream]) -> RouteTable:
    """The route table for `rows` (the up instances of this proxy's realm). Hostile rows are left
    out with a reason: the registry takes what any client posts."""
    members: dict[str, list[tuple[Endpoint, bool | None]]] = {}
    shadowed: set[str] = set()
    skipped: list[str] = []
    for row in rows:
        try:
            name = check_service_name(row.name)
            upstream = parse_upstream(row.url)
        except RouteError as e:
            skipped.append(f"instance {row.instance!r} of {row.name!r}: {e}")
            continue
        if name in configured:
            if upstream != configured[name]:
                shadowed.add(name)
            continue
        health = None
        if row.health:
            try:
                health = parse_health_path(row.health)
            except RouteError as e:
                skipped.append(f"instance {row.instance!r} of {name!r}: {e}; probed by a TCP connect instead")
        endpoint = Endpoint(name, row.instance, upstream, health, host_header(upstream))
        members.setdefault(name, []).append((endpoint, row.ready))
    pools = {}
    for name, entries in members.items():
        entries.sort(key=lambda entry: entry[0].instance)
        pools[name] = Pool(
            name,
            tuple(endpoint for endpoint, _ in entries),
            frozenset(endpoint for endpoint, ready in entries if ready is False),
        )
    return RouteTable(MappingProxyType(pools), frozenset(shadowed), tuple(skipped))


def connection_outcome(*, connected: bool, error_kind: str | None) -> bool | None:
    """What one exchange says about its instance: True it accepted a connection, False a
    connection to it failed, None nothing (the client left, an addon answered or killed it)."""
    if connected:
        return True
    if error_kind in CONNECTION_FAILURES:
        return False
    return None


class Balancer:
    """Picks an instance per request and keeps the failure counts and ejections.

    Used only on the proxy's event loop. `ejected` is replaced (never changed in place) so that
    the probing thread may read it at any time."""

    def __init__(self, *, eject_after: int = DEFAULT_EJECT_AFTER, rng: random.Random | None = None) -> None:
        if eject_after < 1:
            raise ValueError("eject_after must be at least 1")
        self.eject_after = eject_after
        self.rng = rng or random.Random()
        self.ejected: frozenset[Endpoint] = frozenset()
        self._failures: dict[Endpoint, int] = {}
        self._turn: dict[str, int] = {}

    def candidates(self, pool: Pool) -> tuple[Endpoint, ...]:
        """The instances of the best tier that has any (see the module's doc)."""
        endpoints = pool.endpoints
        if not self.ejected and not pool.unready:
            return endpoints
        connectable = tuple(e for e in endpoints if e not in self.ejected)
        ready = tuple(e for e in connectable if e not in pool.unready)
        return ready or connectable or endpoints

    def pick(self, pool: Pool) -> Endpoint:
        candidates = self.candidates(pool)
        turn = self._turn.get(pool.name)
        if turn is None:
            turn = self.rng.randrange(len(candidates))
        self._turn[pool.name] = turn + 1
        return candidates[turn % len(candidates)]

    def failed(self, endpoint: Endpoint) -> bool:
        """A connection to `endpoint` failed; True when this ejects it."""
        if endpoint in self.ejected:
            return False
        count = self._failures.get(endpoint, 0) + 1
        if count < self.eject_after:
            self._failures[endpoint] = count
            return False
        self._failures.pop(endpoint, None)
        self.ejected = self.ejected | {endpoint}
        return True

    def connected(self, endpoint: Endpoint) -> bool:
        """`endpoint` accepted a connection; True when that brings it back."""
        self._failures.pop(endpoint, None)
        return self.readmit(endpoint)

    def readmit(self, endpoint: Endpoint) -> bool:
        """Back into the rotation (a probe succeeded); True when it was ejected."""
        if endpoint not in self.ejected:
            return False
        self.ejected = self.ejected - {endpoint}
        return True

    def retain(self, table: RouteTable) -> None:
        """Forget what was learned about instances and services no longer in `table`."""
        present = {endpoint for pool in table.pools.values() for endpoint in pool.endpoints}
        self._failures = {e: n for e, n in self._failures.items() if e in present}
        if not self.ejected <= present:
            self.ejected = self.ejected & present
        self._turn = {name: turn for name, turn in self._turn.items() if name in table.pools}

    def failures(self, endpoint: Endpoint) -> int:
        """Connection failures in a row so far (0 once ejected)."""
        return self._failures.get(endpoint, 0)
