"""Each role's view of the settings, and running the long-lived roles (`passageway proxy`, `ui`).

A view is filled from the schema by field name (cli.settings.view). What a role needs that no
setting holds as such (the inspector's replay gateway, say) is derived here, in one place, and
INSPECTOR_DERIVED says which settings each derived field comes from, so that
tests/cli/test_settings.py can check that every setting a role uses reaches its view.
"""

from __future__ import annotations

from typing import Any

from proxy.routing import format_address

from .commands import fail
from .contracts import sync_contracts
from .faults import sync_faults
from .monitoring import inspector_url, sync_monitors
from .settings import Settings, client_url, view
from .supervisor import inspector_token, shown_host

INSPECTOR_DERIVED = {
    "db_url": ("db",),
    "host": ("ui",),
    "port": ("ui",),
    "token": ("ui_token",),
    "log_level": ("verbose",),
    "replay_gateway": ("replay_via", "listen"),
    "replay_forward_proxy": ("listen", "forward_port"),
    "replay_services": ("services", "realm", "realms"),
    "replay_ca": ("certs_dir",),
    "replay_timeout": ("upstream_timeout",),
    "test_variables": ("variables",),
    "test_secrets": ("secrets",),
    "monitor_realm": ("realm",),
    "inspector_url": ("ui",),
}
"""The inspector's fields that are not settings of the same name, and the settings they come from."""
PROXY_DERIVED = {"worker": ()}
"""The proxy's fields that are no setting: which worker a process is (the supervisor says)."""


def proxy_view(settings: Settings, *, worker: int | None = None) -> Any:
    from proxy.settings import ProxySettings

    return view(ProxySettings, settings, worker=worker)


def inspector_view(settings: Settings, *, token: str | None) -> Any:
    from inspector_ui.settings import InspectorSettings

    host, port = settings.ui
    ca = settings.certs_dir / "mitmproxy-ca-cert.pem"
    derived = {
        "db_url": settings.db,
        "host": host,
        "port": port,
        "token": token,
        "log_level": "info" if settings.verbose else "warning",
        "replay_gateway": settings.replay_via or client_url(settings.listen),
        "replay_forward_proxy": client_url((settings.listen[0], settings.forward_port)) if settings.forward_port else None,
        "replay_services": {name: service.upstream.url for name, service in settings.services.items()},
        "replay_ca": str(ca) if ca.is_file() else None,
        "replay_timeout": settings.upstream_timeout + 5,
        "test_variables": settings.variables,
        "test_secrets": settings.secrets,
        "monitor_realm": settings.realm,
        "inspector_url": inspector_url(settings),
    }
    return view(InspectorSettings, settings, **derived)


def run_proxy_worker(settings: Settings, *, worker: int) -> int:
    """One of the supervisor's workers (cli.proxy_supervisor runs them). At its first start it
    waits, once mitmproxy is loaded, for the end of the pipe PASSAGEWAY_GO_FD names: the supervisor
    has then prepared the store. It says it listens by writing to the pipe PASSAGEWAY_READY_FD names."""
    import os

    from proxy.runner import run_proxy as run

    if (go_fd := os.environ.pop("PASSAGEWAY_GO_FD", None)) is not None:
        os.read(int(go_fd), 1)
        os.close(int(go_fd))
    ready_fd = os.environ.pop("PASSAGEWAY_READY_FD", None)

    def ready() -> None:
        if ready_fd is not None:
            os.write(int(ready_fd), b"1")
            os.close(int(ready_fd))

    run(proxy_view(settings, worker=worker), on_ready=ready)
    return 0


def run_ui(settings: Settings) -> int:
    from inspector_ui.errors import CannotStart
    from inspector_ui.server import serve
    from storage.store import open_store

    store = open_store(settings.db)
    try:
        sync_monitors(store, settings)  # [monitors.NAME] are in the store before any runner looks
        sync_faults(store, settings)  # [[faults]] too, before any proxy reads them
        sync_contracts(store, settings)  # [services.NAME] contract files, before the maintenance checks
        token = inspector_token(settings)
        if token and not settings.ui_token:
            host, port = settings.ui
            print(f"inspector token (made now): open http://{format_address(shown_host(host), port)}/?token={token}",
                  flush=True)  # fmt: skip
        try:
            serve(inspector_view(settings, token=token), store=store)
        except CannotStart as e:
            return fail(f"inspector: {e}")
    finally:
        store.close()
    return 0


def run_maintain(settings: Settings) -> int:
    """The database's maintenance alone, until SIGINT or SIGTERM (see storage.maintenance)."""
    import signal
    import threading

    from storage.maintenance import run_maintenance
    from storage.store import open_store

    store = open_store(settings.db)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"maintaining {store.display_url}: search indexing, statistics, inferred API summaries, retention "
          f"[{settings.retention_policy().describe()}]; Ctrl-C stops", flush=True)  # fmt: skip
    try:
        run_maintenance(
            store, retention_policy=settings.retention_policy(), stop=stop, redaction_rules=settings.redaction_rules()
        )
    finally:
        store.close()
    return 0


def open_store_patiently(url: str, stop: Any) -> Any:
    """The store, tried again (1 s, 2 s, up to 5 s apart) while it cannot be opened, until `stop` is
    set (then None). The supervisor opened it before starting the writer, so a failure here is the
    database being away or locked for now: the records wait in the spools meanwhile."""
    import logging
    import time

    from storage.errors import StorageError
    from storage.store import one_line, open_store

    log = logging.getLogger("passageway.writer")
    delay, failing_since = 1.0, None
    while not stop.is_set():
        try:
            store = open_store(url)
        except StorageError as e:
            if failing_since is None:
                failing_since = time.monotonic()
                log.warning("writer: cannot open the database yet, trying again: %s", one_line(e))
            stop.wait(delay)
            delay = min(delay * 2, 5.0)
            continue
        if failing_since is not None:
            log.warning("writer: the database opened after %.1f s", time.monotonic() - failing_since)
        return store
    return None


def run_writer(settings: Settings) -> int:
    """The writer process of `passageway proxy`'s workers: their spools (spool_dir/worker-*, and
    segments an older version left in spool_dir) into the database, until SIGINT or SIGTERM;
    then it writes for up to 10 s, and the rest stays in the spools (storage.spool_handoff)."""
    import signal
    import threading

    from storage.spool import SpoolError
    from storage.spool_handoff import SpoolDrain, SpoolSet

    if not settings.spool_max_bytes:
        return fail("writer: spool_max_bytes is 0 (no spool): each proxy writes its records itself")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    store = open_store_patiently(settings.db, stop)
    if store is None:
        return 0
    try:
        try:
            spools = SpoolSet(settings.spool_dir, legacy_max_bytes=settings.spool_max_bytes)
        except SpoolError as e:
            return fail(f"writer: {e}")
        drain = SpoolDrain(store, spools, proxy_name=settings.proxy_name, decode_limit=settings.max_decoded_body)
        drain.start()
        try:
            stop.wait()
        finally:
            drain.close()
    finally:
        store.close()
    return 0
