"""Two stored exchanges compared: the stored side of storage.pure.diff (which is pure).

Backs GET /api/diff and the bulk replay jobs, which compare each replay with its original.
"""

from __future__ import annotations

from collections.abc import Collection

from storage.errors import NotFound
from storage.pure.diff import DEFAULT_NOISE_HEADERS, DiffBody, diff_exchanges
from storage.queries import get_body, get_exchange
from storage.store import Store

__all__ = ["DIFF_DECODE_LIMIT", "compare_exchanges"]

DIFF_DECODE_LIMIT = 16 * 1024 * 1024
"""Decoded bytes of one body a diff compares at most (a decompression-bomb guard)."""


def compare_exchanges(
    store: Store,
    a: int,
    b: int,
    *,
    ignore: Collection[str] = (),
    noise: frozenset[str] = DEFAULT_NOISE_HEADERS,
    decode_limit: int = DIFF_DECODE_LIMIT,
) -> dict:
    """storage.pure.diff.diff_exchanges of two stored exchanges (`ignore`: its ignore_keys, `noise`:
    its noise_headers); NotFound when either is not stored."""
    old, old_request, old_response = _load(store, a, decode_limit)
    new, new_request, new_response = _load(store, b, decode_limit)
    return diff_exchanges(
        old,
        new,
        a_request_body=old_request,
        a_response_body=old_response,
        b_request_body=new_request,
        b_response_body=new_response,
        ignore_keys=ignore,
        noise_headers=noise,
    )


def _load(store: Store, exchange_id: int, limit: int) -> tuple[dict, DiffBody | None, DiffBody | None]:
    exchange = get_exchange(store, exchange_id=exchange_id)
    if exchange is None:
        raise NotFound(f"exchange {exchange_id} not found")
    return exchange, _body(store, exchange_id, "request", limit), _body(store, exchange_id, "response", limit)


def _body(store: Store, exchange_id: int, side: str, limit: int) -> DiffBody | None:
    stored = get_body(store, exchange_id=exchange_id, side=side)
    if stored is None:
        return None
    data = stored.decoded(limit=limit)
    if data is None:
        data = stored.data  # compared as stored: size and hash still tell same from different
    return DiffBody(
        data=data, content_type=stored.content_type, truncated=stored.truncated, size=stored.size, sha256=stored.sha256
    )
