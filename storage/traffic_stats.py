"""Traffic figures per service and per endpoint over a time window: requests, req/s, errors,
error rate and latency percentiles, as a time series and as tables.

The pure part turns rows (`Sample`) into figures; the query part reads the rows of one window
from the store. Definitions:

- An error is an exchange answered with status >= 500, or not answered at all (any
  `error_kind`: upstream failure, timeout, ...). A client error is a 4xx without an error
  kind; it is counted apart and is not part of the error rate.
- Percentiles use the nearest-rank method: pN is the smallest captured duration such that at
  least N% of durations are at or below it (the value at 1-based rank ceil(N/100 * n) of the
  sorted durations), so it is always a duration that was actually measured. Exchanges with no
  duration (no response) count as requests, not in percentiles.
- req/s divides by the seconds covered: the window, or for one bucket the part of it inside
  the window (the first and last buckets may be partial, as buckets are aligned to multiples
  of their length so that successive refreshes keep the same boundaries).
- From the exchanges (service_stats, service_summaries): at most MAX_ROWS rows are read per
  request, newest first. When there were more, the answer says `sampled` and the figures cover
  only the newest rows: from `sampled_since` on.
- From the rollups (rolled_service_stats, rolled_service_summaries; storage.rollups), what the
  API serves: every exchange counts, at any volume (never `sampled`; `rows` is the exchanges
  counted). The window's whole minutes (whole hours for long windows and past 2 days) come from
  the rollup rows, its partial minutes at either end (the current one) from the exchanges.
  Percentiles come from the merged latency sketches: exact while a group holds at most 32
  durations, else within 0.5% of the nearest-rank value (storage.pure.sketch). With buckets of an
  hour or more, an hour row counts in the bucket its hour starts in.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select

from storage.models import Exchange
from storage.pure.endpoints import DEFAULT_MAX_LITERALS, infer_templates, search_pattern, template_path
from storage.pure.sketch import Sketch, SketchSum, Unpacked
from storage.pure.search import Query, QueryError, Term, parse_query
from storage.queries import iso_utc
from storage.rollups import HOUR as HOUR_SECONDS
from storage.rollups import MINUTE as MINUTE_SECONDS
from storage.rollups import RolledRow, backfilled, minute_floor, read_cells, rolled_start
from storage.search_sql import compile_query
from storage.store import Store

__all__ = [
    "DEFAULT_BUCKETS",
    "MAX_BUCKETS",
    "MAX_ENDPOINTS",
    "MAX_ROWS",
    "Sample",
    "TimeWindow",
    "WindowRows",
    "endpoint_search",
    "endpoint_table",
    "figures",
    "parse_since",
    "percentile",
    "read_samples",
    "rolled_service_stats",
    "rolled_service_summaries",
    "service_stats",
    "service_summaries",
    "summarize_services",
    "time_series",
]

MAX_ROWS = 200_000
"""Rows read per request at most: bounds the time and memory of one answer."""
MAX_ENDPOINTS = 500
"""Endpoints listed per answer at most (the most requested); `endpoints_total` counts them all."""
DEFAULT_BUCKETS = 60
MAX_BUCKETS = 1000
PERCENTILES = (("p50", 50), ("p95", 95), ("p99", 99))


@dataclass(frozen=True, slots=True)
class Sample:
    """The columns of one exchange that the figures need."""

    captured_at: float
    """Epoch seconds."""
    status: int | None
    duration_ms: float | None
    error_kind: str | None
    method: str = ""
    path: str = ""
    service: str | None = None


def is_error(sample: Sample) -> bool:
    return sample.error_kind is not None or (sample.status is not None and sample.status >= 500)


def is_client_error(sample: Sample) -> bool:
    return sample.error_kind is None and sample.status is not None and 400 <= sample.status < 500


def percentile(sorted_values: Sequence[float], rank_percent: float) -> float | None:
    """Nearest rank: the value at 1-based rank ceil(rank_percent/100 * n); None when empty."""
    if not sorted_values:
        return None
    if not 0 < rank_percent <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {rank_percent}")
    rank = math.ceil(rank_percent / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def figures(samples: Iterable[Sample], seconds: float) -> dict[str, Any]:
    """requests, errors, client_errors, rps, error_rate and p50/p95/p99 (ms) of `samples`
    over `seconds`. error_rate is errors / requests (0..1), None without requests."""
    requests = errors = client_errors = 0
    durations: list[float] = []
    for sample in samples:
        requests += 1
        if is_error(sample):
            errors += 1
        elif is_client_error(sample):
            client_errors += 1
        if sample.duration_ms is not None:
            durations.append(sample.duration_ms)
    durations.sort()
    return {
        "requests": requests,
        "errors": errors,
        "client_errors": client_errors,
        "rps": requests / seconds if seconds > 0 else 0.0,
        "error_rate": errors / requests if requests else None,
        **{name: percentile(durations, rank) for name, rank in PERCENTILES},
    }


def parse_since(text: str) -> int:
    """A window length in the search language's since: syntax (`15m`, `1h`, `7d`) -> seconds.

    Raises ValueError with a one-line message."""
    value = text.strip()
    if not value or any(c.isspace() or c in "\"'" for c in value):
        raise ValueError(f"since: expected a number and a unit (s, m, h, d, w), e.g. 1h, not {text!r}")
    try:
        terms = parse_query(f"since:{value}").terms
    except QueryError as exc:
        raise ValueError(exc.message) from None
    if len(terms) != 1 or terms[0].field != "since" or terms[0].value <= 0:
        raise ValueError(f"since: expected a number and a unit (s, m, h, d, w), e.g. 1h, not {text!r}")
    return int(terms[0].value)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """[since, until) cut into buckets of `bucket_seconds`, aligned to multiples of it (the
    first and last may be partial)."""

    since: dt.datetime
    until: dt.datetime
    bucket_seconds: int

    @classmethod
    def ending(cls, until: dt.datetime, *, seconds: int, buckets: int = DEFAULT_BUCKETS) -> TimeWindow:
        """The `seconds` before `until`, in about `buckets` buckets (at most buckets + 1)."""
        if seconds <= 0:
            raise ValueError("the window must be longer than 0 seconds")
        if not 1 <= buckets <= MAX_BUCKETS:
            raise ValueError(f"buckets must be between 1 and {MAX_BUCKETS}")
        return cls(until - dt.timedelta(seconds=seconds), until, max(1, math.ceil(seconds / buckets)))

    def bucket_starts(self) -> list[float]:
        first = math.floor(self.since.timestamp() / self.bucket_seconds) * self.bucket_seconds
        end = self.until.timestamp()
        return [float(start) for start in range(int(first), math.ceil(end), self.bucket_seconds)]


def time_series(samples: Iterable[Sample], window: TimeWindow) -> list[dict[str, Any]]:
    """One entry per bucket of `window`, oldest first: {"t": ISO start, **figures}.

    Samples outside [since, until) are ignored."""
    starts = window.bucket_starts()
    if not starts:
        return []
    first, size = starts[0], window.bucket_seconds
    since, until = window.since.timestamp(), window.until.timestamp()
    per_bucket: list[list[Sample]] = [[] for _ in starts]
    for sample in samples:
        if since <= sample.captured_at < until:
            index = int((sample.captured_at - first) // size)
            if 0 <= index < len(per_bucket):
                per_bucket[index].append(sample)
    series = []
    for start, bucket in zip(starts, per_bucket, strict=True):
        covered = min(start + size, until) - max(start, since)
        series.append({"t": iso_utc(start), **figures(bucket, covered)})
    return series


def endpoint_search(service: str, method: str, template: str) -> str:
    """The inspector search that lists an endpoint's exchanges, in canonical form."""
    pattern = search_pattern(template)
    path = Term("path", "glob" if "*" in pattern else "=", pattern)
    terms = (Term("service", "=", service), Term("method", "=", method), path)
    return str(Query(tuple((term,) for term in terms)))


def endpoint_table(
    samples: Sequence[Sample],
    seconds: float,
    *,
    service: str,
    max_literals: int = DEFAULT_MAX_LITERALS,
    templates: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Per (method, path template): figures, the most requested path as an example, and the
    search listing its exchanges; most requested first (then by method and template).
    `templates` (path -> template) when the caller has inferred them already."""
    if templates is None:
        templates = infer_templates(Counter(sample.path for sample in samples), max_literals=max_literals)
    groups: defaultdict[tuple[str, str], list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[(sample.method, templates[sample.path])].append(sample)
    table = []
    for (method, template), group in groups.items():
        examples = Counter(sample.path for sample in group)
        example = min(examples, key=lambda path: (-examples[path], path))
        table.append(
            {
                "method": method,
                "template": template,
                **figures(group, seconds),
                "example_path": example,
                "search": endpoint_search(service, method, template),
            }
        )
    table.sort(key=lambda row: (-row["requests"], row["method"], row["template"]))
    return table


def summarize_services(samples: Iterable[Sample], seconds: float) -> list[dict[str, Any]]:
    """Per service: figures; most requested first (then by name)."""
    groups: defaultdict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        if sample.service is not None:
            groups[sample.service].append(sample)
    table = [{"service": service, **figures(group, seconds)} for service, group in groups.items()]
    table.sort(key=lambda row: (-row["requests"], row["service"]))
    return table


# -- reading the window ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowRows:
    samples: list[Sample]
    sampled: bool
    """More rows matched than were read: `samples` are the newest `limit`."""

    @property
    def oldest(self) -> float | None:
        return min((sample.captured_at for sample in self.samples), default=None)


def read_samples(
    store: Store,
    *,
    since: dt.datetime,
    until: dt.datetime,
    service: str | None = None,
    realm: str | None = None,
    limit: int = MAX_ROWS,
) -> WindowRows:
    """The exchanges captured in [since, until), newest first, at most `limit`.

    The time bounds also become id bounds (through capture_blocks, as for the search's
    since:/before:), so an index range is read newest first and stops at the limit: on
    SQLite ix_exchanges_service_id (service=? AND id>? AND id<?) or, for all services, the
    rowid range; on PostgreSQL the primary key's id range or the (service, id) index, as
    its statistics decide. Only the columns the figures need are selected."""
    terms = [Term("after", ">=", since), Term("before", "<", until)]
    if service is not None:
        terms.insert(0, Term("service", "=", service))
    where = [compile_query(Query(tuple((term,) for term in terms)), dialect=store.dialect)]
    if realm is not None:
        where.append(Exchange.realm == realm)
    if service is None:
        where.append(Exchange.service.isnot(None))
    columns = [Exchange.captured_at, Exchange.status, Exchange.duration_ms, Exchange.error_kind]
    columns += [Exchange.method, Exchange.path] if service is not None else [Exchange.service]
    statement = select(*columns).where(and_(*where)).order_by(Exchange.id.desc()).limit(limit + 1)
    with store.connect() as conn:
        rows = conn.execute(statement).all()
    sampled = len(rows) > limit
    if service is not None:
        samples = [
            Sample(row.captured_at.timestamp(), row.status, row.duration_ms, row.error_kind, row.method, row.path)
            for row in rows[:limit]
        ]
    else:
        samples = [
            Sample(row.captured_at.timestamp(), row.status, row.duration_ms, row.error_kind, service=row.service)
            for row in rows[:limit]
        ]
    return WindowRows(samples, sampled)


def _covered_seconds(since: dt.datetime, until: dt.datetime, rows: WindowRows) -> float:
    """The window's length, or when sampled the part the rows read cover (oldest read to until)."""
    if rows.sampled and rows.oldest is not None:
        return max(until.timestamp() - rows.oldest, 1e-3)
    return (until - since).total_seconds()


def _sampling(rows: WindowRows) -> dict[str, Any]:
    return {
        "sampled": rows.sampled,
        "sampled_since": iso_utc(rows.oldest) if rows.sampled else None,
        "rows": len(rows.samples),
    }


def service_stats(
    store: Store,
    *,
    service: str,
    window: TimeWindow,
    realm: str | None = None,
    limit: int = MAX_ROWS,
    max_literals: int = DEFAULT_MAX_LITERALS,
    endpoint: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """One service's series, totals and endpoint table over `window` (JSON-ready). With
    `endpoint` (method, template), the series and totals are that endpoint's alone; the table
    still lists every endpoint."""
    rows = read_samples(store, since=window.since, until=window.until, service=service, realm=realm, limit=limit)
    seconds = _covered_seconds(window.since, window.until, rows)
    templates = infer_templates(Counter(sample.path for sample in rows.samples), max_literals=max_literals)
    endpoints = endpoint_table(rows.samples, seconds, service=service, templates=templates)
    charted = rows.samples
    if endpoint is not None:
        charted = [sample for sample in rows.samples if (sample.method, templates[sample.path]) == endpoint]
    return {
        "service": service,
        "realm": realm,
        "endpoint": {"method": endpoint[0], "template": endpoint[1]} if endpoint is not None else None,
        "since": iso_utc(window.since),
        "until": iso_utc(window.until),
        "bucket_seconds": window.bucket_seconds,
        "series": time_series(charted, window),
        "totals": figures(charted, seconds),
        "endpoints": endpoints[:MAX_ENDPOINTS],
        "endpoints_total": len(endpoints),
        **_sampling(rows),
    }


def service_summaries(
    store: Store,
    *,
    since: dt.datetime,
    until: dt.datetime | None = None,
    realm: str | None = None,
    limit: int = MAX_ROWS,
) -> dict[str, Any]:
    """Every service's figures over [since, until) (until: now), most requested first."""
    until = until or dt.datetime.now(dt.UTC)
    rows = read_samples(store, since=since, until=until, realm=realm, limit=limit)
    return {
        "since": iso_utc(since),
        "until": iso_utc(until),
        "realm": realm,
        "services": summarize_services(rows.samples, _covered_seconds(since, until, rows)),
        **_sampling(rows),
    }


# -- from the rollups (storage.rollups) ------------------------------------------------------------


class _Tally:
    """Figures being merged from rollup rows, exchanges and other tallies. The rows' sketches are
    summed as they come (SketchSum: a 7-day page merges thousands), the rest when the figures are
    asked for."""

    __slots__ = ("client_errors", "durations", "errors", "latencies", "merged", "parts", "requests")

    def __init__(self) -> None:
        self.requests = self.errors = self.client_errors = 0
        self.latencies = SketchSum()
        self.durations: list[float] = []
        self.parts: list[_Tally] = []
        self.merged: Sketch | None = None

    def add_row(self, row: RolledRow, latencies: Unpacked) -> None:
        """Count `row` in; `latencies`: its sketch, unpacked (once for all the tallies it counts in)."""
        self.requests += row.requests
        self.errors += row.errors
        self.client_errors += row.client_errors
        self.latencies.add(latencies)

    def add(self, other: _Tally) -> None:
        """Count `other` in too (its sketch is merged in when the figures are asked for)."""
        self.requests += other.requests
        self.errors += other.errors
        self.client_errors += other.client_errors
        self.parts.append(other)

    def add_sample(self, sample: Sample) -> None:
        self.requests += 1
        if is_error(sample):
            self.errors += 1
        elif is_client_error(sample):
            self.client_errors += 1
        if sample.duration_ms is not None:
            self.durations.append(sample.duration_ms)

    def sketch(self) -> Sketch:
        """Everything added, merged (once: a part's sketch serves its own figures and its whole's)."""
        if self.merged is None:
            self.merged = self.latencies.sketch()
            for part in self.parts:
                self.merged.merge(part.sketch())
            for duration in self.durations:
                self.merged.add(duration)
        return self.merged

    def figures(self, seconds: float) -> dict[str, Any]:
        sketch = self.sketch()
        return {
            "requests": self.requests,
            "errors": self.errors,
            "client_errors": self.client_errors,
            "rps": self.requests / seconds if seconds > 0 else 0.0,
            "error_rate": self.errors / self.requests if self.requests else None,
            **{name: sketch.quantile(rank) for name, rank in PERCENTILES},
        }


COARSE_WINDOW = 6 * 3600
"""Seconds: from this long, a window without buckets (the summaries) reads hour rows for its whole hours."""


def _rolled_span(
    store: Store, *, since: dt.datetime, until: dt.datetime, service: str | None, realm: str | None
) -> tuple[int, int, list[Sample]]:
    """[a, b): the whole minutes of the window, read from the rollups; and the exchanges of the
    partial minutes at either end (the current one included), read as they are."""
    a, b = rolled_start(since), minute_floor(until)
    if a >= b:
        return a, a, read_samples(store, since=since, until=until, service=service, realm=realm).samples
    samples: list[Sample] = []
    if since.timestamp() < a and a - since.timestamp() < MINUTE_SECONDS:
        start = dt.datetime.fromtimestamp(a, dt.UTC)
        samples += read_samples(store, since=since, until=start, service=service, realm=realm).samples
    if b < until.timestamp():
        end = dt.datetime.fromtimestamp(b, dt.UTC)
        samples += read_samples(store, since=end, until=until, service=service, realm=realm).samples
    return a, b, samples


def _not_sampled(requests: int) -> dict[str, Any]:
    return {"sampled": False, "sampled_since": None, "rows": requests}


def rolled_service_summaries(
    store: Store, *, since: dt.datetime, until: dt.datetime | None = None, realm: str | None = None
) -> dict[str, Any]:
    """service_summaries' answer, from the rollups: every exchange of the window counts, whatever
    the volume. Before the rollups' backfill is done, service_summaries itself."""
    until = until or dt.datetime.now(dt.UTC)
    if not backfilled(store):
        return service_summaries(store, since=since, until=until, realm=realm)
    a, b, samples = _rolled_span(store, since=since, until=until, service=None, realm=realm)
    tallies: defaultdict[str, _Tally] = defaultdict(_Tally)
    coarse = (until - since).total_seconds() >= COARSE_WINDOW
    for row in read_cells(store, since=a, until=b, realm=realm, coarse=coarse):
        tallies[row.service].add_row(row, Unpacked.of(row.durations))
    for sample in samples:
        if sample.service is not None:
            tallies[sample.service].add_sample(sample)
    seconds = (until - since).total_seconds()
    table = [{"service": service, **tally.figures(seconds)} for service, tally in tallies.items()]
    table.sort(key=lambda row: (-row["requests"], row["service"]))
    return {
        "since": iso_utc(since),
        "until": iso_utc(until),
        "realm": realm,
        "services": table,
        **_not_sampled(sum(tally.requests for tally in tallies.values())),
    }


def rolled_service_stats(
    store: Store,
    *,
    service: str,
    window: TimeWindow,
    realm: str | None = None,
    max_literals: int = DEFAULT_MAX_LITERALS,
    endpoint: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """service_stats' answer, from the rollups. Buckets shorter than a minute, or not whole
    minutes, cannot be cut from minute rows: those windows (15 minutes in 60 buckets) read the
    exchanges (service_stats), as do all before the rollups' backfill is done."""
    if window.bucket_seconds % MINUTE_SECONDS or not backfilled(store):
        return service_stats(store, service=service, window=window, realm=realm, max_literals=max_literals,
                             endpoint=endpoint)  # fmt: skip
    a, b, samples = _rolled_span(store, since=window.since, until=window.until, service=service, realm=realm)
    coarse = window.bucket_seconds >= HOUR_SECONDS
    rows = read_cells(store, since=a, until=b, service=service, realm=realm, coarse=coarse)
    sample_templates = {sample.path: template_path(sample.path) for sample in samples}
    counts: Counter[str] = Counter()
    for row in rows:
        counts[row.template] += row.requests
    for sample in samples:
        counts[sample_templates[sample.path]] += 1
    collapsed = infer_templates(counts, max_literals=max_literals) if counts else {}
    groups: defaultdict[tuple[str, str], _Tally] = defaultdict(_Tally)
    examples: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    starts = window.bucket_starts()
    first, size = (starts[0] if starts else 0.0), window.bucket_seconds
    series = [_Tally() for _ in starts]

    def chart(key: tuple[str, str], at: float) -> _Tally | None:
        if endpoint is not None and key != endpoint:
            return None
        index = int((at - first) // size)
        return series[index] if 0 <= index < len(series) else None

    # Each row goes to its endpoint and its bucket of the chart; the totals are the endpoints'.
    for row in rows:
        key = (row.method, collapsed[row.template])
        latencies = Unpacked.of(row.durations)
        groups[key].add_row(row, latencies)
        examples[key][row.example_path] += row.requests
        bucket = chart(key, row.period_start)
        if bucket is not None:
            bucket.add_row(row, latencies)
    for sample in samples:
        key = (sample.method, collapsed[sample_templates[sample.path]])
        groups[key].add_sample(sample)
        examples[key][sample.path] += 1
        bucket = chart(key, sample.captured_at)
        if bucket is not None and window.since.timestamp() <= sample.captured_at < window.until.timestamp():
            bucket.add_sample(sample)
    total = _Tally()
    for key, tally in groups.items():
        if endpoint is None or key == endpoint:
            total.add(tally)
    seconds = (window.until - window.since).total_seconds()
    endpoints = []
    for (method, template), tally in groups.items():
        seen = examples[(method, template)]
        endpoints.append({
            "method": method, "template": template, **tally.figures(seconds),
            "example_path": min(seen, key=lambda path: (-seen[path], path)),
            "search": endpoint_search(service, method, template),
        })  # fmt: skip
    endpoints.sort(key=lambda row: (-row["requests"], row["method"], row["template"]))
    since, until = window.since.timestamp(), window.until.timestamp()
    points = []
    for start, tally in zip(starts, series, strict=True):
        covered = min(start + size, until) - max(start, since)
        points.append({"t": iso_utc(start), **tally.figures(covered)})
    return {
        "service": service,
        "realm": realm,
        "endpoint": {"method": endpoint[0], "template": endpoint[1]} if endpoint is not None else None,
        "since": iso_utc(window.since),
        "until": iso_utc(window.until),
        "bucket_seconds": window.bucket_seconds,
        "series": points,
        "totals": total.figures(seconds),
        "endpoints": endpoints[:MAX_ENDPOINTS],
        "endpoints_total": len(endpoints),
        **_not_sampled(sum(tally.requests for tally in groups.values())),
    }
