"""Empty a store between tests: every table the models declare, the search tables the migrations
make beside them, and ids starting again from 1. The schema (and alembic_version) stays.

    from tests.support.stores import reset_store, migrated_sqlite_url
    reset_store(store)  # as if freshly migrated
    url = migrated_sqlite_url(tmp_path / "test.db")  # a new file, as if freshly migrated

The table list comes from the models' own metadata, so a new model is emptied without anyone
listing it; tests/storage/test_store_reset.py fails when the database holds a table this misses.

PostgreSQL: DELETE and a restart of the tables' own sequences rather than TRUNCATE ... RESTART
IDENTITY, which gives every table new files and here cost 20-200 ms a reset (DELETE: about 4 ms,
for the few rows a test writes); there are no foreign keys to cascade along.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import text

from storage.models import Base
from storage.store import Store, open_store

SEARCH_TABLES = {"postgresql": ("exchange_search",), "sqlite": ("exchange_fts",)}
"""Tables storage/migrations/versions/0002_search.py creates that no model declares."""


def reset_tables(dialect: str) -> list[str]:
    """Every table reset_store empties on `dialect`, each before the tables it depends on."""
    return [table.name for table in reversed(Base.metadata.sorted_tables)] + list(SEARCH_TABLES[dialect])


def reset_store(store: Store) -> Store:
    """Empty every table of `store` (see the module doc) in one transaction; returns `store`."""
    tables = reset_tables(store.dialect)
    quote = store.engine.dialect.identifier_preparer.quote
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            for name in tables:
                if name == "exchange_fts":  # contentless FTS5: no DELETE; 'delete-all' empties it
                    conn.execute(text("INSERT INTO exchange_fts (exchange_fts) VALUES ('delete-all')"))
                else:
                    conn.execute(text(f"DELETE FROM {quote(name)}"))
            conn.execute(text("DELETE FROM sqlite_sequence"))  # AUTOINCREMENT counters
            return store
        for name in tables:
            conn.execute(text(f"DELETE FROM {quote(name)}"))
        conn.execute(
            text(
                "SELECT setval(s.seqrelid, s.seqstart, false) FROM pg_sequence s"
                " JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid"
                " AND d.deptype IN ('a', 'i')"
                " JOIN pg_class t ON t.oid = d.refobjid"
                " WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY(:tables)"
            ),
            {"tables": tables},
        )
    return store


_template: Path | None = None


def migrated_sqlite_url(path: str | os.PathLike[str]) -> str:
    """The URL of a new SQLite file at `path` holding a freshly migrated, empty store: a copy of
    one migrated once per process (migrating a new file costs ~0.1 s of CPU and several fsyncs;
    a copy, a quarter of that). The copy is a file of its own, exactly what open_store would
    have made, so a test still starts from nothing and shares nothing."""
    global _template
    if _template is None:
        directory = Path(tempfile.mkdtemp(prefix="passageway-template-"))
        atexit.register(shutil.rmtree, directory, True)
        open_store(f"sqlite:///{directory / 'template.db'}").close()
        # Closing the last connection checkpoints the WAL into the file and removes it.
        assert not (directory / "template.db-wal").exists(), "the template's WAL was not checkpointed"
        _template = directory / "template.db"
    shutil.copyfile(_template, path)
    return f"sqlite:///{path}"
