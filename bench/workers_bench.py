"""Proxy workers: `passageway proxy --workers N` against `--workers 1`, side by side in one run.

    .venv/bin/python bench/workers_bench.py                   # N = 1, 2; 3 rounds of (2 s warm-up + 10 s)
    .venv/bin/python bench/workers_bench.py --workers 1,2,4 --db postgres --rounds 5

Arms, shuffled in every round and measured in slices taken in turn (each paused with SIGSTOP while
another runs, as in bench/proxy_bench.py, so the machine's other load falls on every arm alike): one real `passageway proxy` (its supervisor, N workers sharing the
port with SO_REUSEPORT, and its writer process storing every exchange) on a fresh database,
driven by one wrk (-t1 -cC, keep-alive) through one upstream (the proxy benchmark's asyncio
server, 1 KiB JSON). The report gives req/s and its ratio to one worker (target at N = 2 on a
2-core machine: >= 1.6x), p99, and the CPU per request of each part: the workers, the writer,
the supervisor, wrk, the upstream and (PostgreSQL) the database's backends, so that "CPU per
request flat as N grows" can be read off and a ratio below target explained (wrk and the
upstream share the cores). Every request must be stored exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from machine import cpu_model, scratch_postgres  # noqa: E402
from proxy_bench import (  # noqa: E402
    HOST, VENV_BIN, WRK_LUA, BenchError, count_rows, ensure_wrk, free_port, poll_until_stable, pooled_percentile,
    run_wrk, slice_totals, stop, upstream_count, wait_for_port,
)
from two_proxies import Pg, children_cpu, machine_cpu, med, proc_cpu  # noqa: E402

TARGET = 1.6
"""Two workers against one, on a 2-core machine that also runs wrk and the upstream."""


def descendants(pid: int) -> dict[int, str]:
    """Every live descendant of `pid`: its role, from its command line (worker K, writer)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                try:
                    words = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                found[child] = "writer" if b"writer" in words else "workers" if b"--worker" in words else "other"
                frontier.append(child)
    return found


def tree_cpu(supervisor: int) -> dict[str, float]:
    cpu = {"supervisor": proc_cpu(supervisor), "workers": 0.0, "writer": 0.0, "other": 0.0}
    for pid, role in descendants(supervisor).items():
        cpu[role] += proc_cpu(pid)
    return cpu


def start_proxy(workers: int, db: str, port: int, up_port: int, work: Path, name: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), XDG_STATE_HOME=str(work / "state"))
    cmd = [str(VENV_BIN / "python"), "-m", "cli", "proxy", "--workers", str(workers), "--db", db,
           "--listen", f"{HOST}:{port}", "--route", f"bench=http://{HOST}:{up_port}",
           "--certs-dir", str(work / "certs"), "--proxy-name", name, "--spool-dir", str(work / f"spool-{name}")]
    log = work / f"{name}.log"
    # A session of its own: SIGSTOP and SIGCONT (WorkersArm) reach the supervisor, its workers and its writer.
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            cwd=work, env=env, start_new_session=True)
    wait_for_port(port, proc, f"proxy {name}", log, timeout=60)
    deadline = time.monotonic() + 30  # every worker listening, not only the first
    while sum(role == "workers" for role in descendants(proc.pid).values()) < workers or not _all_listen(proc, workers):
        if time.monotonic() > deadline:
            raise BenchError(f"proxy {name}: {workers} workers did not all start")
        time.sleep(0.2)
    return proc


def _all_listen(proc: subprocess.Popen, workers: int) -> bool:
    listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    pids = [pid for pid, role in descendants(proc.pid).items() if role == "workers"]
    return sum(f"pid={pid}," in listening for pid in pids) >= workers


class WorkersArm:
    """One `passageway proxy --workers N` in one round, measured in slices taken in turn with the
    other arms' and paused (SIGSTOP, the whole process group) in between, as proxy_bench.ArmRun."""

    def __init__(self, workers: int, rnd: int, a, wrk: str, lua: Path, up: subprocess.Popen, up_port: int,
                 pg: Pg | None, work: Path) -> None:  # fmt: skip
        self.workers, self.rnd, self.a, self.wrk, self.lua, self.up, self.up_port = workers, rnd, a, wrk, lua, up, up_port
        self.pg, self.work = pg, work
        tag = f"{rnd}w{workers}{random.randrange(1 << 30):x}"
        self.name, self.warm_key, self.key = f"w{workers}-r{rnd}-{tag}", f"w{tag}", f"m{tag}"
        self.proc: subprocess.Popen | None = None
        self.slices: list[dict] = []
        self.cpu: dict[str, float] = {}
        self.machine = [0.0, 0.0]

    def rows(self, key: str) -> int | None:
        return self.pg.rows(self.name, key) if self.pg else count_rows(self.work / f"{self.name}.db", key)

    def _signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signum)

    def start(self) -> None:
        db = self.pg.url if self.pg else f"sqlite:///{self.work / (self.name + '.db')}"
        self.port = free_port()
        self.proc = start_proxy(self.workers, db, self.port, self.up_port, self.work, self.name)
        if self.a.warmup > 0:
            run_wrk(self.wrk, self.lua, f"http://{HOST}:{self.port}/bench/{self.warm_key}", self.a.warmup,
                    self.a.connections)  # fmt: skip
            poll_until_stable(lambda: self.rows(self.warm_key), settle=0.5, timeout=15)
        self._signal(signal.SIGSTOP)

    def measure(self, seconds: float) -> None:
        self._signal(signal.SIGCONT)
        backends = self.pg.backends() if self.pg else []
        cpu0, up0, pg0 = tree_cpu(self.proc.pid), proc_cpu(self.up.pid), sum(proc_cpu(p) for p in backends)
        m0, ch0 = machine_cpu(), children_cpu()
        self.slices.append(run_wrk(self.wrk, self.lua, f"http://{HOST}:{self.port}/bench/{self.key}", seconds,
                                   self.a.connections))  # fmt: skip
        cpu1, up1, pg1 = tree_cpu(self.proc.pid), proc_cpu(self.up.pid), sum(proc_cpu(p) for p in backends)
        m1, ch1 = machine_cpu(), children_cpu()
        spent = {k: cpu1[k] - cpu0[k] for k in cpu0} | {"wrk": ch1 - ch0, "upstream": up1 - up0, "postgres": pg1 - pg0}
        for part, value in spent.items():
            self.cpu[part] = self.cpu.get(part, 0.0) + value
        self.machine = [self.machine[0] + m1[0] - m0[0], self.machine[1] + m1[1] - m0[1]]
        time.sleep(0.2)  # paused only once quiet: what wrk left in flight answered, and stored
        poll_until_stable(lambda: self.rows(self.key), settle=0.3, timeout=10)
        self._signal(signal.SIGSTOP)

    def finish(self) -> dict:
        self._signal(signal.SIGCONT)
        stored = poll_until_stable(lambda: self.rows(self.key), settle=1.0, timeout=30)
        stop(self.proc)
        stored_after = self.rows(self.key)
        served = upstream_count(self.up_port, self.key)
        completed, secs, errors = slice_totals(self.slices)
        busy, total = self.machine
        return {
            "workers": self.workers, "round": self.rnd, "rps": completed / secs if secs else 0.0,
            "p50_ms": pooled_percentile(self.slices, 50) / 1000, "p99_ms": pooled_percentile(self.slices, 99) / 1000,
            "completed": completed, "served": served, "stored": stored, "stored_after_stop": stored_after,
            "slices": len(self.slices), "errors": errors,
            "cpu_us_per_req": {k: v / completed * 1e6 if completed else float("nan") for k, v in self.cpu.items()},
            "machine_busy": busy / total if total else float("nan"),
        }

    def close(self) -> None:
        if self.proc is not None:
            self._signal(signal.SIGCONT)
            stop(self.proc)


def run_round(order: list[int], rnd: int, a, wrk: str, lua: Path, up: subprocess.Popen, up_port: int, pg: Pg | None,
              work: Path) -> list[dict]:
    """Every worker count of a round: each started and warmed up, then measured in a.slices slices taken
    in turn (the order rotated each time), then checked."""
    arms = [WorkersArm(n, rnd, a, wrk, lua, up, up_port, pg, work) for n in order]
    try:
        for arm in arms:
            arm.start()
        for index in range(a.slices):
            turn = index % len(arms)
            for arm in arms[turn:] + arms[:turn]:
                arm.measure(a.duration / a.slices)
        return [arm.finish() for arm in arms]
    finally:
        for arm in arms:
            arm.close()


def counts_ok(r: dict, connections: int) -> bool:
    """Every request stored once; wrk may leave `connections` in flight at the end of each slice."""
    in_flight = connections * r.get("slices", 1)
    return r["stored"] == r["served"] == r["stored_after_stop"] and 0 <= r["stored"] - r["completed"] <= in_flight


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2; 1 is always run)")
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10, help="measured seconds per arm (default 10)")
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--slices", type=int, default=0,
                   help="measured slices per arm and round, taken in turn with the other arms' (default: one per 2 s)")
    p.add_argument("--connections", type=int, default=20, help="wrk connections (default 20)")
    p.add_argument("--quick", action="store_true", help="1 round of 4 s")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    if a.quick:
        a.rounds, a.duration, a.warmup = 1, 4, 1
    a.slices = a.slices or max(1, int(a.duration // 2))
    try:
        counts = sorted({1, *(int(x) for x in a.workers.split(",") if x.strip())})
    except ValueError:
        p.error(f"--workers: expected counts such as 1,2,4, not {a.workers!r}")
    if not (1 <= a.rounds <= 50 and 1 <= a.duration <= 600 and counts[-1] <= 64 and 1 <= a.slices <= a.duration):
        p.error("rounds 1..50, duration 1..600 s, at most 64 workers, slices 1..duration")
    try:
        wrk = ensure_wrk()
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"proxy workers — {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; {os.cpu_count()} CPU(s), "
          f"{cpu_model()}; load avg {'%.2f %.2f %.2f' % os.getloadavg()}; {a.db}; wrk -t1 -c{a.connections}, "
          f"{a.duration:g} s in {a.slices} interleaved slice(s) (+{a.warmup:g} s warm-up)", flush=True)
    rng = random.Random(a.seed)
    results: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="passageway-workers-"))
    lua = work / "report.lua"
    lua.write_text(WRK_LUA)
    up_port = free_port()
    up_log = work / "upstream.log"
    up = subprocess.Popen([sys.executable, str(BENCH / "proxy_bench.py"), "--serve-upstream", str(up_port)],
                          stdin=subprocess.DEVNULL, stdout=up_log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_for_port(up_port, up, "upstream", up_log)
        with scratch_postgres("pw_workers") if a.db == "postgres" else nullcontext() as url:
            if a.db == "postgres" and url is None:
                return 2
            pg = Pg(url) if url else None
            for rnd in range(1, a.rounds + 1):
                order = list(counts)
                rng.shuffle(order)
                for r in run_round(order, rnd, a, wrk, lua, up, up_port, pg, work):
                    results.append(r)
                    c = r["cpu_us_per_req"]
                    print(f"  round {rnd} workers={r['workers']}: {r['rps']:7.0f} req/s p99 {r['p99_ms']:.1f} ms; "
                          f"CPU us/req: workers {c['workers']:.0f}, writer {c['writer']:.0f}, wrk {c['wrk']:.0f}, "
                          f"upstream {c['upstream']:.0f}, postgres {c['postgres']:.0f}; machine busy "
                          f"{r['machine_busy']:.0%}; stored {r['stored']} of {r['completed']} "
                          f"{'ok' if counts_ok(r, a.connections) else 'MISMATCH'}", flush=True)
            if pg:
                pg.con.close()
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        stop(up, timeout=5)
    return report(results, counts, a)


def report(results: list[dict], counts: list[int], a) -> int:
    one = {r["round"]: r for r in results if r["workers"] == 1}
    parts = ("workers", "writer", "supervisor", "wrk", "upstream", "postgres")
    print()
    print(f"Proxy workers, {a.db} — medians over {a.rounds} round(s); x req/s: paired with the same round's 1 worker")
    hdr = (f"{'workers':>7} {'req/s':>7} {'x req/s':>8} {'p99 ms':>7} " + " ".join(f"{p:>10}" for p in parts)
           + f" {'all':>6} {'busy':>5}  counts")
    print(hdr + "\n" + "-" * len(hdr))
    ok = True
    for n in counts:
        rs = [r for r in results if r["workers"] == n]
        paired = [r["rps"] / one[r["round"]]["rps"] for r in rs if r["round"] in one]
        cpu = {k: med(r["cpu_us_per_req"][k] for r in rs) for k in parts}
        good = all(counts_ok(r, a.connections) for r in rs)
        ok &= good
        print(f"{n:>7} {med(r['rps'] for r in rs):>7.0f} {med(paired):>7.2f}x {med(r['p99_ms'] for r in rs):>7.1f} "
              + " ".join(f"{cpu[k]:>10.0f}" for k in parts)
              + f" {sum(cpu.values()):>6.0f} {med(r['machine_busy'] for r in rs):>5.0%}  {'ok' if good else 'MISMATCH'}")
    print("CPU columns: microseconds of CPU per request of each part (workers summed)")
    if 2 in counts:
        ratio = med([r["rps"] / one[r["round"]]["rps"] for r in results if r["workers"] == 2 and r["round"] in one])
        passed = ratio >= TARGET
        ok &= passed
        print(f"2 workers / 1 worker: {ratio:.2f}x (target >= {TARGET}x on a 2-core machine): "
              f"{'PASS' if passed else 'FAIL'}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
