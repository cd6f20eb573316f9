"""What matching costs a simulated request on the proxy's event loop (storage.pure.mock_match),
and what indexing costs the loader thread, over N recordings of a realistic API (ids in paths,
query parameters, JSON bodies):

    .venv/bin/python bench/mocks_bench.py [--recordings 5000] [--requests 20000] [--rounds 5]

Prints the median microseconds per request of an exact match, a closest match (an id never
recorded: every recording of the endpoint template is scored) and a miss (every group ranked
for the answer's "closest" list), and the milliseconds to build the index.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.pure.mock_match import MockRequest, MockState, Recording, build_index, match  # noqa: E402

ENDPOINTS = 20


def recordings(count: int) -> list[Recording]:
    out = []
    for i in range(count):
        endpoint = i % ENDPOINTS
        body = json.dumps({"item": f"sku-{i % 97}", "quantity": i % 5, "tags": ["a", "b"]}).encode() if i % 2 else b""
        out.append(Recording(
            label=f"#{i}", method="POST" if body else "GET", path=f"/v1/resource{endpoint}/{i}",
            query=f"page={i % 7}&lang=en", request_body=body, status=200, response_body=b'{"ok": true}' * 20,
            duration_ms=12.0,
        ))  # fmt: skip
    return out


def per_request_us(index, requests: list[MockRequest], rounds: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(rounds):
        state = MockState()
        started = time.perf_counter()
        for request in requests:
            match(index, state, request)
        times.append((time.perf_counter() - started) / len(requests) * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    made = recordings(args.recordings)
    started = time.perf_counter()
    index = build_index(made)
    built_ms = (time.perf_counter() - started) * 1000
    n = args.requests
    exact = [MockRequest(r.method, r.path, "lang=en&" + r.query.split("&")[0], body=r.request_body)
             for r in (made[i % len(made)] for i in range(n))]  # fmt: skip
    closest = [MockRequest("GET", f"/v1/resource{2 * (i % (ENDPOINTS // 2))}/999999", "page=1") for i in range(n)]  # GETs are even
    missing = [MockRequest("GET", f"/v2/other/{i}") for i in range(max(n // 20, 1))]
    print(f"{args.recordings} recordings, index built in {built_ms:.0f} ms ({len(index.groups)} groups)")
    for name, requests in (("exact", exact), ("closest", closest), ("miss", missing)):
        print(f"{name:>8}: {per_request_us(index, requests, args.rounds):8.1f} µs per request")


if __name__ == "__main__":
    main()
