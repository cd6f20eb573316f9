"""HealthProbes: probes each service's health path and records the outcomes in the store.

Passageway observes, it does not decide: a service that is down still gets its traffic; the
probes only feed the services overview (storage.services).

Threads: the probes run on one thread of their own, with its own small asyncio loop and one
httpx.AsyncClient. Many services cost one thread and a task each, a hung upstream ties up
nothing but its own task, and a probe's timeout is a plain asyncio deadline. Database work
(registering, writing samples, pruning) runs on a second, single worker thread, so a slow or
locked database delays neither mitmproxy's event loop nor the probes' timing. mitmproxy's
loop only starts and stops the threads.

Probes go straight to the upstream (upstream URL + base path + health path) with the proxy's
upstream TLS settings, never through the proxy, so they are not captured as traffic, and
ignore HTTP(S)_PROXY. A 2xx or 3xx answer within the timeout is up; anything else is down,
with the reason. Samples wait in a bounded buffer and are written in small batches; while
the database is away the oldest are dropped beyond `max_pending`, counted and logged once
per outage.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import logging
import os
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

from storage.services import (
    ProbeSample,
    one_line_error,
    prune_health,
    record_health,
    register_services,
    touch_registrations,
)
from storage.store import Store, one_line

from .routing import Service

logger = logging.getLogger(__name__)

T = TypeVar("T")

REFRESH_INTERVAL = 60.0
"""Seconds between refreshes of this proxy's registrations (storage.services.STALE_AFTER is 3 min)."""
KEEP_SAMPLES = dt.timedelta(days=7)
PRUNE_INTERVAL = 3600.0
PRUNE_BATCH = 500
PRUNE_MAX_BATCHES = 4
WRITE_BATCH = 100
MAX_PENDING = 10_000
STOP_TIMEOUT = 5.0


def probe_url(service: Service) -> str:
    """Where a service's health is probed: its upstream URL, base path, then the health path."""
    assert service.health is not None
    return service.upstream.url + service.health.path


def registration(service: Service) -> dict[str, Any]:
    """A service as storage.services.register_services wants it."""
    listen = None
    if service.listen is not None:
        host, port = service.listen
        listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return {
        "service": service.name,
        "upstream": service.upstream.url,
        "health_path": service.health.path if service.health else None,
        "health_interval": service.health.interval if service.health else None,
        "listen": listen,
    }


def status_is_up(status: int) -> bool:
    return 200 <= status < 400


def failure_reason(exc: BaseException, *, timeout: float) -> str:
    """Why a probe got no answer, in one line."""
    if isinstance(exc, (TimeoutError, httpx.TimeoutException)):
        return f"timed out after {timeout:g} s"
    causes = []
    cause: BaseException | None = exc
    while cause is not None and len(causes) < 10:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {one_line(cause)}"
    if isinstance(exc, httpx.ConnectError):
        # The OS's reason ("connection refused") rather than anyio's "all connection attempts failed".
        errno = next((c.errno for c in causes if isinstance(c, OSError) and c.errno), None)
        return f"cannot connect: {os.strerror(errno).lower() if errno else one_line(exc)}"
    return f"{type(exc).__name__}: {one_line(exc)}"


FIRST_PROBE_SPREAD = 2.0
"""Seconds over which the first probes of all services are spread: soon after start (a fresh
proxy's services are not "unknown" for a whole interval), yet not all at once."""


def first_delay(interval: float, rng: random.Random) -> float:
    """A random start within the first interval, at most FIRST_PROBE_SPREAD seconds."""
    return rng.uniform(0, min(interval, FIRST_PROBE_SPREAD))


def tls_verify(upstream_ca: Path | None, upstream_insecure: bool) -> ssl.SSLContext | bool:
    """httpx's `verify` for the proxy's upstream TLS settings (as mitmproxy applies them)."""
    if upstream_insecure:
        return False
    if upstream_ca is not None:
        return ssl.create_default_context(cafile=str(upstream_ca))
    return True


class HealthProbes:
    """mitmproxy addon: probes every service with a health path; registers all of them."""

    def __init__(
        self,
        store: Store,
        *,
        proxy_name: str,
        realm: str | None,
        services: Mapping[str, Service],
        upstream_ca: Path | None = None,
        upstream_insecure: bool = False,
        flush_interval: float = 1.0,
        refresh_interval: float = REFRESH_INTERVAL,
        prune_interval: float = PRUNE_INTERVAL,
        max_pending: int = MAX_PENDING,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.proxy_name = proxy_name
        self.realm = realm
        self.services = dict(services)
        self.verify = tls_verify(upstream_ca, upstream_insecure)
        self.flush_interval = flush_interval
        self.refresh_interval = refresh_interval
        self.prune_interval = prune_interval
        self.max_pending = max_pending
        self.rng = rng or random.Random()
        # Counters, read by tests and by whoever wants them.
        self.probes = 0
        self.failures = 0
        self.written = 0
        self.dropped = 0
        self.database_errors = 0
        self.states: dict[str, bool] = {}
        """Each probed service's latest state: True up, False down."""
        self.registered = threading.Event()
        self._pending: deque[ProbeSample] = deque()
        self._database_down = False
        self._dropped_in_outage = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._database = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="passageway-health-db")

    # --- mitmproxy hooks (on mitmproxy's event loop: only start and stop threads) ---

    def running(self) -> None:
        if self._thread is not None:
            return
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name="passageway-health", daemon=True)
        self._thread.start()
        started.wait(STOP_TIMEOUT)

    def done(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        thread.join(STOP_TIMEOUT)
        self._database.shutdown(wait=False, cancel_futures=True)

    # --- the probe thread ---

    def _run(self, started: threading.Event) -> None:
        try:
            asyncio.run(self._main(started))
        except Exception:  # noqa: BLE001 - never take the proxy down; say why probing stopped
            logger.exception("health probes stopped")
        finally:
            started.set()

    async def _main(self, started: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        started.set()
        probed = [s for s in self.services.values() if s.health is not None]
        # A fresh connection per probe: a probe measures what a new client meets (connect, TLS),
        # and an idle kept-alive connection the upstream closed cannot fail a probe falsely.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(verify=self.verify, trust_env=False, follow_redirects=False, limits=limits) as client:
            probes = [asyncio.create_task(self._probe_forever(client, s), name=f"health-{s.name}") for s in probed]
            await self._database_work(self._stop)
            for task in probes:
                task.cancel()
            await asyncio.gather(*probes, return_exceptions=True)
        await self._flush()  # what the last interval probed

    async def _probe_forever(self, client: httpx.AsyncClient, service: Service) -> None:
        assert service.health is not None
        interval = service.health.interval
        next_at = time.monotonic() + first_delay(interval, self.rng)
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            self._add(await self.probe(client, service))
            if next_at < time.monotonic():  # a probe longer than its interval: no burst to catch up
                next_at = time.monotonic() + interval

    async def probe(self, client: httpx.AsyncClient, service: Service) -> ProbeSample:
        """Probe `service` once; never raises."""
        assert service.health is not None
        timeout = service.health.timeout
        checked_at = dt.datetime.now(dt.UTC)
        start = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(timeout):
                # Headers only: the status is the answer; a large or endless body is not read.
                async with client.stream("GET", probe_url(service), timeout=timeout) as response:
                    status = response.status_code
        except Exception as exc:  # noqa: BLE001 - every failure is a down sample with its reason
            error = failure_reason(exc, timeout=timeout)
        latency_ms = round((time.perf_counter() - start) * 1000, 3)
        ok = status is not None and status_is_up(status)
        if status is not None and not ok:
            error = f"HTTP {status}"
        self.probes += 1
        if not ok:
            self.failures += 1
        self._note_state(service.name, ok, error)
        return ProbeSample(
            self.proxy_name, self.realm, service.name, checked_at, ok, status,
            latency_ms if status is not None else None, one_line_error(error),
        )  # fmt: skip

    def _note_state(self, name: str, ok: bool, error: str | None) -> None:
        previous = self.states.get(name)
        self.states[name] = ok
        if previous == ok or (previous is None and ok):
            return
        if ok:
            logger.info("service %s is back up", name)
        else:
            logger.warning("service %s is down: %s", name, error)

    def _add(self, sample: ProbeSample) -> None:
        self._pending.append(sample)
        self._trim()

    def _trim(self) -> None:
        """Drop the oldest samples beyond max_pending (the newest say more about now)."""
        excess = len(self._pending) - self.max_pending
        if excess <= 0:
            return
        for _ in range(excess):
            self._pending.popleft()
        self.dropped += excess
        if self._dropped_in_outage == 0:
            logger.warning(
                "health samples are being dropped while the database is unavailable (keeping the newest %d)",
                self.max_pending,
            )
        self._dropped_in_outage += excess

    # --- database work, on the database thread ---

    async def _in_database_thread(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._database, work)

    async def _database_work(self, stop: asyncio.Event) -> None:
        """Register, write and prune until `stop` is set (between steps: none is cut short)."""
        refresh_at = prune_at = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if now >= refresh_at:
                if await self._refresh_registrations():
                    refresh_at = now + self.refresh_interval
            await self._flush()
            if now >= prune_at and not self._database_down:
                await self._prune()
                prune_at = now + self.prune_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.flush_interval)

    async def _refresh_registrations(self) -> bool:
        """Register at start (and whenever the rows have gone), else refresh them; False on failure."""
        services = [registration(s) for s in self.services.values()]

        def work() -> None:
            if self.registered.is_set() and touch_registrations(self.store, proxy=self.proxy_name) > 0:
                return
            register_services(self.store, proxy=self.proxy_name, realm=self.realm, services=services)

        if await self._database_call(work, "cannot register services"):
            self.registered.set()
            return True
        return False

    async def _flush(self) -> None:
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(WRITE_BATCH, len(self._pending)))]
            if not await self._database_call(lambda: record_health(self.store, samples=batch), "cannot write health samples"):
                self._pending.extendleft(reversed(batch))
                self._trim()
                return
            self.written += len(batch)

    async def _prune(self) -> None:
        cutoff = dt.datetime.now(dt.UTC) - KEEP_SAMPLES
        await self._database_call(
            lambda: prune_health(self.store, older_than=cutoff, batch_size=PRUNE_BATCH, max_batches=PRUNE_MAX_BATCHES),
            "cannot prune health samples",
        )

    async def _database_call(self, work: Callable[[], object], what: str) -> bool:
        """Run `work` on the database thread; False when it failed (logged once per outage)."""
        try:
            await self._in_database_thread(work)
        except Exception as exc:  # noqa: BLE001 - the database may be away; try again later
            self.database_errors += 1
            if not self._database_down:
                self._database_down = True
                logger.warning("%s: %s (will retry)", what, one_line(exc))
            return False
        if self._database_down:
            self._database_down = False
            logger.info("database reachable again: %d health sample(s) were dropped meanwhile", self._dropped_in_outage)
            self._dropped_in_outage = 0
        return True
