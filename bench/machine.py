"""What the benchmarks share: the machine they ran on, a scratch PostgreSQL database."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


PG_ADMIN_URL = os.environ.get("PASSAGEWAY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def scratch_postgres(prefix: str) -> Iterator[str | None]:
    """A new PostgreSQL database for one run, dropped afterwards; None (said why) when unreachable."""
    name = f"{prefix}_{os.getpid()}"
    admin = _admin()
    if admin is None:
        yield None
        return
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def kept_postgres(name: str) -> Iterator[str | None]:
    """PostgreSQL database `name`, created when missing and never dropped (for reuse between runs)."""
    admin = _admin()
    if admin is None:
        yield None
        return
    with admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def _admin() -> psycopg.Connection | None:
    """A connection to the maintenance database; None (said why) when PostgreSQL is unreachable."""
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        print(f"PostgreSQL skipped: {str(exc).strip().splitlines()[0]}")
        return None
