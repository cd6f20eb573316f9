"""The write path's threads: records in from the proxy's event loop, batches out to the database.

    proxy event loop --submit()--> bounded deque --appender thread--> spool --writer thread--> DatabaseSink

submit() only appends to a deque (no hashing, no I/O). The appender thread rewrites
each record if asked (the proxy's redact_at_capture) and appends what was queued to the
spool. The writer thread reads the spool in order, takes up to `batch_size` records (or
what arrived within `flush_interval`), has them prepared into rows once (storage.rows)
and written in one transaction (storage.sink), retrying with capped backoff while the
database is away, then acknowledges them. A database that is away only lengthens the
spool; when the spool is full, new records are dropped, counted and logged.

The spool is the proxy's on-disk storage.spool by default. The appender writes whatever
was queued every `append_interval` (50 ms), so a killed proxy loses at most those
records, and fdatasyncs at most every SYNC_INTERVAL (100 ms), which bounds what a
machine crash loses. (At 20 ms with a sync per append, the spool cost the proxy ~80 µs
of CPU per record at 400 records/s; at 50 ms, ~30.) Records left in it at exit are
written at the next start.

Pending notices (storage.pure.pending: calls in progress) take another way: announce() only
keeps the proxy's latest list, and the writer thread writes what changed between two batches,
in a short transaction of its own, never while the database is away. They are ephemeral: a
notice lost costs nothing, and a record never waits for one. The batch that stores an announced
exchange deletes its notice.

Without one (`spool_max_bytes = 0`), records wait in a storage.memory_spool of
`queue_size` records, which the writer drains the same way; what the database has not
taken at exit is lost, counted and logged.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from storage.memory_spool import MemorySpool
from storage.pending import PENDING_REFRESH
from storage.pure.decoding import DEFAULT_DECODE_LIMIT
from storage.pure.pending import PendingNotice
from storage.record_codec import RecordDecodeError, decode_record, encode_record
from storage.rows import PreparedBatch, Record
from storage.sink import DatabaseSink, is_transient
from storage.spool import Spool
from storage.store import Store, one_line

__all__ = ["ExchangeWriter", "WriterStats"]

log = logging.getLogger(__name__)

_BACKOFF_START = 0.05
_BACKOFF_MAX = 5.0
_DROP_LOG_INTERVAL = 10.0
_APPEND_MAX = 1000
SYNC_INTERVAL = 0.1
"""Seconds between two fdatasyncs of the spool while records keep coming."""
REPORT_INTERVAL = 5.0
"""Seconds between two reports of a writer's counters to proxy_stats."""
PENDING_UPDATE_INTERVAL = 1.0
"""Seconds between two writes of one pending notice whose bytes so far changed."""
_ANNOUNCED_KEPT = 3600.0
"""Seconds an announced uuid is remembered without its record (a record that was never built)."""


@dataclass(frozen=True, slots=True)
class WriterStats:
    submitted: int
    written: int
    """Records committed (or found already committed, for a retried batch)."""
    dropped: int
    """Refused by submit() (queue full, writer closed) or by a full spool."""
    failed_batches: int
    """Write attempts that failed (each retry counts)."""
    queue_depth: int
    """Records waiting in memory: queued, or in the in-memory spool."""
    last_error: str | None
    lost: int = 0
    """Accepted but never written: the database stayed away until close() (with the spool
    in memory), the record itself could not be stored, or the spool held damaged records."""
    spooled: int = 0
    """Records on disk in the spool that the database does not have yet."""
    spool_bytes: int = 0


class _GiveUp(Exception):
    pass


class ExchangeWriter:
    """Owns the appender and writer threads. submit() from anywhere; close() to flush."""

    def __init__(
        self,
        store: Store,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.05,
        queue_size: int = 20000,
        transform: Callable[[Record], Record] | None = None,
        report_as: str | None = None,
        spool: Spool | None = None,
        append_interval: float = 0.05,
        decode_limit: int = DEFAULT_DECODE_LIMIT,
    ) -> None:
        """`transform` rewrites each record in the appender thread before it is spooled
        (the proxy's redact_at_capture); a record it fails on is rejected (counted, logged),
        never stored as it was. `report_as`: the proxy name under which the writer keeps its
        counters in proxy_stats, every REPORT_INTERVAL seconds while the database is up.
        `spool`: the disk spool records pass through (see the module's docstring); without
        one, a MemorySpool of `queue_size` records. The writer owns it from here on and
        closes it. `decode_limit`: bodies' decoded sizes are measured up to it (max_decoded_body)."""
        if batch_size < 1 or queue_size < 1 or flush_interval < 0 or append_interval < 0:
            raise ValueError("batch_size and queue_size must be >= 1, flush_interval and append_interval >= 0")
        self.store = store
        self._transform = transform
        self._spool: Spool | MemorySpool = spool if spool is not None else MemorySpool(max_records=queue_size)
        # Records are gathered twice on their way through a disk spool: by the appender, so that
        # they share a write and an fdatasync, then by the writer, so that two appends share a
        # transaction. In memory they are gathered once, by the appender: appending costs nothing,
        # but waking both threads for every record cost ~50 µs of CPU per record at 900/s.
        durable = self._spool.durable
        self._append_gather = append_interval if durable else flush_interval
        self._drain_gather = flush_interval if durable else 0.0
        self._appender: threading.Thread | None = None
        self._appended_all = threading.Event()  # the appender has spooled its last record
        self._spool_ready = threading.Event()  # the appender has spooled something
        self._last_sync = 0.0
        self._report_as = report_as
        self._started_at = dt.datetime.now(dt.UTC)
        self._last_report = 0.0
        self._report_failure_logged = float("-inf")
        self._write_seconds = 0.0
        self._write_batches = 0
        self.sink = DatabaseSink(store, decode_limit=decode_limit)
        self._batch_size = batch_size
        self._queue_size = queue_size
        self._queue: deque[Record] = deque()
        self._wake = threading.Event()  # something was queued
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._deadline = float("inf")
        self._submitted = 0
        self._written = 0
        self._dropped = 0
        self._failed_batches = 0
        self._lost = self._spool.lost_on_open
        self._last_error: str | None = None
        self._drops_unlogged = 0
        self._last_drop_log = 0.0
        self._outage_since: float | None = None
        self._notices: list[PendingNotice] | None = None  # the proxy's latest list, not written yet
        self._notices_written: dict[str, tuple[tuple, float]] = {}  # uuid -> (progress, monotonic) as last written
        self._announced: dict[str, float] = {}  # uuid -> monotonic: notices in the database, until their record
        self._notice_failure_logged = float("-inf")

    # -- producer side (the proxy's event loop) ---------------------------------------

    def submit(self, record: Record) -> bool:
        """Queue `record`; False (dropped, counted) when the queue is full or closed."""
        queue = self._queue
        if len(queue) >= self._queue_size or self._closed:
            self._drop()
            return False
        queue.append(record)
        self._submitted += 1
        # Appender: clear() then check the deque; here: append then check the flag.
        # Either the appender sees the record or we see the cleared flag.
        if not self._wake.is_set():
            self._wake.set()
        return True

    def announce(self, notices: list[PendingNotice]) -> None:
        """The calls in progress now (the proxy's sweep, about twice a second while there are
        any; an empty list once they are gone). Only keeps the list: the writer thread writes it."""
        self._notices = notices
        if notices and not self._spool_ready.is_set():
            self._spool_ready.set()  # the writer may be idle: write them now rather than in 0.5 s

    def _drop(self, count: int = 1, reason: str | None = None) -> None:
        self._dropped += count
        self._drops_unlogged += count
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_INTERVAL or reason is not None:
            reason = reason or ("writer closed" if self._closed else f"queue full ({self._queue_size} records)")
            log.error("DROPPED %d exchange record(s): %s", self._drops_unlogged, reason)
            self._drops_unlogged = 0
            self._last_drop_log = now

    @property
    def stats(self) -> WriterStats:
        waiting = self._spool.pending_records
        spooled = waiting if self._spool.durable else 0  # "spooled" is on disk; in memory it is queued
        return WriterStats(
            submitted=self._submitted,
            written=self._written,
            dropped=self._dropped,
            failed_batches=self._failed_batches,
            queue_depth=len(self._queue) + waiting - spooled,
            last_error=self._last_error,
            lost=self._lost,
            spooled=spooled,
            spool_bytes=self._spool.pending_bytes,
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._appender = threading.Thread(target=self._append_loop, name="passageway-spool", daemon=True)
            self._appender.start()
            self._thread = threading.Thread(target=self._drain_loop, name="passageway-writer", daemon=True)
            self._thread.start()
        atexit.register(self.close)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (retrying until `timeout`), then stop. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._deadline = time.monotonic() + timeout
            thread = self._thread
        atexit.unregister(self.close)
        self._closing.set()
        self._wake.set()
        if thread is None:  # never started: flush on the caller's thread
            self._append_loop()
            self._drain_loop()
        else:
            thread.join(timeout + 1.0)
            if thread.is_alive():
                log.error(
                    "exchange writer did not stop within %.1fs (stuck in a database call); "
                    "%d queued record(s) may be lost",
                    timeout,
                    self.stats.queue_depth,
                )
        if self._appender is not None:
            self._appender.join(timeout + 1.0)
        if any(t is not None and t.is_alive() for t in (thread, self._appender)):
            return
        spool = self._spool
        left = spool.pending_records
        if left and spool.durable:
            log.warning(
                "%d record(s) stay in %s: the database %s did not take them before the proxy stopped; they are "
                "written at its next start",
                left,
                spool,
                self.store.display_url,
            )
        elif left:
            self._lost += left
            log.error(
                "LOST %d exchange record(s): the database %s stayed unavailable until the writer was closed "
                "(last error: %s)",
                left,
                self.store.display_url,
                self._last_error,
            )
        self._maybe_report(stopping=True)
        spool.close()

    # -- appender thread: queue -> spool ------------------------------------------------------

    def _append_loop(self) -> None:
        """Queue -> spool, gathered for up to _append_gather: one write and one fdatasync for all."""
        queue = self._queue
        while True:
            self._between_appends()
            if not queue:
                if self._closing.is_set():
                    break
                self._sync_spool()  # idle: nothing is left unsynced while nothing happens
                self._wake.clear()
                if not queue:
                    self._wake.wait(0.5)
                    continue
            if len(queue) < _APPEND_MAX and not self._closing.is_set():
                self._closing.wait(self._append_gather)  # gather some records: one append for all
            # A bounded append: a burst is written in slices the database writer can start on.
            records = [queue.popleft() for _ in range(min(len(queue), _APPEND_MAX))]
            try:
                self._append(records)
            except Exception:  # a bug in encoding must not kill the appender
                self._lost += len(records)
                log.exception("LOST %d exchange record(s): unexpected error in the spool appender", len(records))
        self._sync_spool()
        self._appended_all.set()
        self._spool_ready.set()

    def _between_appends(self) -> None:
        """In the appender thread, before each append or idle wait (storage.spool_handoff)."""

    def _sync_spool(self) -> None:
        try:
            self._spool.sync()
            self._last_sync = time.monotonic()
        except OSError as exc:
            log.error("could not sync %s: %s", self._spool, one_line(exc))

    def _append(self, records: list[Record]) -> None:
        spool = self._spool
        payloads, kept = [], []
        for record in records:
            try:
                stored = self._transform(record) if self._transform else record
                payloads.append(encode_record(stored) if spool.durable else stored)  # memory holds records as they are
                kept.append(stored)
            except Exception as exc:
                self._reject([record], exc)
        now = time.monotonic()
        sync = now - self._last_sync >= SYNC_INTERVAL
        try:
            taken = spool.append(payloads, kept, sync=sync)
        except OSError as exc:
            self._drop(len(payloads), f"{spool} could not be written: {one_line(exc)}")
            return
        if taken < len(payloads):
            self._drop(
                len(payloads) - taken,
                f"{spool} is full ({spool.limit}) while the database {self.store.display_url} does not keep up",
            )
        if sync:
            self._last_sync = now
        if taken:
            self._spool_ready.set()

    # -- writer thread: spool -> database -----------------------------------------------------

    def _drain_loop(self) -> None:
        """Spool -> database, in order; acknowledged once committed."""
        spool = self._spool
        while True:
            self._maybe_report()
            self._write_notices()
            appended_all = self._appended_all.is_set()  # read before reading the spool: then nothing follows
            self._spool_ready.clear()
            frames, end = spool.read(self._batch_size)
            if not frames:
                if appended_all:
                    return
                self._spool_ready.wait(0.5)
                continue
            deadline = time.monotonic() + self._drain_gather
            while len(frames) < self._batch_size and not self._closing.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._spool_ready.wait(remaining):
                    break
                self._spool_ready.clear()
                more, more_end = spool.read(self._batch_size - len(frames))
                if more:
                    frames += more
                    end = more_end
            records = []
            for entry in frames:  # records still in memory, or payloads read back from disk
                if not isinstance(entry, bytes):
                    records.append(entry)
                    continue
                try:
                    records.append(decode_record(entry))
                except RecordDecodeError as exc:
                    self._reject([entry], exc)
            try:
                if records:
                    self._write(records)
            except _GiveUp:
                return  # closing with the database away: the records stay in the spool (see close())
            spool.ack(end, len(frames))

    def _write_notices(self) -> None:
        """Write the pending notices that are new, whose progress changed (at most every
        PENDING_UPDATE_INTERVAL) or that were not refreshed for PENDING_REFRESH."""
        notices, self._notices = self._notices, None
        if notices is None:
            return
        now = time.monotonic()
        written = self._notices_written
        due, held = [], False
        for notice in notices:
            last = written.get(notice.uuid)
            if last is None or now - last[1] >= PENDING_REFRESH:
                due.append(notice)
            elif last[0] != notice.progress:
                if now - last[1] >= PENDING_UPDATE_INTERVAL:
                    due.append(notice)
                else:
                    held = True
        if held and self._notices is None:
            self._notices = notices  # a change held back by the rate: looked at again next time round
        live = {notice.uuid for notice in notices}
        for uuid in [uuid for uuid in written if uuid not in live]:
            del written[uuid]
        if self._announced:
            for uuid in [uuid for uuid, at in self._announced.items() if now - at > _ANNOUNCED_KEPT]:
                del self._announced[uuid]
        if not due or self._outage_since is not None or self._closing.is_set():
            return
        try:
            self.sink.announce(due)
        except Exception as exc:  # noqa: BLE001 - ephemeral: the next sweep's list tries again
            if now - self._notice_failure_logged > 60:
                self._notice_failure_logged = now
                log.warning("could not write pending notices: %s", one_line(exc))
            return
        for notice in due:
            written[notice.uuid] = (notice.progress, now)
            self._announced[notice.uuid] = now

    def _announced_in(self, records: list[Record]) -> list[tuple[float, str]]:
        """(captured_at, uuid) of the exchange records among `records` that were announced."""
        announced = self._announced
        if not announced:
            return []
        found = []
        for record in records:
            uuid = getattr(record, "uuid", None)
            if uuid is not None and uuid in announced:
                found.append((record.captured_at, uuid))
        return found

    def _maybe_report(self, *, stopping: bool = False) -> None:
        """Keep this writer's counters in proxy_stats (never while the database is away:
        the records come first, and a report would only wait for the same timeout)."""
        now = time.monotonic()
        if self._report_as is None or self._outage_since is not None:
            return
        if not stopping and now - self._last_report < REPORT_INTERVAL:
            return
        self._last_report = now
        stats = self.stats
        try:
            self.sink.report(
                self._report_as,
                started_at=self._started_at,
                values=dict(
                    submitted=stats.submitted, written=stats.written, dropped=stats.dropped, lost=stats.lost,
                    failed_batches=stats.failed_batches, queue_depth=stats.queue_depth, spooled=stats.spooled,
                    spool_bytes=stats.spool_bytes, write_seconds=self._write_seconds, write_batches=self._write_batches, last_error=stats.last_error,
                    stopped_at=dt.datetime.now(dt.UTC) if stopping else None,
                ),
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - counters only; the next report tries again
            if now - self._report_failure_logged > 60:
                self._report_failure_logged = now
                log.warning("could not report the writer's counters to proxy_stats: %s", one_line(exc))

    def _write(self, records: list[Record]) -> None:
        try:
            batch = self.sink.prepare(records)
        except Exception as exc:
            if len(records) == 1:
                self._reject(records, exc)
                return
            for record in records:  # find the record that cannot be prepared
                self._write([record])
            return
        announced = self._announced_in(records)
        try:
            self._write_prepared(batch, announced)
        except _GiveUp:
            raise
        except Exception as exc:
            # Not a connectivity problem: some record is unstorable. Isolate it.
            if len(records) == 1:
                self._reject(records, exc)
                return
            for record in records:
                self._write([record])
            return
        self._written += len(records)
        for _, uuid in announced:
            self._announced.pop(uuid, None)

    def _reject(self, records: list[Record], exc: BaseException) -> None:
        self._lost += len(records)
        self._last_error = one_line(exc)
        log.error("LOST 1 exchange record that cannot be stored: %s", self._last_error, exc_info=exc)

    def _write_prepared(self, batch: PreparedBatch, announced: list[tuple[float, str]] = ()) -> None:
        delay = _BACKOFF_START
        while True:
            started = time.perf_counter()
            try:
                self.sink.write(batch, announced=announced)
                self._write_seconds += time.perf_counter() - started
                self._write_batches += 1
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._failed_batches += 1
                self._last_error = one_line(exc)
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    log.warning(
                        "database %s unavailable, holding records and retrying: %s",
                        self.store.display_url,
                        self._last_error,
                    )
                if self._closing.is_set():
                    remaining = self._deadline - time.monotonic()
                    if remaining <= 0:
                        raise _GiveUp from exc
                    time.sleep(min(delay, remaining))
                else:
                    self._closing.wait(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            if self._outage_since is not None:
                log.warning(
                    "database %s available again after %.1fs", self.store.display_url, time.monotonic() - self._outage_since
                )
                self._outage_since = None
            return
