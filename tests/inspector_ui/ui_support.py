"""Helpers for the inspector tests: records to write, settings, a real uvicorn server on a thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from inspector_ui import InspectorServer, InspectorSettings


def settings_for(store: Any, **overrides: Any) -> InspectorSettings:
    return InspectorSettings(db_url=store.url, **{"port": 0, **overrides})


@dataclass
class LiveInspector:
    server: InspectorServer
    loop: asyncio.AbstractEventLoop

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/api/stream"

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run fn(*args) on the server's event loop and wait for it."""
        done = threading.Event()

        def run() -> None:
            try:
                fn(*args)
            finally:
                done.set()

        self.loop.call_soon_threadsafe(run)
        assert done.wait(5)


@contextlib.contextmanager
def live_inspector(store: Any, **overrides: Any) -> Iterator[LiveInspector]:
    """A real uvicorn server on 127.0.0.1:<free port>, on its own thread."""
    server = InspectorServer(settings_for(store, **overrides), store=store)
    loops: list[asyncio.AbstractEventLoop] = []
    errors: list[BaseException] = []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        await server.run()

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=target, name="live-inspector", daemon=True)
    thread.start()
    if not server.started.wait(10):
        raise RuntimeError(f"inspector did not start: {errors}")
    try:
        yield LiveInspector(server, loops[0])
    finally:
        server.stop()
        thread.join(15)
        assert not thread.is_alive(), "inspector did not shut down"
    if errors:
        raise errors[0]
