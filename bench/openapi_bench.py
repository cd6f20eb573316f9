"""Inferred OpenAPI's costs (issue 18 §1), on SQLite and PostgreSQL: what summarise_new costs per
exchange, and how long inferred_openapi takes for a service with a million exchanges' summaries.

    .venv/bin/python bench/openapi_bench.py [--exchanges 20000] [--days 30] [--repeat 5] [--no-postgres]

1. Summary job: N exchanges (default 20,000) of one service over 40 operations (GET by id, lists
   with query parameters, POST/PUT with JSON bodies of 0.3-2 KiB, some 404s and 422s, 1 in 10
   without a JSON body) go through the real write path (write_records); then summarise_new reads
   them all from the cursor, R times (each time from an empty api_shapes and cursor), and the
   median is printed as microseconds per exchange (body reads, zstd, JSON parsing, summaries,
   examples' redaction and the upserts included).
2. The document: the day rows of step 1 copied to D days (default 30) with every count scaled so
   that they sum to 1,000,000 exchanges (a summary's size does not grow with its count: this is
   what a million exchanges leave behind), inserted in bulk; then inferred_openapi over the whole
   window and over the last 7 days, R times each; the median against the goal (< 1 s).
Not part of `make test`.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model, scratch_postgres  # noqa: E402

from storage.api_shapes import inferred_openapi, summarise_new  # noqa: E402
from storage.models import ApiShape, JobCursor, escape_json_strings, unescape_json_strings  # noqa: E402
from storage.pure.record import CapturedBody, ExchangeRecord, Timings  # noqa: E402
from storage.sink import write_records  # noqa: E402
from storage.store import Store, open_store  # noqa: E402

SERVICE = "catalog"
TARGET = 1_000_000
GOAL_SECONDS = 1.0
RESOURCES = ["items", "users", "orders", "carts", "invoices", "reviews", "shipments", "coupons"]


def _json(value: Any) -> CapturedBody:
    data = json.dumps(value).encode()
    return CapturedBody(data=data, size=len(data), truncated=False, content_type="application/json")


def _entity(rng: random.Random, resource: str, i: int) -> dict[str, Any]:
    return {
        "id": i,
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "name": f"{resource} {i}",
        "status": rng.choice(["active", "pending", "closed"]),
        "price": round(rng.uniform(1, 500), 2),
        "created_at": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:15:00Z",
        "tags": [f"tag{rng.randrange(1000)}" for _ in range(rng.randrange(4))],
        "owner": {"email": f"user{i % 97}@example.com", "url": f"https://example.com/u/{i % 97}", "note": None if i % 3 else "vip"},
        "lines": [{"sku": f"S{rng.randrange(10**6)}", "qty": rng.randrange(1, 9), "unit": rng.choice(["ea", "kg"])} for _ in range(rng.randrange(1, 5))],
    }


def make_records(count: int, t0: float, seed: int = 7) -> list[ExchangeRecord]:
    rng = random.Random(seed)
    records = []
    for n in range(count):
        resource = RESOURCES[n % len(RESOURCES)]
        shape = (n // len(RESOURCES)) % 5  # 8 resources x 5 operations = 40 operations
        i = rng.randrange(1, 100_000)
        method, path, query, request, status, response = "GET", f"/{resource}/{i}", "", None, 200, _json(_entity(rng, resource, i))
        if shape == 1:
            path, query = f"/{resource}", f"limit={rng.randrange(1, 50)}&status={rng.choice(['active', 'closed'])}"
            response = _json({"data": [_entity(rng, resource, i + k) for k in range(rng.randrange(1, 4))], "next": None})
        elif shape == 2:
            method, path = "POST", f"/{resource}"
            request, status = _json({"name": f"new {i}", "price": i / 7, "tags": ["a"]}), 201
        elif shape == 3:
            method = "PUT"
            request = _json({"name": f"renamed {i}", "status": "closed"})
        elif shape == 4:
            path = f"/{resource}/{i}/history"
            response = CapturedBody(data=b"plain text history", size=18, truncated=False, content_type="text/plain")
        if n % 17 == 0:
            status, response = 404, _json({"detail": f"no {resource} {i}"})
        elif n % 23 == 0 and request is not None:
            status, response = 422, _json({"detail": [{"loc": ["body", "name"], "msg": "Field required", "type": "missing"}]})
        at = t0 + n * 0.001
        records.append(
            ExchangeRecord(
                uuid=uuid.UUID(int=rng.getrandbits(128), version=4).hex, captured_at=at, proxy="bench", scheme="http",
                method=method, host="catalog.internal", port=8000, path=path, query=query, http_version="HTTP/1.1",
                request_headers=[("Host", "catalog.internal"), ("Content-Type", "application/json")],
                request_body=request, timings=Timings(request_start=at, response_end=at + 0.004), service=SERVICE,
                realm=None, status=status, reason="OK",
                response_headers=[("Content-Type", response.content_type or "")], response_body=response,
                duration_ms=4.0,
            )
        )  # fmt: skip
    return records


def _reset(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(ApiShape.__table__.delete())
        conn.execute(JobCursor.__table__.delete())


def bench_job(store: Store, exchanges: int, repeat: int) -> tuple[float, list[dict[str, Any]]]:
    t0 = time.time() - exchanges * 0.001 - 60
    records = make_records(exchanges, t0)
    for start in range(0, len(records), 2000):
        write_records(store, records[start : start + 2000])
    timings = []
    for _ in range(repeat):
        _reset(store)
        started = time.perf_counter()
        done = summarise_new(store)
        timings.append(time.perf_counter() - started)
        assert done.exchanges == exchanges, done
    with store.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(ApiShape.__table__.select())]
    return statistics.median(timings) / exchanges * 1e6, rows


def scaled(summary: dict[str, Any], factor: float) -> dict[str, Any]:
    """A summary whose counts (exchanges, types, presence...) are `factor` times larger."""

    def walk(value: Any, key: str | None) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, None) for v in value]
        if isinstance(value, int) and not isinstance(value, bool) and key not in ("lo", "hi", "id", "status", "m"):
            return max(1, round(value * factor))
        return value

    return walk(copy.deepcopy(summary), None)


def bench_document(store: Store, rows: list[dict[str, Any]], days: int, repeat: int) -> dict[str, Any]:
    _reset(store)
    per_day = sum(row["exchanges"] for row in rows)
    factor = TARGET / (per_day * days)
    today = dt.datetime.now(dt.UTC).date()
    inserts = []
    for d in range(days):
        for row in rows:
            summary = scaled(unescape_json_strings(row["summary"]), factor)
            inserts.append({**{k: row[k] for k in ("realm", "service", "method", "template", "first_seen", "last_seen")},
                            "day": today - dt.timedelta(days=d), "exchanges": summary["n"],
                            "summary": escape_json_strings(summary)})  # fmt: skip
    with store.begin() as conn:
        conn.execute(ApiShape.__table__.insert(), inserts)
    total = sum(row["exchanges"] for row in inserts)
    sizes = [len(json.dumps(row["summary"])) for row in inserts]
    results: dict[str, Any] = {"rows": len(inserts), "exchanges": total, "summary_bytes": statistics.median(sizes)}
    for label, since in (("all days", None), ("last 7 days", dt.datetime.now(dt.UTC) - dt.timedelta(days=7))):
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            document = inferred_openapi(store, SERVICE, since=since)
            timings.append(time.perf_counter() - started)
        results[label] = statistics.median(timings)
        results[f"{label} paths"] = len(document["paths"])
    return results


def run(name: str, url: str, args: argparse.Namespace) -> bool:
    """Print the figures of one database; whether each document came within the goal."""
    store = open_store(url)
    try:
        per_exchange, rows = bench_job(store, args.exchanges, args.repeat)
        print(f"{name}: summarise_new: {per_exchange:.0f} µs/exchange (median of {args.repeat} runs over "
              f"{args.exchanges:,} exchanges, {len(rows)} operation rows)")  # fmt: skip
        found = bench_document(store, rows, args.days, args.repeat)
        met = True
        for label in ("all days", "last 7 days"):
            met &= found[label] < GOAL_SECONDS
            verdict = "ok" if found[label] < GOAL_SECONDS else "OVER the 1 s goal"
            print(f"{name}: inferred_openapi ({label}) over {found['rows']:,} day rows = {found['exchanges']:,} exchanges: "
                  f"{found[label] * 1000:.0f} ms ({verdict}; {found[f'{label} paths']} paths; "
                  f"median summary {found['summary_bytes'] / 1024:.1f} KiB)")  # fmt: skip
        return met
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exchanges", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} CPUs, {cpu_model()} | {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC} | "
          f"Python {platform.python_version()} | load {os.getloadavg()[0]:.2f}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        met = run("SQLite", f"sqlite:///{tmp}/openapi-bench.db", args)
    if not args.no_postgres:
        with scratch_postgres("passageway_openapi_bench") as url:
            if url is not None:
                met &= run("PostgreSQL", url, args)
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
