"""Search benchmark: list_exchanges(q=...) latency over a large synthetic capture, SQLite and PostgreSQL.

    .venv/bin/python bench/search_bench.py [--rows N] [--repeat R] [--quick] [--no-postgres] [--keep DIR]
                                           [--postgres-rows N] [--indexers K] [--no-sqlite] [--json FILE]

Loads N exchanges (default 1,000,000) through the real write path (DatabaseSink,
batches of 2,000) and the real indexer (index_pending until nothing is pending),
then times storage.queries.list_exchanges -- what the API's GET /api/exchanges calls --
for each kind of query, R times each (default 20, with different values where the
kind has values), and prints p50/p95 per kind against the targets: p95 <= 100 ms
for structured filters, <= 300 ms for free text, <= 200 ms for the first page.

The mix: 6 services (each its own host and path shapes), GET-heavy methods, statuses
mostly 2xx with some 3xx/4xx/5xx and ~1% transport errors (no status), JSON / HTML /
binary bodies from a pre-built pool of sizes 100 B..60 KiB (some gzip-encoded, a few
truncated captures of 1.5-4 MB bodies), 10% of responses carrying a unique small
JSON body (so rare words exist), x-request-id on 40% and traceparent on 30% of
requests, log-normal durations with a long tail, captured_at spread evenly over
the 7 days before the load. Every per-exchange choice comes from a hash of its
index, so query values (request ids, trace ids, rare words) are recomputed without
the records -- which is what lets --keep reuse a cached SQLite database.

--keep DIR: keep the SQLite database in DIR (search-bench-<N>.db) and reuse it on
the next run with the same N (PostgreSQL is always created fresh and dropped).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from machine import cpu_model, kept_postgres, scratch_postgres  # noqa: E402

from storage import open_store  # noqa: E402
from storage.indexer import index_pending, refresh_statistics  # noqa: E402
from storage.pure.record import CapturedBody, ExchangeRecord, Timings  # noqa: E402
from storage.queries import list_exchanges  # noqa: E402
from storage.sink import DatabaseSink  # noqa: E402

TARGETS = {"structured": 100.0, "free text": 300.0, "first page": 200.0}
SPAN = 7 * 86400.0
BATCH = 2000
FORMAT = "v1"  # bump when the generated data changes, so a cached --keep database is rebuilt

SERVICES = {
    # service: (host, port, path templates ({n} = a number, {w} = a word))
    "users": ("users.internal", 8080, ["/users/{n}", "/users/{n}/groups", "/users", "/users/{n}/sessions"]),
    "orders": ("orders.internal", 8081, ["/orders/{n}", "/orders/{n}/items", "/orders", "/carts/{n}"]),
    "identity": ("identity.internal", 8443, ["/oauth/token", "/oauth/introspect", "/login", "/jwks.json"]),
    "catalog": ("catalog.internal", 8082, ["/products/{n}", "/products", "/search", "/categories/{w}"]),
    "media": ("cdn.internal", 8083, ["/images/{n}.png", "/thumbs/{n}.jpg", "/assets/app.js"]),
    "billing": ("billing.internal", 8084, ["/invoices/{n}", "/payments", "/refunds/{n}"]),
}
SERVICE_WEIGHTS = [30, 25, 15, 15, 10, 5]
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu shipped pending active").split()
# (status, reason, weight in 1000); None = transport error
STATUSES = [(200, "OK", 780), (201, "Created", 40), (204, "No Content", 30), (304, "Not Modified", 30),
            (400, "Bad Request", 20), (401, "Unauthorized", 15), (403, "Forbidden", 10), (404, "Not Found", 30),
            (409, "Conflict", 5), (429, "Too Many Requests", 5), (500, "Internal Server Error", 15),
            (502, "Bad Gateway", 6), (503, "Service Unavailable", 5), (504, "Gateway Timeout", 4), (None, None, 5)]
ERRORS = [("connect", "connection refused"), ("timeout", "upstream read timed out"), ("reset", "connection reset by peer")]


def _cumulative(weights: list[int]) -> list[int]:
    out, total = [], 0
    for w in weights:
        total += w
        out.append(total)
    return out


_STATUS_CUM = _cumulative([w for _, _, w in STATUSES])
_SERVICE_CUM = _cumulative(SERVICE_WEIGHTS)
_SERVICE_NAMES = list(SERVICES)


def _pick(cum: list[int], r: int) -> int:
    r %= cum[-1]
    for i, c in enumerate(cum):
        if r < c:
            return i
    return len(cum) - 1  # pragma: no cover


def digest(i: int) -> bytes:
    return hashlib.blake2b(i.to_bytes(8, "little"), digest_size=32).digest()


def request_id(h: bytes) -> str:
    return h[16:28].hex()


def trace_id(h: bytes) -> str:
    return h[:16].hex()


def rare_word(h: bytes) -> str:
    return "sku" + h[20:26].hex()


def has_request_id(h: bytes) -> bool:
    return h[0] % 10 < 4


def has_trace(h: bytes) -> bool:
    return h[1] % 10 < 3


def has_unique_body(h: bytes) -> bool:
    return h[2] % 10 == 0


# --- pools ------------------------------------------------------------------------------


def json_body(rng: random.Random, size: int) -> bytes:
    items = []
    total = 0
    while total < size:
        item = json.dumps({"id": rng.randrange(10**7), "name": f"{rng.choice(WORDS)} {rng.choice(WORDS)}",
                           "status": rng.choice(["active", "pending", "shipped"]), "score": round(rng.random(), 4)})
        items.append(item)
        total += len(item) + 1
    return ('{"items":[' + ",".join(items) + '],"next":null}').encode()


def html_body(rng: random.Random, size: int) -> bytes:
    parts = ["<!doctype html><html><head><title>Dashboard</title></head><body>"]
    total = 0
    while total < size:
        p = f"<p class=\"row\">{' '.join(rng.choice(WORDS) for _ in range(12))}</p>"
        parts.append(p)
        total += len(p)
    return ("".join(parts) + "</body></html>").encode()


ERROR_BODIES = {
    400: b'{"error":"bad request","detail":"field quantity must be positive"}',
    401: b'{"error":"unauthorized","detail":"token expired"}',
    403: b'{"error":"forbidden","detail":"missing scope orders:write"}',
    404: b'{"error":"not found","detail":"no such resource"}',
    409: b'{"error":"conflict","detail":"version mismatch"}',
    429: b'{"error":"rate limited","detail":"retry after 2 seconds"}',
    500: b'{"error":"internal server error","detail":"NullPointerException in OrderService.reserve"}',
    502: b"<html><body><h1>502 Bad Gateway</h1><p>upstream connect error or disconnect/reset before headers</p></body></html>",
    503: b'{"error":"service unavailable","detail":"database connection pool exhausted"}',
    504: b"<html><body><h1>504 Gateway Timeout</h1></body></html>",
}


class Pools:
    def __init__(self, seed: int = 7) -> None:
        rng = random.Random(seed)
        sizes = [int(math.exp(rng.uniform(math.log(100), math.log(60_000)))) for _ in range(300)]
        self.json = [CapturedBody(b, len(b), False, None, "application/json") for b in (json_body(rng, s) for s in sizes)]
        self.gzip = []
        for body in self.json[:60]:
            z = gzip.compress(body.data, 6, mtime=0)
            self.gzip.append(CapturedBody(z, len(z), False, "gzip", "application/json"))
        self.html = [CapturedBody(b, len(b), False, None, "text/html; charset=utf-8")
                     for b in (html_body(rng, rng.choice([2_000, 8_000, 30_000])) for _ in range(40))]
        self.binary = [CapturedBody(rng.randbytes(s), s, False, None, ct)
                       for s, ct in [(rng.randrange(2_000, 60_000), rng.choice(["image/png", "image/jpeg"])) for _ in range(40)]]
        self.js = [CapturedBody(b"function a(){return 1}" * 500, 11_000, False, None, "application/javascript")]
        # Truncated captures of large downloads: the first 64 KiB kept, the wire size > 1 MB.
        self.big = [CapturedBody(rng.randbytes(65_536), rng.randrange(1_500_000, 4_000_000), True, None, "application/octet-stream")
                    for _ in range(5)]
        self.requests = [CapturedBody(b, len(b), False, None, "application/json")
                         for b in (json_body(rng, rng.choice([120, 400, 2_000])) for _ in range(50))]
        self.errors = {s: CapturedBody(b, len(b), False, None, "text/html" if b.startswith(b"<") else "application/json")
                       for s, b in ERROR_BODIES.items()}
        agents = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", "okhttp/4.12.0", "python-httpx/0.28.1",
                  "Go-http-client/1.1", "curl/8.5.0"]
        self.request_headers = [
            [("Accept", accept), ("User-Agent", agent), ("Accept-Encoding", "gzip, deflate")]
            + ([("Authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.bench")] if auth else [])
            + ([("Content-Type", "application/json")] if post else [])
            for accept in ("application/json", "*/*", "text/html")
            for agent in agents
            for auth in (False, True)
            for post in (False, True)
        ]
        self.response_headers = {
            ct: [("Content-Type", ct), ("Date", "Sat, 28 Nov 2026 01:00:00 GMT"), ("Server", "envoy"),
                 ("Cache-Control", "no-store"), ("X-Envoy-Upstream-Service-Time", "12")]
            for ct in ("application/json", "text/html; charset=utf-8", "image/png", "image/jpeg",
                       "application/javascript", "application/octet-stream", "text/html")
        }


def make_records(pools: Pools, start: int, stop: int, rows: int, t0: float) -> list[ExchangeRecord]:
    out = []
    for i in range(start, stop):
        h = digest(i)
        service = _SERVICE_NAMES[_pick(_SERVICE_CUM, h[3] * 256 + h[4])]
        host, port, templates = SERVICES[service]
        template = templates[h[5] % len(templates)]
        n = int.from_bytes(h[6:9], "little") % 100_000
        path = template.format(n=n, w=WORDS[h[7] % len(WORDS)])
        status, reason, _ = STATUSES[_pick(_STATUS_CUM, int.from_bytes(h[8:10], "little"))]
        m = h[10] % 100
        if service == "media":
            method = "GET"
        else:
            method = "GET" if m < 65 else "POST" if m < 85 else "PUT" if m < 92 else "DELETE" if m < 97 else "PATCH"
        captured_at = t0 + (i + 0.5) * SPAN / rows
        # Log-normal durations, median ~25 ms, with a long tail (~1% over 1 s).
        z = (h[11] + h[12] + h[13] + h[14] - 510) / 147.0
        duration = round(25.0 * math.exp(1.05 * z) + (h[15] % 4), 2)
        rh = list(pools.request_headers[h[16] % len(pools.request_headers)])
        rh.insert(0, ("Host", f"{host}:{port}"))
        rid = request_id(h) if has_request_id(h) else None
        if rid:
            rh.append(("X-Request-Id", rid))
        trace = trace_id(h) if has_trace(h) else None
        span = h[28:32].hex() * 2 if trace else None
        if trace:
            rh.append(("traceparent", f"00-{trace}-{span}-01"))
        if h[17] == 0:  # ~0.4%
            rh.append(("X-Debug", "1"))
        request_body = pools.requests[h[18] % len(pools.requests)] if method in ("POST", "PUT", "PATCH") else None
        error_kind = error_message = None
        response_body = response_headers = None
        if status is None:
            error_kind, error_message = ERRORS[h[19] % len(ERRORS)]
            duration = round(duration + (30_000.0 if error_kind == "timeout" else 0.0), 2)
        else:
            if status >= 400:
                response_body = pools.errors.get(status)
            elif status in (204, 304):
                response_body = None
            elif service == "media":
                response_body = pools.js[0] if template.endswith(".js") else pools.binary[h[19] % len(pools.binary)]
            elif h[19] < 1:  # ~0.4%: a large download, captured truncated
                response_body = pools.big[h[20] % len(pools.big)]
            elif has_unique_body(h):
                data = json.dumps({"order": n, "sku": rare_word(h), "note": f"{WORDS[h[21] % len(WORDS)]} reserved",
                                   "request": rid}).encode()
                response_body = CapturedBody(data, len(data), False, None, "application/json")
            elif service == "catalog" and h[19] % 4 == 0:
                response_body = pools.html[h[20] % len(pools.html)]
            elif h[19] % 5 == 0:
                response_body = pools.gzip[h[20] % len(pools.gzip)]
            else:
                response_body = pools.json[(h[20] * 256 + h[21]) % len(pools.json)]
            ct = response_body.content_type if response_body else "application/json"
            response_headers = list(pools.response_headers.get(ct, pools.response_headers["application/json"]))
            if response_body is not None:
                response_headers.append(("Content-Length", str(response_body.size)))
                if response_body.encoding:
                    response_headers.append(("Content-Encoding", response_body.encoding))
            if rid:
                response_headers.append(("X-Request-Id", rid))
        end = captured_at + duration / 1000.0
        out.append(ExchangeRecord(
            uuid=h[:16].hex() if not trace else h[4:20].hex(), captured_at=captured_at, proxy="bench",
            scheme="http", method=method, host=host, port=port, path=path,
            query="limit=20&offset=0" if h[22] % 4 == 0 else "", http_version="HTTP/1.1",
            request_headers=rh, request_body=request_body,
            timings=Timings(captured_at, None, None, None, captured_at + 0.0002,
                            end - 0.001 if status is not None else None, end if status is not None else None),
            service=service, realm="prod", client_addr=f"10.0.{h[23]}.{h[24]}:{40000 + h[25] * 100}",
            status=status, reason=reason, response_headers=response_headers, response_body=response_body,
            duration_ms=duration, error_kind=error_kind, error_message=error_message,
            trace_id=trace, span_id=span, request_id=rid,
        ))
    return out


# --- load -------------------------------------------------------------------------------


def count_rows(store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT count(*) FROM exchanges").scalar_one()
        pending = conn.exec_driver_sql("SELECT count(*) FROM search_pending").scalar_one()
    return int(rows), int(pending)


def load(store, rows: int, t0: float, indexers: int = 1) -> dict:
    pools = Pools()
    sink = DatabaseSink(store)
    build = write = 0.0
    started = time.perf_counter()
    for start in range(0, rows, BATCH):
        t = time.perf_counter()
        records = make_records(pools, start, min(rows, start + BATCH), rows, t0)
        build += time.perf_counter() - t
        t = time.perf_counter()
        sink.write_batch(records)
        write += time.perf_counter() - t
        if (start // BATCH) % 50 == 49:
            print(f"  {store.dialect}: {start + BATCH:,} written ({time.perf_counter() - started:.0f} s)", flush=True)
    t = time.perf_counter()
    counts = [0] * indexers
    next_report = [100_000]

    def run_indexer(slot: int) -> None:
        while done := index_pending(store, limit=1000):
            counts[slot] += len(done)
            if sum(counts) >= next_report[0]:
                next_report[0] += 100_000
                print(f"  {store.dialect}: {sum(counts):,} indexed ({time.perf_counter() - t:.0f} s)", flush=True)

    # index_pending is safe to run concurrently (disjoint claims), as several maintenance runners do.
    threads = [threading.Thread(target=run_indexer, args=(slot,), daemon=True) for slot in range(indexers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    indexed = sum(counts)
    index = time.perf_counter() - t
    # Statistics as in production: PostgreSQL's autovacuum would have analyzed a table this
    # size by now (done here at once, so runs compare); on SQLite what the inspector runs.
    if store.dialect == "postgresql":
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    else:
        refresh_statistics(store)
    return {"build": build, "write": write, "index": index, "indexed": indexed, "indexers": indexers}


# --- queries ----------------------------------------------------------------------------

Kind = tuple[str, str, Callable[[int], str | None]]


def query_kinds(rows: int, t0: float) -> list[Kind]:
    rng = random.Random(11)
    sample = [rng.randrange(rows) for _ in range(4000)]
    hashes = [(i, digest(i)) for i in sample]
    rids = [request_id(h) for _, h in hashes if has_request_id(h)]
    traces = [trace_id(h)[:8] for _, h in hashes if has_trace(h)]
    # Rare words: from unique bodies (2xx, not media), i.e. those the generator gave one.
    rares = [rare_word(h) for i, h in hashes if has_unique_body(h)]
    end = t0 + SPAN

    def iso(ts: float) -> str:
        return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    svc = _SERVICE_NAMES
    hosts = [SERVICES[s][0] for s in svc]
    paths = ["/users/*", "/orders/*/items", "/products/*", "/oauth/*", "/invoices/*", "/images/*"]
    methods = ["POST", "PUT", "DELETE", "PATCH", "GET"]
    statuses = ["404", "500", "201", "401", "503"]
    return [
        ("structured", "method:", lambda k: f"method:{methods[k % len(methods)]}"),
        ("structured", "status:404 (exact)", lambda k: f"status:{statuses[k % len(statuses)]}"),
        ("structured", "status:5xx", lambda k: "status:5xx"),
        ("structured", "status:>=400", lambda k: "status:>=400"),
        ("structured", "service:", lambda k: f"service:{svc[k % len(svc)]}"),
        ("structured", "host:", lambda k: f"host:{hosts[k % len(hosts)]}"),
        ("structured", "path:/x/* (glob)", lambda k: f"path:{paths[k % len(paths)]}"),
        ("structured", "header:x-request-id=…", lambda k: f"header:x-request-id={rids[k % len(rids)]}"),
        ("structured", "header:x-debug (presence)", lambda k: "header:x-debug"),
        ("structured", "duration:>250ms", lambda k: f"duration:>{[250, 500, 1000, 2000][k % 4]}ms"),
        ("structured", "size:>1mb", lambda k: "size:>1mb"),
        ("structured", "since:1h", lambda k: f"since:{['5m', '1h', '6h', '1d'][k % 4]}"),
        ("structured", "before:<ISO>", lambda k: f"before:{iso(end - (k + 1) * SPAN / 22)}"),
        ("structured", "trace:<8 hex>", lambda k: f"trace:{traces[k % len(traces)]}"),
        ("structured", "is:error", lambda k: "is:error"),
        ("structured", "has:body", lambda k: "has:body"),
        ("structured", "service: method: status:5xx", lambda k: f"service:{svc[k % 3]} method:POST status:5xx"),
        ("structured", "service: duration:>1s since:1d", lambda k: f"service:{svc[k % len(svc)]} duration:>1s since:1d"),
        ("structured", "-status:2xx -method:GET", lambda k: "-status:2xx -method:GET"),
        ("structured", "service: -path:/x/*", lambda k: f"service:users -path:{['/users', '/users/*'][k % 2]}"),
        ("structured", "status:5xx since:1h OR …", lambda k: "status:5xx OR is:error since:1h"),
        ("free text", "rare word", lambda k: rares[k % len(rares)]),
        ("free text", "common word", lambda k: ["users", "orders", "active", "pending", "shipped"][k % 5]),
        ("free text", "phrase", lambda k: ['"internal server error"', '"connection pool exhausted"',
                                           '"token expired"', '"version mismatch"'][k % 4]),
        ("free text", 'body:"…"', lambda k: ['body:"not found"', 'body:"rate limited"', 'body:"bravo charlie"',
                                           'body:"missing scope"'][k % 4]),
        ("free text", "service: + rare word", lambda k: f"service:{svc[k % 2]} {rares[k % len(rares)]}"),
        ("free text", "status:5xx + phrase", lambda k: 'status:5xx "internal server error"'),
        ("first page", "(no query)", lambda k: None),
    ]


def time_queries(store, kinds: list[Kind], repeat: int, now: dt.datetime) -> list[dict]:
    results = []
    for category, label, make in kinds:
        list_exchanges(store, q=make(0), limit=100, now=now)  # warm: plan cache, pages
        times = []
        found = []
        for k in range(repeat):
            q = make(k)
            t = time.perf_counter()
            page = list_exchanges(store, q=q, limit=100, now=now)
            times.append((time.perf_counter() - t) * 1000.0)
            found.append(len(page.data))
        times.sort()
        p95 = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]
        results.append({"category": category, "kind": label, "example": make(0) or "", "p50": statistics.median(times),
                        "p95": p95, "max": times[-1], "rows": round(statistics.mean(found)),
                        "target": TARGETS[category], "ok": p95 <= TARGETS[category]})
    return results


def print_table(db: str, rows: int, results: list[dict], header: str) -> None:
    print(f"\n{db}: {rows:,} exchanges | {header}")
    print(f"{'kind':<34}{'example':<46}{'p50 ms':>8}{'p95 ms':>8}{'rows':>6}{'target':>8}  result")
    for r in results:
        example = r["example"] if len(r["example"]) <= 44 else r["example"][:43] + "…"
        print(f"{r['kind']:<34}{example:<46}{r['p50']:>8.1f}{r['p95']:>8.1f}{r['rows']:>6}{r['target']:>8.0f}  "
              f"{'PASS' if r['ok'] else 'FAIL'}")


def _remembered_t0(store, url: str) -> float | None:
    """The t0 a kept database was loaded with (SQLite: a JSON file beside it; PostgreSQL: a table)."""
    if store.dialect == "sqlite":
        t0_file = Path(url.removeprefix("sqlite:///") + ".json")
        return json.loads(t0_file.read_text())["t0"] if t0_file.exists() else None
    with store.engine.connect() as conn:
        if conn.exec_driver_sql("SELECT to_regclass('search_bench_meta')").scalar() is None:
            return None
        return conn.exec_driver_sql("SELECT t0 FROM search_bench_meta").scalar()


def _remember_t0(store, url: str, t0: float, rows: int) -> None:
    if store.dialect == "sqlite":
        Path(url.removeprefix("sqlite:///") + ".json").write_text(json.dumps({"t0": t0, "rows": rows, "format": FORMAT}))
        return
    with store.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE search_bench_meta (t0 double precision, rows bigint, format text)")
        conn.exec_driver_sql("INSERT INTO search_bench_meta VALUES (%s, %s, %s)", (t0, rows, FORMAT))


def bench(url: str, rows: int, repeat: int, cache_ok: bool, indexers: int = 1) -> tuple[dict | None, list[dict], float]:
    """Load (or, with cache_ok, reuse a complete kept database), then time every query kind."""
    store = open_store(url)
    try:
        meta = None
        t0 = time.time() - SPAN
        if cache_ok:
            have, pending = count_rows(store)
            remembered = _remembered_t0(store, url)
            if have == rows and pending == 0 and remembered is not None:
                t0 = remembered
                print(f"  {store.dialect}: reusing the kept database ({have:,} rows)", flush=True)
            elif have:
                raise SystemExit(f"{url}: holds {have:,} rows / {pending:,} pending, not a complete {rows:,}-row bench "
                                 f"database; delete it")
        if count_rows(store)[0] == 0:
            meta = load(store, rows, t0, indexers)
            if cache_ok:
                _remember_t0(store, url, t0, rows)
        refresh_statistics(store)  # a kept database from an older schema gets what maintenance would do
        now = dt.datetime.fromtimestamp(t0 + SPAN, dt.UTC)
        results = time_queries(store, query_kinds(rows, t0), repeat, now)
        return meta, results, t0
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 5 runs per kind")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per query kind (default 20)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--postgres-rows", type=int, metavar="N", help="rows for PostgreSQL (default: --rows)")
    parser.add_argument("--indexers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                        help="concurrent index_pending loops while loading PostgreSQL (default: CPUs, at most 4); "
                             "SQLite always uses one (one write lock)")
    parser.add_argument("--keep", metavar="DIR", help="keep (and reuse) the SQLite database in DIR")
    parser.add_argument("--keep-postgres", metavar="NAME",
                        help="load PostgreSQL into database NAME (created if missing) and keep it; a complete one is "
                             "reused")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeat = 100_000, 5
    header = (f"{os.cpu_count()} CPUs, {cpu_model()} | {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC} | "
              f"Python {platform.python_version()}")
    print(f"search bench: {args.rows:,} exchanges, {args.repeat} runs per kind | {header}", flush=True)
    out: dict[str, dict] = {}
    tmp = None
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        db = Path(args.keep).resolve() / f"search-bench-{FORMAT}-{args.rows}.db"
    else:
        tmp = tempfile.TemporaryDirectory(prefix="pw-search-bench-")
        db = Path(tmp.name) / "bench.db"
    try:
        if not args.no_sqlite:
            meta, results, _ = bench(f"sqlite:///{db}", args.rows, args.repeat, cache_ok=bool(args.keep))
            out["sqlite"] = {"load": meta, "results": results, "rows": args.rows}
    finally:
        if tmp is not None:
            tmp.cleanup()
    if not args.no_postgres:
        database = kept_postgres(args.keep_postgres) if args.keep_postgres else scratch_postgres("passageway_search_bench")
        with database as url:
            if url is not None:
                pg_rows = args.postgres_rows or args.rows
                meta, results, _ = bench(
                    url, pg_rows, args.repeat, cache_ok=bool(args.keep_postgres), indexers=args.indexers
                )
                out["postgresql"] = {"load": meta, "results": results, "rows": pg_rows}

    for db_name, r in out.items():
        print_table(db_name, r["rows"], r["results"], header)
        if r["load"]:
            m = r["load"]
            print(f"load: build records {m['build']:.0f} s, write {m['write']:.0f} s "
                  f"({args.rows / max(m['write'], 1e-9):,.0f}/s), index {m['index']:.0f} s "
                  f"({m['indexed'] / max(m['index'], 1e-9):,.0f}/s, {m['indexers']} indexer(s))")
        else:
            print("load: cached database reused")
    failed = [f"{db}: {r['kind']}" for db, v in out.items() for r in v["results"] if not r["ok"]]
    print(f"\ntargets (p95): structured <= 100 ms, free text <= 300 ms, first page <= 200 ms: "
          f"{'all met' if not failed else 'MISSED ' + '; '.join(failed)}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
