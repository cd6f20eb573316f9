"""Storage's errors: one base, StorageError, and a few kinds a caller can answer differently.

A storage function raises these and never the driver's own: the store translates SQLAlchemy's
errors at the boundary (storage.store.Store.connect and .begin). Every message is one line,
fit to show as it is.
"""

from __future__ import annotations

__all__ = ["CannotOpen", "DatabaseError", "Gone", "Invalid", "NotFound", "StorageError", "Unavailable"]


class StorageError(Exception):
    """Base of storage's errors."""


class CannotOpen(StorageError):
    """The database cannot be opened as configured: a bad URL, a directory it cannot write, a failed migration."""


class Unavailable(StorageError):
    """The database cannot be reached or used now: a refused or lost connection, a lock held too long, a broken file."""


class DatabaseError(StorageError):
    """The database refused a statement for another reason than availability (a bug, or a schema it lacks)."""


class NotFound(StorageError):
    """What was asked for does not exist."""


class Gone(StorageError):
    """What was asked for existed, but has expired or been revoked."""


class Invalid(StorageError, ValueError):
    """A request storage cannot act on as asked (a bad search, a body that cannot be decoded, a bad HAR file...)."""
