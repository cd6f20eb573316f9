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

__all__ = ["NOTICES_STALE", "POLL_INTERVAL", "SpoolAppender", "SpoolDrain", "SpoolSet", "WriterBusy", "worker_row_name"]

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
    written: int = 0
    """Records acknowledged from it (stored, or found unstorable and counted lost)."""
    notices_mtime: int = 0
    notices: list[PendingNotice] | None = None
    counters_base: dict | None = None
    """A worker's counters summed over its earlier runs (another pid in stats.json)."""
    last_pid: int | None = None
    last_counters: dict | None = None


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
        self._written_base: dict[str, int] = {}  # source name -> written by a killed predecessor
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
                self.sources[name] = _Source(name, reader, worker, written=self._written_base.pop(name, 0))
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

    def add_written(self, name: str, count: int) -> None:
        """Count `count` records as written from source `name` (`worker-K`) before this writer."""
        with self._mutex:
            if name in self.sources:
                self.sources[name].written += count
            else:
                self._written_base[name] = self._written_base.get(name, 0) + count

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
            source.written += count
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
        """A worker's stats.json, its counters summed over its runs since this writer started."""
        try:
            values = json.loads((source.spool.directory / "stats.json").read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("unreadable counters in %s: %s", source.spool.directory, one_line(exc))
            return None
        counters = {key: int(values.get(key, 0)) for key in ("submitted", "dropped", "lost")}
        if source.last_pid is not None and values.get("pid") != source.last_pid and source.last_counters:
            base = source.counters_base or dict.fromkeys(counters, 0)
            source.counters_base = {key: base[key] + source.last_counters[key] for key in counters}
        source.last_pid, source.last_counters = values.get("pid"), counters
        base = source.counters_base or dict.fromkeys(counters, 0)
        return {
            **{key: base[key] + counters[key] for key in counters},
            "queue_depth": int(values.get("queue_depth", 0)),
            "started_at": values.get("started_at"),
            "stopped": bool(values.get("stopped")),
        }

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
        """Go on with the counters of a writer that was killed (its rows in proxy_stats not
        stopped): the workers' counters go on too, and `written` must not fall behind them.
        After a clean stop (the whole proxy stopped) they start again from 0, like the workers'."""
        from storage.queries import proxy_stats

        try:
            rows = proxy_stats(self.store)
        except Exception as exc:  # noqa: BLE001 - counters only
            log.warning("could not read the last counters from proxy_stats: %s", one_line(exc))
            return
        worker_rows = f"{self._proxy_name}/{_WORKER_PREFIX}"  # as worker_row_name makes them
        for row in rows:
            if row["stopped_at"] is not None:
                continue
            if row["proxy"] == self._proxy_name:
                self._written += row["written"]
                self._failed_batches += row["failed_batches"]
                self._write_seconds += row["write_seconds"]
                self._write_batches += row["write_batches"]
                self._started_at = dt.datetime.fromisoformat(row["started_at"])
            elif row["proxy"].startswith(worker_rows):
                self.spools.add_written(row["proxy"].removeprefix(f"{self._proxy_name}/"), row["written"])

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
        sums = dict(submitted=0, dropped=0, lost=0, queue_depth=0)
        for source in list(self.spools.sources.values()):
            counters = source.last_counters or {}
            for key in ("submitted", "dropped", "lost"):
                sums[key] += counters.get(key, 0) + (source.counters_base or {}).get(key, 0)
            sums["lost"] += source.spool.lost if isinstance(source.spool, SpoolReader) else source.spool.lost_on_open
        return WriterStats(
            submitted=sums["submitted"], written=self._written, dropped=sums["dropped"], failed_batches=self._failed_batches,
            queue_depth=0, last_error=self._last_error, lost=sums["lost"] + self._lost, spooled=self.spools.pending_records,
            spool_bytes=self.spools.pending_bytes,
        )  # fmt: skip

    def _maybe_report(self, *, stopping: bool = False) -> None:
        """The summed row (`proxy_name`) and one row per worker (worker_row_name) in proxy_stats."""
        now = time.monotonic()
        if self._outage_since is not None or (not stopping and now - self._last_report < REPORT_INTERVAL):
            return
        self._last_report = now
        rows = []
        queue_depth = 0
        for source in list(self.spools.sources.values()):
            if source.worker is None:
                continue
            counters = self.spools.worker_counters(source)
            if counters is None:
                continue
            queue_depth += counters["queue_depth"] if not counters["stopped"] else 0
            spool = source.spool
            started = dt.datetime.fromisoformat(counters["started_at"]) if counters["started_at"] else self._started_at
            rows.append((worker_row_name(self._proxy_name, source.worker), started, dict(
                submitted=counters["submitted"], written=source.written, dropped=counters["dropped"],
                lost=counters["lost"] + spool.lost, failed_batches=0, queue_depth=counters["queue_depth"],
                spooled=spool.pending_records, spool_bytes=spool.pending_bytes, write_seconds=0.0, write_batches=0,
                last_error=None, stopped_at=dt.datetime.now(dt.UTC) if counters["stopped"] else None,
            )))  # fmt: skip
        stats = self.stats
        rows.append((self._proxy_name, self._started_at, dict(
            submitted=stats.submitted, written=stats.written, dropped=stats.dropped, lost=stats.lost,
            failed_batches=stats.failed_batches, queue_depth=queue_depth, spooled=stats.spooled,
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
