"""serve(): run the inspector under uvicorn until SIGINT/SIGTERM, then shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import uvicorn

from storage.store import one_line, open_store

from .app import create_app
from .errors import CannotStart, PortInUseError
from .registration import InspectorRegistration
from .settings import InspectorSettings

log = logging.getLogger(__name__)


def bind_socket(host: str, port: int) -> socket.socket:
    """Listen on host:port (IPv4 or IPv6), translating failures into one-line CannotStart errors."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CannotStart(f"cannot listen on {where}: {exc.strerror}") from None
    # "localhost" resolves to ::1 first on some systems; clients mostly try 127.0.0.1.
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(f"cannot listen on {where}: address already in use") from None
        raise CannotStart(f"cannot listen on {where}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


class InspectorServer:
    """The inspector's uvicorn server. `serve()` below is the usual way in; tests and
    `passageway up` may drive this directly (`run` on a loop, `stop` from anywhere)."""

    def __init__(self, settings: InspectorSettings, *, store: Any = None) -> None:
        self.settings = settings
        self._store = store
        self._server: uvicorn.Server | None = None
        self.app: Any = None
        self.started = threading.Event()
        self.port: int | None = None

    async def run(self, *, handle_signals: bool = False) -> None:
        """Bind, serve until stop() (or SIGINT/SIGTERM with handle_signals), shut down, return."""
        settings = self.settings
        sock = bind_socket(settings.host, settings.port)
        self.port = sock.getsockname()[1]
        owned = self._store is None
        store = self._store
        registration: InspectorRegistration | None = None
        try:
            if owned:  # opened here, not in the lifespan, so StorageError reaches the caller as itself
                store = await asyncio.to_thread(open_store, settings.db_url)
            # Before serving: proxies that share the database learn here never to forward to us.
            registration = InspectorRegistration(store, sock)
            try:
                await registration.start()
            except Exception as exc:  # noqa: BLE001 - any database failure: say it in one line
                registration = None
                raise CannotStart(f"cannot register the inspector's address in the database: {one_line(exc)}") from None
            self.app = create_app(settings, store=store)
            config = uvicorn.Config(
                self.app,
                log_level=settings.log_level,
                access_log=settings.access_log,
                lifespan="on",
                server_header=False,
                timeout_graceful_shutdown=5,
            )
            server = _QuietSignalsServer(config) if handle_signals else _NoSignalsServer(config)
            self._server = server
            host = f"[{settings.host}]" if ":" in settings.host else settings.host
            log.info("inspector listening on http://%s:%d", host, self.port)
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not serving.done():
                await asyncio.sleep(0.01)
            self.started.set()
            try:
                await serving
            except SystemExit:  # uvicorn's answer to a failed lifespan startup
                raise CannotStart("the inspector failed to start (see the log above)") from None
            if not server.started:
                raise CannotStart("the inspector failed to start (see the log above)")
        finally:
            sock.close()
            if registration is not None:
                await registration.stop()
            if owned and store is not None:
                await asyncio.to_thread(store.close)

    def stop(self) -> None:
        """Ask the server to finish (thread-safe: it only sets a flag uvicorn polls)."""
        if self._server is not None:
            self._server.should_exit = True


def serve(settings: InspectorSettings, *, store: Any = None) -> None:
    """Run the inspector in the foreground until SIGINT/SIGTERM; returns after a clean shutdown.

    Raises PortInUseError / CannotStart (one-line messages) when it cannot listen and
    storage.StorageError when the database cannot be opened. A second Ctrl-C forces the exit.
    """
    with contextlib.suppress(KeyboardInterrupt):  # only reachable if a signal lands before the handler
        asyncio.run(InspectorServer(settings, store=store).run(handle_signals=True))


class _NoSignalsServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _QuietSignalsServer(uvicorn.Server):
    """uvicorn re-raises the signal after shutting down (killing the process on SIGTERM before our
    cleanup runs); here the signal only asks for a graceful stop and serve() returns normally."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: Any) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True
