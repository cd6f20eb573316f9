"""SQLAlchemy 2 models: exchanges, content-addressed bodies, WebSocket messages.

Text from captured traffic is hostile: PostgreSQL text (and json's `->>`)
cannot hold NUL, and neither database driver can encode the lone surrogates
that surrogate-escaped header bytes carry. Such strings are stored escaped
(see `escape_text`); every other string is stored as is, so it stays
searchable with plain SQL.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Double,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "ApiShape",
    "Base",
    "Body",
    "CAPTURE_BLOCK_IDS",
    "CaptureBlock",
    "Contract",
    "ContractViolation",
    "Exchange",
    "ExchangeHeader",
    "FILTER_COLUMNS",
    "FaultRule",
    "HealthSample",
    "InspectorAddress",
    "InstallationSecret",
    "JobCursor",
    "Monitor",
    "PendingExchange",
    "ProxyStat",
    "RegistryInstance",
    "SLOW_MS",
    "SafeText",
    "SearchPending",
    "ServiceRegistration",
    "Share",
    "Sha256",
    "Simulation",
    "TestRun",
    "UTCDateTime",
    "WebSocketMessage",
    "escape_json_strings",
    "escape_text",
    "unescape_json_strings",
    "unescape_text",
]

_MARK = "\ue000"
"""Private-use character that starts an escaped string: MARK + JSON string literal."""


def escape_text(value: str) -> str:
    """`value` unchanged when both databases can store it, else MARK + its JSON literal.

    Escaped: strings with NUL, lone surrogates, or that start with MARK
    themselves (so the mapping stays reversible).
    """
    if value.isascii():
        if "\x00" not in value:
            return value
    elif not (value[0] == _MARK or "\x00" in value or has_surrogate(value)):
        return value
    return _MARK + json.dumps(value)


def unescape_text(value: str) -> str:
    """Inverse of escape_text."""
    if value[:1] == _MARK:
        return json.loads(value[1:])
    return value


def escape_json_strings(value: Any) -> Any:
    """A JSON-ready value with every string in it (dict keys too) escape_text'ed."""
    if isinstance(value, str):
        return escape_text(value)
    if isinstance(value, dict):
        return {escape_text(str(key)): escape_json_strings(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [escape_json_strings(item) for item in value]
    return value


def unescape_json_strings(value: Any) -> Any:
    """Inverse of escape_json_strings."""
    if isinstance(value, str):
        return unescape_text(value)
    if isinstance(value, dict):
        return {unescape_text(key): unescape_json_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unescape_json_strings(item) for item in value]
    return value


def has_surrogate(value: str) -> bool:
    """Whether `value` holds a lone surrogate, which no database driver will encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class SafeText(TypeDecorator[str]):
    """Text that round-trips any Python str through SQLite and PostgreSQL."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else escape_text(value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is None or value[:1] != _MARK:
            return value
        return json.loads(value[1:])


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetime on both databases.

    PostgreSQL: timestamptz. SQLite has no time zones: stored as naive UTC
    text (sortable), given back as aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: storage wants timezone-aware UTC")
        if dialect.name == "sqlite":
            return value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Sha256(TypeDecorator[str]):
    """A SHA-256 digest: hex text in Python, the 32 raw bytes in the database.

    Half the size of hex text in the bodies key and in each exchange row, so the
    random-key index on bodies touches fewer pages per batch."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: str | bytes | None, dialect: Any) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        return bytes.fromhex(value)

    def process_result_value(self, value: bytes | None, dialect: Any) -> str | None:
        return None if value is None else bytes(value).hex()


# BIGINT on PostgreSQL; on SQLite it must be spelled INTEGER to be the rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")


FILTER_COLUMNS = ("service", "method", "status", "duration_ms", "error_kind")
"""PostgreSQL: included in ix_exchanges_id_filters (and after service in ix_exchanges_service_id)."""
SLOW_MS = 1000
"""Exchanges at least this slow (ms) are in ix_exchanges_slow_id."""


class Base(DeclarativeBase):
    pass


class Exchange(Base):
    """One request with its response or error. Bodies live in `bodies`."""

    __tablename__ = "exchanges"
    # AUTOINCREMENT on SQLite: ids never reused after retention deletes the newest
    # rows, so "id > last seen" (change feed, keyset pages) stays correct.
    #
    # Idempotency key: (captured_at, uuid). A record is immutable, so a retried batch
    # carries the same pair and inserts nothing; the uuid alone is already unique.
    # Led by captured_at, the index grows at its end (records arrive about in time
    # order) where a unique index on the random uuid alone dirtied a page per insert
    # all over the file, and it also serves time-range searches (since:/before:).
    # trace_id is indexed only where set: most traffic carries no trace. Slow exchanges
    # (SLOW_MS and over, about 1% of traffic) have their own small index, newest first,
    # so duration:>1s need not scan for them (storage.search_sql adds the implied term).
    __table_args__ = (
        UniqueConstraint("captured_at", "uuid", name="uq_exchanges_captured_at_uuid"),
        Index("ix_exchanges_service_id", "service", "id", postgresql_include=list(FILTER_COLUMNS[1:])),
        Index("ix_exchanges_method_id", "method", "id"),
        Index("ix_exchanges_status_id", "status", "id"),
        Index(
            "ix_exchanges_trace_id",
            "trace_id",
            sqlite_where=text("trace_id IS NOT NULL"),
            postgresql_where=text("trace_id IS NOT NULL"),
        ),
        # PostgreSQL: the columns of the common structured filters ride along in the id and
        # (service, id) indexes, so a newest-first scan tests them in the index (index-only)
        # instead of visiting every wide row: service:X method:Y status:5xx on a million,
        # 68 -> 5 ms. SQLite keeps its rows in id order already (the table is the id b-tree).
        Index(
            "ix_exchanges_id_filters",
            "id",
            postgresql_include=list(FILTER_COLUMNS),
        ).ddl_if(dialect="postgresql"),
        Index(
            "ix_exchanges_slow_id",
            "id",
            sqlite_where=text(f"duration_ms >= {SLOW_MS}"),
            postgresql_where=text(f"duration_ms >= {SLOW_MS}"),
        ),
        # Retention's "is this body still referenced?" (storage.retention); only rows with a body.
        *(
            Index(
                f"ix_exchanges_{side}_body_sha256",
                f"{side}_body_sha256",
                sqlite_where=text(f"{side}_body_sha256 IS NOT NULL"),
                postgresql_where=text(f"{side}_body_sha256 IS NOT NULL"),
            )
            for side in ("request", "response")
        ),
        # is:test / test:NAME (storage.search_sql); only test traffic has a test_name.
        Index(
            "ix_exchanges_test_name_id",
            "test_name",
            "id",
            sqlite_where=text("test_name IS NOT NULL"),
            postgresql_where=text("test_name IS NOT NULL"),
        ),
        # is:fault (storage.search_sql); only exchanges a fault rule touched.
        Index(
            "ix_exchanges_fault_id",
            "id",
            sqlite_where=text("fault IS NOT NULL"),
            postgresql_where=text("fault IS NOT NULL"),
        ),
        # is:mock (storage.search_sql); only exchanges a recording answered.
        Index(
            "ix_exchanges_mock_id",
            "id",
            sqlite_where=text("mock IS NOT NULL"),
            postgresql_where=text("mock IS NOT NULL"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(64))
    captured_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    proxy: Mapped[str] = mapped_column(SafeText())
    service: Mapped[str | None] = mapped_column(SafeText())
    realm: Mapped[str | None] = mapped_column(SafeText())
    client_addr: Mapped[str | None] = mapped_column(SafeText())
    scheme: Mapped[str] = mapped_column(SafeText())
    method: Mapped[str] = mapped_column(SafeText())
    host: Mapped[str] = mapped_column(SafeText())
    port: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(SafeText())
    query: Mapped[str] = mapped_column(SafeText())
    http_version: Mapped[str] = mapped_column(SafeText())
    status: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(SafeText())
    duration_ms: Mapped[float | None] = mapped_column(Double)

    request_headers: Mapped[list[list[str]]] = mapped_column(JSON)
    """[[name, value], ...] in wire order, each string escape_text'ed."""
    response_headers: Mapped[list[list[str]] | None] = mapped_column(JSON)

    request_body_sha256: Mapped[str | None] = mapped_column(Sha256())
    request_body_size: Mapped[int | None] = mapped_column(BigInteger)
    """Full wire size; null when the request had no body."""
    request_body_stored_size: Mapped[int | None] = mapped_column(BigInteger)
    request_body_truncated: Mapped[bool | None] = mapped_column(Boolean)
    request_body_encoding: Mapped[str | None] = mapped_column(SafeText())
    request_content_type: Mapped[str | None] = mapped_column(SafeText())
    request_body_decoded_size: Mapped[int | None] = mapped_column(BigInteger)

    response_body_sha256: Mapped[str | None] = mapped_column(Sha256())
    response_body_size: Mapped[int | None] = mapped_column(BigInteger)
    response_body_stored_size: Mapped[int | None] = mapped_column(BigInteger)
    response_body_truncated: Mapped[bool | None] = mapped_column(Boolean)
    response_body_encoding: Mapped[str | None] = mapped_column(SafeText())
    response_content_type: Mapped[str | None] = mapped_column(SafeText())
    response_body_decoded_size: Mapped[int | None] = mapped_column(BigInteger)

    timings: Mapped[dict[str, Any]] = mapped_column(JSON)
    """Epoch seconds per phase (storage.pure.record.Timings field names); for an imported exchange
    also `har`: ExchangeRecord.har, its strings escape_json_strings'ed."""
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(SafeText())
    trace_id: Mapped[str | None] = mapped_column(SafeText())
    span_id: Mapped[str | None] = mapped_column(SafeText())
    request_id: Mapped[str | None] = mapped_column(SafeText())
    replay_of: Mapped[int | None] = mapped_column(BigInteger)
    tags: Mapped[list[str]] = mapped_column(JSON)
    websocket: Mapped[bool] = mapped_column(Boolean)
    parent_span_id: Mapped[str | None] = mapped_column(SafeText())
    """The span of the call that caused this one (see storage.pure.record.ExchangeRecord)."""
    caller: Mapped[str | None] = mapped_column(SafeText())
    """The calling service, as its smart client named it (X-Passageway-Caller)."""
    test_name: Mapped[str | None] = mapped_column(SafeText())
    """The API test that sent the request (X-Passageway-Test, taken off before forwarding)."""
    fault: Mapped[str | None] = mapped_column(SafeText())
    """What an injected fault did to this exchange (rule id and effect); null when none touched it."""
    mock: Mapped[str | None] = mapped_column(SafeText())
    """Which recording answered this exchange while its service was simulated; null when forwarded."""


class Body(Base):
    """A body as received, content-addressed by the SHA-256 of those bytes."""

    __tablename__ = "bodies"

    sha256: Mapped[str] = mapped_column(Sha256(), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    """Length of the stored (uncompressed) bytes."""
    compression: Mapped[str] = mapped_column(String(8))
    """"zstd" or "none"."""
    data: Mapped[bytes] = mapped_column(LargeBinary)


class WebSocketMessage(Base):
    """One message (or the close) on a captured WebSocket connection."""

    __tablename__ = "websocket_messages"
    # The unique index also serves lookups by exchange_uuid (its prefix) and
    # makes a retried batch insert nothing twice.
    __table_args__ = (UniqueConstraint("exchange_uuid", "seq", name="uq_websocket_messages_exchange_seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    exchange_uuid: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    from_client: Mapped[bool] = mapped_column(Boolean)
    kind: Mapped[str] = mapped_column(String(16))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger)
    truncated: Mapped[bool] = mapped_column(Boolean)
    close_code: Mapped[int | None] = mapped_column(Integer)


class ExchangeHeader(Base):
    """One header of an exchange, for `header:` search: name lowercased, value escape_text'ed
    and cut to storage.pure.search.HEADER_VALUE_MAX characters (PostgreSQL b-tree entries must
    stay small). The primary key is the search index itself, led by (name, value): on
    SQLite a WITHOUT ROWID table, so one b-tree per insert. Duplicates within an exchange
    collapse (a search cannot tell them apart). Detail views read the ordered JSON
    columns on `exchanges`, never this table."""

    __tablename__ = "exchange_headers"
    __table_args__ = ({"sqlite_with_rowid": False},)

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(Text, primary_key=True)
    side: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    """0 request, 1 response."""
    exchange_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class SearchPending(Base):
    """An exchange the writer stored and storage.indexer has not indexed for search yet.

    A queue rather than a flag on `exchanges`: the writer appends one integer key per
    exchange, and the indexer deletes it, where flipping a flag would rewrite the wide
    exchange row (on PostgreSQL a non-HOT update touching every index of exchanges)."""

    __tablename__ = "search_pending"

    exchange_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)


CAPTURE_BLOCK_IDS = 4096
"""Exchange ids per CaptureBlock: block n holds ids n*4096 .. n*4096+4095."""


class CaptureBlock(Base):
    """The earliest and latest captured_at among the exchanges of one block of ids.

    Lists are ordered by id (newest stored first) while since:/after:/before: filter on
    captured_at. Ids follow capture time only roughly (a long request, another proxy, a
    batch written late), so no id bound can be derived from a time exactly -- except
    through these ranges: every exchange after the last block whose earliest capture is
    before T was captured at T or later. storage.search_sql turns each time bound into
    such an id bound, so the newest-first scan starts (or stops) at the right place
    instead of reading every newer (or older) row. The writer widens the range of the
    blocks each batch touches, in the batch's transaction; ranges never shrink (pruning
    leaves them wider than needed, never wrong). About 250 rows per million exchanges."""

    __tablename__ = "capture_blocks"

    block: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    earliest: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    latest: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Share(Base):
    """A read-only debug link: `/s/<token>` shows `snapshot`, a redacted copy of the shared
    exchanges taken at creation (so retention or deletion later does not break the link).

    Only the SHA-256 of the token is stored: the link itself is shown once, at creation, and
    a database dump does not give working links. `kind` is "exchange", "search" or "trace",
    with `selector` the exchange id, the query or the trace id it was made from."""

    __tablename__ = "shares"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_sha256: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    selector: Mapped[str] = mapped_column(SafeText())
    note: Mapped[str] = mapped_column(SafeText())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    exchange_count: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[bytes] = mapped_column(LargeBinary)
    """zstd-compressed JSON (storage.shares)."""


class InstallationSecret(Base):
    """Random secrets made once per database on first use, e.g. the key of the redaction
    markers' hashes (storage.shares.redaction_key)."""

    __tablename__ = "installation_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)


class ProxyStat(Base):
    """Each proxy's writer counters, written by the writer thread every few seconds
    (storage.writer), so inspectors and `passageway status` see every proxy of a team store."""

    __tablename__ = "proxy_stats"

    proxy: Mapped[str] = mapped_column(SafeText(), primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    submitted: Mapped[int] = mapped_column(BigInteger)
    written: Mapped[int] = mapped_column(BigInteger)
    dropped: Mapped[int] = mapped_column(BigInteger)
    lost: Mapped[int] = mapped_column(BigInteger)
    failed_batches: Mapped[int] = mapped_column(BigInteger)
    queue_depth: Mapped[int] = mapped_column(Integer)
    spooled: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """Records in the proxy's spool that the database does not have yet."""
    spool_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    write_seconds: Mapped[float] = mapped_column(Double)
    """Time spent in committed batch writes, in total (with write_batches: the mean latency)."""
    write_batches: Mapped[int] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(SafeText())
    stopped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    """Set by the writer's last report, when the proxy stops cleanly."""


class PendingExchange(Base):
    """A call still in progress (storage.pending): announced by its proxy's writer thread once it
    has waited or streamed for about a second, refreshed every few seconds while it lasts, deleted
    in the transaction that stores the finished exchange (same uuid). One nobody refreshes any more
    expires into an exchange with error kind unknown_outcome (storage.maintenance)."""

    __tablename__ = "pending_exchanges"

    uuid: Mapped[str] = mapped_column(String(64), primary_key=True)
    proxy: Mapped[str] = mapped_column(SafeText())
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    """The finished exchange's captured_at."""
    method: Mapped[str] = mapped_column(SafeText())
    scheme: Mapped[str] = mapped_column(SafeText())
    host: Mapped[str] = mapped_column(SafeText())
    port: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(SafeText())
    query: Mapped[str] = mapped_column(SafeText())
    http_version: Mapped[str] = mapped_column(SafeText())
    service: Mapped[str | None] = mapped_column(SafeText())
    realm: Mapped[str | None] = mapped_column(SafeText())
    trace_id: Mapped[str | None] = mapped_column(SafeText())
    state: Mapped[str] = mapped_column(String(16))
    """waiting (for the response) or streaming (a body)."""
    status: Mapped[int | None] = mapped_column(Integer)
    request_size: Mapped[int] = mapped_column(BigInteger)
    response_size: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    """When its proxy last announced it: a row left behind by a killed proxy stops changing."""


class ServiceRegistration(Base):
    """A service one proxy serves, in one realm: the registry the services overview is built from.

    A proxy replaces its own rows when it starts (storage.services.register_services) and
    refreshes updated_at every minute, so the rows of a proxy that stopped read as stale.
    `realm` is "" for no realm, so it can be part of the key."""

    __tablename__ = "service_registry"

    proxy: Mapped[str] = mapped_column(SafeText(), primary_key=True)
    realm: Mapped[str] = mapped_column(SafeText(), primary_key=True)
    service: Mapped[str] = mapped_column(SafeText(), primary_key=True)
    upstream: Mapped[str] = mapped_column(SafeText())
    health_path: Mapped[str | None] = mapped_column(SafeText())
    health_interval: Mapped[float | None] = mapped_column(Double)
    """Seconds between probes; null without a health path."""
    listen: Mapped[str | None] = mapped_column(SafeText())
    """The service's own listen address (host:port), when it has one."""
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class RegistryInstance(Base):
    """One running instance of a service that registers itself (storage.registry; issue 17).

    Created and refreshed by its heartbeats (POST /api/registry/heartbeat), marked deregistered
    on a clean shutdown, read as gone once heartbeat_at is older than its grace period; rows are
    kept so a gone service keeps its history until someone forgets it. `realm` is "" for none."""

    __tablename__ = "registry_instances"
    __table_args__ = (Index("ix_registry_instances_heartbeat_at", "heartbeat_at"),)

    realm: Mapped[str] = mapped_column(SafeText(), primary_key=True)
    name: Mapped[str] = mapped_column(SafeText(), primary_key=True)
    instance: Mapped[str] = mapped_column(SafeText(), primary_key=True)
    url: Mapped[str] = mapped_column(SafeText())
    """Where the instance is reachable (http(s)://host:port[/base])."""
    health: Mapped[str | None] = mapped_column(SafeText())
    """Its health path (readiness), from '/'."""
    version: Mapped[str | None] = mapped_column(SafeText())
    depends_on: Mapped[list[str]] = mapped_column(JSON)
    ready: Mapped[bool | None] = mapped_column(Boolean)
    """Its own readiness as its last heartbeat said (null: it did not say)."""
    checks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    interval_s: Mapped[float] = mapped_column(Double)
    """Seconds between its heartbeats, as it announced them."""
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    deregistered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class FaultRule(Base):
    """A fault injected on purpose by every proxy serving `service` in `realm` (storage.faults).

    Effects (any combination): delay_ms (fixed, or uniform up to delay_max_ms), status (answer
    with it instead of forwarding), reset (close the client's connection), stall (the response
    body stops after its headers). Applies to a fraction `rate` (0-1) of the matching requests
    between starts_at and expires_at; origin is "config" or "api"."""

    __tablename__ = "fault_rules"
    __table_args__ = (Index("ix_fault_rules_expires_at", "expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    realm: Mapped[str] = mapped_column(SafeText())
    service: Mapped[str] = mapped_column(SafeText())
    method: Mapped[str | None] = mapped_column(SafeText())
    path: Mapped[str | None] = mapped_column(SafeText())
    """An endpoint template or glob (/orders/{id}, /orders/*); null for every path."""
    header: Mapped[str | None] = mapped_column(SafeText())
    """NAME=VALUE a request must carry; null for any."""
    delay_ms: Mapped[float | None] = mapped_column(Double)
    delay_max_ms: Mapped[float | None] = mapped_column(Double)
    status: Mapped[int | None] = mapped_column(Integer)
    reset: Mapped[bool] = mapped_column(Boolean)
    stall: Mapped[bool] = mapped_column(Boolean)
    rate: Mapped[float] = mapped_column(Double)
    origin: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(SafeText())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class HealthSample(Base):
    """One health probe of a service by one proxy (proxy.health).

    Indexes: (service, checked_at) serves a service's recent samples and history across
    proxies; (service, realm, proxy, ok, checked_at) finds the latest sample of one proxy in
    a given state with a single probe, which is how the overview tells since when the
    current up/down state holds without reading the run; checked_at alone serves pruning."""

    __tablename__ = "health_samples"
    __table_args__ = (
        Index("ix_health_samples_service_checked_at", "service", "checked_at"),
        Index("ix_health_samples_state", "service", "realm", "proxy", "ok", "checked_at"),
        Index("ix_health_samples_checked_at", "checked_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    proxy: Mapped[str] = mapped_column(SafeText())
    realm: Mapped[str] = mapped_column(SafeText())
    """"" for no realm, as in service_registry."""
    service: Mapped[str] = mapped_column(SafeText())
    checked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ok: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Double)
    error: Mapped[str | None] = mapped_column(SafeText())
    """Why the probe failed, one line, capped (storage.services.ERROR_MAX)."""


class InspectorAddress(Base):
    """An address a running inspector listens on (storage.inspectors): proxies sharing the
    database never forward there.

    An inspector replaces its rows when it starts, refreshes updated_at while it runs and
    deletes them when it stops; rows that stopped being refreshed belong to one that died."""

    __tablename__ = "inspector_addresses"

    inspector: Mapped[str] = mapped_column(SafeText(), primary_key=True)
    """The running instance: machine, process id and a random part."""
    host: Mapped[str] = mapped_column(SafeText(), primary_key=True)
    """An IP address as text (0.0.0.0 or :: for a wildcard bind, which also lists the machine's own)."""
    port: Mapped[int] = mapped_column(Integer, primary_key=True)
    machine: Mapped[str] = mapped_column(SafeText())
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class TestRun(Base):
    """One run of an API test (radar): the run's result JSON as the runner made it, with the
    figures lists and monitor statistics need as columns (storage.test_runs).

    The result's strings are escape_json_strings'ed (an assert's actual value is captured
    text). Pruned with the exchanges' maximum age (storage.retention)."""

    __tablename__ = "test_runs"
    __test__ = False  # not a pytest test class, whatever its name
    __table_args__ = (
        Index(
            "ix_test_runs_monitor_id",
            "monitor",
            "id",
            sqlite_where=text("monitor IS NOT NULL"),
            postgresql_where=text("monitor IS NOT NULL"),
        ),
        Index("ix_test_runs_test_id", "test", "id"),
        Index("ix_test_runs_started_at", "started_at"),
        # Ids never reused after pruning: keyset pages (before_id) stay correct.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(64), unique=True)
    test: Mapped[str] = mapped_column(SafeText())
    file: Mapped[str] = mapped_column(SafeText())
    realm: Mapped[str | None] = mapped_column(SafeText())
    source: Mapped[str] = mapped_column(String(16))
    """"cli", "api" or "monitor"."""
    monitor: Mapped[str | None] = mapped_column(SafeText())
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[float] = mapped_column(Double)
    passed: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(SafeText())
    trace_id: Mapped[str | None] = mapped_column(SafeText())
    failures: Mapped[int] = mapped_column(Integer)
    """Failed asserts and failed steps of the run."""
    result: Mapped[dict[str, Any]] = mapped_column(JSON)


class Monitor(Base):
    """A test on a schedule (storage.monitors): from passageway.toml (origin "config", synced at
    start) or made through the API (origin "api", its Hurl text kept here).

    Runners claim due monitors with a lease (claimed_by, claimed_until); state is "unknown"
    before the first run, then "up" or "down"; notified_state is the state the last
    notification announced, so a change is notified once even when a runner dies between
    the run and the notification."""

    __tablename__ = "monitors"
    __table_args__ = (Index("ix_monitors_next_due_at", "next_due_at"),)

    name: Mapped[str] = mapped_column(SafeText(), primary_key=True)
    file: Mapped[str | None] = mapped_column(SafeText())
    hurl: Mapped[str] = mapped_column(SafeText())
    every_s: Mapped[float] = mapped_column(Double)
    realm: Mapped[str | None] = mapped_column(SafeText())
    notify: Mapped[list[str]] = mapped_column(JSON)
    """Webhook URLs."""
    enabled: Mapped[bool] = mapped_column(Boolean)
    origin: Mapped[str] = mapped_column(String(16))
    next_due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(SafeText())
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16))
    state_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_run_id: Mapped[int | None] = mapped_column(BigInteger)
    last_duration_ms: Mapped[float | None] = mapped_column(Double)
    last_error: Mapped[str | None] = mapped_column(SafeText())
    consecutive_failures: Mapped[int] = mapped_column(Integer)
    notified_state: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ApiShape(Base):
    """The running summary of one operation (method + endpoint template) of a service in a realm
    over one UTC day: merged as exchanges arrive, read by merging the days of a window.
    `summary` is storage.pure.shapes' mergeable form (parameters, bodies and statuses seen)."""

    __tablename__ = "api_shapes"
    __table_args__ = (
        UniqueConstraint("realm", "service", "day", "method", "template", name="uq_api_shapes_operation_day"),
        Index("ix_api_shapes_day", "day"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    realm: Mapped[str] = mapped_column(SafeText())
    """"" for exchanges without a realm."""
    service: Mapped[str] = mapped_column(SafeText())
    day: Mapped[dt.date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(SafeText())
    template: Mapped[str] = mapped_column(SafeText())
    exchanges: Mapped[int] = mapped_column(BigInteger)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class JobCursor(Base):
    """How far an incremental job has read the exchanges (the last exchange id it took in);
    advanced in the transaction that stores what the job derived from them."""

    __tablename__ = "job_cursors"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Contract(Base):
    """The API a service promises in a realm, as an OpenAPI 3 document: a team's file
    (origin "file"), one sent through the API ("api") or a frozen inferred one ("inferred")."""

    __tablename__ = "contracts"
    __table_args__ = (UniqueConstraint("realm", "service", name="uq_contracts_service"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    realm: Mapped[str] = mapped_column(SafeText())
    service: Mapped[str] = mapped_column(SafeText())
    origin: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(SafeText())
    """Where it came from, for people: a file path, "inferred 2026-12-04 (7 days)"."""
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ContractViolation(Base):
    """One way one exchange broke its service's contract. `rule` is a short kebab-case name
    (undocumented-endpoint, unexpected-status, missing-field, wrong-type, unknown-enum, ...),
    `side` "request" or "response", `json_path` where in the body (null for the whole)."""

    __tablename__ = "contract_violations"
    __table_args__ = (
        Index("ix_contract_violations_exchange_id", "exchange_id"),
        Index("ix_contract_violations_service", "service", "realm", "rule", "captured_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    exchange_id: Mapped[int] = mapped_column(BigInteger)
    realm: Mapped[str] = mapped_column(SafeText())
    service: Mapped[str] = mapped_column(SafeText())
    method: Mapped[str] = mapped_column(SafeText())
    template: Mapped[str | None] = mapped_column(SafeText())
    rule: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    json_path: Mapped[str | None] = mapped_column(SafeText())
    message: Mapped[str] = mapped_column(SafeText())
    captured_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    """The exchange's, so counts per window need no join."""


class Simulation(Base):
    """A service the gateway answers from recordings instead of forwarding (proxy.mocks).

    The recordings are the exchanges `query` finds (search language, within the service), or a
    HAR document (`recordings`) when they came from a file. `latency`: reproduce the recorded
    durations; `passthrough`: forward a request no recording matches (else a 404-like answer
    naming the closest recordings). origin is "config", "api" or "cli"."""

    __tablename__ = "simulations"
    __table_args__ = (UniqueConstraint("realm", "service", name="uq_simulations_service"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    realm: Mapped[str] = mapped_column(SafeText())
    service: Mapped[str] = mapped_column(SafeText())
    query: Mapped[str | None] = mapped_column(SafeText())
    recordings: Mapped[str | None] = mapped_column(SafeText())
    latency: Mapped[bool] = mapped_column(Boolean)
    passthrough: Mapped[bool] = mapped_column(Boolean)
    origin: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class TrafficRollup(Base):
    """Traffic figures of one period (a minute, downsampled to an hour or a day as it ages), per
    service, realm, endpoint (method + storage.pure.endpoints.template_path of the path) and status
    class: merged by each write batch (storage.rollups), read by merging the rows of a window.
    `durations` is a storage.pure.sketch.Sketch of the durations (ms), serialised. Only exchanges
    with a service are counted (the figures are per service)."""

    __tablename__ = "traffic_rollups"
    __table_args__ = (Index("ix_traffic_rollups_service_period", "service", "period_seconds", "period_start"),)

    period_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    """Epoch seconds, a multiple of period_seconds."""
    service: Mapped[str] = mapped_column(SafeText(), primary_key=True)
    realm: Mapped[str] = mapped_column(SafeText(), primary_key=True)
    """"" for exchanges without a realm."""
    method: Mapped[str] = mapped_column(SafeText(), primary_key=True)
    template: Mapped[str] = mapped_column(SafeText(), primary_key=True)
    status_class: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    """status // 100 (1..5), 0 without a status."""
    period_seconds: Mapped[int] = mapped_column(Integer, primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    client_errors: Mapped[int] = mapped_column(BigInteger)
    request_bytes: Mapped[int] = mapped_column(BigInteger)
    response_bytes: Mapped[int] = mapped_column(BigInteger)
    durations: Mapped[bytes] = mapped_column(LargeBinary)
    example_path: Mapped[str] = mapped_column(SafeText())
    """A path of the endpoint (the first counted in the row): the endpoint table's example."""
