"""Real PostgreSQL databases for tests: a fresh, uniquely named database per use.

The server is the local one: 127.0.0.1:5432, user ``postgres``, trust auth. Override with
``PASSAGEWAY_TEST_PG_URL`` (a libpq URL to the maintenance database, e.g.
``postgresql://postgres@127.0.0.1:5432/postgres``).

``PASSAGEWAY_REQUIRE_POSTGRES=1`` (set it in CI) turns "PostgreSQL is unreachable" from a skip into
a test failure, so a CI whose database did not start cannot pass by skipping.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT = 3

_lock = threading.Lock()
_reason_cache: dict[str, str | None] = {}


def admin_url() -> str:
    """libpq URL of the maintenance database (where CREATE/DROP DATABASE run)."""
    return os.environ.get("PASSAGEWAY_TEST_PG_URL", DEFAULT_ADMIN_URL)


def postgres_required() -> bool:
    return os.environ.get("PASSAGEWAY_REQUIRE_POSTGRES", "") == "1"


def database_url(name: str, *, driver: str = "postgresql+psycopg") -> str:
    """URL of database ``name`` on the test server, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/NAME."""
    parts = urlsplit(admin_url())
    return urlunsplit((driver, parts.netloc, "/" + name, parts.query, ""))


def _connect_admin() -> psycopg.Connection:
    return psycopg.connect(admin_url(), autocommit=True, connect_timeout=CONNECT_TIMEOUT)


def postgres_unavailable_reason(*, refresh: bool = False) -> str | None:
    """None when the server answers ``SELECT 1``; otherwise a one-line reason. Cached per process."""
    url = admin_url()
    with _lock:
        if not refresh and url in _reason_cache:
            return _reason_cache[url]
    try:
        with _connect_admin() as conn:
            conn.execute("SELECT 1")
        reason = None
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = f"PostgreSQL at {url} is not usable: {first}"
    with _lock:
        _reason_cache[url] = reason
    return reason


def postgres_available() -> bool:
    return postgres_unavailable_reason() is None


def require_or_skip_postgres() -> None:
    """Skip the calling test when PostgreSQL is unreachable, or fail it if PASSAGEWAY_REQUIRE_POSTGRES=1."""
    import pytest

    reason = postgres_unavailable_reason()
    if reason is None:
        return
    if postgres_required():
        pytest.fail(f"{reason} (and PASSAGEWAY_REQUIRE_POSTGRES=1, so this is an error, not a skip)",
                    pytrace=False)
    pytest.skip(reason)


def create_database(name: str) -> None:
    with _connect_admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(name: str) -> None:
    """DROP DATABASE IF EXISTS ... WITH (FORCE): also ends sessions still connected to it."""
    with _connect_admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def database_exists(name: str) -> bool:
    with _connect_admin() as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


@contextlib.contextmanager
def fresh_postgres_database(prefix: str = "passageway_test", *, driver: str = "postgresql+psycopg",
                            keep: bool = False, skip_if_unavailable: bool = True) -> Iterator[str]:
    """Create an empty, uniquely named database; yield its URL; drop it afterwards (even if
    connections are still open). When PostgreSQL is unreachable it calls require_or_skip_postgres()
    (skip, or fail under PASSAGEWAY_REQUIRE_POSTGRES=1); with ``skip_if_unavailable=False`` the
    connection error propagates instead (for scripts outside pytest). ``keep=True`` (or
    PASSAGEWAY_KEEP_TEST_DB=1) leaves the database for inspection."""
    if skip_if_unavailable:
        require_or_skip_postgres()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}".lower()
    create_database(name)
    try:
        yield database_url(name, driver=driver)
    finally:
        if not (keep or os.environ.get("PASSAGEWAY_KEEP_TEST_DB") == "1"):
            drop_database(name)


def name_of(url: str) -> str:
    """Database name in a URL yielded by fresh_postgres_database()."""
    return urlsplit(url).path.lstrip("/")
