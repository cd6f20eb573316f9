"""Two proxies writing to one PostgreSQL database: aggregate throughput against one proxy.

    .venv/bin/python bench/two_proxies.py                       # 3 rounds x 2 arms x (2 s warm-up + 10 s)
    .venv/bin/python bench/two_proxies.py --rounds 5 --duration 20 --pin

Arms, side by side in every round (order shuffled per round), both on one fresh PostgreSQL database:

    one   one `passageway proxy`, driven by one wrk (-t1 -cC) through its own upstream
    two   two `passageway proxy` processes, each with its own upstream and its own wrk,
          run at the same time; throughput is the sum

Each proxy is a fresh process per arm and round with its own --proxy-name, so its rows are
counted alone (exchanges.proxy). The upstreams are the proxy benchmark's asyncio server
(1 KiB JSON, tens of thousands of req/s): one per proxy, so neither shares a process that
could become the limit. The report gives req/s, the ratio two/one (target >= 1.8x), the
CPU per request of every process involved (proxies, wrk, upstreams, PostgreSQL backends
of this database) and how busy the machine was, so a ratio below target can be explained.

--pin: proxy A on CPU 0, proxy B on CPU 1 (taskset; in the `one` arm proxy A alone on CPU 0);
wrk, upstreams and PostgreSQL stay unpinned.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from machine import cpu_model, scratch_postgres  # noqa: E402
from proxy_bench import (  # noqa: E402
    HOST, VENV_BIN, WRK_LUA, BenchError, ensure_wrk, free_port, poll_until_stable, run_wrk, stop,
    upstream_count, wait_for_port,
)

TARGET = 1.8


def proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = f[3] + f[4]
    return sum(f) - idle, sum(f)


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class Pg:
    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self.db = url.rsplit("/", 1)[1]
        self.con = psycopg.connect(url, autocommit=True)

    def rows(self, proxy: str, key: str) -> int:
        return self.con.execute("SELECT count(*) FROM exchanges WHERE proxy = %s AND path LIKE %s",
                                (proxy, f"%/{key}")).fetchone()[0]

    def backends(self) -> list[int]:
        me = self.con.info.backend_pid
        return [r[0] for r in self.con.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> %s", (self.db, me)).fetchall()]


def start_proxy(url: str, port: int, up_port: int, work: Path, name: str, cpu: int | None) -> subprocess.Popen:
    env = dict(os.environ, PASSAGEWAY_SPOOL_DIR=str(work / f"spool-{name}"), XDG_STATE_HOME=str(work / "state"),
               XDG_DATA_HOME=str(work / "data"))
    cmd = [str(VENV_BIN / "passageway"), "proxy", "--db", url, "--listen", f"{HOST}:{port}",
           "--route", f"bench=http://{HOST}:{up_port}", "--certs-dir", str(work / "certs"), "--proxy-name", name]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    log = work / f"{name}.log"
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            cwd=work, env=env)
    wait_for_port(port, proc, f"proxy {name}", log, timeout=60)
    return proc


def run_arm(arm: str, rnd: int, a, wrk: str, lua: Path, ups: list[tuple[subprocess.Popen, int]], pg: Pg,
            work: Path, profile_dir: Path | None = None) -> dict:
    n = 1 if arm == "one" else 2
    tag = f"{rnd}{arm}{random.randrange(1 << 30):x}"
    names = [f"{arm}-r{rnd}-{chr(65 + i)}-{tag}" for i in range(n)]
    procs, ports = [], []
    try:
        for i in range(n):
            port = free_port()
            procs.append(start_proxy(pg.url, port, ups[i][1], work, names[i], i if a.pin else None))
            ports.append(port)

        def drive(key: str, seconds: float, out: list) -> None:
            def one(i: int) -> None:
                out[i] = run_wrk(wrk, lua, f"http://{HOST}:{ports[i]}/bench/{key}", seconds, a.connections)
            threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        if a.warmup > 0:
            drive(f"w{tag}", a.warmup, [None] * n)
            for i in range(n):
                poll_until_stable(lambda i=i: pg.rows(names[i], f"w{tag}"), settle=0.5, timeout=15)
        key = f"m{tag}"
        watched = {"proxy": [p.pid for p in procs], "upstream": [u[0].pid for u in ups[:n]], "postgres": pg.backends()}
        spies = []
        if profile_dir is not None:
            for i, p in enumerate(procs):
                spies.append(subprocess.Popen(
                    [str(VENV_BIN / "py-spy"), "record", "--format", "raw", "--full-filenames", "--rate", "200",
                     "--duration", str(max(1, round(a.duration))), "--pid", str(p.pid),
                     "--output", str(profile_dir / f"{names[i]}.txt")],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        cpu0 = {k: [proc_cpu(p) for p in v] for k, v in watched.items()}
        m0, ch0 = machine_cpu(), children_cpu()
        results: list = [None] * n
        drive(key, a.duration, results)
        cpu1 = {k: [proc_cpu(p) for p in v] for k, v in watched.items()}
        m1, ch1 = machine_cpu(), children_cpu()
        for s in spies:
            s.wait(timeout=60)
        stored = [poll_until_stable(lambda i=i: pg.rows(names[i], key), settle=1.0, timeout=30) for i in range(n)]
        for p in procs:
            stop(p)
        stored_after = [pg.rows(names[i], key) for i in range(n)]
        served = [upstream_count(ups[i][1], key) for i in range(n)]
        completed = [r["requests"] for r in results]
        secs = [r["duration_us"] / 1e6 for r in results]
        total = sum(completed)
        cpu = {k: sum(cpu1[k]) - sum(cpu0[k]) for k in watched}
        cpu["wrk"] = ch1 - ch0
        busy, all_ = m1[0] - m0[0], m1[1] - m0[1]
        window = max(secs)
        return {
            "arm": arm, "round": rnd, "rps": sum(c / s for c, s in zip(completed, secs)),
            "per_proxy": [c / s for c, s in zip(completed, secs)],
            "p99_ms": max(r["p99_us"] for r in results) / 1000, "p50_ms": max(r["p50_us"] for r in results) / 1000,
            "completed": completed, "served": served, "stored": stored, "stored_after_stop": stored_after,
            "errors": [{k: v for k, v in r.items() if k.startswith("err_") and v} for r in results],
            "cpu_us_per_req": {k: v / total * 1e6 if total else float("nan") for k, v in cpu.items()},
            "cpu_cores": {k: v / window for k, v in cpu.items()},
            "machine_busy": busy / all_ if all_ else float("nan"),
            # Cores busy with processes not part of this arm (other work on the machine, postgres
            # background processes, this script).
            "other_cores": (busy / all_ * (os.cpu_count() or 1) - sum(cpu.values()) / window) if all_ else float("nan"),
            "per_proxy_cpu_cores": [(b - c) / window for b, c in zip(cpu1["proxy"], cpu0["proxy"])],
        }
    finally:
        for p in procs:
            stop(p)


def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def ok_counts(r: dict, connections: int) -> bool:
    return all(st == sv == sa and 0 <= st - c <= connections
               for c, sv, st, sa in zip(r["completed"], r["served"], r["stored"], r["stored_after_stop"]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--duration", type=float, default=10, help="measured seconds per arm (default 10)")
    p.add_argument("--warmup", type=float, default=2, help="warm-up seconds per arm (default 2)")
    p.add_argument("--connections", type=int, default=10, help="wrk connections per proxy (default 10)")
    p.add_argument("--pin", action="store_true", help="pin proxy A to CPU 0 and proxy B to CPU 1 (taskset)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--profile", action="store_true",
                   help="after the rounds, run the `two` arm once more under py-spy (not scored)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--quick", action="store_true", help="1 round of 5 s")
    a = p.parse_args(argv)
    if a.quick:
        a.rounds, a.duration, a.warmup = 1, 5, 1
    if os.cpu_count() and os.cpu_count() < 2 and a.pin:
        p.error("--pin needs 2 CPUs")
    try:
        wrk = ensure_wrk()
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"two proxies — {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; {os.cpu_count()} CPU(s), "
          f"{cpu_model()}; load avg {'%.2f %.2f %.2f' % os.getloadavg()}", flush=True)
    rng = random.Random(a.seed)
    results: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="passageway-two-"))
    ups: list[tuple[subprocess.Popen, int]] = []
    with scratch_postgres("pw_two") as url:
        if url is None:
            return 2
        pg = Pg(url)
        try:
            lua = work / "report.lua"
            lua.write_text(WRK_LUA)
            for i in range(2):
                port = free_port()
                log = work / f"upstream{i}.log"
                up = subprocess.Popen([sys.executable, str(BENCH / "proxy_bench.py"), "--serve-upstream", str(port)],
                                      stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT)
                ups.append((up, port))
                wait_for_port(port, up, "upstream", log)
            print(f"database {url}; upstreams {', '.join(str(u[1]) for u in ups)}; wrk -t1 -c{a.connections} per "
                  f"proxy, {a.duration:g} s (+{a.warmup:g} s warm-up){'; proxies pinned' if a.pin else ''}", flush=True)
            for rnd in range(1, a.rounds + 1):
                order = ["one", "two"]
                rng.shuffle(order)
                for arm in order:
                    r = run_arm(arm, rnd, a, wrk, lua, ups, pg, work)
                    results.append(r)
                    c = r["cpu_cores"]
                    print(f"  round {rnd} {arm}: {r['rps']:7.0f} req/s "
                          f"({' + '.join(f'{x:.0f}' for x in r['per_proxy'])}) p99 {r['p99_ms']:.1f} ms; "
                          f"cores: proxies {c['proxy']:.2f} ({' + '.join(f'{x:.2f}' for x in r['per_proxy_cpu_cores'])}), "
                          f"wrk {c['wrk']:.2f}, upstreams {c['upstream']:.2f}, postgres {c['postgres']:.2f}; "
                          f"machine busy {r['machine_busy']:.0%} (other processes {r['other_cores']:.2f} cores); stored {r['stored']} "
                          f"{'ok' if ok_counts(r, a.connections) else 'MISMATCH'}", flush=True)
            profile = None
            if a.profile:
                if not (VENV_BIN / "py-spy").exists():
                    print("profile skipped: .venv/bin/py-spy not found (.venv/bin/pip install py-spy)")
                else:
                    from proxy_bench import summarize_profile

                    pdir = work / "profile"
                    pdir.mkdir()
                    r = run_arm("two", 0, a, wrk, lua, ups, pg, work, profile_dir=pdir)
                    profile = [f"Profile of the `two` arm under py-spy (not scored; {r['rps']:.0f} req/s while sampled):"]
                    for f in sorted(pdir.glob("*.txt")):
                        profile.append(f"proxy {f.stem.split('-')[2]}:\n" + summarize_profile(f, top=10))
        finally:
            for up, _ in ups:
                stop(up, timeout=5)
            pg.con.close()
    if not results:
        return 1
    one = [r for r in results if r["arm"] == "one"]
    two = [r for r in results if r["arm"] == "two"]
    by_round = {r["round"]: r for r in one}
    paired = [r["rps"] / by_round[r["round"]]["rps"] for r in two if r["round"] in by_round]
    ratio = med(paired)
    print()
    print(f"Two proxies, one PostgreSQL — medians over {a.rounds} round(s), wrk -t1 -c{a.connections} per proxy, "
          f"{a.duration:g} s{', pinned' if a.pin else ''}")
    comps = ("proxy", "wrk", "upstream", "postgres")
    hdr = (f"{'arm':<5} {'req/s':>7} {'per proxy':>12} {'p99 ms':>7}  " + " ".join(f"{c + ' us/req':>16}" for c in comps)
           + f" {'total us/req':>12} {'machine busy':>12} {'other cores':>11}  counts")
    print(hdr)
    print("-" * len(hdr))
    for name, rs in (("one", one), ("two", two)):
        if not rs:
            continue
        per = [med(r["per_proxy"][i] for r in rs) for i in range(len(rs[0]["per_proxy"]))]
        cpu = {c: med(r["cpu_us_per_req"][c] for r in rs) for c in comps}
        print(f"{name:<5} {med(r['rps'] for r in rs):>7.0f} {' + '.join(f'{x:.0f}' for x in per):>12} "
              f"{med(r['p99_ms'] for r in rs):>7.1f}  " + " ".join(f"{cpu[c]:>16.0f}" for c in comps)
              + f" {sum(cpu.values()):>12.0f} {med(r['machine_busy'] for r in rs):>12.0%} "
              + f"{med(r['other_cores'] for r in rs):>11.2f}  "
              + ("ok" if all(ok_counts(r, a.connections) for r in rs) else "MISMATCH"))
    total_one = sum(med(r["cpu_us_per_req"][c] for r in one) for c in comps) if one else float("nan")
    print()
    print(f"ratio two/one (median of paired rounds): {ratio:.2f}x  (rounds: "
          + ", ".join(f"{x:.2f}x" for x in paired) + f"); target >= {TARGET}x: {'PASS' if ratio >= TARGET else 'FAIL'}")
    if one:
        print(f"CPU ceiling: one proxy's request costs {total_one:.0f} us of CPU in all (proxy + wrk + upstream + "
              f"postgres backends); {os.cpu_count()} cores give at most {os.cpu_count() * 1e6 / total_one:.0f} req/s "
              f"= {os.cpu_count() * 1e6 / total_one / med(r['rps'] for r in one):.2f}x one proxy, before anything "
              f"else on the machine (postgres background work, other processes)")
    print("counts: wrk completed <= stored = upstream answered (<= completed + connections), before and after SIGINT")
    if a.profile and profile:
        print()
        print("\n".join(profile))
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    ok = ratio >= TARGET and all(ok_counts(r, a.connections) for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
