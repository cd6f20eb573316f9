"""The spool: a bounded on-disk log of records on their way to the database.

    appender thread --append()--> segment files --read()--> writer thread --ack()--> deleted

Every record the proxy captures is appended here (and fdatasync'd) within a few
tens of milliseconds, so a crash or `kill -9` of the proxy loses at most the
records it had not yet appended, and a database that is slow or away only makes
the spool longer. The writer reads records in order, writes them to the database
(idempotently: a record read twice after a crash adds no row), then acknowledges
the position up to which the database has everything.

On disk, in one directory per proxy (0700: records hold secrets):
- `NNNN.seg`: segment files, named by the spool position of their first byte
  (positions count bytes across segments and never go back, so they sort);
- frames, one record each: magic, payload length, CRC-32 of the payload, payload;
- `acked`: the position below which everything is in the database;
- `lock`: held (flock) while a process owns the spool.

Records the writer has not fallen behind on are also handed over in memory, as the
objects they were encoded from, so the usual path never decodes what it just
encoded; the disk is read after a restart and whenever the writer lags by more
than RECENT_BYTES.

A torn frame at the end (a crash in the middle of a write) is cut off on open;
a corrupt frame elsewhere is skipped by searching for the next frame that checks
out. Either loss is counted in `lost_on_open` and logged: never silent.

Across two processes (`passageway proxy` with workers: a worker appends, the writer
process reads), the same directory is shared this way:
- the worker opens it with `Spool(..., shared=True)`: it holds `lock` (one appender per
  directory), repairs a torn tail on open, appends; it never reads, acknowledges or
  deletes, and computes its room from `acked`, which it re-reads at each append;
- the writer process opens it with SpoolReader: it holds `reader.lock` (one reader per
  directory), reads frames as they become whole (a partial frame at the end is "not
  yet written" while the worker lives), writes `acked`, and deletes the segments
  wholly acknowledged, never the last one (the one appended to). A torn tail that a
  dead worker left is cut off by the reader, holding `lock` for that moment.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from storage.errors import StorageError

__all__ = ["FRAME_OVERHEAD", "Spool", "SpoolBusy", "SpoolError", "SpoolReader", "frame", "worker_spool_dir"]

log = logging.getLogger(__name__)

_MAGIC = b"PWS1"
_HEADER = struct.Struct("<4sII")  # magic, payload length, crc32(payload)
FRAME_OVERHEAD = _HEADER.size
_SUFFIX = ".seg"
_SEGMENT_BYTES = 32 * 1024 * 1024
_MAX_FRAME = 1 << 31  # a length beyond this is corruption, not a record
_READ_CHUNK = 1024 * 1024
"""Bytes a SpoolReader reads at once (a batch takes as many reads as it needs)."""
RECENT_BYTES = 64 * 1024 * 1024
"""Encoded bytes of records the appender may keep in memory for a reader that keeps up."""


class SpoolError(StorageError):
    """The spool directory cannot be used; the message is one line."""


class SpoolBusy(SpoolError):
    """Another process holds the spool."""


def worker_spool_dir(spool_dir: Path, worker: int) -> Path:
    """The spool of a proxy's worker K (1, 2, ...): one directory per worker under the proxy's spool_dir."""
    return Path(spool_dir) / f"worker-{worker}"


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload


@dataclass(slots=True)
class _Recent:
    """Appended records still in memory: items[i] ends at spool position ends[i]."""

    start: int
    ends: list[int]
    items: list[object]
    size: int


@dataclass(slots=True)
class _Segment:
    start: int
    """Spool position of the first byte."""
    path: Path
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


class Spool:
    """One process's spool. append() from one thread; read() and ack() from one other.

    `shared`: append only; another process reads it (SpoolReader; see the module's docstring)."""

    durable = True
    """What it holds survives the process (storage.memory_spool.MemorySpool: lost with it)."""

    def __init__(
        self, directory: Path, *, max_bytes: int, segment_bytes: int = _SEGMENT_BYTES, shared: bool = False
    ) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = max(1, min(segment_bytes, max_bytes // 4 or 1))
        self.shared = shared
        self._lock = threading.Lock()  # segment list, positions, counts
        # A reader cutting a dead appender's torn tail holds `lock` for a moment: wait that out.
        self._lock_fd = self._take_lock(wait=1.0 if shared else 0.0)
        self.lost_on_open = 0
        """Records found damaged (torn or corrupt) when the spool was opened."""
        try:
            self._segments: list[_Segment] = []
            self._acked = 0
            self._open()
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._read_position = self._acked
        self._recent: deque[_Recent] = deque()
        self._recent_bytes = 0
        self._pending_records = self._count_pending()
        self._write_fd: int | None = None
        self._unsynced = False
        self._closed = False

    def __str__(self) -> str:
        return f"the spool {self.directory}"

    @property
    def limit(self) -> str:
        return f"{self.max_bytes} bytes"

    # -- opening ----------------------------------------------------------------------------

    def _take_lock(self, wait: float = 0.0) -> int:
        fd = _open_lock(self.directory, "lock")
        if not _flock(fd, wait):
            os.close(fd)
            raise SpoolBusy(
                f"spool directory {self.directory} is in use by another proxy (give each proxy its own "
                "proxy_name or spool_dir)"
            ) from None
        return fd

    def _open(self) -> None:
        self._acked = _read_acked(self.directory)
        self._segments = _list_segments(self.directory)
        if self._segments and self._acked < self._segments[0].start:
            self._acked = self._segments[0].start  # the acked file was lost: replay all (idempotent)
        self._drop_acked_segments()
        for index, segment in enumerate(self._segments):
            self._repair(segment, last=index == len(self._segments) - 1)

    def _repair(self, segment: _Segment, *, last: bool) -> None:
        """Check every unacknowledged frame; cut a torn tail, mark corrupt regions to skip."""
        offset = max(0, self._acked - segment.start)
        with open(segment.path, "rb") as f:
            data = f.read()
        good_end = offset
        while offset < len(data):
            payload_end = _valid_frame_end(data, offset)
            if payload_end is not None:
                offset = good_end = payload_end
                continue
            resume = _next_frame(data, offset + 1)
            self.lost_on_open += 1
            if resume is None:
                break
            log.error(
                "LOST at least 1 spooled record: %s is corrupt at byte %d (%d bytes skipped)",
                segment.path, offset, resume - offset,
            )  # fmt: skip
            offset = resume
            good_end = resume
        if good_end < len(data):
            if not last:
                log.error("LOST at least 1 spooled record: %s ends in a damaged frame", segment.path)
            else:
                log.error(
                    "LOST 1 spooled record: %s ends in a torn write (%d bytes cut off; the proxy stopped mid-write)",
                    segment.path, len(data) - good_end,
                )  # fmt: skip
            os.truncate(segment.path, good_end)
            segment.size = good_end

    def _count_pending(self) -> int:
        count = 0
        position = self._acked
        while True:
            frames, position = self._read_frames(position, 10_000, 64 * 1024 * 1024)
            if not frames:
                return count
            count += len(frames)

    # -- appending (the appender thread) -----------------------------------------------------

    def append(self, payloads: Sequence[bytes], items: Sequence[object] | None = None, *, sync: bool = True) -> int:
        """Append records; how many were taken (from the front), the rest did not fit under
        max_bytes. Raises OSError when the disk fails (nothing is half written: a failed
        write is cut off again). `items`: what each payload encodes, which read() may then
        return instead of the payload. `sync`: fdatasync now (else at the next sync(): a
        write alone survives the process, not the machine)."""
        frames = []
        size = 0
        if self.shared:
            self._refresh_acked()
        with self._lock:
            room = self.max_bytes - self._disk_bytes()
        for payload in payloads:
            framed = frame(payload)
            if size + len(framed) > room:
                break
            frames.append(framed)
            size += len(framed)
        if not frames:
            return 0
        segment = self._writable_segment(size)
        data = b"".join(frames)
        fd = self._write_fd
        assert fd is not None
        written = 0
        try:
            while written < len(data):
                written += os.write(fd, data[written:] if written else data)
            self._unsynced = True
            if sync:
                self.sync()
        except OSError:
            whole = 0
            if self.shared:  # a reader may have taken the whole frames already: keep them, cut the rest
                for framed in frames:
                    if whole + len(framed) > written:
                        break
                    whole += len(framed)
            os.ftruncate(fd, segment.size + whole)  # a record half on disk would read as corruption
            with self._lock:
                segment.size += whole
            raise
        with self._lock:
            start = segment.end
            segment.size += len(data)
            self._pending_records += len(frames)
            if items is not None and not self.shared:
                self._keep_recent(start, frames, items)
        return len(frames)

    def _refresh_acked(self) -> None:
        """Shared: take in what the reader acknowledged (and forget the segments it deleted)."""
        try:
            acked = _read_acked(self.directory)
        except SpoolError:
            return  # the reader is replacing it: the last value is still a safe bound
        with self._lock:
            if acked > self._acked:
                self._acked = acked
                while len(self._segments) > 1 and self._segments[0].end <= acked:
                    self._segments.pop(0)

    def sync(self) -> None:
        """fdatasync what was appended since the last sync."""
        if self._unsynced and self._write_fd is not None:
            os.fdatasync(self._write_fd)
        self._unsynced = False

    def _keep_recent(self, start: int, frames: list[bytes], items: Sequence[object]) -> None:
        """With the lock held: keep the items in memory when they continue what the reader
        will read next from memory, and there is room."""
        follows = self._recent[-1].ends[-1] == start if self._recent else self._read_position == start
        size = sum(map(len, frames))
        if not follows or self._recent_bytes + size > RECENT_BYTES:
            return  # the reader catches up from disk; memory resumes once it has
        ends = []
        position = start
        for framed in frames:
            position += len(framed)
            ends.append(position)
        self._recent.append(_Recent(start, ends, list(items[: len(frames)]), size))
        self._recent_bytes += size

    def _writable_segment(self, size: int) -> _Segment:
        with self._lock:
            current = self._segments[-1] if self._segments else None
        if current is not None and self._write_fd is not None and current.size + size <= self.segment_bytes:
            return current
        if current is not None and self._write_fd is None and current.size + size <= self.segment_bytes:
            self._write_fd = os.open(current.path, os.O_WRONLY | os.O_APPEND)
            return current
        start = current.end if current is not None else self._acked
        segment = _Segment(start, self.directory / f"{start:020d}{_SUFFIX}", 0)
        fd = os.open(segment.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        _fsync_directory(self.directory)
        if self._write_fd is not None:
            self.sync()
            os.close(self._write_fd)
        self._write_fd = fd
        with self._lock:
            self._segments.append(segment)
        return segment

    # -- reading and acknowledging (the writer thread) ------------------------------------------

    def read(self, max_records: int, max_bytes: int = 32 * 1024 * 1024) -> tuple[list[object], int]:
        """The next records after the last read (at least one if any is pending, up to the
        limits), and the position after them, for ack(). Each is the item given to append()
        when it is still in memory, else the payload (bytes) read from disk."""
        with self._lock:
            if self._recent:
                return self._take_recent(max_records)
            position = self._read_position
        frames, end = self._read_frames(position, max_records, max_bytes)
        with self._lock:
            self._read_position = end
        return list(frames), end

    def _take_recent(self, max_records: int) -> tuple[list[object], int]:
        taken: list[object] = []
        while self._recent and len(taken) < max_records:
            chunk = self._recent[0]
            count = min(max_records - len(taken), len(chunk.items))
            taken += chunk.items[:count]
            self._read_position = chunk.ends[count - 1]
            if count == len(chunk.items):
                self._recent.popleft()
                self._recent_bytes -= chunk.size
            else:
                del chunk.items[:count], chunk.ends[:count]
        return taken, self._read_position

    def ack(self, position: int, records: int) -> None:
        """Everything before `position` (`records` records since the last ack) is in the database."""
        with self._lock:
            if position <= self._acked:
                return
            self._acked = position
            self._pending_records -= records
            removable = self._drop_acked_segments()
        temporary = self.directory / "acked.tmp"
        temporary.write_text(str(position))
        os.replace(temporary, self.directory / "acked")
        for path in removable:
            path.unlink(missing_ok=True)

    def _drop_acked_segments(self) -> list[Path]:
        """Forget segments wholly before the acknowledged position (but never the one being
        appended to); their paths, to delete."""
        removable = []
        while len(self._segments) > 1 and self._segments[0].end <= self._acked:
            removable.append(self._segments.pop(0).path)
        return removable

    def _read_frames(self, position: int, max_records: int, max_bytes: int) -> tuple[list[bytes], int]:
        with self._lock:
            segments = [s for s in self._segments if s.end > position]
            sizes = [s.size for s in segments]
        frames: list[bytes] = []
        taken = 0
        for segment, size in zip(segments, sizes, strict=True):
            if len(frames) >= max_records or (frames and taken >= max_bytes):
                break
            offset = max(position, segment.start) - segment.start
            try:
                f = open(segment.path, "rb")
            except FileNotFoundError:
                continue
            with f:
                f.seek(offset)
                while offset < size and len(frames) < max_records and not (frames and taken >= max_bytes):
                    header = f.read(_HEADER.size)
                    if len(header) < _HEADER.size:
                        break
                    magic, length, checksum = _HEADER.unpack(header)
                    payload = f.read(length) if magic == _MAGIC and length < _MAX_FRAME else b""
                    frame_end = offset + _HEADER.size + length
                    if magic != _MAGIC or len(payload) != length or zlib.crc32(payload) != checksum:
                        # Damaged after it was checked on open (the disk): skip to the next good frame.
                        f.seek(0)
                        resume = _next_frame(f.read(size), offset + 1)
                        log.error("LOST at least 1 spooled record: %s is corrupt at byte %d", segment.path, offset)
                        offset = resume if resume is not None else size
                        f.seek(offset)
                        continue
                    frames.append(payload)
                    taken += len(payload)
                    offset = frame_end
            position = segment.start + offset
        return frames, position

    # -- state --------------------------------------------------------------------------------

    def _disk_bytes(self) -> int:
        if self.shared:  # what the reader has not acknowledged (it deletes the rest)
            return (self._segments[-1].end if self._segments else self._acked) - self._acked
        return sum(s.size for s in self._segments)

    @property
    def pending_records(self) -> int:
        """Records appended and not yet acknowledged (shared: appended since open, with those
        found at open; the reader knows how many it acknowledged)."""
        return self._pending_records

    @property
    def pending_bytes(self) -> int:
        if self.shared:
            self._refresh_acked()
        with self._lock:
            end = self._segments[-1].end if self._segments else self._acked
            return end - self._acked

    def has_unread(self) -> bool:
        """Whether read() has something now."""
        with self._lock:
            end = self._segments[-1].end if self._segments else self._acked
            return bool(self._recent) or end > self._read_position

    @property
    def disk_bytes(self) -> int:
        with self._lock:
            return self._disk_bytes()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._write_fd is not None:
            try:
                self.sync()
            finally:
                os.close(self._write_fd)
            self._write_fd = None
        os.close(self._lock_fd)


def _valid_frame_end(data: bytes, offset: int) -> int | None:
    """The end of the frame at `offset` if it is whole and checks out."""
    if offset + _HEADER.size > len(data):
        return None
    magic, length, checksum = _HEADER.unpack_from(data, offset)
    end = offset + _HEADER.size + length
    if magic != _MAGIC or end > len(data):
        return None
    if zlib.crc32(memoryview(data)[offset + _HEADER.size : end]) != checksum:
        return None
    return end


def _next_frame(data: bytes, offset: int) -> int | None:
    """The offset of the next whole, valid frame at or after `offset`."""
    while (found := data.find(_MAGIC, offset)) != -1:
        if _valid_frame_end(data, found) is not None:
            return found
        offset = found + 1
    return None


def _fsync_directory(directory: Path) -> None:
    """A new segment's name survives a machine crash only once its directory is synced."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:  # some filesystems cannot sync a directory; the data itself is synced
        if e.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _open_lock(directory: Path, name: str) -> int:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(directory / name, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise SpoolError(f"cannot use spool directory {directory}: {e.strerror}") from None


def _flock(fd: int, wait: float) -> bool:
    """Take an exclusive flock on `fd`, trying for up to `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def _read_acked(directory: Path) -> int:
    return _read_acked_file(directory)[0]


def _read_acked_file(directory: Path) -> tuple[int, int]:
    """`acked`: the position below which the database has everything and, written by a
    SpoolReader, how many records it acknowledged in this directory so far."""
    try:
        words = (directory / "acked").read_text().split()
        return int(words[0]) if words else 0, int(words[1]) if len(words) > 1 else 0
    except FileNotFoundError:
        return 0, 0
    except (OSError, ValueError) as e:
        raise SpoolError(f"spool directory {directory}: unreadable 'acked' file ({e})") from None


def _list_segments(directory: Path) -> list[_Segment]:
    found = []
    for name in os.listdir(directory):
        if not name.endswith(_SUFFIX):
            continue
        try:
            start = int(name.removesuffix(_SUFFIX))
            size = os.stat(directory / name).st_size
        except (ValueError, FileNotFoundError):
            continue  # not ours, or deleted meanwhile
        found.append(_Segment(start, directory / name, size))
    found.sort(key=lambda s: s.start)
    return found


class SpoolReader:
    """The reading end of a spool another process appends to (Spool(shared=True)): read() and
    ack() from one thread, has_unread() from any.

    Positions are the appender's. Frames are read as they become whole; a partial frame at the
    end of the last segment is waited for while the appender holds `lock`, and cut off (counted
    in `lost`, logged) once no one does. A corrupt frame is skipped to the next good one."""

    durable = True

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._reader_fd = _open_lock(self.directory, "reader.lock")
        if not _flock(self._reader_fd, 0.0):
            os.close(self._reader_fd)
            raise SpoolBusy(f"spool directory {self.directory} is drained by another writer process")
        self._lock = threading.Lock()
        try:
            self._acked, self.acked_records = _read_acked_file(self.directory)
        except SpoolError:
            os.close(self._reader_fd)
            raise
        self._segments: list[_Segment] = []
        self._refresh()
        if self._segments and self._acked < self._segments[0].start:
            self._acked = self._segments[0].start  # the acked file was lost: replay all (idempotent)
        self._read_position = self._acked
        self._waiting_at: tuple[int, int] | None = None  # (position, end) of a partial frame waited for
        self._read_records = 0  # read, not yet acknowledged
        self._counted_end = self._acked  # frames from the read position up to here are counted...
        self._counted = 0  # ... in this
        self.lost = 0
        """Records found damaged (corrupt, or a torn tail a dead appender left)."""
        self.lost_on_open = 0
        self._closed = False

    def __str__(self) -> str:
        return f"the spool {self.directory}"

    def _refresh(self) -> None:
        segments = _list_segments(self.directory)
        with self._lock:
            self._segments = segments

    def _end(self) -> int:
        return self._segments[-1].end if self._segments else self._acked

    def has_unread(self) -> bool:
        """Whether read() may return something now (new bytes since the last read)."""
        self._refresh()
        with self._lock:
            end = self._end()
            if self._waiting_at is not None and self._waiting_at == (self._read_position, end):
                return False
            return end > self._read_position

    def read(self, max_records: int, max_bytes: int = 32 * 1024 * 1024) -> tuple[list[bytes], int]:
        """The next whole records after the last read (up to the limits) and the position after
        them, for ack()."""
        self._refresh()
        frames: list[bytes] = []
        position = self._read_position
        taken = 0
        while len(frames) < max_records and (not frames or taken < max_bytes):
            with self._lock:
                segments = [s for s in self._segments if s.end > position]
                last = self._segments[-1] if self._segments else None
            if not segments:
                break
            segment = segments[0]
            if position < segment.start:
                position = segment.start  # a gap: segments before were skipped whole
            before = position
            got, position, stop = self._read_segment(
                segment, position, max_records - len(frames), max_bytes - taken, last=segment is last
            )
            frames += got
            taken += sum(map(len, got))
            if stop or (not got and position == before):  # nothing more now (a segment cut shorter meanwhile)
                break
        with self._lock:
            self._read_position = position
            self._read_records += len(frames)
            if position <= self._counted_end:
                self._counted = max(0, self._counted - len(frames))
            else:
                self._counted_end, self._counted = position, 0
        return frames, position

    def _read_segment(
        self, segment: _Segment, position: int, max_records: int, max_bytes: int, *, last: bool
    ) -> tuple[list[bytes], int, bool]:
        """Frames of one segment from `position`; (frames, position after them, stop here)."""
        try:
            f = open(segment.path, "rb")
        except FileNotFoundError:
            return [], segment.end, False
        with f:
            file_end = segment.start + os.fstat(f.fileno()).st_size
            f.seek(position - segment.start)
            data = f.read(min(max_bytes, _READ_CHUNK) or 1)  # a larger frame is read alone below
            frames: list[bytes] = []
            offset = 0
            taken = 0
            while offset < len(data) and len(frames) < max_records and (not frames or taken < max_bytes):
                end = _valid_frame_end(data, offset)
                if end is not None:
                    frames.append(data[offset + _HEADER.size : end])
                    taken += end - offset - _HEADER.size
                    offset = end
                    continue
                at_end = position + len(data) >= file_end
                if _partial_frame(data, offset):
                    whole = len(data) - offset >= _HEADER.size and (
                        position + offset + _HEADER.size + _frame_length(data, offset) <= file_end
                    )
                    if whole and not frames:  # larger than one read: read it alone
                        f.seek(position - segment.start + offset)
                        data = data[:offset] + f.read(_HEADER.size + _frame_length(data, offset))
                        if _valid_frame_end(data, offset) is not None:
                            continue
                    elif whole or frames:
                        break  # the next read goes on from here
                    if at_end:
                        return [], *self._at_partial(segment, position + offset, last=last)
                resume = _next_frame(data, offset + 1)
                if resume is None and at_end and last:
                    if frames:
                        break
                    return [], *self._at_partial(segment, position + offset, last=True)
                self.lost += 1
                skip_to = resume if resume is not None else len(data)
                log.error("LOST at least 1 spooled record: %s is corrupt at byte %d (%d bytes skipped)",
                          segment.path, position - segment.start + offset, skip_to - offset)  # fmt: skip
                offset = skip_to
        return frames, position + offset, False

    def _at_partial(self, segment: _Segment, position: int, *, last: bool) -> tuple[int, bool]:
        """Damaged or incomplete bytes from `position` to the segment's end: wait for the
        appender, or cut them off (the appender is gone, or this is not the last segment)."""
        if not last:
            self.lost += 1
            log.error("LOST at least 1 spooled record: %s ends in a damaged frame", segment.path)
            return segment.end, False
        fd = _open_lock(self.directory, "lock")
        try:
            if not _flock(fd, 0.0):
                with self._lock:
                    self._waiting_at = (position, segment.end)
                return position, True  # the appender lives: the frame is being written
            with open(segment.path, "rb") as f:
                f.seek(position - segment.start)
                tail = f.read()
            if _valid_frame_end(tail, 0) is not None:
                return position, True  # it was completed just before the appender went: read it again
            size = position - segment.start + len(tail)
            os.truncate(segment.path, position - segment.start)
            self.lost += 1
            log.error(
                "LOST 1 spooled record: %s ends in a torn write (%d bytes cut off; its proxy stopped mid-write)",
                segment.path, size - (position - segment.start),
            )  # fmt: skip
            self._refresh()
            return position, True
        finally:
            os.close(fd)

    def ack(self, position: int, records: int) -> None:
        """Everything before `position` is in the database: write `acked` (with acked_records,
        the directory's count of records acknowledged), delete the segments wholly before it
        (never the last: the appender may be writing to it)."""
        with self._lock:
            if position <= self._acked:
                return
            self._acked = position
            self._read_records = max(0, self._read_records - records)
            self.acked_records += records
            removable = [s.path for s in self._segments[:-1] if s.end <= position]
        temporary = self.directory / "acked.tmp"
        temporary.write_text(f"{position} {self.acked_records}")
        os.replace(temporary, self.directory / "acked")
        for path in removable:
            path.unlink(missing_ok=True)

    def count_unread(self) -> int:
        """Whole frames not yet read (counted from their headers, only the new ones each time)."""
        self._refresh()
        with self._lock:
            segments = [s for s in self._segments if s.end > self._counted_end]
            position = max(self._counted_end, self._read_position)
        count = 0
        for segment in segments:
            position = max(position, segment.start)
            try:
                with open(segment.path, "rb") as f:
                    f.seek(position - segment.start)
                    while True:
                        header = f.read(_HEADER.size)
                        if len(header) < _HEADER.size:
                            break
                        magic, length, _ = _HEADER.unpack(header)
                        if magic != _MAGIC or position + _HEADER.size + length > segment.end:
                            break
                        f.seek(length, os.SEEK_CUR)
                        position += _HEADER.size + length
                        count += 1
            except FileNotFoundError:
                continue
            if position < segment.end:
                break  # partial or damaged: read() decides
        with self._lock:
            if position > self._counted_end:
                self._counted += count
                self._counted_end = position
            return self._counted

    @property
    def pending_records(self) -> int:
        """Records the database does not have yet: read and not acknowledged, and unread."""
        return self._read_records + self.count_unread()

    @property
    def pending_bytes(self) -> int:
        with self._lock:
            return self._end() - self._acked

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._reader_fd)


def _frame_length(data: bytes, offset: int) -> int:
    return _HEADER.unpack_from(data, offset)[1]


def _partial_frame(data: bytes, offset: int) -> bool:
    """The bytes at `offset` are the start of a frame that does not end within `data`."""
    if len(data) - offset < _HEADER.size:
        return _MAGIC.startswith(bytes(data[offset : offset + 4]))
    magic, length, _ = _HEADER.unpack_from(data, offset)
    return magic == _MAGIC and length < _MAX_FRAME and offset + _HEADER.size + length > len(data)
