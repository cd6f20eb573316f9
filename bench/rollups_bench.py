"""Rollups benchmark: the Services pages' figures from the traffic rollups, SQLite and PostgreSQL.

    .venv/bin/python bench/rollups_bench.py [--rows N] [--repeat R] [--quick] [--no-postgres] [--no-sqlite]
                                            [--json FILE]

Generates N exchanges (default 10,000,000) in SQL (INSERT .. SELECT over a generated series: no
Python per row) spread over the 7 days up to now: 40 services of 12 endpoints each (ids in the
paths), GET-heavy, ~2% 5xx, ~5% 4xx, ~0.5% timeouts (no status), log-normal-ish durations with a
long tail, all derived from a hash of the row number. capture_blocks is filled as the writer
would. Then the rollups are built the way production builds them for data stored before they
existed: the maintenance job's backfill (storage.rollups.backfill) until done, then its ageing
(minutes older than 2 days into hours), timed.

Timed, R runs each (p50/p95): the Services overview's figures (rolled_service_summaries over the
last 15 minutes, what GET /api/services reads), and one service's page over 1 h, 24 h and 7 d
(rolled_service_stats, 60 buckets, what GET /api/services/{name}/stats reads). Goal: p95 <= 200
ms. Accuracy: the 7-day page's p50/p95/p99 (the service's and each endpoint's) against the exact
nearest-rank percentiles of the same exchanges (read and sorted here). Goal: within 1%.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import cpu_model, scratch_postgres  # noqa: E402
from sqlalchemy import select  # noqa: E402

from storage import open_store  # noqa: E402
from storage.models import CAPTURE_BLOCK_IDS, Exchange  # noqa: E402
from storage.pure.endpoints import infer_templates, template_path  # noqa: E402
from storage.rollups import backfill, maintain, rolled_start  # noqa: E402
from storage.traffic_stats import (  # noqa: E402
    TimeWindow,
    percentile,
    rolled_service_stats,
    rolled_service_summaries,
)

SPAN = 7 * 86400
SERVICES, ENDPOINTS = 40, 12
TARGET_MS, TARGET_ERROR = 200.0, 0.01
CHUNK = 500_000
"""Rows generated per INSERT .. SELECT (one transaction each)."""

# Per row i (0-based): u and v are two independent-looking fractions from multiplicative hashes.
_U = "(((i * 2654435761) % 1000003) * 1.0 / 1000003)"
_V = "(((i * 40503 + 17) % 1009) * 1.0 / 1009)"
_W = "(((i * 7919 + 3) % 997) * 1.0 / 997)"


def _columns(dialect: str) -> tuple[str, str]:
    """(column list, SELECT list over a series of i) of the generated exchanges."""
    service = f"'svc' || (i % {SERVICES})"
    endpoint = f"((i / {SERVICES}) % {ENDPOINTS})"
    path = f"'/api/e' || {endpoint} || '/' || ((i / 7) % 5000)"
    # Durations: a per-endpoint base times a heavy-ish tail (u^4), 1% of them 1-5 s.
    duration = (f"(CASE WHEN {_W} > 0.99 THEN 1000 + 4000 * {_U} "
                f"ELSE (2 + 3 * {endpoint}) * (1 + 40 * {_U} * {_U} * {_U} * {_U}) END)")  # fmt: skip
    status = (f"(CASE WHEN {_V} < 0.005 THEN NULL WHEN {_V} < 0.025 THEN 500 WHEN {_V} < 0.075 THEN 404 "
              f"WHEN {_V} < 0.1 THEN 201 ELSE 200 END)")  # fmt: skip
    error_kind = f"(CASE WHEN {_V} < 0.005 THEN 'timeout' ELSE NULL END)"
    method = f"(CASE WHEN {endpoint} % 4 = 3 THEN 'POST' ELSE 'GET' END)"
    if dialect == "postgresql":
        captured = "to_timestamp(@T0 + i * @STEP)"
        uuid, false, empty = "md5(i::text)", "false", "'[]'"
    else:
        captured = "strftime('%Y-%m-%d %H:%M:%f', @T0 + i * @STEP, 'unixepoch') || '000'"
        uuid, false, empty = "printf('%032x', i)", "0", "'[]'"
    names = ("uuid, captured_at, proxy, service, realm, scheme, method, host, port, path, query, http_version, "
             "status, duration_ms, request_headers, response_body_size, timings, error_kind, tags, websocket")  # fmt: skip
    values = (f"{uuid}, {captured}, 'bench', {service}, NULL, 'http', {method}, 'h', 80, {path}, '', 'HTTP/1.1', "
              f"{status}, CASE WHEN {error_kind} IS NULL THEN {duration} END, {empty}, 100 + (i % 900), '{{}}', "
              f"{error_kind}, {empty}, {false}")  # fmt: skip
    return names, values


def generate(store, rows: int, t0: float) -> float:
    """Insert `rows` exchanges in SQL; the seconds it took."""
    started = time.perf_counter()
    names, values = _columns(store.dialect)
    step = SPAN / rows
    for start in range(0, rows, CHUNK):
        stop = min(start + CHUNK, rows)
        with store.begin() as conn:
            if store.dialect == "postgresql":
                sql = f"INSERT INTO exchanges ({names}) SELECT {values.replace('%', '%%')} FROM generate_series(@A::bigint, @B::bigint) AS i"
            else:
                series = "WITH RECURSIVE s(i) AS (SELECT @A UNION ALL SELECT i + 1 FROM s WHERE i < @B)"
                sql = f"{series} INSERT INTO exchanges ({names}) SELECT {values} FROM s"
            # Numbers only: spelled into the SQL (the two drivers' placeholders differ).
            for name, value in (("@T0", repr(t0)), ("@STEP", repr(step)), ("@A", str(start)), ("@B", str(stop - 1))):
                sql = sql.replace(name, value)
            conn.exec_driver_sql(sql)
        print(f"  generated {stop:,} / {rows:,}", end="\r", flush=True)
    with store.begin() as conn:  # what the writer keeps for time-bounded reads (storage.rows.capture_blocks)
        conn.exec_driver_sql(
            f"INSERT INTO capture_blocks (block, earliest, latest) SELECT id / {CAPTURE_BLOCK_IDS}, min(captured_at), "
            f"max(captured_at) FROM exchanges GROUP BY id / {CAPTURE_BLOCK_IDS}"
        )
        conn.exec_driver_sql(
            "UPDATE job_cursors SET position = (SELECT max(id) FROM exchanges) WHERE job = 'rollups_backfill_end'"
        )
        conn.exec_driver_sql("UPDATE job_cursors SET position = 0 WHERE job = 'rollups_backfill'")
    if store.dialect == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE exchanges")
    print()
    return time.perf_counter() - started


def build_rollups(store, now: float) -> tuple[float, float, int]:
    """The maintenance job's backfill until done, then its ageing: (backfill s, ageing s, rollup rows)."""
    started = time.perf_counter()
    done = 0
    while True:
        count, more = backfill(store, chunk=50_000)
        done += count
        print(f"  backfilled {done:,}", end="\r", flush=True)
        if not more:
            break
    filled = time.perf_counter() - started
    started = time.perf_counter()
    while maintain(store, now=now).more:
        pass
    aged = time.perf_counter() - started
    with store.connect() as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql("ANALYZE traffic_rollups")
        count = conn.exec_driver_sql("SELECT count(*) FROM traffic_rollups").scalar_one()
    print()
    return filled, aged, count


def timed(work, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50": statistics.median(times), "p95": times[max(0, round(0.95 * len(times)) - 1)]}


def exact_percentiles(store, service: str, since: dt.datetime, until: dt.datetime) -> dict:
    """Nearest-rank p50/p95/p99 of the service's durations in [since, until): overall and per endpoint."""
    query = select(Exchange.method, Exchange.path, Exchange.duration_ms).where(
        Exchange.service == service, Exchange.captured_at >= since, Exchange.captured_at < until,
        Exchange.duration_ms.isnot(None),
    )  # fmt: skip
    with store.connect() as conn:
        rows = conn.execute(query).all()
    paths: dict[str, int] = {}
    for row in rows:
        paths[row.path] = paths.get(row.path, 0) + 1
    templates = infer_templates({template_path(p): n for p, n in paths.items()})
    groups: dict[tuple[str, str], list[float]] = {}
    everything = []
    for row in rows:
        groups.setdefault((row.method, templates[template_path(row.path)]), []).append(row.duration_ms)
        everything.append(row.duration_ms)
    out = {("", "*"): everything, **groups}
    for values in out.values():
        values.sort()
    return {key: {name: percentile(values, rank) for name, rank in (("p50", 50), ("p95", 95), ("p99", 99))}
            for key, values in out.items()}  # fmt: skip


def bench(url: str, rows: int, repeat: int) -> dict:
    store = open_store(url)
    try:
        now = time.time()
        t0 = now - SPAN
        print(f"{store.dialect}: generating {rows:,} exchanges over 7 days", flush=True)
        generated = generate(store, rows, t0)
        filled, aged, rollup_rows = build_rollups(store, now)
        until = dt.datetime.now(dt.UTC)
        service = "svc7"
        results = {
            "overview 15m": timed(lambda: rolled_service_summaries(store, since=until - dt.timedelta(minutes=15),
                                                                   until=until), repeat),  # fmt: skip
        }
        for label, seconds in (("service 1h", 3600), ("service 24h", 86400), ("service 7d", SPAN)):
            window = TimeWindow.ending(until, seconds=seconds, buckets=60)
            results[label] = timed(lambda w=window: rolled_service_stats(store, service=service, window=w), repeat)
        window = TimeWindow.ending(until, seconds=SPAN, buckets=60)
        page = rolled_service_stats(store, service=service, window=window)
        # The exchanges the page covers: past 2 days the rollups are hours, and the window starts
        # at the first whole hour in it (storage.rollups.rolled_start).
        covered = dt.datetime.fromtimestamp(rolled_start(window.since), dt.UTC)
        exact = exact_percentiles(store, service, covered, window.until)
        rolled = {("", "*"): page["totals"], **{(e["method"], e["template"]): e for e in page["endpoints"]}}
        worst = 0.0
        for key, figures in exact.items():
            for name, value in figures.items():
                if value:
                    worst = max(worst, abs(rolled[key][name] - value) / value)
        return {"generate_s": generated, "backfill_s": filled, "ageing_s": aged, "rollup_rows": rollup_rows,
                "timings": results, "worst_relative_error": worst, "compared": len(exact) * 3,
                "requests_7d": page["totals"]["requests"]}  # fmt: skip
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per figure (default 10)")
    parser.add_argument("--quick", action="store_true", help="1,000,000 rows, 5 runs")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeat = 1_000_000, 5
    header = (f"{os.cpu_count()} CPUs, {cpu_model()} | {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC} | "
              f"Python {platform.python_version()}")
    print(f"rollups bench: {args.rows:,} exchanges, {args.repeat} runs per figure | {header}", flush=True)
    out: dict[str, dict] = {}
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory(prefix="pw-rollups-bench-") as tmp:
            out["sqlite"] = bench(f"sqlite:///{Path(tmp) / 'bench.db'}", args.rows, args.repeat)
    if not args.no_postgres:
        with scratch_postgres("passageway_rollups_bench") as url:
            if url is not None:
                out["postgresql"] = bench(url, args.rows, args.repeat)
    failed = []
    for db, r in out.items():
        print(f"\n{db}: {args.rows:,} exchanges; generated in {r['generate_s']:.0f} s; rollups by the backfill "
              f"{r['backfill_s']:.0f} s ({args.rows / max(r['backfill_s'], 1e-9):,.0f} exchanges/s), ageing "
              f"{r['ageing_s']:.1f} s; {r['rollup_rows']:,} rollup rows")  # fmt: skip
        for label, t in r["timings"].items():
            ok = t["p95"] <= TARGET_MS
            failed += [] if ok else [f"{db} {label}"]
            print(f"  {label:<14} p50 {t['p50']:7.1f} ms   p95 {t['p95']:7.1f} ms   {'ok' if ok else 'MISSED'}")
        ok = r["worst_relative_error"] <= TARGET_ERROR
        failed += [] if ok else [f"{db} accuracy"]
        print(f"  percentiles of the 7-day page ({r['compared']} compared, {r['requests_7d']:,} requests): worst "
              f"relative error {100 * r['worst_relative_error']:.2f}%   {'ok' if ok else 'MISSED'}")  # fmt: skip
    print(f"\ntargets: p95 <= {TARGET_MS:.0f} ms, percentiles within {100 * TARGET_ERROR:.0f}%: "
          f"{'all met' if not failed else 'MISSED ' + '; '.join(failed)}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
