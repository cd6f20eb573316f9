"""Simulations in the store (issue 18): services the gateway answers from recordings.

A simulation is one row of `simulations` per service and realm ("" for none): where its
recordings come from (the exchanges a search `query` finds within the service and realm, or a HAR
document kept as text in `recordings`), whether recorded latency is reproduced, and whether a
request no recording matches is forwarded (`passthrough`). origin: "api", "cli" or "config"
(passageway.toml's `[services.NAME] mock`, and `passageway up --mock NAME=FILE`).

The proxies read `simulation_versions(realm)` off their event loop every REFRESH seconds (a small
query) and load a simulation's recordings (`load_recordings`) only when its row changed, so
re-sending a simulation (PUT again, `passageway mock NAME` again) reloads its recordings and
restarts its sequences.

Exports (`export_recordings`) are HAR, redacted by the rules shares use unless asked for raw: a
recording set is meant to be committed next to a service's tests, and secrets must not ride along
unless someone asked for them by name.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from sqlalchemy import delete, insert, select, update

from storage.errors import Invalid
from storage.exports import har_of
from storage.models import Simulation
from storage.pure.decoding import DEFAULT_DECODE_LIMIT
from storage.pure.har import HarBody, HarSource, export_har, import_har, url_of
from storage.pure.mock_match import DEFAULT_MAX_RECORDINGS, Recording
from storage.pure.record import ExchangeRecord
from storage.pure.redaction import RedactionRules, redact_record
from storage.pure.search import parse_query
from storage.queries import get_body, get_exchange, iso_utc, list_exchanges
from storage.shares import redaction_key
from storage.store import Store

__all__ = [
    "DEFAULT_FROM_STORE",
    "MAX_HAR_BYTES",
    "SimulationSpec",
    "StoredSimulation",
    "delete_simulation",
    "export_recordings",
    "get_simulation",
    "har_recordings",
    "list_simulations",
    "load_recordings",
    "put_simulation",
    "simulation_versions",
    "sync_config_simulations",
]

DEFAULT_FROM_STORE = 1000
"""Recordings a simulation from the store takes at most: the newest the search finds."""
MAX_SCANNED = 20_000
"""Exchanges looked at to find them (mock answers, faulted and failed ones are skipped)."""
MAX_HAR_BYTES = 50 * 1024 * 1024
"""A larger HAR document is refused as recordings."""
ORIGINS = ("api", "cli", "config")


@dataclass(frozen=True, slots=True)
class SimulationSpec:
    """What makes a simulation, as given (API, CLI, config): recordings from `query` or `har`."""

    service: str
    realm: str = ""
    query: str | None = None
    har: str | None = None
    """A HAR document's text; when set, the recordings are its entries and `query` is unused."""
    latency: bool = False
    passthrough: bool = False

    def checked(self) -> SimulationSpec:
        """Raises Invalid (a one-line message) for a spec no proxy could load."""
        if not self.service or "/" in self.service or len(self.service) > 63:
            raise Invalid(f"bad service name {self.service!r}")
        if self.har is not None:
            if self.query:
                raise Invalid("give a search query or a HAR document, not both")
            if len(self.har.encode("utf-8", "surrogatepass")) > MAX_HAR_BYTES:
                raise Invalid(f"the HAR document is over {MAX_HAR_BYTES // (1024 * 1024)} MiB")
            if not har_recordings(self.har):
                raise Invalid("the HAR document has no entry with a response to answer with")
        elif self.query:
            parse_query(self.query)  # a QueryError (Invalid) names the position
        return self


@dataclass(frozen=True, slots=True)
class StoredSimulation:
    """One row of `simulations`."""

    id: int
    spec: SimulationSpec
    origin: str
    created_at: dt.datetime

    @property
    def version(self) -> tuple[int, dt.datetime]:
        """Changes whenever the row is written again: the proxies reload on a new one."""
        return (self.id, self.created_at)

    def to_json(self) -> dict[str, Any]:
        s = self.spec
        return {
            "service": s.service, "realm": s.realm or None, "source": "har" if s.har is not None else "store",
            "query": s.query, "har_entries": len(har_recordings(s.har)) if s.har is not None else None,
            "latency": s.latency, "passthrough": s.passthrough, "origin": self.origin,
            "created_at": iso_utc(self.created_at),
        }  # fmt: skip


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _stored(row: Any) -> StoredSimulation:
    spec = SimulationSpec(
        service=row.service, realm=row.realm, query=row.query, har=row.recordings, latency=bool(row.latency),
        passthrough=bool(row.passthrough),
    )  # fmt: skip
    return StoredSimulation(id=row.id, spec=spec, origin=row.origin, created_at=_utc(row.created_at))


def _values(spec: SimulationSpec) -> dict[str, Any]:
    return {
        "realm": spec.realm, "service": spec.service, "query": spec.query or None, "recordings": spec.har,
        "latency": spec.latency, "passthrough": spec.passthrough,
    }  # fmt: skip


def put_simulation(store: Store, spec: SimulationSpec, *, origin: str = "api") -> StoredSimulation:
    """Create or replace the service's simulation in its realm (checked first)."""
    spec = spec.checked()
    now = dt.datetime.now(dt.UTC)
    table = Simulation.__table__
    where = (table.c.service == spec.service, table.c.realm == spec.realm)
    with store.begin() as conn:
        found = conn.execute(select(table.c.id).where(*where)).scalar_one_or_none()
        if found is None:
            found = conn.execute(
                insert(table).values(**_values(spec), origin=origin, created_at=now).returning(table.c.id)
            ).scalar_one()
        else:
            conn.execute(update(table).where(table.c.id == found).values(**_values(spec), origin=origin, created_at=now))
    return StoredSimulation(id=found, spec=spec, origin=origin, created_at=now)


def get_simulation(store: Store, *, service: str, realm: str = "") -> StoredSimulation | None:
    table = Simulation.__table__
    with store.connect() as conn:
        row = conn.execute(select(table).where(table.c.service == service, table.c.realm == realm)).one_or_none()
    return None if row is None else _stored(row)


def list_simulations(store: Store, *, realm: str | None = None) -> list[StoredSimulation]:
    """Every simulation (of `realm`: "" for none, None for all), by service."""
    table = Simulation.__table__
    query = select(table).order_by(table.c.service, table.c.realm)
    if realm is not None:
        query = query.where(table.c.realm == realm)
    with store.connect() as conn:
        return [_stored(row) for row in conn.execute(query)]


def simulation_versions(store: Store, *, realm: str) -> dict[str, tuple[int, dt.datetime]]:
    """service -> version of the realm's simulations: what a proxy reads every few seconds
    (never the HAR text)."""
    table = Simulation.__table__
    query = select(table.c.service, table.c.id, table.c.created_at).where(table.c.realm == realm)
    with store.connect() as conn:
        return {row.service: (row.id, _utc(row.created_at)) for row in conn.execute(query)}


def delete_simulation(store: Store, *, service: str, realm: str = "") -> bool:
    """Stop simulating the service in the realm; False when it was not simulated."""
    table = Simulation.__table__
    with store.begin() as conn:
        return conn.execute(delete(table).where(table.c.service == service, table.c.realm == realm)).rowcount > 0


def sync_config_simulations(store: Store, specs: Sequence[SimulationSpec], *, realms: Sequence[str]) -> None:
    """Make the config simulations of `realms` those of `specs` (passageway.toml and `up --mock`),
    in one transaction: one the file no longer names is removed; a simulation made through the
    API or the CLI for a service the file names is replaced by the file's."""
    for spec in specs:
        spec.checked()
    now = dt.datetime.now(dt.UTC)
    table = Simulation.__table__
    with store.begin() as conn:
        conn.execute(delete(table).where(table.c.origin == "config", table.c.realm.in_(list(realms))))
        for spec in specs:
            conn.execute(delete(table).where(table.c.service == spec.service, table.c.realm == spec.realm))
            conn.execute(insert(table).values(**_values(spec), origin="config", created_at=now))


# --- recordings ---------------------------------------------------------------------------------


def _har_entries(text: str) -> tuple[list[Any], dict]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise Invalid(f"the HAR document is not JSON: {exc}") from None
    log = data.get("log") if isinstance(data, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("entries", []), list):
        raise Invalid("not a HAR log: no top-level 'log' object with a list of entries")
    return log.get("entries") or [], {k: v for k, v in log.items() if k != "entries"}


def _har_records(text: str) -> list[tuple[int, ExchangeRecord]]:
    """(entry number, record) of each usable entry: one parsed at a time, so the number is the
    entry's own in the file (import_har skips unusable ones without saying which)."""
    entries, rest = _har_entries(text)
    out = []
    for number, entry in enumerate(entries):
        found = import_har({"log": {**rest, "entries": [entry]}}, proxy_name="mock", skipped=[])
        if found and found[0].status is not None:
            out.append((number, found[0]))
    return out


def _recording(label: str, record: ExchangeRecord, exchange_id: int | None = None) -> Recording | None:
    request, response = record.request_body, record.response_body
    if (request is not None and request.truncated) or (response is not None and response.truncated):
        return None  # a cut body would answer with something the service never said
    return Recording(
        label=label, method=record.method.upper(), path=record.path, query=record.query,
        request_body=request.data if request else b"", status=record.status or 0, reason=record.reason or "",
        response_headers=tuple((n, v) for n, v in record.response_headers or ()),
        response_body=response.data if response else b"", duration_ms=record.duration_ms,
        request_content_type=request.content_type if request else None, exchange_id=exchange_id,
    )  # fmt: skip


def har_recordings(text: str | None) -> list[Recording]:
    """A HAR document's entries as recordings, in file order, labelled "har:entry N" (0-based, as
    `passageway import` numbers entries in its messages)."""
    if not text:
        return []
    return [r for n, rec in _har_records(text) if (r := _recording(f"har:entry {n}", rec)) is not None]


def _store_ids(store: Store, spec: SimulationSpec) -> Iterator[int]:
    """The ids of the service's answered exchanges in the realm the search finds, newest first,
    leaving out mock answers, fault-touched and failed ones; MAX_SCANNED looked at, at most."""
    q = parse_query(spec.query) if spec.query else None
    before, scanned = None, 0
    while scanned < MAX_SCANNED:
        page = list_exchanges(store, q=q, service=spec.service, limit=500, before=before)
        for row in page.data:
            answered = row["status"] and row["error"] is None  # not the proxy's own 502 for an upstream away
            if answered and (row["realm"] or "") == spec.realm and row["mock"] is None and row["fault"] is None:
                yield row["id"]
        scanned += len(page.data)
        if page.next is None:
            return
        before = page.next


def load_recordings(
    store: Store, spec: SimulationSpec, *, limit: int = DEFAULT_FROM_STORE, decode_limit: int = DEFAULT_DECODE_LIMIT
) -> list[Recording]:
    """A simulation's recordings in recorded order: its HAR's entries, or the newest `limit`
    exchanges its search finds with their bodies decoded (a truncated or undecodable body
    leaves the exchange out). Blocking: the proxy calls it off its event loop."""
    if spec.har is not None:
        return har_recordings(spec.har)[:DEFAULT_MAX_RECORDINGS]
    out: list[Recording] = []
    for exchange_id in _store_ids(store, spec):
        if len(out) >= limit:
            break
        detail = get_exchange(store, exchange_id=exchange_id)
        if detail is None:
            continue
        bodies: dict[str, bytes] = {}
        for side in ("request", "response"):
            stored = get_body(store, exchange_id=exchange_id, side=side)
            data = b"" if stored is None or stored.truncated else stored.decoded(limit=decode_limit)
            if data is None or (stored is not None and stored.truncated):
                break
            bodies[side] = data
        else:
            meta = detail.get("request_body") or {}
            out.append(Recording(
                label=f"#{exchange_id}", method=detail["method"], path=detail["path"], query=detail["query"] or "",
                request_body=bodies["request"], status=detail["status"], reason=detail.get("reason") or "",
                response_headers=tuple(tuple(pair) for pair in detail.get("response_headers") or ()),  # type: ignore[misc]
                response_body=bodies["response"], duration_ms=detail.get("duration_ms"),
                request_content_type=meta.get("content_type"), exchange_id=exchange_id,
            ))  # fmt: skip
    return out[::-1]


# --- export -------------------------------------------------------------------------------------


def _source(record: ExchangeRecord) -> HarSource:
    """A HAR file's entry, read back as a record, in the shape storage.pure.har exports."""

    def body(captured: Any) -> HarBody | None:
        if captured is None:
            return None
        return HarBody(captured.data, captured.content_type, captured.size, captured.truncated, None)

    detail = {
        "method": record.method, "url": url_of(record), "http_version": record.http_version, "query": record.query,
        "request_headers": [list(p) for p in record.request_headers],
        "response_headers": [list(p) for p in record.response_headers or ()], "status": record.status,
        "reason": record.reason, "captured_at": iso_utc(record.captured_at), "duration_ms": record.duration_ms,
        "timings": {"request_start": iso_utc(record.timings.request_start)}, "har": record.har,
        "service": record.service, "realm": record.realm, "uuid": record.uuid, "tags": record.tags,
    }  # fmt: skip
    return HarSource(detail, request_body=body(record.request_body), response_body=body(record.response_body))


def export_recordings(
    store: Store,
    stored: StoredSimulation,
    *,
    rules: RedactionRules | None,
    limit: int = DEFAULT_FROM_STORE,
    decode_limit: int = DEFAULT_DECODE_LIMIT,
) -> dict:
    """The simulation's recordings as a HAR log: the exchanges its search finds (storage.exports.har_of)
    or its HAR's entries, redacted by `rules` as a share is (None: raw, secrets left in)."""
    spec = stored.spec
    if spec.har is None:
        ids = sorted(itertools.islice(_store_ids(store, spec), limit))
        return har_of(store, ids, rules=rules, decode_limit=decode_limit)
    records = [record for _, record in _har_records(spec.har)]
    if rules is not None:
        key = redaction_key(store)
        records = [redact_record(record, rules, key, decode_limit=decode_limit) for record in records]
    try:
        version = metadata.version("passageway")
    except metadata.PackageNotFoundError:
        version = "dev"
    return export_har([_source(record) for record in records], creator_version=version)
