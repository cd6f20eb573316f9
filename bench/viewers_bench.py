"""Viewers benchmark: proxy throughput with no inspector viewers against 50 live viewers of
/api/stream, one of which never reads (the inspector should drop it and the proxy not notice).

One upstream (proxy_bench's asyncio server), one `passageway proxy` (SQLite) and one
`passageway ui` on the same database, all kept for the whole run. Each round runs both arms
in a shuffled order:

    no viewers     wrk -> proxy
    50 viewers     the same, while a separate process holds 49 reading viewers and one that
                   never reads (small SO_RCVBUF, websockets client paused after one frame)

and prints each arm's req/s, the proxy process's CPU time per request, and the paired
ratios (50 viewers / no viewers). With two or more CPUs the proxy gets CPU 0 to itself and
everything else (wrk, upstream, inspector, viewers) shares the rest (--no-pin: all share
all): the question is whether the proxy notices the viewers, not whether one core can run
the inspector and the load generator too. CPU per request answers it either way.

    .venv/bin/python bench/viewers_bench.py [--rounds 3] [--duration 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from machine import scratch_postgres
from proxy_bench import (
    HOST,
    VENV_BIN,
    WRK_LUA,
    BenchError,
    cpu_seconds,
    ensure_wrk,
    free_port,
    med,
    run_wrk,
    stop,
    wait_for_port,
)

VIEWERS = 50
ARMS = ("no viewers", "50 viewers")


# ---------------------------------------------------------------- the viewers process

async def hold_viewers(uri: str) -> None:
    import websockets

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window is agreed then
    sock.setblocking(False)
    port = int(uri.rsplit(":", 1)[1].split("/", 1)[0])
    await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
    stalled = await websockets.connect(uri, sock=sock, compression=None, max_queue=1, ping_interval=None)
    received = [0]

    async def read(ws) -> None:
        async for _ in ws:
            received[0] += 1

    readers = [await websockets.connect(uri, compression=None, ping_interval=None, max_size=None)
               for _ in range(VIEWERS - 1)]  # fmt: skip
    print("ready", flush=True)
    try:
        await asyncio.gather(*(read(ws) for ws in readers))
    finally:
        print(f"received {received[0]}; the stalled viewer is {stalled.state.name}", flush=True)


# ---------------------------------------------------------------- the benchmark

def metric(ui_port: int, name: str) -> int:
    with urllib.request.urlopen(f"http://{HOST}:{ui_port}/api/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(rf"^{name} (\d+)$", text, re.MULTILINE)
    return int(match[1]) if match else -1


def start_viewers(ui_port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--hold-viewers", f"ws://{HOST}:{ui_port}/api/stream"],
        stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while "ready" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise BenchError(f"the viewers did not connect:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    return proc


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per arm")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite", help="the store (default sqlite)")
    parser.add_argument("--seed", type=int, default=None, help="arm order")
    parser.add_argument("--quick", action="store_true", help="1 round, 3 s per arm")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not give the proxy a CPU of its own")
    parser.add_argument("--hold-viewers", metavar="URI", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 3.0, 1.0
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.hold_viewers:
        asyncio.run(hold_viewers(args.hold_viewers))
        return 0
    try:
        wrk = ensure_wrk()
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    results: dict[str, list[float]] = {arm: [] for arm in ARMS}
    cpu_per_request: dict[str, list[float]] = {arm: [] for arm in ARMS}
    cpus = sorted(os.sched_getaffinity(0))
    pin = args.pin and len(cpus) >= 2
    if pin:
        os.sched_setaffinity(0, cpus[1:])  # inherited by everything started from here but the proxy
    with tempfile.TemporaryDirectory(prefix="passageway-viewers-bench-") as tmpdir, contextlib.ExitStack() as stack:
        tmp = Path(tmpdir)
        lua = tmp / "report.lua"
        lua.write_text(WRK_LUA)
        up_port, port, ui_port = free_port(), free_port(), free_port()
        if args.db == "postgresql":
            db = stack.enter_context(scratch_postgres("passageway_viewers_bench"))
            if db is None:
                return 2
        else:
            db = f"sqlite:///{tmp / 'bench.db'}"
        logs = {name: tmp / f"{name}.log" for name in ("upstream", "proxy", "ui", "viewers")}
        commands = {
            "upstream": [sys.executable, str(Path(__file__).with_name("proxy_bench.py")), "--serve-upstream", str(up_port)],
            "proxy": [*(["taskset", "-c", str(cpus[0])] if pin else []), str(VENV_BIN / "passageway"), "proxy", "--db", db, "--listen", f"{HOST}:{port}",
                      "--route", f"bench=http://{HOST}:{up_port}", "--certs-dir", str(tmp / "certs")],
            "ui": [str(VENV_BIN / "passageway"), "ui", "--db", db, "--listen", f"{HOST}:{port}",
                   "--ui", f"{HOST}:{ui_port}", "--certs-dir", str(tmp / "certs")],
        }  # fmt: skip
        procs: list[subprocess.Popen] = []
        try:
            for name, listen in (("upstream", up_port), ("proxy", port), ("ui", ui_port)):
                procs.append(subprocess.Popen(commands[name], stdin=subprocess.DEVNULL,
                                              stdout=logs[name].open("wb"), stderr=subprocess.STDOUT))  # fmt: skip
                wait_for_port(listen, procs[-1], name, logs[name])
            url = f"http://{HOST}:{port}/bench/m"
            print(f"proxy on {HOST}:{port} ({args.db}{f', CPU {cpus[0]}' if pin else ''}), inspector on {HOST}:{ui_port}; wrk -t1 -c{args.connections}, "
                  f"{args.warmup:g} s warm-up + {args.duration:g} s per arm, {args.rounds} round(s)")  # fmt: skip
            for rnd in range(1, args.rounds + 1):
                for arm in rng.sample(ARMS, len(ARMS)):
                    viewers = start_viewers(ui_port, logs["viewers"]) if arm == "50 viewers" else None
                    try:
                        run_wrk(wrk, lua, f"http://{HOST}:{port}/bench/w", args.warmup, args.connections)
                        cpu_before = cpu_seconds(procs[1].pid)[0]
                        res = run_wrk(wrk, lua, url, args.duration, args.connections)
                        cpu_us = (cpu_seconds(procs[1].pid)[0] - cpu_before) / max(res["requests"], 1) * 1e6
                        rps = res["requests"] / (res["duration_us"] / 1e6)
                        results[arm].append(rps)
                        cpu_per_request[arm].append(cpu_us)
                        extra = ""
                        if viewers is not None:
                            extra = (f"  (live viewers {metric(ui_port, 'passageway_live_viewers')}, dropped so far "
                                     f"{metric(ui_port, 'passageway_viewers_dropped_total')})")  # fmt: skip
                        print(f"  round {rnd} {arm:<11} {rps:8.0f} req/s  p99 {res['p99_us'] / 1000:6.2f} ms  "
                              f"proxy CPU {cpu_us:6.0f} us/req{extra}",
                              flush=True)  # fmt: skip
                    finally:
                        if viewers is not None:
                            stop(viewers)
        except BenchError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        finally:
            for proc in reversed(procs):
                stop(proc)
    paired = [v / n for v, n in zip(results["50 viewers"], results["no viewers"], strict=True)]
    print(f"\nno viewers  {med(results['no viewers']):8.0f} req/s (median)")
    print(f"50 viewers  {med(results['50 viewers']):8.0f} req/s (median)")
    print(f"ratio 50 viewers / no viewers: {med(results['50 viewers']) / med(results['no viewers']):.2f}x "
          f"(per round: {', '.join(f'{r:.2f}x' for r in paired)}; median paired {med(paired):.2f}x)")  # fmt: skip
    print(f"proxy CPU per request: {med(cpu_per_request['no viewers']):.0f} us without viewers, "
          f"{med(cpu_per_request['50 viewers']):.0f} us with 50 (median)")
    print(json.dumps({"no_viewers_rps": results["no viewers"], "viewers_rps": results["50 viewers"],
                      "no_viewers_cpu_us": cpu_per_request["no viewers"],
                      "viewers_cpu_us": cpu_per_request["50 viewers"], "pinned": pin}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
