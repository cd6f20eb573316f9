"""Traces list benchmark (issue 19): list_traces paged by keyset against the list before it, one
window of the newest 20,000 exchanges, side by side on SQLite and PostgreSQL.

    .venv/bin/python bench/traces_list_bench.py [--rows N] [--repeat R] [--before COMMIT] [--no-postgres]

Writes N exchanges (default 200,000) through the real writer, captured over the last 50 minutes:
every tenth starts a trace of three calls (web -> users -> db), and one trace, the oldest, has a
503. Then, R times each, the two arms interleaved (median and p95 in ms, and new/old):

- `newest 50` and `newest 500`: the first page, unfiltered;
- `failed`: the failing trace is older than the newest 20,000 exchanges: the old list answers
  nothing after its one window, the new one looks through LIST_SCAN_WINDOWS windows (and answers
  a cursor while the trace is further back still);
- `failed, every page`: the new list only, following next_before to the end: requests and total.

The old arm is storage/traces.py as of COMMIT (default: this branch's fork point from main).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import cpu_model, scratch_postgres  # noqa: E402

from storage import open_store, write_records  # noqa: E402
from storage import traces as new  # noqa: E402
from tests.storage.test_trace_queries import call  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def old_module(commit: str):
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:storage/traces.py"],
                            check=True, capture_output=True, text=True).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp(prefix="traces-before-")) / "traces_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("traces_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def fill(store, rows: int) -> None:
    now = time.time()
    start = now - 3000
    step = 3000 / rows
    batch = []
    for n in range(rows):
        t0 = start + n * step
        if n % 10 == 0:
            trace = f"t{n}"
            batch.append(call(t0, 0, 0.05, trace_id=trace, service="web", span_id=f"a{n}", status=503 if n == 0 else 200))
        elif n % 10 in (1, 2):
            trace = f"t{n - n % 10}"
            parent = f"a{n - n % 10}" if n % 10 == 1 else f"b{n - 1}"
            service = "users" if n % 10 == 1 else "db"
            batch.append(call(t0, 0, 0.01, trace_id=trace, service=service, span_id=f"b{n}", parent_span_id=parent))
        else:
            batch.append(call(t0, 0, 0.01, service="web"))
        if len(batch) == 5000:
            write_records(store, batch)
            batch = []
    if batch:
        write_records(store, batch)


def timed(fn, repeat: int) -> list[float]:
    return [fn() for _ in range(repeat)]


def clock(fn) -> float:
    began = time.perf_counter()
    fn()
    return (time.perf_counter() - began) * 1000.0


def report(name: str, old_ms: list[float] | None, new_ms: list[float]) -> None:
    def stats(values: list[float]) -> str:
        values = sorted(values)
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        return f"{statistics.median(values):8.1f} {p95:8.1f}"

    if old_ms is None:
        print(f"  {name:<22} {'':>17}   {stats(new_ms)}")
        return
    ratio = statistics.median(new_ms) / statistics.median(old_ms)
    print(f"  {name:<22} {stats(old_ms)}   {stats(new_ms)}   {ratio:5.2f}x")


def run(url: str, label: str, rows: int, repeat: int, old) -> None:
    store = open_store(url)
    try:
        began = time.perf_counter()
        fill(store, rows)
        print(f"{label}: {rows:,} exchanges written in {time.perf_counter() - began:.1f} s")
        if store.dialect == "postgresql":
            with store.begin() as conn:  # committed: the maintenance job's statistics, as in production
                conn.exec_driver_sql("ANALYZE")
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        print(f"  {'case':<22} {'old p50':>8} {'old p95':>8}   {'new p50':>8} {'new p95':>8}   new/old")
        for name, params in (("newest 50", {"limit": 50}), ("newest 500", {"limit": 500}), ("failed", {"failed": True})):
            old_ms: list[float] = []
            new_ms: list[float] = []
            for _ in range(repeat):  # interleaved: the machine's noise falls on both arms
                old_ms.append(clock(lambda: old.list_traces(store, since=since, **params)))
                new_ms.append(clock(lambda: new.list_traces(store, since=since, **params)))
            report(name, old_ms, new_ms)
        found = new.list_traces(store, since=since, failed=True)
        assert old.list_traces(store, since=since, failed=True) == []

        def every_page() -> int:
            page, requests = new.list_traces(store, since=since, failed=True), 1
            while page["next_before"] is not None:
                page, requests = new.list_traces(store, since=since, failed=True, before=page["next_before"]), requests + 1
            assert [t["trace_id"] for t in page["data"]] == ["t0"]
            return requests

        requests = every_page()
        report(f"failed, every page ({requests})", None, timed(lambda: clock(every_page), max(3, repeat // 3)))
        print(f"  first failed page: {len(found['data'])} traces, next_before {found['next_before']}")
    finally:
        store.close()


ONE_WINDOW_LIST = "5cdd3f7"
"""The last main whose list_traces looked at one window of the newest 20,000 exchanges."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--before", default=ONE_WINDOW_LIST,
                        help=f"the commit of the old arm (default {ONE_WINDOW_LIST}: main before keyset paging)")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    if args.rows <= new.LIST_SCAN_ROWS:
        parser.error(f"--rows: more than {new.LIST_SCAN_ROWS:,}, so the failing trace lies past the old list's window")
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{args.before}^{{commit}}"],
                            check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    old = old_module(commit)
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, {cpu_model()}, "
          f"Python {platform.python_version()}; old arm: {commit[:10]}; load {os.getloadavg()[0]:.2f}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/bench.db", "SQLite", args.rows, args.repeat, old)
    if not args.no_postgres:
        with scratch_postgres("traces_bench") as url:
            if url is not None:
                run(url, "PostgreSQL", args.rows, args.repeat, old)


if __name__ == "__main__":
    main()
