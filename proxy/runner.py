"""Runs the proxy: mitmproxy's master with the Router, the inspector guard, Tracing, Faults,
Capture, Mocks and the health probes."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from mitmproxy import options
from mitmproxy.addons import core, disable_h2c, errorcheck, next_layer, proxyserver, tlsconfig, update_alt_svc
from mitmproxy.master import Master

from storage.errors import StorageError
from storage.pure.redaction import record_redactor, rules_from_config
from storage.shares import redaction_key
from storage.spool import Spool, SpoolError, worker_spool_dir
from storage.spool_handoff import SpoolAppender
from storage.store import Store, open_store
from storage.writer import ExchangeWriter

from . import mitmproxy_fixes, shared_ports
from .capture import Capture
from .errors import StartError
from .faults import Faults
from .health import HealthProbes
from .inspector_guard import InspectorGuard
from .listen import check_bindable, listen_addresses
from .mocks import Mocks
from .registry_routes import RegistryRoutes
from .router import Router, forward_mode, gateway_mode, service_mode
from .settings import ProxySettings
from .tracing import Tracing

logger = logging.getLogger(__name__)


def proxy_modes(settings: ProxySettings) -> list[str]:
    modes = [gateway_mode(settings.listen)]
    modes += [service_mode(s) for s in settings.services.values() if s.listen is not None]
    if settings.forward_port is not None:
        modes.append(forward_mode(settings.listen[0], settings.forward_port))
    return modes


def run_proxy(settings: ProxySettings, *, on_ready: Callable[[], None] | None = None) -> None:
    """Run until SIGINT/SIGTERM. Raises StartError/StorageError for user mistakes. `on_ready`:
    called once every listener is up (the supervisor's worker waits for it)."""
    if settings.worker is None:
        for what, address in listen_addresses(settings):
            check_bindable(what, address)
    else:  # the supervisor checked the addresses; the workers share them
        shared_ports.install()
    mitmproxy_fixes.install()
    store = open_store(settings.db)
    transform = None
    if settings.redact_at_capture:
        # In the writer thread, not on the event loop: redaction decodes and scans bodies.
        rules = rules_from_config(settings.redact_add, settings.redact_remove).with_values(*settings.secrets.values())
        transform = record_redactor(rules, redaction_key(store), decode_limit=settings.max_decoded_body)
    spool = None
    # A worker hands its records to the writer process through its spool; without a disk spool
    # there is no hand-off, and it writes them itself.
    hand_off = settings.worker is not None and bool(settings.spool_max_bytes) and settings.spool_dir is not None
    if settings.spool_max_bytes and settings.spool_dir is not None:
        directory = worker_spool_dir(settings.spool_dir, settings.worker) if hand_off else settings.spool_dir
        try:
            if hand_off:  # spool_max_bytes is the proxy's: its workers share it
                spool = Spool(directory, max_bytes=max(1, settings.spool_max_bytes // settings.workers), shared=True)
            else:
                spool = Spool(directory, max_bytes=settings.spool_max_bytes)
        except SpoolError as e:
            store.close()
            raise StartError(str(e)) from None
        if spool.pending_records and not hand_off:
            logger.warning(
                "writing %d record(s) left in the spool %s by the last run", spool.pending_records, spool.directory
            )
    try:
        guard = inspector_guard(settings, store)
    except (StorageError, StartError):
        store.close()
        raise
    writer: ExchangeWriter
    if hand_off:
        assert spool is not None
        writer = SpoolAppender(store, spool=spool, transform=transform)
    else:
        writer = ExchangeWriter(
            store, transform=transform, report_as=settings.proxy_name, spool=spool, decode_limit=settings.max_decoded_body
        )
    try:
        asyncio.run(_serve(settings, writer, guard, on_ready))
    finally:
        writer.close()
        store.close()


def inspector_guard(settings: ProxySettings, store: Store) -> InspectorGuard:
    """The guard, with every inspector known at start loaded before anything is served."""
    guard = InspectorGuard(store, configured=[settings.ui])
    try:
        guard.reload()
    except StorageError as e:
        raise type(e)(f"cannot read the inspectors' addresses from {store.display_url}: {e}") from None
    for service in settings.services.values():
        upstream = service.upstream
        if upstream.port in guard.listeners.ports and (listener := guard.reached(upstream.host, upstream.port)):
            if not isinstance(listener, str):  # a name is judged per request, once resolved
                logger.warning("service %r points at an inspector (%s): its requests will be refused", service.name, listener)
    return guard


def mitmproxy_addons() -> list[object]:
    """The few of mitmproxy's default addons a capturing proxy needs.

    mitmproxy offers every hook of every request to every addon; the other two
    dozen defaults (replay, map local, sticky cookies, HAR export, ...) are
    never configured here, and leaving them out is most of what keeps
    capturing as cheap as plain mitmdump.
    """
    return [
        core.Core(),
        proxyserver.Proxyserver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        disable_h2c.DisableH2C(),
        update_alt_svc.UpdateAltSvc(),
    ]


class ReadySignal:
    """Calls back once mitmproxy is running: every listener is bound (Master.run fires
    `running` after the servers are up and ErrorCheck found nothing)."""

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback

    def running(self) -> None:
        self.callback()


async def _serve(
    settings: ProxySettings, writer: ExchangeWriter, guard: InspectorGuard, on_ready: Callable[[], None] | None
) -> None:
    opts = options.Options()
    master = Master(opts, with_termlog=True)
    check = errorcheck.ErrorCheck(repeat_errors_on_stderr=True)
    master.addons.add(check, *mitmproxy_addons())
    # Registered services: routed by the Router when no configured service has the name.
    registered = RegistryRoutes(
        writer.store,
        realm=settings.realm,
        configured={name: service.upstream for name, service in settings.services.items()},
        eject_after=settings.eject_after,
        upstream_ca=settings.upstream_ca,
        upstream_insecure=settings.upstream_insecure,
    )
    master.addons.add(registered)
    # Simulated services: answered from recordings (after Faults and Capture: see proxy.mocks).
    mocks = Mocks(writer.store, realm=settings.realm, decode_limit=settings.max_decoded_body)
    router = Router(
        services=settings.services, gateway=gateway_mode(settings.listen), registered=registered,
        simulated=mocks.simulates,
    )  # fmt: skip
    capture = Capture(
        writer,
        proxy_name=settings.proxy_name,
        realm=settings.realm,
        body_cap=settings.body_cap,
        upstream_timeout=settings.upstream_timeout,
    )
    # The guard right after the Router: it judges where the Router sent each request.
    # Faults after the Router names the service (and the guard refuses), before Capture records.
    faults = Faults(writer.store, realm=settings.realm)
    # Mocks after Capture: its requestheaders undoes Capture's request streaming for a simulated
    # service (the body is needed to match); its answers are recorded by Capture's response hook.
    master.addons.add(router, guard, Tracing(settings.tracing), faults, capture, mocks)
    if settings.worker in (None, 1):  # registering and probing the services is the proxy's job, not each worker's
        master.addons.add(HealthProbes(
            writer.store, proxy_name=settings.proxy_name, realm=settings.realm, services=settings.services,
            upstream_ca=settings.upstream_ca, upstream_insecure=settings.upstream_insecure,
        ))  # fmt: skip
    if on_ready is not None:
        master.addons.add(ReadySignal(on_ready))
    opts.update(
        mode=proxy_modes(settings),
        # Each request picks its upstream in `requestheaders`, so connect only then.
        connection_strategy="lazy",
        termlog_verbosity="info" if settings.verbose else "warn",
        confdir=str(settings.certs_dir),
        ssl_insecure=settings.upstream_insecure,
        ssl_verify_upstream_trusted_ca=str(settings.upstream_ca) if settings.upstream_ca else None,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, master.shutdown)
    await master.run()
