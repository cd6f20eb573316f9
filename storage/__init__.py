"""Storage: models, migrations, the one write path, the search indexer, queries, the change feed and the maintenance role; its pure cores (record, decoding, search parsing, HAR, redaction, diff...) in storage.pure.

The names below are imported on first use (PEP 562): `import storage.errors` must not pull in
SQLAlchemy, the models and the feed, or every `passageway` command (even `--help`) would pay for
them before doing anything."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "StorageError": "storage.errors",
    "ChangeFeed": "storage.feed",
    "open_change_feed": "storage.feed",
    "index_pending": "storage.indexer",
    "Maintenance": "storage.maintenance",
    "run_maintenance": "storage.maintenance",
    "DecodeError": "storage.pure.decoding",
    "decode_body": "storage.pure.decoding",
    "ERROR_KINDS": "storage.pure.record",
    "CapturedBody": "storage.pure.record",
    "ExchangeRecord": "storage.pure.record",
    "Timings": "storage.pure.record",
    "WebSocketMessageRecord": "storage.pure.record",
    "ExchangePage": "storage.queries",
    "StoredBody": "storage.queries",
    "database_health": "storage.queries",
    "get_body": "storage.queries",
    "get_exchange": "storage.queries",
    "list_exchanges": "storage.queries",
    "list_websocket_messages": "storage.queries",
    "summaries_for_ids": "storage.queries",
    "write_records": "storage.sink",
    "Store": "storage.store",
    "open_store": "storage.store",
    "ExchangeWriter": "storage.writer",
    "WriterStats": "storage.writer",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'storage' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from storage.errors import StorageError
    from storage.feed import ChangeFeed, open_change_feed
    from storage.indexer import index_pending
    from storage.maintenance import Maintenance, run_maintenance
    from storage.pure.decoding import DecodeError, decode_body
    from storage.pure.record import ERROR_KINDS, CapturedBody, ExchangeRecord, Timings, WebSocketMessageRecord
    from storage.queries import (
        ExchangePage,
        StoredBody,
        database_health,
        get_body,
        get_exchange,
        list_exchanges,
        list_websocket_messages,
        summaries_for_ids,
    )
    from storage.sink import write_records
    from storage.store import Store, open_store
    from storage.writer import ExchangeWriter, WriterStats
