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
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import threading
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from storage.errors import StorageError

__all__ = ["FRAME_OVERHEAD", "Spool", "SpoolBusy", "SpoolError", "frame", "worker_spool_dir"]

log = logging.getLogger(__name__)

_MAGIC = b"PWS1"
_HEADER = struct.Struct("<4sII")  # magic, payload length, crc32(payload)
FRAME_OVERHEAD = _HEADER.size
_SUFFIX = ".seg"
_SEGMENT_BYTES = 32 * 1024 * 1024
_MAX_FRAME = 1 << 31  # a length beyond this is corruption, not a record
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
    """One process's spool. append() from one thread; read() and ack() from one other."""

    durable = True
    """What it holds survives the process (storage.memory_spool.MemorySpool: lost with it)."""

    def __init__(self, directory: Path, *, max_bytes: int, segment_bytes: int = _SEGMENT_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = max(1, min(segment_bytes, max_bytes // 4 or 1))
        self._lock = threading.Lock()  # segment list, positions, counts
        self._lock_fd = self._take_lock()
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

    def _take_lock(self) -> int:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise SpoolError(f"cannot use spool directory {self.directory}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolBusy(
                f"spool directory {self.directory} is in use by another proxy (give each proxy its own "
                "proxy_name or spool_dir)"
            ) from None
        return fd

    def _open(self) -> None:
        try:
            self._acked = int((self.directory / "acked").read_text().strip() or 0)
        except FileNotFoundError:
            self._acked = 0
        except (OSError, ValueError) as e:
            raise SpoolError(f"spool directory {self.directory}: unreadable 'acked' file ({e})") from None
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            try:
                start = int(path.name.removesuffix(_SUFFIX))
            except ValueError:
                continue  # not ours
            self._segments.append(_Segment(start, path, path.stat().st_size))
        self._segments.sort(key=lambda s: s.start)
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
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:] if written else data)
            self._unsynced = True
            if sync:
                self.sync()
        except OSError:
            os.ftruncate(fd, segment.size)  # a record half on disk would read as corruption
            raise
        with self._lock:
            start = segment.end
            segment.size += len(data)
            self._pending_records += len(frames)
            if items is not None:
                self._keep_recent(start, frames, items)
        return len(frames)

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
        return sum(s.size for s in self._segments)

    @property
    def pending_records(self) -> int:
        """Records appended and not yet acknowledged."""
        return self._pending_records

    @property
    def pending_bytes(self) -> int:
        with self._lock:
            end = self._segments[-1].end if self._segments else self._acked
            return end - self._acked

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
