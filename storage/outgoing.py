"""Exchanges read for the ways out (share links, HAR exports, snippets), in the form
storage.pure.redaction.Redaction takes them: the detail dict and the DECODED bodies.

A body whose Content-Encoding cannot be undone (an unknown coding, corrupt data, or more
than `decode_limit` bytes once decoded) comes with no data and a note, so no caller can
pass bytes through that redaction never read.
"""

from __future__ import annotations

from storage.pure.redaction import OutBody, OutExchange
from storage.queries import StoredBody, get_body, get_exchange
from storage.store import Store

__all__ = ["out_body", "out_exchange"]


def out_body(stored: StoredBody, *, decode_limit: int, cut_at: int | None = None) -> OutBody:
    """A stored body decoded, cut to `cut_at` bytes when given (and then marked truncated)."""
    data = stored.decoded(limit=decode_limit)
    if data is None:
        coding = (stored.encoding or "").strip()[:40]
        return OutBody(
            None,
            stored.content_type,
            stored.truncated,
            note=f"withheld: its {coding!r} content-encoding could not be undone within {decode_limit} bytes",
        )
    cut = cut_at is not None and len(data) > cut_at
    return OutBody(data[:cut_at] if cut else data, stored.content_type, stored.truncated or cut)


def out_exchange(
    store: Store, exchange_id: int, *, decode_limit: int, cut_at: int | None = None, har: bool = False
) -> tuple[OutExchange, dict[str, StoredBody | None]] | None:
    """The exchange and its decoded bodies, with the stored bodies (for their wire facts);
    None when there is no such exchange. `har`: with what an imported HAR said (get_exchange)."""
    detail = get_exchange(store, exchange_id=exchange_id, har=har)
    if detail is None:
        return None
    stored = {side: get_body(store, exchange_id=exchange_id, side=side) for side in ("request", "response")}
    bodies = {
        side: None if body is None else out_body(body, decode_limit=decode_limit, cut_at=cut_at)
        for side, body in stored.items()
    }
    return OutExchange(detail, bodies["request"], bodies["response"]), stored
