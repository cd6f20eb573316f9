"""`passageway proxy`: worker processes sharing the listening ports, and one writer process,
under one supervisor that starts them, restarts one that dies and stops them together.

    passageway proxy (this) ─┬─ worker 1 (mitmproxy; also the health probes) ─► spool_dir/worker-1 ─┐
                             ├─ worker 2 ...                                  ─► spool_dir/worker-2 ─┼─► writer ─► database
                             └─ writer (`passageway writer`) ◄──────────────────────────────────────┘

A worker is one mitmproxy event loop: one core. Each binds every listen address with
SO_REUSEPORT (proxy.shared_ports), so the kernel spreads new connections over them, and a
connection stays with its worker for its life. Each appends what it captures to a spool of
its own; the writer drains every spool into the database. Without a disk spool
(spool_max_bytes = 0) there is nothing to hand over: each worker writes its own records and no
writer runs.

The supervisor itself loads neither mitmproxy nor the app. Before starting anything it does
once what every worker would otherwise race to do: checks that the addresses are free (without
SO_REUSEPORT, so a second proxy on the same port fails here, in one line), brings the database's
schema up to date and writes the `[[faults]]` and mocks of the settings.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .settings import COMMAND_ROLES, ConfigError, Settings, child_arguments
from .supervisor import COMMAND, PROG, spawn, stop_on_signals

STOP_TIMEOUT = 12.0
"""Seconds a worker, then the writer, gets to stop (each writes or spools what it holds in 10)."""
RESTART_DELAYS = (0.0, 1.0, 2.0, 5.0)
"""Waits before restarting a child that died, by how often it died in a row without serving a minute."""
HEALTHY_AFTER = 60.0
"""Seconds a restarted child must live before its earlier deaths are forgotten."""


@dataclass
class Child:
    name: str
    """`worker 1`, `writer`."""
    args: list[str]
    process: subprocess.Popen | None = None
    ready_fd: int | None = None
    """The read end of the pipe the worker signals readiness on (workers only)."""
    ready: bool = False
    started_at: float = 0.0
    deaths: int = 0
    """Deaths in a row (reset once it lived HEALTHY_AFTER)."""
    restart_at: float | None = None


def run_proxy(argv: Sequence[str], settings: Settings) -> int:
    """Run the workers and the writer until SIGINT/SIGTERM; 0 once all stopped cleanly."""
    from proxy.listen import check_bindable, listen_addresses

    from .roles import proxy_view

    view = proxy_view(settings)
    for what, address in listen_addresses(view):
        if settings.workers > 1 and address[1] == 0:
            raise ConfigError(f"{what}: --workers {settings.workers} needs a fixed port, not 0")
        check_bindable(what, address)
    stopping = stop_on_signals()

    arguments = child_arguments(argv, COMMAND_ROLES["proxy"])
    # Without a disk spool there is no hand-off: each worker writes its own records from memory.
    has_writer = bool(settings.spool_max_bytes)
    writer = Child("writer", [*COMMAND, "writer", *arguments]) if has_writer else None
    workers = [
        Child(f"worker {k}", [*COMMAND, "proxy", "--worker", str(k), *arguments]) for k in range(1, settings.workers + 1)
    ]
    # The workers load mitmproxy (most of their start) while the store is prepared here; then
    # they wait for the go: the end of this pipe.
    go_read, go_write = os.pipe()
    try:
        for worker in workers:
            start(worker, go_fd=go_read)
    finally:
        os.close(go_read)
    try:
        prepare_spool_dir(settings)
        prepare_store(settings)
        prepare_ca(settings)
    except BaseException:
        stop_all(workers)
        os.close(go_write)
        raise
    os.close(go_write)
    if writer is not None:
        start(writer)

    selector = selectors.DefaultSelector()
    for worker in workers:
        watch(selector, worker)
    exit_code = 0
    while not stopping.is_set():
        for key, _ in selector.select(timeout=0.2):
            child = key.data
            said = os.read(child.ready_fd, 64)  # b"1" once it listens; b"" if it exited first
            selector.unregister(child.ready_fd)
            os.close(child.ready_fd)
            child.ready_fd = None
            child.ready = said.startswith(b"1")  # a worker that served then died is restarted, not fatal
        now = time.monotonic()
        for child in [*workers, *([writer] if writer else [])]:
            if child.process is None:
                if child.restart_at is not None and now >= child.restart_at:
                    start(child)
                    if child.ready_fd is not None:
                        watch(selector, child)
                continue
            status = child.process.poll()
            if status is None:
                if child.deaths and now - child.started_at >= HEALTHY_AFTER:
                    child.deaths = 0
                continue
            if child.name.startswith("worker") and not child.ready and not child.deaths and status > 0:
                # It gave up before serving: the mistake it reported in one line (a spool in use,
                # say) would repeat. (Killed by a signal, it is restarted like any dead worker.)
                exit_code = status
                stopping.set()
                break
            forget(selector, child)
            delay = RESTART_DELAYS[min(child.deaths, len(RESTART_DELAYS) - 1)]
            child.deaths += 1
            child.process = None
            child.restart_at = now + delay
            print(f"{PROG}: {child.name} exited ({describe(status)}); restarting it"
                  + (f" in {delay:g} s" if delay else ""), file=sys.stderr, flush=True)  # fmt: skip
    for worker in workers:
        forget(selector, worker)
    # Workers first: each hands what it holds to its spool; then the writer stores what it can.
    stop_all(workers)
    if writer is not None:
        stop_all([writer])
    return exit_code


def prepare_spool_dir(settings: Settings) -> None:
    """The proxy's spool directory, made (0700: records hold secrets) or refused here, in one line,
    rather than by every worker at once."""
    if not settings.spool_max_bytes:
        return
    try:
        settings.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot use spool directory {settings.spool_dir}: {e.strerror}") from None


def prepare_ca(settings: Settings) -> None:
    """mitmproxy's CA, made here when the certs directory has none, so the workers share one
    (proxy.ca says why); refused in one line when it cannot be made."""
    from proxy.ca import ensure_ca

    try:
        ensure_ca(settings.certs_dir)
    except OSError as e:
        raise ConfigError(f"cannot make mitmproxy's CA in {settings.certs_dir}: {e.strerror or e}") from None


def prepare_store(settings: Settings) -> None:
    """Once, before any child opens the store: the schema, the `[[faults]]` and the mocks."""
    from storage.store import open_store

    from .faults import sync_faults
    from .mocks import sync_mocks

    store = open_store(settings.db)
    try:
        if settings.faults:  # a proxy alone has no inspector to write them
            sync_faults(store, settings)
        sync_mocks(store, settings)
    finally:
        store.close()


def start(child: Child, *, go_fd: int | None = None) -> None:
    """Spawn `child`; a worker gets the write end of a pipe to say it listens on and, at the first
    start, `go_fd`: the read end of the pipe whose end says the store is ready."""
    child.restart_at = None
    child.ready = False
    child.started_at = time.monotonic()
    if child.name == "writer":
        child.process = spawn(child.args)
        child.ready = True
        return
    read_end, write_end = os.pipe()
    env = {**os.environ, "PASSAGEWAY_READY_FD": str(write_end)}
    if go_fd is not None:
        env["PASSAGEWAY_GO_FD"] = str(go_fd)
    try:
        child.process = spawn(child.args, env=env, pass_fds=(write_end,) if go_fd is None else (write_end, go_fd))
    finally:
        os.close(write_end)
    child.ready_fd = read_end


def watch(selector: selectors.BaseSelector, child: Child) -> None:
    selector.register(child.ready_fd, selectors.EVENT_READ, child)


def forget(selector: selectors.BaseSelector, child: Child) -> None:
    if child.ready_fd is not None:
        selector.unregister(child.ready_fd)
        os.close(child.ready_fd)
        child.ready_fd = None


def stop_all(children: Sequence[Child]) -> None:
    """SIGTERM (each role handles it as Ctrl-C), then SIGKILL what is still running after STOP_TIMEOUT."""
    running = [c.process for c in children if c.process is not None and c.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def describe(status: int) -> str:
    """`status 1`, `killed by SIGKILL`."""
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"status {status}"
