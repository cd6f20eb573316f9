"""The write path split in two processes: proxy workers append, one writer process writes.

    worker K: event loop --submit()--> deque --appender thread--> spool_dir/worker-K (Spool(shared=True))
    writer process: every spool_dir/worker-* (SpoolReader) --> one drain thread --> DatabaseSink

A worker (`passageway proxy --worker K`) runs SpoolAppender in place of ExchangeWriter: the
same queue and appender thread (redact_at_capture included, so secrets never reach the
disk), and nothing else: no hashing, compression or database on its event loop's core. It
also keeps two small files beside its segments, both replaced whole (write + rename):
- `notices`: its latest pending notices (storage.pure.pending), rewritten at each announce
  (about twice a second while calls run long); the writer process upserts them as the
  in-process writer thread does, and ignores a file older than NOTICES_STALE (its worker
  is gone: the notices expire into unknown_outcome exchanges, as after a kill -9);
- `stats.json`: its counters, every STATS_INTERVAL, for proxy_stats.

The writer process (`passageway writer`, SpoolDrain) reads every worker's spool in order,
gathers records from all of them into one batch (one transaction), and acknowledges each
spool's position once the batch is committed: a record is written once, and a record read
again after a kill -9 of the writer adds no row (inserts are keyed by uuid). It also drains
segments an older version left directly in spool_dir (opened as that proxy did: Spool, its
`lock` held). It polls for new bytes every POLL_INTERVAL (a stat and a listdir per spool:
idle costs next to nothing) and for new worker directories every second.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import msgpack

from storage.pure.pending import PendingNotice
from storage.spool import Spool, SpoolBusy, SpoolError, SpoolReader, _flock, _open_lock
from storage.store import Store, one_line
from storage.writer import REPORT_INTERVAL, ExchangeWriter, WriterStats

__all__ = ["NOTICES_STALE", "POLL_INTERVAL", "SpoolAppender", "SpoolDrain", "SpoolSet", "WriterBusy", "worker_of_row", "worker_row_name"]

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.025
"""Seconds between two looks for new records in the spools."""
STATS_INTERVAL = 1.0
"""Seconds between two writes of a worker's stats.json."""
NOTICES_STALE = 5.0
"""A notices file not rewritten for this long belongs to a worker that is gone."""
_NOTICE_FIELDS = len(fields(PendingNotice))
_WORKER_PREFIX = "worker-"


def worker_row_name(proxy_name: str, worker: int) -> str:
    """The proxy_stats row of one worker (the row named `proxy_name` holds the sums)."""
    return f"{proxy_name}/{_WORKER_PREFIX}{worker}"


def worker_of_row(row_name: str) -> tuple[str, int | None]:
    """(proxy name, worker number) of a proxy_stats row; None for a proxy's own row (the sums)."""
    proxy, slash, worker = row_name.rpartition(f"/{_WORKER_PREFIX}")
    return (proxy, int(worker)) if slash and proxy and worker.isdigit() else (row_name, None)


def _replace(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


# -- the worker's side ---------------------------------------------------------------------------


class SpoolAppender(ExchangeWriter):
    """A proxy worker's writer: queue -> its spool, and the notices and stats files. The
    interface of ExchangeWriter (submit, announce, start, close, stats, store); writes no
    record to the database."""

    def __init__(self, store: Store, *, spool: Spool, transform=None, append_interval: float = 0.05,  # noqa: ANN001
                 queue_size: int = 20000) -> None:  # fmt: skip
        if not spool.shared:
            raise ValueError("a worker appends to a shared spool")
        super().__init__(store, spool=spool, transform=transform, append_interval=append_interval, queue_size=queue_size)
        self.directory = spool.directory
        # The counters are the directory's, across the worker's runs: the writer's `written` for
        # it (in `acked`) is too, so captured = written + dropped + lost + what waits, always.
        earlier = read_worker_stats(self.directory) or {}
        self._submitted, self._dropped = earlier.get("submitted", 0), earlier.get("dropped", 0)
        self._lost += earlier.get("lost", 0)
        if earlier.get("started_at"):
            self._started_at = dt.datetime.fromisoformat(earlier["started_at"])
        self._notices_seen: list[PendingNotice] | None = None
        self._last_stats = 0.0

    def start(self) -> None:
        with self._lock:
            if self._appender is not None or self._closed:
                return
            self._appender = threading.Thread(target=self._append_loop, name="passageway-spool", daemon=True)
            self._appender.start()

    def announce(self, notices: list[PendingNotice]) -> None:
        self._notices = notices  # the appender thread writes the file (no I/O on the event loop)

    def _between_appends(self) -> None:
        notices = self._notices
        if notices is not None and notices is not self._notices_seen:
            self._notices_seen = notices
            try:
                _replace(self.directory / "notices", msgpack.packb([astuple(n) for n in notices]))
            except OSError as exc:
                log.warning("could not write the pending notices in %s: %s", self.directory, one_line(exc))
        if time.monotonic() - self._last_stats >= STATS_INTERVAL:
            self._write_stats(stopped=False)

    def _write_stats(self, *, stopped: bool) -> None:
        self._last_stats = time.monotonic()
        stats = self.stats
        values = dict(pid=os.getpid(), started_at=self._started_at.isoformat(), stopped=stopped,
                      submitted=stats.submitted, dropped=stats.dropped, lost=stats.lost, queue_depth=stats.queue_depth)  # fmt: skip
        try:
            _replace(self.directory / "stats.json", json.dumps(values).encode())
        except OSError as exc:
            log.warning("could not write the counters in %s: %s", self.directory, one_line(exc))

    @property
    def stats(self) -> WriterStats:
        return WriterStats(
            submitted=self._submitted, written=0, dropped=self._dropped, failed_batches=0, queue_depth=len(self._queue),
            last_error=None, lost=self._lost, spooled=0, spool_bytes=self._spool.pending_bytes,
        )  # fmt: skip

    def close(self, timeout: float = 10.0) -> None:
        """Append what is queued, then stop (the writer process writes it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            appender = self._appender
        self._closing.set()
        self._wake.set()
        if appender is None:
            self._append_loop()
        else:
            appender.join(timeout)
        self._notices = []
        self._between_appends()  # no call of this worker is pending any more
        self._write_stats(stopped=True)
        self._spool.close()


def read_worker_stats(directory: Path) -> dict | None:
    """A worker's stats.json (None: none yet, or unreadable: logged)."""
    try:
        values = json.loads((directory / "stats.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("unreadable counters in %s: %s", directory, one_line(exc))
        return None
    return values if isinstance(values, dict) else None


# -- the writer process's side -------------------------------------------------------------------


class WriterBusy(SpoolError):
    """Another writer process drains this spool directory."""


@dataclass(slots=True)
class _Source:
    """One spool the writer drains: a worker's (SpoolReader) or the one an older version left (Spool)."""

    name: str
    """`worker-K`, or `legacy`."""
    spool: SpoolReader | Spool
    worker: int | None
    legacy_written: int = 0
    """The legacy spool's records acknowledged by this writer (a worker's count is in its `acked`)."""
    notices_mtime: int = 0
    notices: list[PendingNotice] | None = None
    counters: dict | None = None
    """A worker's stats.json as last read."""

    @property
    def written(self) -> int:
        """Records acknowledged from it (stored, or found unstorable and counted lost)."""
        return self.spool.acked_records if isinstance(self.spool, SpoolReader) else self.legacy_written

    @property
    def lost(self) -> int:
        """Records the writer found damaged in it."""
        return self.spool.lost if isinstance(self.spool, SpoolReader) else self.spool.lost_on_open


class SpoolSet:
    """Every spool under `spool_dir`, read as one: read() gathers from each in turn, ack()
    acknowledges each one's part. Holds `spool_dir/writer.lock`: one writer per directory set."""

    durable = True
    lost_on_open = 0

    def __init__(self, spool_dir: Path, *, legacy_max_bytes: int = 1024**3) -> None:
        self.directory = Path(spool_dir)
        self._lock_fd = _open_lock(self.directory, "writer.lock")
        if not _flock(self._lock_fd, 0.0):
            os.close(self._lock_fd)
            raise WriterBusy(f"another writer process already drains the spools in {self.directory}")
        self._legacy_max_bytes = legacy_max_bytes
        self._legacy_busy_logged = False
        self._mutex = threading.Lock()
        self.sources: dict[str, _Source] = {}
        self._unacked: dict[str, tuple[int, int]] = {}  # source -> (position read up to, records)
        self._next = 0  # round robin
        self.deadline = float("inf")
        """read() returns nothing past this (monotonic): a writer stopping does not chase new records."""
        self.refresh()

    def __str__(self) -> str:
        return f"the spools in {self.directory}"

    @property
    def limit(self) -> str:
        return "each worker's spool_max_bytes"

    def refresh(self) -> None:
        """Open the spools that appeared (a worker started, N grew; legacy segments)."""
        try:
            names = sorted(os.listdir(self.directory))
        except OSError as exc:
            log.error("cannot list %s: %s", self.directory, one_line(exc))
            return
        for name in names:
            if name in self.sources or not name.startswith(_WORKER_PREFIX):
                continue
            try:
                worker = int(name.removeprefix(_WORKER_PREFIX))
            except ValueError:
                continue
            if not (self.directory / name).is_dir():
                continue
            reader = SpoolReader(self.directory / name)  # SpoolBusy: another writer; raised to the caller
            with self._mutex:
                self.sources[name] = _Source(name, reader, worker)
        if "legacy" not in self.sources and any(name.endswith(".seg") for name in names):
            try:
                legacy = Spool(self.directory, max_bytes=self._legacy_max_bytes)
            except SpoolBusy:
                if not self._legacy_busy_logged:
                    self._legacy_busy_logged = True
                    log.warning("%s holds segments of a proxy that still runs there: drained once it stops", self.directory)
                return
            if legacy.pending_records:
                log.warning("writing %d record(s) an older proxy left in %s", legacy.pending_records, self.directory)
            with self._mutex:
                self.sources["legacy"] = _Source("legacy", legacy, None)

    def has_unread(self) -> bool:
        with self._mutex:
            sources = list(self.sources.values())
        return any(source.spool.has_unread() for source in sources)

    def read(self, max_records: int) -> tuple[list[object], dict[str, tuple[int, int]]]:
        """Up to `max_records` records, taken from each spool in turn; with what ack() needs."""
        with self._mutex:
            sources = list(self.sources.values())
        frames: list[object] = []
        if time.monotonic() < self.deadline and sources:
            start = self._next % len(sources)
            self._next += 1
            for source in sources[start:] + sources[:start]:
                if len(frames) >= max_records:
                    break
                got, position = source.spool.read(max_records - len(frames))
                if got:
                    frames += got
                    _, before = self._unacked.get(source.name, (0, 0))
                    self._unacked[source.name] = (position, before + len(got))
        return frames, dict(self._unacked)

    def ack(self, read: dict[str, tuple[int, int]], records: int) -> None:
        for name, (position, count) in read.items():
            source = self.sources[name]
            source.spool.ack(position, count)
            if source.worker is None:
                source.legacy_written += count
            if self._unacked.get(name) == (position, count):
                del self._unacked[name]

    def notices(self) -> list[PendingNotice] | None:
        """Every live worker's pending notices, or None when no notices file changed."""
        changed = False
        now = time.time()
        for source in list(self.sources.values()):
            if source.worker is None:
                continue
            path = source.spool.directory / "notices"
            try:
                mtime = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if now - mtime / 1e9 > NOTICES_STALE:
                if source.notices:  # its worker stopped refreshing them: gone
                    source.notices, changed = [], True
                continue
            if mtime == source.notices_mtime:
                continue
            source.notices_mtime = mtime
            try:
                listed = msgpack.unpackb(path.read_bytes())
                source.notices = [PendingNotice(*values) for values in listed if len(values) == _NOTICE_FIELDS]
            except (OSError, ValueError, TypeError, msgpack.UnpackException) as exc:
                log.warning("unreadable pending notices in %s: %s", path, one_line(exc))
                continue
            changed = True
        if not changed:
            return None
        return [notice for source in self.sources.values() for notice in source.notices or ()]

    def worker_counters(self, source: _Source) -> dict | None:
        """A worker's counters from its stats.json (the last ones read, if it is unreadable now)."""
        values = read_worker_stats(source.spool.directory)
        if values is not None:
            source.counters = {
                **{key: int(values.get(key, 0)) for key in ("submitted", "dropped", "lost", "queue_depth")},
                "started_at": values.get("started_at"),
                "stopped": bool(values.get("stopped")),
            }
        return source.counters

    @property
    def pending_records(self) -> int:
        return sum(source.spool.pending_records for source in list(self.sources.values()))

    @property
    def pending_bytes(self) -> int:
        return sum(source.spool.pending_bytes for source in list(self.sources.values()))

    def sync(self) -> None:
        """Nothing appended here."""

    def close(self) -> None:
        for source in self.sources.values():
            source.spool.close()
        os.close(self._lock_fd)


class SpoolDrain(ExchangeWriter):
    """The writer process's writer: SpoolSet -> DatabaseSink, with ExchangeWriter's drain loop
    (batches, retries through an outage, notices, acknowledgement after commit)."""

    def __init__(self, store: Store, spools: SpoolSet, *, proxy_name: str, **how) -> None:  # noqa: ANN003
        super().__init__(store, spool=spools, report_as=proxy_name, **how)
        self.spools = spools
        self._proxy_name = proxy_name

    def start(self) -> None:
        self._adopt_notices()
        self._adopt_counters()
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._appender = threading.Thread(target=self._poll_loop, name="passageway-spool-poll", daemon=True)
            self._appender.start()
            self._thread = threading.Thread(target=self._drain_loop, name="passageway-writer", daemon=True)
            self._thread.start()

    def _adopt_notices(self) -> None:
        """The notices a previous writer process (killed) wrote for these workers: the batch that
        stores their exchange deletes them, as if this process had written them."""
        from storage.pending import list_pending

        try:
            rows = list_pending(self.store)
        except Exception as exc:  # noqa: BLE001 - the database may be away: they expire instead
            log.warning("could not read the pending notices: %s", one_line(exc))
            return
        now = time.monotonic()
        for row in rows:
            if row.notice.proxy == self._proxy_name:
                self._announced[row.notice.uuid] = now

    def _adopt_counters(self) -> None:
        """Go on with the write counters of a writer that was killed (its proxy_stats row not
        stopped). `written` needs no adopting: each spool's `acked` counts it."""
        from storage.queries import proxy_stats

        try:
            rows = proxy_stats(self.store)
        except Exception as exc:  # noqa: BLE001 - counters only
            log.warning("could not read the last counters from proxy_stats: %s", one_line(exc))
            return
        for row in rows:
            if row["proxy"] == self._proxy_name and row["stopped_at"] is None:
                self._failed_batches += row["failed_batches"]
                self._write_seconds += row["write_seconds"]
                self._write_batches += row["write_batches"]

    def close(self, timeout: float = 10.0) -> None:
        self.spools.deadline = time.monotonic() + timeout
        super().close(timeout)

    def _poll_loop(self) -> None:
        """Wake the drain loop when a spool has new records; pick up new spools and notices."""
        spools = self.spools
        last_refresh = time.monotonic()
        while not self._closing.is_set():
            now = time.monotonic()
            try:
                if now - last_refresh >= 1.0:
                    last_refresh = now
                    spools.refresh()
                notices = spools.notices()
                if notices is not None:
                    self.announce(notices)
                if spools.has_unread():
                    self._spool_ready.set()
            except SpoolError as exc:
                log.error("%s", exc)
            except Exception:  # a bug here must not stop the writes
                log.exception("unexpected error looking at %s", spools)
            self._closing.wait(POLL_INTERVAL)
        self._appended_all.set()  # the workers stopped first: what is in the spools now is all
        self._spool_ready.set()

    @property
    def stats(self) -> WriterStats:
        """The sums over the spools: the workers' counters, and what was written from each."""
        sums = dict(submitted=0, dropped=0, lost=self._lost, queue_depth=0, written=0)
        for source in list(self.spools.sources.values()):
            counters = source.counters or {}
            for key in ("submitted", "dropped", "lost"):
                sums[key] += counters.get(key, 0)
            if not counters.get("stopped"):
                sums["queue_depth"] += counters.get("queue_depth", 0)
            sums["lost"] += source.lost
            sums["written"] += source.written
        return WriterStats(
            submitted=sums["submitted"], written=sums["written"], dropped=sums["dropped"],
            failed_batches=self._failed_batches, queue_depth=sums["queue_depth"], last_error=self._last_error,
            lost=sums["lost"], spooled=self.spools.pending_records, spool_bytes=self.spools.pending_bytes,
        )  # fmt: skip

    def _maybe_report(self, *, stopping: bool = False) -> None:
        """The summed row (`proxy_name`) and one row per worker (worker_row_name) in proxy_stats."""
        now = time.monotonic()
        if self._outage_since is not None or (not stopping and now - self._last_report < REPORT_INTERVAL):
            return
        self._last_report = now
        rows = []
        for source in list(self.spools.sources.values()):
            if source.worker is None:
                continue
            counters = self.spools.worker_counters(source)
            if counters is None:
                continue
            spool = source.spool
            started = dt.datetime.fromisoformat(counters["started_at"]) if counters["started_at"] else self._started_at
            rows.append((worker_row_name(self._proxy_name, source.worker), started, dict(
                submitted=counters["submitted"], written=source.written, dropped=counters["dropped"],
                lost=counters["lost"] + source.lost, failed_batches=0, queue_depth=counters["queue_depth"],
                spooled=spool.pending_records, spool_bytes=spool.pending_bytes, write_seconds=0.0, write_batches=0,
                last_error=None, stopped_at=dt.datetime.now(dt.UTC) if counters["stopped"] else None,
            )))  # fmt: skip
        stats = self.stats
        rows.append((self._proxy_name, self._started_at, dict(
            submitted=stats.submitted, written=stats.written, dropped=stats.dropped, lost=stats.lost,
            failed_batches=stats.failed_batches, queue_depth=stats.queue_depth, spooled=stats.spooled,
            spool_bytes=stats.spool_bytes, write_seconds=self._write_seconds, write_batches=self._write_batches,
            last_error=stats.last_error, stopped_at=dt.datetime.now(dt.UTC) if stopping else None,
        )))  # fmt: skip
        try:
            for name, started, values in rows:
                self.sink.report(name, started_at=started, values=values)
        except Exception as exc:  # noqa: BLE001 - counters only; the next report tries again
            if now - self._report_failure_logged > 60:
                self._report_failure_logged = now
                log.warning("could not report the writer's counters to proxy_stats: %s", one_line(exc))
