"""Storage: models, migrations, the one write path, the search indexer, queries, the change feed and the maintenance role; its pure cores (record, decoding, search parsing, HAR, redaction, diff...) in storage.pure."""

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

__all__ = [
    "ERROR_KINDS",
    "CapturedBody",
    "ChangeFeed",
    "DecodeError",
    "ExchangePage",
    "ExchangeRecord",
    "ExchangeWriter",
    "Maintenance",
    "StorageError",
    "Store",
    "StoredBody",
    "Timings",
    "WebSocketMessageRecord",
    "WriterStats",
    "database_health",
    "decode_body",
    "get_body",
    "get_exchange",
    "index_pending",
    "list_exchanges",
    "list_websocket_messages",
    "open_change_feed",
    "open_store",
    "run_maintenance",
    "summaries_for_ids",
    "write_records",
]
