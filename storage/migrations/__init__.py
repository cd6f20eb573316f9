"""Alembic migrations for the storage schema (run by storage.store.open_store)."""
