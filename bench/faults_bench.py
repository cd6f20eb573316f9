"""What the fault addon costs a request on the event loop: the Capture hooks alone against
Faults + Capture, with no rule, and with 50 rules none of which matches the request's service.

    .venv/bin/python bench/faults_bench.py [--rounds 7] [--requests 20000]

Each round times, in alternating order, the hooks mitmproxy calls for a plain request
(requestheaders, request, responseheaders, response) on N flows built beforehand
(mitmproxy.test.tflow), with a writer whose submit() only counts, and prints the median
microseconds per request of each setup and their ratio to Capture alone (the Faults hooks are
also timed alone: their own cost, which the ratio's noise hides). Sockets, the load
generator and the database are left out on purpose: on a shared machine they drown a
difference of nanoseconds (bench/proxy_bench.py measures the whole proxy).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mitmproxy.test import taddons, tflow  # noqa: E402

from proxy.capture import Capture  # noqa: E402
from proxy.faults import Faults, by_service  # noqa: E402
from proxy.flow_record import META_SERVICE  # noqa: E402
from storage.pure.faults import ActiveRule, check_rule  # noqa: E402


class CountingWriter:
    def __init__(self) -> None:
        self.count = 0

    def submit(self, record) -> bool:  # type: ignore[no-untyped-def]
        self.count += 1
        return True

    def announce(self, notices) -> None:  # type: ignore[no-untyped-def]
        pass


def other_rules(count: int) -> list[ActiveRule]:
    now = dt.datetime.now(dt.UTC)
    return list(ActiveRule.of(i, check_rule(service=f"other-{i}", status=503, path="/orders/{id}", now=now))
                   for i in range(1, count + 1))  # fmt: skip


def one_round(addons: list, n: int) -> float:
    flows = []
    for _ in range(n):
        flow = tflow.tflow(resp=True)
        flow.metadata[META_SERVICE] = "billing"
        flows.append(flow)
    hooks = [[getattr(addon, name) for addon in addons if hasattr(addon, name)]
             for name in ("requestheaders", "request", "responseheaders", "response")]  # fmt: skip
    started = time.perf_counter()
    for flow in flows:
        for chain in hooks:
            for hook in chain:
                hook(flow)  # no rule fires: nothing to await
    return (time.perf_counter() - started) / n * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--requests", type=int, default=20000)
    args = p.parse_args()
    capture = Capture(CountingWriter(), proxy_name="bench", body_cap=65536, upstream_timeout=30.0)
    empty = Faults(None, realm=None)
    busy = Faults(None, realm=None)
    busy.rules = by_service(other_rules(50))
    setups = {"capture alone": [capture], "faults (no rule) + capture": [empty, capture],
              "faults (50 other rules) + capture": [busy, capture],
              "faults alone (no rule)": [empty], "faults alone (50 other rules)": [busy]}  # fmt: skip
    timings: dict[str, list[float]] = {name: [] for name in setups}

    async def run() -> None:
        with taddons.context(capture):
            for round_ in range(args.rounds):
                names = list(setups) if round_ % 2 == 0 else list(reversed(setups))
                for name in names:
                    timings[name].append(one_round(setups[name], args.requests))

    asyncio.run(run())
    base = statistics.median(timings["capture alone"])
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:36} {median:7.2f} µs/request  ratio {median / base:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
