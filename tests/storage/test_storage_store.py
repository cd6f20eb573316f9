"""open_store: URL handling, one-line errors, concurrent migrations."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from storage import StorageError, open_store
from storage.errors import CannotOpen, DatabaseError, Unavailable

HEAD = max(p.name.split("_")[0] for p in (Path(__file__).parents[2] / "storage/migrations/versions").glob("0*.py"))

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://u:secret@h/db", "unsupported database URL scheme 'mysql'"),
        ("postgresql://u:secret@127.0.0.1:1/db", "cannot connect to postgresql+psycopg://u:***@127.0.0.1:1/db"),
        ("sqlite:///:memory:", "in-memory SQLite is not supported"),
        ("not a url", "invalid database URL"),
    ],
)
def test_one_line_errors(url: str, expected: str) -> None:
    with pytest.raises(StorageError) as info:
        open_store(url)
    message = str(info.value)
    assert expected in message and "\n" not in message and "secret" not in message


def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StorageError, match="cannot create directory"):
        open_store(f"sqlite:///{tmp_path}/file/sub/x.db")


def test_sqlite_creates_directory_and_pragmas(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/a/b/x.db")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar_one() == 1
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    assert store.dialect == "sqlite"
    store.close()


def test_postgres_url_normalised(pg_url: str) -> None:
    store = open_store(pg_url.replace("postgresql+psycopg://", "postgres://"))
    assert store.dialect == "postgresql" and store.display_url.startswith("postgresql+psycopg://")
    store.close()


_CHILD = "import sys; from storage import open_store; open_store(sys.argv[1]).close()"


def _concurrent_opens(url: str, n: int = 4) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, url], cwd=ROOT, stderr=subprocess.PIPE) for _ in range(n)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()


def test_concurrent_starts_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/race.db"
    _concurrent_opens(url)
    with open_store(url).engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD


def test_concurrent_starts_postgres() -> None:
    from tests.support.postgres import fresh_postgres_database

    with fresh_postgres_database("passageway_storage_race") as url:
        _concurrent_opens(url)
        store = open_store(url)
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
        store.close()


def test_open_store_says_which_kind_of_failure() -> None:
    """Unreachable may work later (Unavailable); a bad URL never will (CannotOpen)."""
    with pytest.raises(Unavailable, match="cannot connect"):
        open_store("postgresql://u@127.0.0.1:1/db")
    with pytest.raises(CannotOpen, match="unsupported database URL scheme"):
        open_store("mysql://u@h/db")


def test_a_statement_the_database_refuses_is_a_database_error(store) -> None:
    """The driver's errors leave storage as storage's: a statement either database refuses is a
    DatabaseError (a bug, answered with a 500), even where SQLite calls it an OperationalError."""
    for statement in ("SELECT * FROM no_such_table", "SELEC 1"):
        with pytest.raises(DatabaseError) as info, store.connect() as conn:
            conn.execute(text(statement))
        assert "\n" not in str(info.value)


def test_a_database_that_cannot_be_used_now_is_unavailable(tmp_path: Path) -> None:
    """A lock held too long, or a file that is no database: Unavailable (the inspector's 503)."""
    store = open_store(f"sqlite:///{tmp_path}/x.db", busy_timeout=0.05)
    holder = sqlite3.connect(tmp_path / "x.db")
    holder.execute("BEGIN EXCLUSIVE")
    with pytest.raises(Unavailable, match="locked"), store.begin() as conn:
        conn.execute(text("DELETE FROM inspector_addresses"))
    holder.close()
    store.engine.dispose()
    for name in ("x.db", "x.db-wal", "x.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / "x.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(Unavailable, match="not a database"), store.connect() as conn:
        conn.execute(text("SELECT 1 FROM exchanges"))
    store.close()
