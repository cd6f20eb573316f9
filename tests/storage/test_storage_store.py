"""open_store: URL handling, one-line errors, concurrent migrations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from storage import StorageError, open_store

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
