"""Opening the database (URL checks, engine, SQLite pragmas, migrations), and the boundary
where the driver's errors become storage's (Store.connect, Store.begin).

Every failure to open becomes a storage.errors.CannotOpen or Unavailable with a one-line
message that names the database (password masked) and the problem, so the CLI can print it as is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy
from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from storage.errors import CannotOpen, DatabaseError, StorageError, Unavailable

__all__ = ["Store", "open_store", "one_line", "storage_error"]

log = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK = 0x70617373  # "pass": PostgreSQL advisory lock key serialising upgrades


def one_line(exc: BaseException) -> str:
    """A driver error as one short line (psycopg and sqlite3 messages span lines)."""
    orig = getattr(exc, "orig", None) or exc
    message = str(orig).strip() or type(orig).__name__
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    # psycopg: 'connection failed: connection to server at "h" (ip), port 5432 failed: Connection refused'
    first = lines[0] if lines else message
    if "failed:" in first:
        first = first.rsplit("failed:", 1)[1].strip() or first
    first = re.sub(r"\s+", " ", first)
    if first[:1].isupper() and not first[:2].isupper():
        first = first[0].lower() + first[1:]
    return first[:300]


class Store:
    """An open database: the engine plus what callers need to know about it."""

    def __init__(self, url: str, engine: sqlalchemy.Engine) -> None:
        self.url = url
        self.engine = engine
        self.display_url = engine.url.render_as_string(hide_password=True)
        self.dialect = engine.dialect.name

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """engine.connect(), with the driver's errors inside the block raised as storage errors."""
        with _translated(), self.engine.connect() as connection:
            yield connection

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """engine.begin() (committed at the end, rolled back on an error), with the driver's
        errors inside the block raised as storage errors."""
        with _translated(), self.engine.begin() as connection:
            yield connection

    def close(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"<Store {self.display_url}>"


_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError, DisconnectionError)
_SQLITE_UNUSABLE = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 26})
"""SQLite's primary result codes for a database that cannot be used now, whatever the statement:
BUSY, LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB."""


def storage_error(exc: SQLAlchemyError) -> StorageError:
    """The storage error a driver error means: Unavailable when the database cannot be reached or
    used (a lost connection, a lock, a broken file: trying later may work), else DatabaseError."""
    sqlite_code = getattr(getattr(exc, "orig", None), "sqlite_errorcode", None)
    if sqlite_code is not None:  # SQLite calls a syntax error an OperationalError too: its code tells
        unavailable = sqlite_code & 0xFF in _SQLITE_UNUSABLE
    else:
        unavailable = isinstance(exc, _UNAVAILABLE) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
    return Unavailable(one_line(exc)) if unavailable else DatabaseError(one_line(exc))


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        raise storage_error(exc) from exc


def _normalise(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise CannotOpen(f"invalid database URL {url!r}: {one_line(exc)}") from None
    name = parsed.drivername
    if name in ("postgresql", "postgres", "postgresql+psycopg", "postgres+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if name in ("sqlite", "sqlite+pysqlite"):
        return parsed.set(drivername="sqlite+pysqlite")
    shown = parsed.render_as_string(hide_password=True)
    raise CannotOpen(
        f"unsupported database URL scheme {name!r} in {shown}: use sqlite:///path.db or postgresql://user@host/db"
    )


def _sqlite_file(url: URL) -> Path:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") and "mode=memory" in database:
        raise CannotOpen(
            "in-memory SQLite is not supported: the writer thread and the readers need a shared file "
            "(use sqlite:///passageway.db)"
        )
    path = Path(database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror.lower() if exc.strerror else one_line(exc)
        raise CannotOpen(f"cannot create directory {path.parent} for {url}: {reason}") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise CannotOpen(f"cannot write to directory {path.parent} for {url}: permission denied")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise CannotOpen(f"cannot open {url}: permission denied on {path}")
    return path


def _json_dumps(value: object) -> str:
    # ensure_ascii: the stored JSON never holds raw NUL or surrogates; strings in it
    # are escape_text'ed already, so PostgreSQL json's ->> never meets \u0000.
    return json.dumps(value, separators=(",", ":"))


def _make_engine(url: URL, busy_timeout: float) -> sqlalchemy.Engine:
    if url.get_backend_name() == "sqlite":
        engine = sqlalchemy.create_engine(
            url,
            json_serializer=_json_dumps,
            connect_args={"timeout": busy_timeout, "check_same_thread": False},
            pool_size=8,
            max_overflow=8,
        )
        busy_ms = int(busy_timeout * 1000)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            # busy_timeout first: switching to WAL needs a lock another process may hold.
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            # Random keys (the bodies' sha256) spread index inserts over the file: a larger
            # page cache keeps them in memory (grows only as used; per connection).
            cursor.execute("PRAGMA cache_size = -65536")
            # Checkpoint (and fsync) every 64 MiB of WAL rather than every 4 MiB: with
            # random-key indexes that tripled write throughput here.
            cursor.execute("PRAGMA wal_autocheckpoint = 16384")
            cursor.close()

        return engine
    connect_args: dict[str, object] = {"application_name": "passageway"}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = 10
    return sqlalchemy.create_engine(
        url,
        json_serializer=_json_dumps,
        connect_args=connect_args,
        pool_size=8,
        max_overflow=8,
        pool_pre_ping=True,
    )


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def _migrate(engine: sqlalchemy.Engine) -> None:
    config = _alembic_config()
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            # Take the write lock before Alembic reads the version table, so a second
            # process starting at the same time waits (busy_timeout), then finds head.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()


def open_store(url: str, *, migrate: bool = True, busy_timeout: float = 5.0) -> Store:
    """Open (and by default migrate) the database at `url`.

    busy_timeout: seconds a SQLite statement waits for another writer's lock.
    """
    parsed = _normalise(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        _sqlite_file(parsed)
    try:
        engine = _make_engine(parsed, busy_timeout)
    except (ArgumentError, SQLAlchemyError, ImportError) as exc:
        raise CannotOpen(f"cannot use {shown}: {one_line(exc)}") from None
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except DBAPIError as exc:
        engine.dispose()
        raise Unavailable(f"cannot connect to {shown}: {one_line(exc)}") from None
    if migrate:
        try:
            _migrate(engine)
        except CommandError as exc:
            engine.dispose()
            message = one_line(exc)
            if "Can't locate revision" in message:
                message += " (the database was migrated by a newer passageway)"
            raise CannotOpen(f"migration of {shown} failed: {message}") from None
        except (SQLAlchemyError, OSError) as exc:
            engine.dispose()
            raise CannotOpen(f"migration of {shown} failed: {one_line(exc)}") from None
    return Store(url, engine)
