"""Traffic out and in as HAR: the stored side of storage.har (which is pure).

har_of() reads exchanges (by id, at most MAX_EXPORT) and their bodies and builds a HAR
1.2 log, redacted with storage.redaction unless asked for raw; import_records() writes
what storage.har.import_har made through the one write path and indexes it for search.

The search index is built by the inspector's indexer (storage.indexer), which may not be
running when a command searches: imports index what they wrote, and a command whose
search reads the index first catches it up (catch_up_search_index).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from importlib import metadata

from storage.har import HarBody, HarSource, export_har, har_body
from storage.indexer import index_pending
from storage.queries import get_body, get_exchange, index_backlog, list_exchanges
from storage.record import ExchangeRecord
from storage.redaction import RedactionRules, redact_body, redact_exchange
from storage.search import Query
from storage.shares import redaction_key
from storage.store import Store
from storage.writer import write_records

__all__ = ["MAX_EXPORT", "catch_up_search_index", "har_of", "import_records", "search_ids"]

MAX_EXPORT = 10_000
"""Exchanges one export holds at most (the newest the search matched)."""
_DECODE_LIMIT = 64 * 1024 * 1024
_BATCH = 500


def search_ids(store: Store, query: Query | None, *, limit: int = MAX_EXPORT) -> list[int]:
    """The ids a search matches (the newest `limit`), oldest first, as a HAR lists them."""
    ids: list[int] = []
    before = None
    while len(ids) < limit:
        page = list_exchanges(store, q=query, limit=min(1000, limit - len(ids)), before=before)
        ids.extend(row["id"] for row in page.data)
        if page.next is None:
            break
        before = page.next
    return sorted(ids)


def har_of(store: Store, ids: Sequence[int], *, rules: RedactionRules | None) -> dict:
    """A HAR log of the exchanges `ids` (missing ones skipped); redacted unless rules is None."""
    key = redaction_key(store) if rules is not None else b""
    sources = []
    for exchange_id in ids[:MAX_EXPORT]:
        detail = get_exchange(store, exchange_id=exchange_id, har=True)
        if detail is None:
            continue
        bodies = {side: _body(store, exchange_id, side, rules, key) for side in ("request", "response")}
        if rules is not None:
            detail = _redact_page_title(redact_exchange(detail, rules, key), rules, key)
        sources.append(HarSource(detail, request_body=bodies["request"], response_body=bodies["response"]))
    return export_har(sources, creator_version=_version())


def import_records(store: Store, records: Sequence[ExchangeRecord]) -> list[int]:
    """Store imported records (one transaction per 500) and index them for search; the ids
    of those that were new. A record already stored (the same file imported again, or an
    export of this store) keeps its row: ids are given in insert order, so the new ones
    are those above the newest id before the import."""
    newest_before = _newest_id(store)
    new: list[int] = []
    for start in range(0, len(records), _BATCH):
        written = write_records(store, records[start : start + _BATCH])
        fresh = list(dict.fromkeys(id_ for id_ in written if id_ > newest_before))
        index_pending(store, ids=fresh, limit=len(fresh))
        new.extend(fresh)
    return new


def catch_up_search_index(store: Store, *, most: int = 100_000) -> int:
    """Index up to `most` exchanges waiting for the search index, as the inspector's indexer
    would; how many still wait after (more than `most`, or held by another indexer)."""
    done = 0
    while done < most and (batch := index_pending(store, limit=min(_BATCH, most - done))):
        done += len(batch)
    return index_backlog(store)


def _newest_id(store: Store) -> int:
    page = list_exchanges(store, limit=1)
    return page.data[0]["id"] if page.data else 0


def _redact_page_title(detail: dict, rules: RedactionRules, key: bytes) -> dict:
    """An imported page's title is often its URL (Chrome writes it so): redacted as one."""
    page = (detail.get("har") or {}).get("page")
    if isinstance(page, dict) and isinstance(page.get("title"), str):
        page["title"] = redact_exchange({"url": page["title"]}, rules, key)["url"]
    return detail


def _body(store: Store, exchange_id: int, side: str, rules: RedactionRules | None, key: bytes) -> HarBody | None:
    stored = get_body(store, exchange_id=exchange_id, side=side)
    if stored is None:
        return None
    body = har_body(
        stored.data,
        size=stored.size,
        truncated=stored.truncated,
        encoding=stored.encoding,
        content_type=stored.content_type,
        limit=_DECODE_LIMIT,
    )
    if rules is not None and body.data is not None:
        body = dataclasses.replace(body, data=redact_body(body.data, stored.content_type, rules, key))
    return body


def _version() -> str:
    try:
        return metadata.version("passageway")
    except metadata.PackageNotFoundError:
        return "dev"
