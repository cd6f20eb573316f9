"""Traffic out and in as HAR: the stored side of storage.pure.har (which is pure).

har_of() reads exchanges (by id, at most MAX_EXPORT) and their bodies and builds a HAR
1.2 log, redacted unless asked for raw: all of them by one storage.pure.redaction.Redaction, so a
secret of one exchange is also scrubbed from the others; import_records() writes what
storage.pure.har.import_har made through the one write path and indexes it for search.

The search index is built by the maintenance role (storage.maintenance), which may not be
running when a command searches: imports index what they wrote, and a command whose
search reads the index first catches it up (catch_up_search_index).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata

from storage.indexer import index_pending
from storage.outgoing import out_exchange
from storage.pure.decoding import DEFAULT_DECODE_LIMIT
from storage.pure.har import HarBody, HarSource, export_har, har_body
from storage.pure.record import ExchangeRecord
from storage.pure.redaction import OutBody, Redaction, RedactionRules
from storage.pure.search import Query
from storage.queries import StoredBody, get_body, get_exchange, index_backlog, list_exchanges
from storage.shares import redaction_key
from storage.sink import write_records
from storage.store import Store

__all__ = ["MAX_EXPORT", "catch_up_search_index", "har_of", "import_records", "search_ids"]

MAX_EXPORT = 10_000
"""Exchanges one export holds at most (the newest the search matched)."""
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


def har_of(
    store: Store, ids: Sequence[int], *, rules: RedactionRules | None, decode_limit: int = DEFAULT_DECODE_LIMIT
) -> dict:
    """A HAR log of the exchanges `ids` (missing ones skipped); redacted unless rules is None.
    Bodies are inflated to at most `decode_limit` bytes (the max_decoded_body setting)."""
    if rules is None:
        sources = []
        for exchange_id in ids[:MAX_EXPORT]:
            detail = get_exchange(store, exchange_id=exchange_id, har=True)
            if detail is not None:
                bodies = {side: _raw_body(store, exchange_id, side, decode_limit) for side in ("request", "response")}
                sources.append(HarSource(detail, request_body=bodies["request"], response_body=bodies["response"]))
        return export_har(sources, creator_version=_version())
    redaction = Redaction(rules, redaction_key(store))
    stored_bodies = []
    for exchange_id in ids[:MAX_EXPORT]:
        found = out_exchange(store, exchange_id, decode_limit=decode_limit, har=True)
        if found is not None:
            redaction.add(found[0])
            stored_bodies.append(found[1])
    sources = [
        HarSource(
            exchange.detail,
            request_body=_redacted_body(exchange.request_body, stored["request"]),
            response_body=_redacted_body(exchange.response_body, stored["response"]),
        )
        for exchange, stored in zip(redaction.finish(), stored_bodies, strict=True)
    ]
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
    """Index up to `most` exchanges waiting for the search index, as maintenance's indexing
    would; how many still wait after (more than `most`, or held by another indexer)."""
    done = 0
    while done < most and (batch := index_pending(store, limit=min(_BATCH, most - done))):
        done += len(batch)
    return index_backlog(store)


def _newest_id(store: Store) -> int:
    page = list_exchanges(store, limit=1)
    return page.data[0]["id"] if page.data else 0


def _raw_body(store: Store, exchange_id: int, side: str, decode_limit: int) -> HarBody | None:
    stored = get_body(store, exchange_id=exchange_id, side=side)
    if stored is None:
        return None
    return har_body(
        stored.data,
        size=stored.size,
        truncated=stored.truncated,
        encoding=stored.encoding,
        content_type=stored.content_type,
        limit=decode_limit,
    )


def _redacted_body(body: OutBody | None, stored: StoredBody | None) -> HarBody | None:
    if body is None or stored is None:
        return None
    return HarBody(body.data, stored.content_type, stored.size, stored.truncated, stored.encoding, note=body.note)


def _version() -> str:
    try:
        return metadata.version("passageway")
    except metadata.PackageNotFoundError:
        return "dev"
