"""Tests made from the store's traffic: one exchange, or what a search matches, loaded into
radar.generate's inputs (details, decoded bodies, each endpoint's observed p95) and generated.

The I/O half of `passageway test new` and `GET /api/tests/new`; radar.generate stays pure.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from storage.exports import search_ids
from storage.pure.decoding import DEFAULT_DECODE_LIMIT
from storage.pure.endpoints import infer_templates
from storage.pure.redaction import DEFAULT_RULES, RedactionRules
from storage.pure.search import QueryError, parse_query
from storage.queries import get_body, get_exchange
from storage.store import Store
from storage.traffic_stats import percentile, read_samples

from .generate import CapturedExchange, Endpoint, GeneratedTest, captured_exchange, test_from_exchanges

__all__ = [
    "LATENCY_ROWS", "LATENCY_WINDOW", "MAX_STEPS", "exchange_details", "generated_test", "suggested_filename",
    "test_from_details",
]

LATENCY_WINDOW = dt.timedelta(days=7)
"""How far back an endpoint's latency is observed for its duration budget."""
LATENCY_ROWS = 20_000
"""A service's newest exchanges read at most for its endpoints' p95: bounds the query's cost."""
MAX_STEPS = 100
"""Exchanges one generated test holds at most (a search's `limit`)."""


def exchange_details(
    store: Store, *, exchange_id: int | None = None, query: str | None = None, limit: int = 20
) -> list[dict]:
    """The store's details (storage.queries.get_exchange) of exchange `exchange_id`, or of the
    newest `limit` exchanges `query` matches, in capture order (oldest first).

    One-line errors: LookupError for an unknown exchange or a search matching nothing;
    ValueError for a bad search or limit, or both or neither of exchange_id and query."""
    if (exchange_id is None) == (query is None):
        raise ValueError("give either an exchange id or a search, not both or neither")
    if exchange_id is not None:
        ids = [exchange_id]
    else:
        if not 1 <= limit <= MAX_STEPS:
            raise ValueError(f"limit must be between 1 and {MAX_STEPS}, not {limit}")
        if not (query or "").strip():
            raise ValueError("the search is empty")
        try:
            parsed = parse_query(query or "")
        except QueryError as e:
            raise ValueError(f"bad search: {e}") from None
        ids = search_ids(store, parsed, limit=limit)  # the newest `limit`, oldest first
        if not ids:
            raise LookupError(f"no exchange matches {query!r}")
    details = []
    for wanted in ids:
        detail = get_exchange(store, exchange_id=wanted)
        if detail is None:
            raise LookupError(f"exchange {wanted} not found")
        details.append(detail)
    return details


def test_from_details(
    store: Store,
    details: Sequence[dict],
    *,
    services: Mapping[str, str] | None = None,
    rules: RedactionRules = DEFAULT_RULES,
    decode_limit: int = DEFAULT_DECODE_LIMIT,
    now: dt.datetime | None = None,
) -> GeneratedTest:
    """A test of the exchanges `details` (exchange_details), their bodies read from the store,
    each endpoint's p95 over the last LATENCY_WINDOW as its duration budget's basis.
    `services`: name -> upstream base URL, so that a `service://` URL leaves out the base path
    the proxy added. `rules`: what counts as a secret. Bodies are inflated to at most
    `decode_limit` bytes. ValueError (one line) for an exchange that cannot be sent again (no
    response, a request body cut at capture or that cannot be decoded)."""
    now = now or dt.datetime.now(dt.UTC)
    latency = _endpoint_latency(store, details, since=now - LATENCY_WINDOW, until=now)
    exchanges = [_captured(store, detail, services or {}, latency.templates, decode_limit) for detail in details]
    return test_from_exchanges(exchanges, latency_p95_ms=latency.p95s, secrets=rules)


def generated_test(
    store: Store,
    *,
    exchange_id: int | None = None,
    query: str | None = None,
    limit: int = 20,
    services: Mapping[str, str] | None = None,
    rules: RedactionRules = DEFAULT_RULES,
    decode_limit: int = DEFAULT_DECODE_LIMIT,
    now: dt.datetime | None = None,
) -> GeneratedTest:
    """exchange_details then test_from_details: a test of one exchange, or of a search's newest
    `limit` matches in capture order, chained."""
    details = exchange_details(store, exchange_id=exchange_id, query=query, limit=limit)
    return test_from_details(store, details, services=services, rules=rules, decode_limit=decode_limit, now=now)


def _captured(
    store: Store,
    detail: dict,
    services: Mapping[str, str],
    templates: Mapping[tuple[str, str], str],
    decode_limit: int,
) -> CapturedExchange:
    exchange_id = detail["id"]
    if detail["status"] is None:
        why = f"{detail['error']['kind']}: {detail['error']['message']}" if detail.get("error") else "none was captured"
        raise ValueError(f"exchange {exchange_id} has no response ({why})")
    request_body = None
    stored = get_body(store, exchange_id=exchange_id, side="request")
    if stored is not None:
        if stored.truncated:
            raise ValueError(
                f"exchange {exchange_id}: its request body was cut at capture ({len(stored.data)} of {stored.size} "
                "bytes stored), so a test cannot send it again"
            )
        request_body = stored.decoded(limit=decode_limit)
        if request_body is None:
            raise ValueError(f"exchange {exchange_id}: its request body cannot be decoded ({stored.encoding})")
    response_body = None
    stored = get_body(store, exchange_id=exchange_id, side="response")
    if stored is not None:
        response_body = stored.decoded(limit=decode_limit)  # None: no shape asserts, the rest still holds
    service = detail.get("service")
    base_path = urlsplit(services[service]).path if service in services else ""
    return captured_exchange(
        detail,
        request_body=request_body,
        response_body=response_body,
        base_path=base_path,
        endpoint_template=templates.get((service, detail["path"])) if service else None,
    )


class _Latency:
    def __init__(self) -> None:
        self.templates: dict[tuple[str, str], str] = {}
        """(service, stored path) -> its endpoint's template among the service's traffic."""
        self.p95s: dict[Endpoint, float] = {}


def _endpoint_latency(store: Store, details: Sequence[dict], *, since: dt.datetime, until: dt.datetime) -> _Latency:
    """Per service of `details`: its paths' templates (inferred from its recent traffic, as the
    service stats page infers them) and each endpoint's p95 over [since, until), from at most
    LATENCY_ROWS of its newest exchanges."""
    latency = _Latency()
    for service in sorted({detail["service"] for detail in details if detail.get("service")}):
        rows = read_samples(store, since=since, until=until, service=service, limit=LATENCY_ROWS)
        paths = Counter(sample.path for sample in rows.samples)
        paths.update(detail["path"] for detail in details if detail.get("service") == service)
        templates = infer_templates(paths)
        durations: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
        for sample in rows.samples:
            if sample.duration_ms is not None:
                durations[(sample.method, templates[sample.path])].append(sample.duration_ms)
        for path, template in templates.items():
            latency.templates[(service, path)] = template
        for (method, template), values in durations.items():
            p95 = percentile(sorted(values), 95)
            if p95 is not None:
                latency.p95s[Endpoint(service, method, template)] = p95
    return latency


def suggested_filename(details: Sequence[Mapping[str, object]], *, search: bool) -> str:
    """`<method>-<service>-<path>.hurl` for one exchange, `<service>-flow.hurl` for a search
    (its exchanges' service when they share one, else "traffic"); lower-case, slugged."""
    if not search and len(details) == 1:
        [detail] = details
        owner = detail.get("service") or detail.get("host") or ""
        return _slug(f"{detail['method']}-{owner}-{detail['path']}", fallback="exchange") + ".hurl"
    owners = {detail.get("service") for detail in details}
    owner = owners.pop() if len(owners) == 1 and None not in owners else "traffic"
    return _slug(f"{owner}-flow", fallback="traffic-flow") + ".hurl"


def _slug(text: str, *, fallback: str) -> str:
    slug = "".join(c if c.isascii() and c.isalnum() else "-" for c in text.lower())
    slug = "-".join(part for part in slug.split("-") if part)[:80].strip("-")
    return slug or fallback


test_from_details.__test__ = False  # type: ignore[attr-defined]  # not a test when a test module imports it
