"""The spool in memory: where records wait for the database when there is no disk spool.

    appender thread --append()--> deque --read()--> writer thread --ack()--> forgotten

The proxy runs without a disk spool when `spool_max_bytes = 0`. The writer then
drains this one, the same way: it has storage.spool.Spool's interface, so reading
in order, acknowledging what the database committed, holding records through an
outage and counting what does not fit are one code path. It holds the records
themselves (nothing is encoded) up to `max_records`; nothing survives the process.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

__all__ = ["MemorySpool"]


class MemorySpool:
    """Records in memory, in order. append() from one thread; read() and ack() from one other.

    Positions count records appended since the spool was made."""

    durable = False
    """What it holds is lost with the process (storage.spool.Spool: kept on disk)."""
    lost_on_open = 0

    def __init__(self, *, max_records: int) -> None:
        if max_records < 1:
            raise ValueError("max_records must be >= 1")
        self.max_records = max_records
        self._lock = threading.Lock()
        self._unread: deque[object] = deque()
        self._appended = 0
        self._read_position = 0
        self._acked = 0

    def __str__(self) -> str:
        return "the in-memory spool"

    @property
    def limit(self) -> str:
        return f"{self.max_records} records"

    def append(self, payloads: Sequence[object], items: Sequence[object] | None = None, *, sync: bool = True) -> int:
        """Append records; how many were taken (from the front), the rest did not fit under
        max_records. Each is held as its item when `items` is given, else as its payload;
        `sync` means nothing in memory."""
        kept = payloads if items is None else items
        with self._lock:
            taken = min(len(payloads), self.max_records - (self._appended - self._acked))
            if taken <= 0:
                return 0
            self._unread.extend(kept[:taken])
            self._appended += taken
        return taken

    def sync(self) -> None:
        """Nothing to make durable."""

    def read(self, max_records: int) -> tuple[list[object], int]:
        """The next records after the last read (up to `max_records`), and the position
        after them, for ack()."""
        with self._lock:
            count = min(max_records, len(self._unread))
            taken = [self._unread.popleft() for _ in range(count)]
            self._read_position += count
            return taken, self._read_position

    def ack(self, position: int, records: int) -> None:
        """Everything before `position` (`records` records since the last ack) is in the
        database: it frees its room."""
        with self._lock:
            if position > self._acked:
                self._acked = position

    @property
    def pending_records(self) -> int:
        """Records appended and not yet acknowledged (read or not)."""
        return self._appended - self._acked

    @property
    def pending_bytes(self) -> int:
        """Bytes on disk: none."""
        return 0

    def close(self) -> None:
        """Forget what is held (it would be lost with the process anyway)."""
        with self._lock:
            self._unread.clear()
