"""Share links: a redacted snapshot of one exchange, a search or a trace, behind an unguessable token.

create_share() picks the exchanges (at most MAX_SHARED_EXCHANGES), copies each one's detail
and decoded bodies (each cut at SHARED_BODY_LIMIT), redacts them together (one
storage.pure.redaction.Redaction, so a secret of one is also scrubbed from the others) with
this installation's key, redacts the search it was made from the same way, and stores
the copy compressed with the SHA-256 of a fresh token.
A trace's snapshot also holds its tree of calls (storage.traces), assembled from the copies.
The token (256 bits from `secrets`) is returned once and never stored, so neither the
database nor the share list can give out a working link. open_share() finds a share by
the token's hash and raises storage.errors.Gone when it has expired or been revoked.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

import zstandard
from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from storage.errors import Gone, Invalid, NotFound
from storage.models import InstallationSecret, Share
from storage.outgoing import out_exchange
from storage.pure.decoding import DEFAULT_DECODE_LIMIT
from storage.pure.redaction import OutBody, OutExchange, Redaction, RedactionRules
from storage.pure.search import Query, parse_query
from storage.pure.surrogates import json_text
from storage.queries import get_exchange, iso_utc, list_exchanges
from storage.store import Store
from storage.traces import assemble_trace, span_from_detail, trace_exchange_ids

__all__ = [
    "DEFAULT_TTL",
    "MAX_SHARED_EXCHANGES",
    "MAX_TTL",
    "SHARED_BODY_LIMIT",
    "create_share",
    "list_shares",
    "open_share",
    "redaction_key",
    "revoke_share",
    "share_exists",
]

KINDS = ("exchange", "search", "trace")
DEFAULT_TTL = dt.timedelta(days=7)
MAX_TTL = dt.timedelta(days=365)
MAX_SHARED_EXCHANGES = 500
SHARED_BODY_LIMIT = 256 * 1024
"""Decoded bytes of each body a snapshot keeps (a share is for reading, not for replaying)."""
_KEY_NAME = "redaction_key"
_HEADER_FIELDS = ("header", "req.header", "res.header")


@dataclass(frozen=True, slots=True)
class CreatedShare:
    token: str
    """Shown once: the link is /s/<token>."""
    info: dict


def redaction_key(store: Store) -> bytes:
    """This database's key for redaction markers, made (32 random bytes) on first use."""
    table = InstallationSecret.__table__
    with store.connect() as conn:  # a read first: a write transaction (SQLite's lock) only once, ever
        found = conn.execute(select(table.c.value).where(table.c.name == _KEY_NAME)).scalar()
    if found is not None:
        return bytes(found)
    dialect_insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    with store.begin() as conn:
        conn.execute(
            dialect_insert(table)
            .values(name=_KEY_NAME, value=secrets.token_bytes(32))
            .on_conflict_do_nothing(index_elements=["name"])
        )
        return bytes(conn.execute(select(table.c.value).where(table.c.name == _KEY_NAME)).scalar_one())


def create_share(
    store: Store,
    *,
    kind: str,
    selector: str,
    note: str = "",
    ttl: dt.timedelta = DEFAULT_TTL,
    rules: RedactionRules,
    decode_limit: int = DEFAULT_DECODE_LIMIT,
    now: dt.datetime | None = None,
) -> CreatedShare:
    """Snapshot what `kind`/`selector` name (an exchange id, a search, a trace id) and store it
    redacted. NotFound when nothing matches the search or trace, Invalid when the request is
    malformed or names an exchange that does not exist; QueryError (an Invalid) for a bad search."""
    now = now or dt.datetime.now(dt.UTC)
    if kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not dt.timedelta(minutes=1) <= ttl <= MAX_TTL:
        raise Invalid(f"expiry must be between 1 minute and {MAX_TTL.days} days")
    if len(note) > 2000:
        raise Invalid("the note is longer than 2000 characters")
    ids, cut = _exchange_ids(store, kind, selector)
    if not ids:
        raise NotFound(f"nothing to share: no exchange matches {kind} {selector!r}")
    redaction = Redaction(rules, redaction_key(store))
    shown_selector = _selector_by_names(kind, selector, redaction)
    for exchange_id in ids:
        found = out_exchange(store, exchange_id, decode_limit=decode_limit, cut_at=SHARED_BODY_LIMIT)
        if found is not None:  # else deleted between the search and now
            redaction.add(found[0])
    exchanges = [_snapshot_exchange(exchange) for exchange in redaction.finish()]
    selector = redaction.scrub(shown_selector)
    snapshot = {
        "kind": kind,
        "selector": selector,
        "note": note,
        "created_at": iso_utc(now),
        "expires_at": iso_utc(now + ttl),
        "cut": cut,
        "exchanges": exchanges,
    }
    if kind == "trace":
        # Assembled from the redacted copies: the shared page draws the same waterfall as
        # the inspector without reading anything the snapshot does not hold.
        spans = [span_from_detail(exchange) for exchange in snapshot["exchanges"]]
        snapshot["trace"] = assemble_trace(spans, cut=cut).to_dict()
    token = secrets.token_urlsafe(32)
    values = dict(
        token_sha256=_token_hash(token),
        kind=kind,
        selector=selector,
        note=note,
        created_at=now,
        expires_at=now + ttl,
        revoked_at=None,
        exchange_count=len(snapshot["exchanges"]),
        snapshot=zstandard.ZstdCompressor(level=6).compress(json_text(snapshot).encode()),
    )
    with store.begin() as conn:
        share_id = conn.execute(insert(Share).values(**values).returning(Share.id)).scalar_one()
    return CreatedShare(token=token, info={**_info(share_id, values), "cut": cut})


def list_shares(store: Store, *, now: dt.datetime | None = None) -> list[dict]:
    """The live shares (neither expired nor revoked), newest first; never their tokens.

    An exchange share also says what it holds, so a list of them reads as more than "#491":
    `exchange` is {"method", "service", "host", "path", "status"} read from the share's own
    snapshot, never from the stored exchange: the snapshot is redacted (a path can carry a
    secret that only the whole exchange reveals, e.g. Basic credentials echoed into a URL) and
    outlives retention."""
    now = now or dt.datetime.now(dt.UTC)
    query = (
        select(*_INFO_COLUMNS)
        .where(Share.revoked_at.is_(None), Share.expires_at > now)
        .order_by(Share.id.desc())
    )
    with store.connect() as conn:
        shares = [_info(row.id, row._asdict()) for row in conn.execute(query)]
        ids = [s["id"] for s in shares if s["kind"] == "exchange"]
        found = conn.execute(select(Share.id, Share.snapshot).where(Share.id.in_(ids))) if ids else []
        snapshots = {row.id: row.snapshot for row in found}
    for share in shares:
        if share["kind"] == "exchange":
            exchanges = _decompressed(snapshots[share["id"]])["exchanges"] if share["id"] in snapshots else []
            share["exchange"] = {key: exchanges[0].get(key) for key in _LISTED_FIELDS} if exchanges else None
    return shares


_LISTED_FIELDS = ("method", "service", "host", "path", "status")


def revoke_share(store: Store, *, share_id: int, now: dt.datetime | None = None) -> dict | None:
    """Revoke a share (at once; its link answers 410 from now on); None when there is no such share."""
    now = now or dt.datetime.now(dt.UTC)
    with store.begin() as conn:
        conn.execute(update(Share).where(Share.id == share_id, Share.revoked_at.is_(None)).values(revoked_at=now))
        row = conn.execute(select(*_INFO_COLUMNS).where(Share.id == share_id)).one_or_none()
    return None if row is None else _info(row.id, row._asdict())


def open_share(store: Store, *, token: str, now: dt.datetime | None = None) -> dict | None:
    """The snapshot behind a link; None for an unknown token; Gone ("expired", "revoked") when it is no more."""
    row = _live_share(store, token, now, Share.snapshot)
    return None if row is None else _decompressed(row.snapshot)


def share_exists(store: Store, *, token: str, now: dt.datetime | None = None) -> bool:
    """Whether a link is live (open_share's answer without reading its snapshot)."""
    return _live_share(store, token, now) is not None


def _live_share(store: Store, token: str, now: dt.datetime | None, *columns: Any) -> Any:
    now = now or dt.datetime.now(dt.UTC)
    if not 20 <= len(token) <= 100:
        return None
    with store.connect() as conn:
        row = conn.execute(
            select(Share.revoked_at, Share.expires_at, *columns).where(Share.token_sha256 == _token_hash(token))
        ).one_or_none()
    if row is None:
        return None
    if row.revoked_at is not None:
        raise Gone("revoked")
    if row.expires_at <= now:
        raise Gone("expired")
    return row


_INFO_COLUMNS = (
    Share.id, Share.kind, Share.selector, Share.note, Share.created_at, Share.expires_at, Share.revoked_at,
    Share.exchange_count,
)  # fmt: skip


def _info(share_id: int, values: dict[str, Any]) -> dict:
    return {
        "id": share_id,
        "kind": values["kind"],
        "selector": values["selector"],
        "note": values["note"],
        "created_at": iso_utc(values["created_at"]),
        "expires_at": iso_utc(values["expires_at"]),
        "revoked_at": iso_utc(values["revoked_at"]),
        "exchange_count": values["exchange_count"],
    }


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


def _exchange_ids(store: Store, kind: str, selector: str) -> tuple[list[int], bool]:
    """The ids to share, oldest first, and whether more matched than MAX_SHARED_EXCHANGES."""
    if kind == "exchange":
        if not selector.isdigit() or get_exchange(store, exchange_id=int(selector)) is None:
            raise Invalid(f"no exchange {selector!r}")
        return [int(selector)], False
    if kind == "trace":
        if not selector or len(selector) > 128 or any(c.isspace() or c == '"' for c in selector):
            raise Invalid(f"bad trace id {selector!r}")
        # Exactly this trace, as its page shows it: `trace:` in a search is a prefix, which for a
        # short id (B3's 16 digits, an X-Request-ID) could take in other traces.
        return trace_exchange_ids(store, trace_id=selector, limit=MAX_SHARED_EXCHANGES)
    query = parse_query(selector)  # QueryError: the caller answers with its position
    ids: list[int] = []
    before = None
    while True:
        page = list_exchanges(store, q=query, limit=min(1000, MAX_SHARED_EXCHANGES - len(ids)), before=before)
        ids.extend(row["id"] for row in page.data)
        if page.next is None:
            return sorted(ids), False  # oldest first: a trace reads in the order it happened
        if len(ids) >= MAX_SHARED_EXCHANGES:
            return sorted(ids), True
        before = page.next


def _selector_by_names(kind: str, selector: str, redaction: Redaction) -> str:
    """A search with the values of its secret header terms redacted (`header:x-api-key=...`);
    re-written in its canonical form only when one changed. Pass 2 follows later."""
    if kind != "search":
        return selector
    query = parse_query(selector)
    changed = False
    groups = []
    for group in query.groups:
        terms = []
        for term in group:
            if term.field in _HEADER_FIELDS and term.op == "=":
                name, value = term.value
                redacted = redaction.header_value(name, value)
                if redacted != value:
                    term, changed = dataclasses.replace(term, value=(name, redacted)), True
            terms.append(term)
        groups.append(tuple(terms))
    return str(Query(tuple(groups))) if changed else selector


def _decompressed(snapshot: bytes) -> dict:
    return json.loads(zstandard.ZstdDecompressor().decompress(snapshot))


def _snapshot_exchange(exchange: OutExchange) -> dict:
    shared = dict(exchange.detail)
    shared["request_body"] = _snapshot_body(exchange.detail.get("request_body"), exchange.request_body)
    shared["response_body"] = _snapshot_body(exchange.detail.get("response_body"), exchange.response_body)
    return shared


def _snapshot_body(meta: dict | None, body: OutBody | None) -> dict | None:
    if meta is None or body is None:
        return None
    shared: dict[str, Any] = {
        "size": meta.get("size"),
        "content_type": body.content_type,
        "truncated": body.truncated,
        "text": None,
        "base64": None,
        "withheld": body.data is None,
        "note": body.note,
    }
    if body.data is not None:
        try:
            shared["text"] = body.data.decode("utf-8")
        except UnicodeDecodeError:
            shared["base64"] = base64.b64encode(body.data).decode("ascii")
    return shared
