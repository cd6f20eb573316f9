"""Radar benchmark (issue 15, "Speed"): the test runner's own cost per step, and 200 monitors on one runner.

    .venv/bin/python bench/radar.py                       # both parts: about 3 minutes
    .venv/bin/python bench/radar.py --only steps --rounds 5
    .venv/bin/python bench/radar.py --only monitors --duration 60 --stores postgresql
    .venv/bin/python bench/radar.py --quick               # smoke run

Everything runs on 127.0.0.1: the upstream of bench/proxy_bench.py (every request answered with
the same 1 KiB JSON, keep-alive) in a process of its own, and a real `passageway proxy` routing
`bench` to it and capturing every exchange.

Part 1, steps: --tests (100) tests of 3 steps (a capture, the captured value in the next step's
URL and JSON body, status/header/jsonpath/duration/body asserts) run one after another with
radar.runner.run_test through the proxy, against the same 300 requests (same URLs, headers and
bodies) sent by a plain httpx client through the same proxy; --rounds rounds, alternating which
goes first. Each result's `overhead_ms` is the runner's own time (its duration less the HTTP
round trips); per step = overhead_ms / steps. Then `passageway test run DIR` on 100 files with
--jobs 1 and 4: wall time of the whole command. Target: overhead <= 1 ms per step (mean and p95).

Part 2, monitors: --monitors (200) one-step monitors every --every (10) s, created as
passageway.toml's are and run by one radar.monitor_runner.MonitorRunner (its defaults:
16 threads, 0.2 s poll), on a fresh SQLite file and on a fresh PostgreSQL database (dropped
after); the proxy captures into the same database, as under `passageway up`. A separate process
sends a plain request stream (--stream-rate req/s) through the proxy the whole time; its
latency is compared between the windows without monitors (before and after) and the --duration
window with them. Reports the start delay (due time to start, MonitorRunner.stats.start_delays),
runs done against runs due in the window, and the stream's latency ratio. Target: start delay
p95 <= 1 s. The monitors are made as a passageway.toml of 200 makes them (sync_config_monitors:
each first due at its name's offset into the period); --lockstep makes them all due at the same
instant of every period instead (create_monitor at one time: the worst case).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import json
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# This file is named radar.py: with bench/ first on sys.path (Python puts a script's directory
# there), `import radar` would import this file instead of the package. The repository goes
# first, bench/ last (for machine.py and proxy_bench.py).
sys.path[:] = [str(REPO)] + [p for p in sys.path if p and Path(p).resolve() != BENCH] + [str(BENCH)]

import httpx  # noqa: E402
from machine import cpu_model, scratch_postgres  # noqa: E402
from proxy_bench import HOST, BenchError, cpu_seconds, free_port, stop, wait_for_port  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from passageway.wire import TEST_HEADER  # noqa: E402
from radar.hurl import parse_hurl  # noqa: E402
from radar.monitor_runner import MonitorRunner, monitor_tests  # noqa: E402
from radar.notify import Notifier  # noqa: E402
from radar.runner import run_test  # noqa: E402
from radar.transport import Connections, Route, TestSession, new_span_id, new_trace_id  # noqa: E402
from storage import open_store  # noqa: E402
from storage.models import TestRun  # noqa: E402
from storage.monitors import MonitorSpec, create_monitor, first_due, request_run_now, sync_config_monitors  # noqa: E402
from storage.store import Store  # noqa: E402

STEPS_TARGET_MS = 1.0
START_DELAY_TARGET_S = 1.0
SERVICE = "bench"


def pct(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (nan when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))]


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


# ---------------------------------------------------------------- the proxy and its upstream

@dataclass
class Services:
    gateway: str
    proxy: subprocess.Popen


@contextlib.contextmanager
def services(work: Path, db: str) -> Iterator[Services]:
    """The upstream and `passageway proxy --route bench=UPSTREAM` capturing into `db`, stopped at the end."""
    work.mkdir(parents=True, exist_ok=True)
    up_port, port = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO), PASSAGEWAY_SPOOL_DIR=str(work / "spool"),
               XDG_STATE_HOME=str(work / "state"), XDG_DATA_HOME=str(work / "data"))  # fmt: skip
    commands = {
        "upstream": [sys.executable, str(BENCH / "proxy_bench.py"), "--serve-upstream", str(up_port)],
        "proxy": [sys.executable, "-m", "cli", "proxy", "--db", db, "--listen", f"{HOST}:{port}",
                  "--route", f"{SERVICE}=http://{HOST}:{up_port}", "--certs-dir", str(work / "certs"),
                  "--proxy-name", f"radar-bench-{os.getpid()}"],
    }  # fmt: skip
    procs: list[subprocess.Popen] = []
    try:
        for name, listen in (("upstream", up_port), ("proxy", port)):
            log = work / f"{name}.log"
            procs.append(subprocess.Popen(commands[name], cwd=work, env=env, stdin=subprocess.DEVNULL,
                                          stdout=log.open("wb"), stderr=subprocess.STDOUT))  # fmt: skip
            wait_for_port(listen, procs[-1], name, log)
        yield Services(gateway=f"http://{HOST}:{port}", proxy=procs[1])
    finally:
        for proc in reversed(procs):
            stop(proc)


# ---------------------------------------------------------------- part 1: runner overhead per step

def test_text(n: int) -> str:
    """A 3-step test: a capture, reused in the next steps' URL and JSON body, and a few asserts of each kind."""
    return f"""GET service://{SERVICE}/t{n}/s1
HTTP 200
[Captures]
svc: jsonpath "$.service"
[Asserts]
header "Content-Type" == "application/json"
jsonpath "$.items" count == 24

GET service://{SERVICE}/t{n}/s2?svc={{{{svc}}}}
HTTP 200
[Asserts]
jsonpath "$.items[0].name" == "item-0000"
duration < 5000

POST service://{SERVICE}/t{n}/s3
{{"svc": "{{{{svc}}}}", "n": {n}}}
HTTP 200
[Asserts]
body contains "bench-upstream"
"""


def raw_requests(n: int, gateway: str) -> list[tuple[str, str, bytes | None, list[tuple[str, str]]]]:
    """The requests test_text(n) sends, as (method, URL, body, extra headers)."""
    base = f"{gateway}/{SERVICE}/t{n}"
    return [
        ("GET", f"{base}/s1", None, []),
        ("GET", f"{base}/s2?svc=bench-upstream", None, []),
        ("POST", f"{base}/s3", json.dumps({"svc": "bench-upstream", "n": n}).encode(),
         [("Content-Type", "application/json")]),
    ]  # fmt: skip


def run_tests_in_process(hurls: list, gateway: str) -> list[dict]:
    """run_test on each test in turn, the sessions sharing one connection pool (as `passageway test run`)."""
    route = Route(gateway=gateway, timeout=30.0)
    results = []
    with Connections(route) as connections:
        for hurl in hurls:
            results.append(run_test(
                hurl, name=Path(hurl.filename).stem, source="cli",
                sessions=lambda trace_id, name: TestSession(route, trace_id, name, connections=connections),
            ))  # fmt: skip
    return results


def send_raw(client: httpx.Client, numbers: list[int], gateway: str) -> list[float]:
    """Milliseconds per request, from before building it to its whole body read."""
    times = []
    for n in numbers:
        trace_id = new_trace_id()
        for method, url, body, headers in raw_requests(n, gateway):
            started = time.perf_counter()
            headers = [*headers, ("traceparent", f"00-{trace_id}-{new_span_id()}-01"), (TEST_HEADER, f"t{n}")]
            response = client.request(method, url, content=body, headers=headers)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise BenchError(f"plain request {method} {url}: status {response.status_code}")
    return times


def steps_part(args: argparse.Namespace, work: Path) -> bool:
    print(f"\n--- steps: {args.tests} tests x 3 steps, run_test through `passageway proxy` (SQLite), "
          f"{args.rounds} round(s), against plain httpx through the same proxy", flush=True)  # fmt: skip
    overhead_per_step: list[float] = []  # one per test: overhead_ms / steps
    runner_step_ms: list[float] = []  # one per test: duration_ms / steps
    runner_round_trip_ms: list[float] = []  # one per step: the transport's own measure of the HTTP round trip
    raw_ms: list[float] = []
    failed = 0
    profile = cProfile.Profile()
    with services(work / "steps", f"sqlite:///{work / 'steps.db'}") as svc:
        hurls = [parse_hurl(test_text(n), f"t{n}.hurl") for n in range(args.tests)]
        warm = min(10, args.tests)
        client = httpx.Client(trust_env=False, timeout=30.0, headers={"Accept": "*/*", "User-Agent": "passageway-test"})
        del client.headers["Accept-Encoding"]  # as the runner: nothing asked compressed
        with client:
            run_tests_in_process(hurls[:warm], svc.gateway)
            send_raw(client, list(range(warm)), svc.gateway)
            for rnd in range(1, args.rounds + 1):
                order = ("runner", "raw") if rnd % 2 else ("raw", "runner")
                line = []
                for arm in order:
                    if arm == "runner":
                        if args.profile:
                            profile.enable()
                        results = run_tests_in_process(hurls, svc.gateway)
                        profile.disable()
                        failed += sum(not r["passed"] for r in results)
                        per_step = [r["overhead_ms"] / len(r["steps"]) for r in results if r["steps"]]
                        overhead_per_step += per_step
                        runner_step_ms += [r["duration_ms"] / len(r["steps"]) for r in results if r["steps"]]
                        runner_round_trip_ms += [s["duration_ms"] for r in results for s in r["steps"] if s["duration_ms"]]
                        line.append(f"runner overhead {mean(per_step):.3f} ms/step (p95 {pct(per_step, 0.95):.3f})")
                    else:
                        times = send_raw(client, list(range(args.tests)), svc.gateway)
                        raw_ms += times
                        line.append(f"plain httpx {mean(times):.2f} ms/request")
                print(f"  round {rnd}: " + ", ".join(line), flush=True)
        cli_times = cli_runs(args, work, svc.gateway)

    ratio = mean(runner_step_ms) / mean(raw_ms)
    print(f"\n{'':34} {'mean ms':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for label, values in (("runner overhead per step", overhead_per_step),
                          ("runner step (test time / steps)", runner_step_ms),
                          ("runner step round trip (transport)", runner_round_trip_ms),
                          ("plain httpx request", raw_ms)):  # fmt: skip
        print(f"{label:34} {mean(values):9.3f} {pct(values, 0.5):8.3f} {pct(values, 0.95):8.3f} {pct(values, 0.99):8.3f}")
    print(f"ratio runner step / plain request: {ratio:.2f}x (mean); "
          f"runner step - plain request: {mean(runner_step_ms) - mean(raw_ms):+.3f} ms")
    for jobs, (wall, status) in cli_times.items():
        print(f"passageway test run ({args.tests} files) --jobs {jobs}: {wall:.2f} s wall "
              f"({wall / args.tests * 1000:.1f} ms per test, exit {status})")
    ok = failed == 0 and all(status == 0 for _, status in cli_times.values())
    met = mean(overhead_per_step) <= STEPS_TARGET_MS and pct(overhead_per_step, 0.95) <= STEPS_TARGET_MS
    print(f"target: overhead per step mean {mean(overhead_per_step):.3f} ms, p95 {pct(overhead_per_step, 0.95):.3f} ms "
          f"(<= {STEPS_TARGET_MS:g} ms) {'PASS' if met else 'FAIL'}; tests failed: {failed}", flush=True)  # fmt: skip
    if args.profile:
        print_profile([profile], "run_test (part 1, every round)")
    return ok and met


def cli_runs(args: argparse.Namespace, work: Path, gateway: str) -> dict[int, tuple[float, int]]:
    """`passageway test run DIR --jobs N`, end to end: {N: (wall seconds, exit status)}."""
    tests = work / "hurl"
    tests.mkdir(exist_ok=True)
    for n in range(args.tests):
        (tests / f"t{n}.hurl").write_text(test_text(n))
    env = dict(os.environ, PYTHONPATH=str(REPO), XDG_STATE_HOME=str(work / "state"), XDG_DATA_HOME=str(work / "data"),
               XDG_CONFIG_HOME=str(work / "config"))  # fmt: skip
    out: dict[int, tuple[float, int]] = {}
    for jobs in (1, 4):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "cli", "test", "run", str(tests), "--listen", gateway.split("//")[1],
                               "--jobs", str(jobs)], cwd=work, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
        out[jobs] = (time.perf_counter() - started, done.returncode)
        last = (done.stdout.strip().splitlines() or [""])[-1]
        if done.returncode != 0 or f"{args.tests} of {args.tests}" not in last:
            print(f"  passageway test run --jobs {jobs}: exit {done.returncode}: {last or done.stderr.strip()[-500:]}")
    return out


# ---------------------------------------------------------------- part 2: monitors

def stream(url: str, rate: float, out: str) -> None:
    """The plain request stream (its own process): GET `url` every 1/rate s on one keep-alive
    connection until SIGTERM; a line per request: epoch seconds at the start, latency ms, status."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    interval = 1.0 / rate
    with open(out, "w", buffering=1) as lines, httpx.Client(trust_env=False, timeout=30.0) as client:
        next_at = time.perf_counter()
        n = 0
        while not stopping.is_set():
            at = time.time()
            started = time.perf_counter()
            try:
                status = client.get(f"{url}/{n}").status_code
            except httpx.HTTPError:
                status = 0
            lines.write(f"{at:.6f} {(time.perf_counter() - started) * 1000:.3f} {status}\n")
            n += 1
            next_at += interval
            pause = next_at - time.perf_counter()
            if pause > 0:
                stopping.wait(pause)
            else:
                next_at = time.perf_counter()  # behind: no catch-up burst


@dataclass
class StoreResult:
    store: str
    delays: list[float]
    runs: int
    failed_runs: int
    expected: int
    stored: int
    windows: dict[str, list[float]]
    stream_errors: int
    proxy_cpu: dict[str, float]
    runner_cpu_per_run_ms: float


def monitors_part(args: argparse.Namespace, work: Path) -> bool:
    print(f"\n--- monitors: {args.monitors} monitors every {args.every:g} s on one MonitorRunner, {args.duration:g} s "
          f"({'all due at the same instant' if args.lockstep else 'made as passageway.toml makes them'}); plain stream "
          f"{args.stream_rate:g} req/s through the proxy, {args.baseline:g} s before and after", flush=True)  # fmt: skip
    results = []
    for kind in args.store_list:
        with contextlib.ExitStack() as stack:
            if kind == "postgresql":
                db = stack.enter_context(scratch_postgres("passageway_radar_bench"))
                if db is None:
                    continue
            else:
                db = f"sqlite:///{work / 'monitors.db'}"
            results.append(monitors_on(kind, db, args, work / f"monitors-{kind}"))
    ok = True
    print(f"\n{'store':11} {'delay p50':>9} {'p95':>7} {'max':>7}  {'runs / due':>11} {'stored':>6} {'failed':>6}  "
          f"{'stream p50 ms':>13} {'p95':>6} {'p99':>6}  {'x p50':>6} {'x p95':>6}  {'proxy CPU':>15}  {'runner CPU/run':>14}")
    for r in results:
        base, mon = r.windows["before"] + r.windows["after"], r.windows["monitors"]
        p95 = pct(r.delays, 0.95)
        ok &= p95 <= START_DELAY_TARGET_S and r.failed_runs == 0 and r.stored == r.runs
        print(f"{r.store:11} {pct(r.delays, 0.5):8.3f}s {p95:6.3f}s {max(r.delays, default=float('nan')):6.3f}s  "
              f"{r.runs:5} / {r.expected:<5} {r.stored:6} {r.failed_runs:6}  "
              f"{'without':>7} {pct(base, 0.5):5.2f} {pct(base, 0.95):6.2f} {pct(base, 0.99):6.2f}  {'':6} {'':6}  "
              f"{r.proxy_cpu['before']:6.0%} / {r.proxy_cpu['after']:<6.0%}  {r.runner_cpu_per_run_ms:11.2f} ms")
        print(f"{'':11} {'':9} {'':7} {'':7}  {'':11} {'':6} {'':6}  "
              f"{'with':>7} {pct(mon, 0.5):5.2f} {pct(mon, 0.95):6.2f} {pct(mon, 0.99):6.2f}  "
              f"{pct(mon, 0.5) / pct(base, 0.5):5.2f}x {pct(mon, 0.95) / pct(base, 0.95):5.2f}x  "
              f"{r.proxy_cpu['monitors']:6.0%}{'':9}  (stream errors {r.stream_errors})")
    print(f"target: start delay p95 <= {START_DELAY_TARGET_S:g} s: "
          + ", ".join(f"{r.store} {pct(r.delays, 0.95):.3f} s {'PASS' if pct(r.delays, 0.95) <= START_DELAY_TARGET_S else 'FAIL'}"
                      for r in results), flush=True)  # fmt: skip
    return ok and bool(results)


def monitors_on(kind: str, db: str, args: argparse.Namespace, work: Path) -> StoreResult:
    store = open_store(db)  # migrated before the proxy opens it
    try:
        with services(work, db) as svc:
            stream_file = work / "stream.txt"
            streamer = subprocess.Popen([sys.executable, __file__, "--stream", f"{svc.gateway}/{SERVICE}/plain",
                                         "--stream-rate", str(args.stream_rate), "--stream-out", str(stream_file)],
                                        stdin=subprocess.DEVNULL)  # fmt: skip
            try:
                # Due at the start of the monitors window (made now, so their inserts are not in the baseline).
                due = time.time() + 1.0 + args.baseline + 0.5
                due_at = dt.datetime.fromtimestamp(due, dt.UTC)
                specs = [MonitorSpec(f"m{n:03d}", f"GET service://{SERVICE}/mon/{n}\nHTTP 200\n[Asserts]\n"
                                     "jsonpath \"$.service\" == \"bench-upstream\"\n", args.every)
                         for n in range(args.monitors)]  # fmt: skip
                if args.lockstep:
                    for spec in specs:
                        create_monitor(store, spec.name, spec.hurl, spec.every_s, now=due_at)
                else:
                    sync_config_monitors(store, specs, now=due_at)
                windows: dict[str, tuple[float, float]] = {}
                cpu: dict[str, float] = {}
                start = time.time() + 1.0
                time.sleep(max(0.0, start - time.time()))
                proxy_cpu = cpu_seconds(svc.proxy.pid)[0]
                time.sleep(max(0.0, due - 0.5 - time.time()))
                windows["before"] = (start, time.time())
                cpu["before"] = (cpu_seconds(svc.proxy.pid)[0] - proxy_cpu) / (windows["before"][1] - start)

                route = Route(gateway=svc.gateway, timeout=30.0)
                notifier = Notifier()
                stop_runner = threading.Event()
                with Connections(route) as connections:
                    runner = MonitorRunner(
                        store, monitor_tests(lambda trace_id, name: TestSession(route, trace_id, name, connections=connections),
                                             variables={}, secrets={}),
                        notifier=notifier, inspector_url="http://127.0.0.1:1",
                        **({"concurrency": args.concurrency} if args.concurrency else {}),
                        **({"poll": args.poll} if args.poll else {}),
                    )  # fmt: skip
                    thread = threading.Thread(target=runner.run, args=(stop_runner,), name="bench-monitor-runner")
                    runner_cpu = time.process_time()
                    thread.start()
                    time.sleep(max(0.0, due - time.time()))
                    proxy_cpu = cpu_seconds(svc.proxy.pid)[0]
                    end = due + args.duration
                    time.sleep(max(0.0, end - time.time()))
                    stop_runner.set()
                    thread.join(120)
                    runner_cpu = time.process_time() - runner_cpu
                    windows["monitors"] = (due, end)
                    cpu["monitors"] = (cpu_seconds(svc.proxy.pid)[0] - proxy_cpu) / (time.time() - due)
                    stats = replace(runner.stats, start_delays=list(runner.stats.start_delays))
                    stored = count_monitor_runs(store)
                    if args.profile:
                        profile_runs(runner, store, args.monitors)
                notifier.close()
                time.sleep(1.0)  # the proxy's writer catches up on the monitors' exchanges
                proxy_cpu, after = cpu_seconds(svc.proxy.pid)[0], time.time()
                time.sleep(args.baseline)
                windows["after"] = (after, time.time())
                cpu["after"] = (cpu_seconds(svc.proxy.pid)[0] - proxy_cpu) / (windows["after"][1] - after)
            finally:
                streamer.send_signal(signal.SIGTERM)
                streamer.wait(30)
    finally:
        store.close()
    samples: dict[str, list[float]] = {name: [] for name in windows}
    errors = 0
    for line in stream_file.read_text().splitlines():
        at, latency, status = line.split()
        for name, (lo, hi) in windows.items():
            if lo <= float(at) < hi:
                samples[name].append(float(latency))
                errors += status != "200"
    # Runs due in the window: each monitor's due times from its first one, up to the end of the window.
    reference = dt.datetime.fromtimestamp(0, dt.UTC)
    offsets = [0.0 if args.lockstep else (first_due(f"m{n:03d}", args.every, reference) - reference).total_seconds()
               for n in range(args.monitors)]  # fmt: skip
    expected = sum(int((args.duration - offset) // args.every) + 1 for offset in offsets)
    return StoreResult(
        store=kind, delays=list(stats.start_delays), runs=stats.runs, failed_runs=stats.failed_runs,
        expected=expected, stored=stored, windows=samples, stream_errors=errors, proxy_cpu=cpu,
        runner_cpu_per_run_ms=runner_cpu / max(stats.runs, 1) * 1000,
    )  # fmt: skip


def count_monitor_runs(store: Store) -> int:
    with store.connect() as conn:
        return conn.execute(select(func.count()).select_from(TestRun).where(TestRun.source == "monitor")).scalar_one()


def profile_runs(runner: MonitorRunner, store: Store, monitors: int) -> None:
    """Every monitor made due and run once more, on this thread, by the runner's own claim and
    run-and-record steps, under cProfile: where one run's time goes. (cProfile cannot time the
    runner's 16 threads apart: since Python 3.12 it is one profiler for the whole process.)"""
    for n in range(monitors):
        request_run_now(store, f"m{n:03d}")
    profile = cProfile.Profile()
    started, done = time.perf_counter(), 0
    profile.enable()
    while done < monitors and (batch := runner._claim(min(runner.concurrency, monitors - done))):
        for monitor in batch:
            runner._run_one(monitor)
            done += 1
    profile.disable()
    print(f"\nprofiled: {done} monitor runs one after another on one thread, "
          f"{(time.perf_counter() - started) / max(done, 1) * 1000:.2f} ms per run (wall, under the profiler)")
    print_profile([profile], "claim, run and record, per monitor run")


def print_profile(profiles: list[cProfile.Profile], what: str) -> None:
    if not profiles:
        return
    print(f"\nprofile: {what}: top by cumulative time, then by own time")
    stats = pstats.Stats(*profiles)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(20)


# ---------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("steps", "monitors"), help="one part only")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 tests, 1 round; 50 monitors for 12 s")
    parser.add_argument("--rounds", type=int, default=3, help="part 1: rounds of runner and plain httpx (3)")
    parser.add_argument("--tests", type=int, default=100, help="part 1: tests of 3 steps (100)")
    parser.add_argument("--monitors", type=int, default=200, help="part 2: monitors (200)")
    parser.add_argument("--every", type=float, default=10.0, help="part 2: their schedule in seconds (10)")
    parser.add_argument("--duration", type=float, default=35.0, help="part 2: seconds the runner runs (35)")
    parser.add_argument("--baseline", type=float, default=8.0,
                        help="part 2: seconds of the plain stream without monitors, before and after (8 each)")
    parser.add_argument("--stream-rate", type=float, default=50.0, help="part 2: plain requests/s through the proxy (50)")
    parser.add_argument("--stores", default="sqlite,postgresql", help="part 2: sqlite, postgresql or both")
    parser.add_argument("--lockstep", action="store_true",
                        help="part 2: every monitor due at the same instant (the worst case), not as passageway.toml spreads them")
    parser.add_argument("--concurrency", type=int, help="part 2: the runner's threads (its default: 16)")
    parser.add_argument("--poll", type=float, help="part 2: the runner's seconds between claims (its default: 0.2)")
    parser.add_argument("--profile", action="store_true", help="print cProfile of run_test (part 1) and of monitor runs one by one (part 2, after its window)")
    parser.add_argument("--stream", help=argparse.SUPPRESS)
    parser.add_argument("--stream-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.tests, args.rounds, args.monitors, args.duration, args.baseline = 20, 1, 50, 12.0, 4.0
    args.store_list = [s.strip() for s in args.stores.split(",") if s.strip()]
    bad = [s for s in args.store_list if s not in ("sqlite", "postgresql")]
    if bad or not args.store_list:
        parser.error(f"--stores takes sqlite, postgresql or both, not {args.stores!r}")
    if min(args.rounds, args.tests, args.monitors) < 1 or args.every < 1 or args.duration <= 0 or args.stream_rate <= 0:
        parser.error("--rounds, --tests and --monitors must be at least 1, --every at least 1 s, "
                     "--duration and --stream-rate positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.stream:
        stream(args.stream, args.stream_rate, args.stream_out)
        return 0
    print(f"radar bench: {os.cpu_count()} CPU(s), {cpu_model()}; load avg {'%.2f %.2f %.2f' % os.getloadavg()}; "
          f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC", flush=True)  # fmt: skip
    ok = True
    try:
        with tempfile.TemporaryDirectory(prefix="passageway-radar-bench-") as tmp:
            if args.only in (None, "steps"):
                ok &= steps_part(args, Path(tmp))
            if args.only in (None, "monitors"):
                ok &= monitors_part(args, Path(tmp))
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
