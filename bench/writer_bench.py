"""Writer benchmark: exchanges/s through ExchangeWriter into SQLite and PostgreSQL.

    .venv/bin/python bench/writer_bench.py [--records N] [--quick] [--json FILE] [--profile]

Each record carries a 1 KiB JSON response body (90% distinct, 10% repeats of a
few common ones) and a 1 KiB request body on every fifth record, typical
headers and timings; 30% of records carry a trace id. Records are built before the clock starts (building them is
the proxy's work); the clock covers submit() of every record through close(),
i.e. until the last batch is committed. The queue is sized to hold the whole
run, so nothing is dropped. Target: >= 20,000 exchanges/s on SQLite.

Each database is measured twice side by side: straight from memory, and through
the on-disk spool the proxy uses by default (storage.spool: every record encoded,
written and fdatasync'd, then read back, before it is written to the database).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import json
import os
import platform
import pstats
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from machine import cpu_model, scratch_postgres  # noqa: E402
from storage import (  # noqa: E402
    CapturedBody,
    ExchangeRecord,
    ExchangeWriter,
    Timings,
    database_health,
    open_store,
)

TARGET_SQLITE = 20_000
TRACED = 0.3


def json_body(rng: random.Random, size: int = 1024) -> bytes:
    items = []
    while sum(len(i) for i in items) < size:
        items.append(f'{{"id":{rng.randrange(10**9)},"name":"user-{rng.randrange(10**6)}","score":{rng.random():.6f}}}')
    return ("[" + ",".join(items) + "]").encode()[:size]


def make_records(n: int, seed: int = 1) -> list[ExchangeRecord]:
    rng = random.Random(seed)
    common = [json_body(rng) for _ in range(5)]
    now = time.time()
    records = []
    for i in range(n):
        body = common[i % 5] if rng.random() < 0.1 else json_body(rng)
        start = now + i * 0.001
        post = i % 5 == 0
        # Most traffic carries no trace context: 30% of records have one.
        trace = uuid.uuid4().hex if rng.random() < TRACED else None
        headers = [("Host", "users.internal:8080"), ("User-Agent", "bench/1.0"), ("Accept", "application/json")]
        if trace:
            headers.append(("traceparent", f"00-{trace}-{uuid.uuid4().hex[:16]}-01"))
        records.append(
            ExchangeRecord(
                uuid=uuid.uuid4().hex,
                captured_at=start,
                proxy="bench",
                scheme="http",
                method="POST" if post else "GET",
                host="users.internal",
                port=8080,
                path=f"/users/{i}",
                query="expand=groups&limit=10",
                http_version="HTTP/1.1",
                request_headers=headers,
                request_body=CapturedBody(json_body(rng), 1024, False, None, "application/json") if post else None,
                timings=Timings(start, None, None, None, start + 0.0001, start + 0.002, start + 0.0025),
                service="users",
                client_addr="127.0.0.1:50000",
                status=200,
                reason="OK",
                response_headers=[
                    ("Content-Type", "application/json"),
                    ("Content-Length", "1024"),
                    ("Date", "Sat, 28 Nov 2026 01:00:00 GMT"),
                ],
                response_body=CapturedBody(body, 1024, False, None, "application/json"),
                duration_ms=2.5,
                trace_id=trace,
            )
        )
    return records


def run_one(url: str, records: list[ExchangeRecord], profile: str | None, batch_size: int = 500,
            spool_dir: Path | None = None) -> dict:  # fmt: skip
    from storage.spool import Spool

    store = open_store(url)
    spool = Spool(spool_dir, max_bytes=64 * 1024**3) if spool_dir else None
    writer = ExchangeWriter(store, batch_size=batch_size, queue_size=len(records) + 1, spool=spool)
    writer.start()
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    submit_time = 0.0
    for record in records:
        t = time.perf_counter()
        writer.submit(record)
        submit_time += time.perf_counter() - t
    if profiler:
        profiler.enable()  # only the writer thread's tail is visible here; see --profile below
    writer.close(timeout=300)
    elapsed = time.perf_counter() - started
    if profiler:
        profiler.disable()
    stats = writer.stats
    health = database_health(store)
    store.close()
    return {
        "records": len(records),
        "seconds": elapsed,
        "rate": len(records) / elapsed,
        "submit_us": submit_time / len(records) * 1e6,
        "written": stats.written,
        "dropped": stats.dropped,
        "lost": stats.lost,
        "rows": health["exchanges"],
    }


def profile_sink(url: str, records: list[ExchangeRecord], out: str) -> None:
    """cProfile of prepare + write on the calling thread, in writer-sized batches."""
    from storage.sink import DatabaseSink

    store = open_store(url)
    sink = DatabaseSink(store)
    profiler = cProfile.Profile()
    profiler.enable()
    for start in range(0, len(records), 500):
        sink.write_batch(records[start : start + 500])
    profiler.disable()
    store.close()
    profiler.dump_stats(out)
    pstats.Stats(out).sort_stats("cumulative").print_stats(25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--quick", action="store_true", help="10,000 records")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--profile", action="store_true", help="also cProfile the sink on SQLite")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--batch-size", type=int, default=500, help="ExchangeWriter batch_size (default 500)")
    args = parser.parse_args(argv)
    n = 10_000 if args.quick else args.records

    print(f"writer bench: {n} records, 1 KiB bodies | {os.cpu_count()} CPUs, {cpu_model()} | "
          f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC} | Python {platform.python_version()}")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="pw-writer-bench-") as tmp:
        results["sqlite"] = run_one(f"sqlite:///{tmp}/bench.db", make_records(n), None, args.batch_size)
        results["sqlite+spool"] = run_one(
            f"sqlite:///{tmp}/spooled.db", make_records(n), None, args.batch_size, spool_dir=Path(tmp) / "spool"
        )
        if args.profile:
            profile_sink(f"sqlite:///{tmp}/profile.db", make_records(min(n, 20_000), seed=2), f"{tmp}/sink.prof")
        if not args.no_postgres:
            for arm, spool in (("postgresql", None), ("postgresql+spool", Path(tmp) / "pg-spool")):
                with scratch_postgres("passageway_writer_bench") as url:
                    if url is not None:
                        results[arm] = run_one(url, make_records(n), None, args.batch_size, spool_dir=spool)

    print(f"{'database':<18}{'records':>9}{'seconds':>9}{'exch/s':>10}{'submit µs':>11}{'rows':>8}{'dropped':>9}{'lost':>6}")
    for db, r in results.items():
        print(f"{db:<18}{r['records']:>9}{r['seconds']:>9.2f}{r['rate']:>10,.0f}{r['submit_us']:>11.2f}"
              f"{r['rows']:>8}{r['dropped']:>9}{r['lost']:>6}")
    ok = results["sqlite"]["rate"] >= TARGET_SQLITE and all(r["rows"] == r["records"] for r in results.values())
    print(f"target: SQLite >= {TARGET_SQLITE:,}/s, every record one row: {'met' if ok else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
