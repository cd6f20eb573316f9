"""The monitor runner role from the command line: `passageway monitor` runs it alone; `ui` (and
so `up`) runs it inside the inspector unless `--no-monitor-runner`. Both first write the
`[monitors.NAME]` of passageway.toml into the store, where every runner finds its schedules."""

from __future__ import annotations

import signal
import threading

from proxy.routing import format_address

from .commands import fail
from .settings import ConfigError, Settings
from .supervisor import shown_host
from .testing import route_of


def config_monitors(settings: Settings) -> list:
    """storage.monitors.MonitorSpec of each `[monitors.NAME]`, its Hurl file read now; ConfigError
    (one line) for a file that cannot be read or does not parse."""
    from radar.hurl import HurlError, parse_hurl
    from storage.monitors import MonitorSpec

    specs = []
    for spec in settings.monitors.values():
        try:
            text = spec.file.read_text(encoding="utf-8")
            parse_hurl(text, str(spec.file))
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"monitor {spec.name!r}: cannot read {spec.file}: {getattr(e, 'strerror', None) or e}") from None
        except HurlError as e:
            raise ConfigError(f"monitor {spec.name!r}: {e}") from None
        specs.append(MonitorSpec(name=spec.name, hurl=text, every_s=spec.every, file=str(spec.file),
                                 realm=spec.realm, notify=spec.notify))  # fmt: skip
    return specs


def sync_monitors(store, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from storage.monitors import sync_config_monitors

    sync_config_monitors(store, config_monitors(settings))


def inspector_url(settings: Settings) -> str:
    """The inspector's address in the links a runner sends out (webhooks)."""
    host, port = settings.ui
    return f"http://{format_address(shown_host(host), port)}"


def run_monitor(settings: Settings) -> int:
    """The monitor runner alone, until SIGINT or SIGTERM."""
    from radar.monitor_runner import running_monitors
    from storage.store import open_store

    store = open_store(settings.db)
    try:
        try:
            sync_monitors(store, settings)
        except ConfigError as e:
            return fail(str(e))
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        where = f" of realm {settings.realm}" if settings.realm else ""
        print(f"running the monitors{where} in {store.display_url} through {route_of(settings).gateway}; "
              "Ctrl-C stops", flush=True)  # fmt: skip
        with running_monitors(
            store, route_of(settings), variables=settings.variables, secrets=settings.secrets, realm=settings.realm,
            inspector_url=inspector_url(settings),
        ):  # fmt: skip
            stop.wait()
    finally:
        store.close()
    return 0
