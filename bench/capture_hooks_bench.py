"""The Capture addon's per-request cost on the event loop, one checkout against another.

    .venv/bin/python bench/capture_hooks_bench.py --base-tree /work/main [--rounds 7] [--requests 20000] [--writer real]

Each round runs, in a fresh process per tree and in alternating order, the hooks mitmproxy calls
for a plain request (requestheaders, request, responseheaders, response) on N flows built
beforehand (mitmproxy.test.tflow), in a process that loaded what a proxy loads and froze it
for the collector (as Capture.running does), with a writer whose submit() only counts, and 200 flows kept
waiting (as a busy proxy has), then one timeout sweep with its pending announce. It prints the
median microseconds per request of each tree and their ratio. The load generator, sockets and
the database are left out on purpose: on a shared machine they drown a difference of
nanoseconds, which this measures directly (bench/proxy_bench.py measures the whole proxy).

`--writer real`: the writer a proxy really has, with its threads running beside the loop: in a
tree that has proxy workers (storage.spool_handoff), a worker's SpoolAppender (queue -> spool);
elsewhere, the in-process ExchangeWriter (queue -> spool -> SQLite). It also reports the loop's
wall time per request, which includes waiting for the GIL while those threads hold it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import asyncio, gc, json, sys, time
from mitmproxy.test import taddons, tflow
import proxy.runner  # noqa: F401 - what a real proxy process has loaded (the collector scans it all)
from proxy.capture import Capture

class CountingWriter:
    def __init__(self):
        self.count = 0
    def submit(self, record):
        self.count += 1
        return True
    def announce(self, notices):
        self.announced = len(notices)
    def start(self):
        pass
    def close(self):
        pass

n = int(sys.argv[1])
real = sys.argv[2] == "real"
kind = "counting"
if real:
    import tempfile
    from pathlib import Path
    from storage.spool import Spool
    from storage.store import open_store
    work = Path(tempfile.mkdtemp(prefix="capture-hooks-"))
    store = open_store(f"sqlite:///{work / 'bench.db'}")
    try:
        from storage.spool_handoff import SpoolAppender
        writer = SpoolAppender(store, spool=Spool(work / "spool", max_bytes=1 << 30, shared=True), queue_size=n + 1)
        kind = "worker SpoolAppender"
    except ImportError:
        from storage.writer import ExchangeWriter
        writer = ExchangeWriter(store, spool=Spool(work / "spool", max_bytes=1 << 30), queue_size=n + 1)
        kind = "in-process ExchangeWriter"
    writer.start()
else:
    writer = CountingWriter()
capture = Capture(writer, proxy_name="bench", body_cap=65536, upstream_timeout=30.0)
flows = []
for _ in range(n):
    flow = tflow.tflow(resp=True)
    flow.response.headers["content-length"] = str(len(flow.response.raw_content or b""))
    response = flow.response
    flow.response = None
    flows.append((flow, response))
idle = [tflow.tflow() for _ in range(200)]
gc.freeze()  # as Capture.running() does: start-up objects are never scanned again

async def main():
    with taddons.context(capture):
        for flow in idle:
            capture.request(flow)  # waiting: a busy proxy has calls in flight
        started = time.thread_time()  # CPU time: on a shared machine, wall time mostly measures waiting for a core
        wall = time.perf_counter()
        for index, (flow, response) in enumerate(flows):
            capture.requestheaders(flow)
            capture.request(flow)
            flow.response = response
            capture.responseheaders(flow)
            capture.response(flow)
            if real and index % 50 == 49:
                await asyncio.sleep(0.05)  # ~1000 requests/s: the writer's threads run between them, as in a proxy
        elapsed = time.thread_time() - started
        wall = time.perf_counter() - wall - (0.05 * (n // 50) if real else 0.0)
        sweep = getattr(capture, "announce", None)
        time.sleep(1.1)  # the 200 are over a second old now: all announced
        sweep_us = None
        if sweep is not None:
            sweep(time.monotonic())  # the first look at a call reads what does not change, once
            t = time.thread_time()
            sweep(time.monotonic())
            sweep_us = (time.thread_time() - t) * 1e6
    if real:
        writer.close()
        store.close()
    else:
        assert writer.count == n
    print(json.dumps({"us_per_request": elapsed / n * 1e6, "announce_us": sweep_us, "kind": kind,
                      "wall_us_per_request": wall / n * 1e6,
                      "announced": getattr(writer, "announced", 0)}))

asyncio.run(main())
"""


def run(tree: Path, requests: int, writer: str = "counting") -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(requests), writer], env=env, capture_output=True, text=True,
                         timeout=300, cwd="/tmp", check=False)  # fmt: skip
    if out.returncode:
        raise SystemExit(f"{tree}: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--base-tree",
        type=Path,
        required=True,
        help="the checkout to compare with (e.g. main)",
    )
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--writer", choices=("counting", "real"), default="counting",
                   help="counting: submit() only counts; real: the proxy's own writer and its threads (see above)")
    args = p.parse_args()
    trees = {"this tree": REPO, "base": args.base_tree.resolve()}
    results: dict[str, list[float]] = {name: [] for name in trees}
    announce: list[tuple[float, int]] = []
    walls: dict[str, list[float]] = {name: [] for name in trees}
    kinds: dict[str, str] = {}
    for rnd in range(args.rounds):
        order = list(trees.items()) if rnd % 2 == 0 else list(reversed(trees.items()))
        line = []
        for name, tree in order:
            result = run(tree, args.requests, args.writer)
            results[name].append(result["us_per_request"])
            walls[name].append(result["wall_us_per_request"])
            kinds[name] = result["kind"]
            if name == "this tree" and result["announce_us"] is not None:
                announce.append((result["announce_us"], result["announced"]))
            line.append(f"{name} {result['us_per_request']:.2f}")
        print(f"round {rnd + 1}: " + " | ".join(line) + " us/request")
    print(
        f"\nCapture hooks per plain request, {args.rounds} rounds x {args.requests} requests (CPU time of the loop thread; min: the least disturbed):"
    )
    for name, tree in trees.items():
        print(
            f"  {name:<10} {statistics.median(results[name]):8.2f} us median {min(results[name]):8.2f} us min  "
            f"(wall {statistics.median(walls[name]):.2f} us median; writer: {kinds[name]}; {tree})"
        )
    ratio_median = statistics.median(results["this tree"]) / statistics.median(
        results["base"]
    )
    ratio_min = min(results["this tree"]) / min(results["base"])
    print(
        f"  ratio this/base: {ratio_median:.3f}x (medians), {ratio_min:.3f}x (minimums)"
    )
    if announce:
        us, count = min(announce)
        print(
            f"  one pending announce (every 0.5 s) with {count} calls over a second old: {us:.0f} us (min)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
