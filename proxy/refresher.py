"""What the proxy's addons know from the store (fault rules, the registry's routes, the
inspectors' addresses), read off the event loop.

A Refresher calls its `read` on a daemon thread every `interval` seconds; `read` loads from the
store (blocking) and swaps the result into the addon whole, so the event loop only ever reads
an in-memory value. A read that fails (the database is away) keeps what the last good one
loaded: the outage is logged once when reads start failing and once when they work again,
never once per attempt.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from storage.store import one_line

__all__ = ["STOP_TIMEOUT", "Refresher"]

STOP_TIMEOUT = 5.0
"""Seconds stop() waits for a read in progress (it may be blocked on the database)."""


class Refresher:
    """Runs `read` now and then on its own thread (see the module doc).

    `what` names what is read, for the log ("the fault rules"); `keeping` says what stays in
    force while reads fail ("keeping the last ones until they expire"), evaluated when logged.
    """

    def __init__(
        self,
        read: Callable[[], object],
        *,
        what: str,
        keeping: Callable[[], str],
        interval: float,
        thread_name: str,
        logger: logging.Logger,
    ) -> None:
        self.read = read
        self.what = what
        self.keeping = keeping
        self.interval = interval
        self.thread_name = thread_name
        self.logger = logger
        self.reads = 0
        """Successful reads so far (tests wait on it)."""
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read_once(self) -> bool:
        """One read; False (and the outage logged, once) when it failed. Never raises."""
        try:
            self.read()
        except Exception as exc:  # noqa: BLE001 - the database may be away: what was read stays
            if not self._failing:
                self._failing = True
                self.logger.warning("cannot read %s: %s (%s; will retry)", self.what, one_line(exc), self.keeping())
            return False
        if self._failing:
            self._failing = False
            self.logger.info("reading %s again", self.what)
        self.reads += 1
        return True

    def start(self, *, first_read_wait: float | None) -> None:
        """Start the thread (once). With `first_read_wait`, it reads at once and this waits up to
        that many seconds for the first read to end, so the first requests see it; with None the
        caller has read already and the first read is one interval away."""
        if self._thread is not None:
            return
        self._stop.clear()
        first_read = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(first_read, first_read_wait is not None), name=self.thread_name, daemon=True
        )
        self._thread.start()
        if first_read_wait is not None:
            first_read.wait(first_read_wait)

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(STOP_TIMEOUT)

    def _run(self, first_read: threading.Event, read_at_once: bool) -> None:
        if read_at_once:
            self.read_once()
            first_read.set()
        while not self._stop.wait(self.interval):
            self.read_once()
