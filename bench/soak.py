"""Soak: a real `passageway proxy` at a constant 80% of its maximum for --duration seconds.

    .venv/bin/python bench/soak.py                      # 10 minutes, PostgreSQL (a fresh database)
    .venv/bin/python bench/soak.py --duration 180 --db sqlite
    .venv/bin/python bench/soak.py --duration 120 --h2-share 1 --rate 150   # HTTP/2 only, short check

Steps: start a tiny upstream (answers with the size asked for: 200 B, 4 KiB or 64 KiB of
JSON, every body unique) and `passageway proxy` on a fresh database; find the proxy's
maximum with wrk (-t1 -c10, the same request mix, --max-duration s); then drive it at
--load (0.8) of that with a paced load generator (a separate Python process: HTTP/1.1
keep-alive connections, a share of requests on new connections, a share over long-lived
HTTP/2 connections through the proxy's TLS gateway) for --duration seconds. Every --sample
seconds: the proxy's RSS / anonymous RSS / PSS / USS, open fds, threads, CPU, the writer's
counters (every column of proxy_stats) and the database size. Then the report: the table,
and a summary with warm-up excluded (memory growth, fd growth, max queue depth, database
bytes per 1,000 exchanges, requests sent / failed, exchanges stored vs sent).

Exit status non-zero when memory grew more than --max-growth % (default 10) after warm-up,
or when the exchanges stored differ from the requests sent, or a request failed.
The proxy is only ever talked to as a process (command line, environment, HTTP) and the
database only read, so this keeps working whatever the writer does inside.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from array import array
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from machine import cpu_model, scratch_postgres  # noqa: E402
from proxy_bench import (  # noqa: E402
    HOST, VENV_BIN, WRK_LUA, BenchError, ensure_wrk, free_port, stop, take_request, wait_for_port,
)

SIZES = (200, 4096, 65536)
# The request mix: (weight, method, request body size or 0, response size).
MIX = (
    (55, "GET", 0, 200),
    (15, "GET", 0, 4096),
    (4, "GET", 0, 65536),
    (20, "POST", 200, 200),
    (5, "POST", 4096, 200),
    (1, "POST", 65536, 4096),
)
SERVICE = "soak"


def pick(i: int) -> tuple[str, int, int]:
    """The i-th request of the mix (deterministic, well spread)."""
    x = (i * 2654435761) % 100
    for weight, method, req, resp in MIX:
        if x < weight:
            return method, req, resp
        x -= weight
    raise AssertionError


# ---------------------------------------------------------------- bodies

_WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
          "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu user order "
          "invoice payment account status pending active shipped total amount currency eur usd").split()


def body_pool(size: int, n: int, seed: int) -> list[bytes]:
    """n distinct JSON documents of exactly `size` bytes, each starting with `{"seq":"<16 digits>",`
    so a sequence number can be stamped into the first bytes (every body on the wire unique)."""
    rng = random.Random(seed * 1000 + size)
    head, tail = b'{"seq":"' + b"0" * 16 + b'","items":[', b'],"pad":"'
    out = []
    for _ in range(n):
        items: list[bytes] = []
        length = len(head) + len(tail) + 2
        while True:
            item = json.dumps({"id": rng.randrange(10**9), "name": " ".join(rng.choices(_WORDS, k=3)),
                               "qty": rng.randrange(100), "price": round(rng.random() * 500, 2),
                               "tags": rng.choices(_WORDS, k=2)}, separators=(",", ":")).encode()
            if length + len(item) + 1 > size:
                break
            items.append(item)
            length += len(item) + 1
        doc = head + b",".join(items) + tail
        doc += b"x" * (size - len(doc) - 2) + b'"}'
        assert len(doc) == size, (len(doc), size)
        json.loads(doc)
        out.append(doc)
    return out


def stamp(doc: bytes, seq: int) -> bytes:
    return b'{"seq":"%016d"' % seq + doc[len(b'{"seq":"0000000000000000"'):]


# ---------------------------------------------------------------- upstream

class _Upstream(asyncio.Protocol):
    """HTTP/1.1 keep-alive: answers `?r=SIZE` with a unique JSON body of SIZE bytes; counts `t=TAG`."""

    counts: dict[str, int] = {}
    pools: dict[int, list[bytes]] = {}
    seq = 0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (head := take_request(self.buf)) is not None:
            low = head.lower()
            target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
            _, _, query = target.partition(b"?")
            params = dict(p.partition(b"=")[::2] for p in query.split(b"&") if p)
            if target.startswith(b"/__count"):
                body = json.dumps(_Upstream.counts).encode()
            else:
                tag = params.get(b"t", b"-").decode("latin-1")[:32]
                counts = _Upstream.counts
                counts[tag] = counts.get(tag, 0) + 1
                size = int(params.get(b"r", b"200") or 200)
                pool = _Upstream.pools.get(size) or _Upstream.pools[200]
                _Upstream.seq += 1
                body = stamp(pool[_Upstream.seq % len(pool)], _Upstream.seq)
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nServer: soak-upstream\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body)
            if b"\r\nconnection: close" in low:
                self.transport.close()
                return


def serve_upstream(port: int) -> None:
    _Upstream.pools = {size: body_pool(size, 64, seed=1) for size in SIZES}

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(
            _Upstream, HOST, port, backlog=1024, reuse_address=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def upstream_counts(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://{HOST}:{port}/__count", timeout=5) as r:
        return json.load(r)


# ---------------------------------------------------------------- paced load generator

class BrowserAlpn(ssl.SSLContext):
    """Offer h2 first (httpx offers http/1.1 first, which mitmproxy honours)."""

    def set_alpn_protocols(self, protocols):
        super().set_alpn_protocols(["h2", "http/1.1"])


async def generate(a) -> dict:
    """Send requests at `a.rate` per second for `a.duration` s; every request is scheduled at
    t0 + i / rate (a late worker catches up, so the rate holds while capacity lasts).
    Prints a progress line every a.progress s and returns the totals."""
    pools = {size: body_pool(size, 16, seed=2) for size in SIZES}
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2
    end = t0 + a.duration
    h2_rate = a.rate * a.h2_share
    h1_rate = a.rate - h2_rate
    st = {"unsent": 0, "sent": 0, "ok": 0, "failed": 0, "new_conns": 0, "h2": 0, "bytes": 0, "errors": {},
          "failures": []}
    lat = array("d")          # from the scheduled time (includes any queueing: no coordinated omission)
    counter = {"h1": 0, "h2": 0}
    base = f"/{SERVICE}/api/items"

    def fail(kind: str, *, index: int, path: str, when: float) -> None:
        """Counted; the first 20 also kept with what they were, to find a cause later."""
        st["failed"] += 1
        st["errors"][kind] = st["errors"].get(kind, 0) + 1
        if len(st["failures"]) < 20:
            st["failures"].append({"error": kind, "request": index, "path": path,
                                   "scheduled_s": round(when - t0, 3), "gave_up_s": round(loop.time() - t0, 3),
                                   "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")})

    def request_bytes(i: int, keep: bool) -> bytes:
        method, req, resp = pick(i)
        path = f"{base}/{i}?r={resp}&t={a.tag}"
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{a.port}\r\nUser-Agent: soak\r\nAccept: */*\r\n"
        if not keep:
            head += "Connection: close\r\n"
        if req:
            pool = pools[req]
            body = stamp(pool[i % len(pool)], i)
            return (head + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        return (head + "\r\n").encode()

    async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        low = head.lower()
        i = low.find(b"\r\ncontent-length:")
        if i < 0:
            raise ValueError("no content-length")
        j = low.find(b"\r\n", i + 2)
        n = int(low[i + 17:j])
        await reader.readexactly(n)
        st["bytes"] += len(head) + n
        return status, b"\r\nconnection: close" in low

    async def scheduled(kind: str, rate: float):  # type: ignore[no-untyped-def]
        """(index, scheduled time) of each request of `kind`, yielded at that time; the
        workers of a kind share its counter."""
        while True:
            i = counter[kind]
            counter[kind] += 1
            when = t0 + i / rate
            if when >= end:
                return
            if loop.time() > end + a.grace:  # overloaded: do not run on past the window
                st["unsent"] += 1
                continue
            delay = when - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            yield i, when

    async def h1_worker() -> None:
        reader = writer = None
        async for i, when in scheduled("h1", h1_rate):
            new = a.new_conn_every > 0 and i % a.new_conn_every == 0
            st["sent"] += 1
            try:
                if new:
                    r2, w2 = await asyncio.open_connection(HOST, a.port)
                    st["new_conns"] += 1
                    try:
                        w2.write(request_bytes(i, keep=False))
                        status, _ = await asyncio.wait_for(read_response(r2), a.timeout)
                    finally:
                        w2.close()
                else:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(HOST, a.port)
                    writer.write(request_bytes(i, keep=True))
                    status, closing = await asyncio.wait_for(read_response(reader), a.timeout)
                    if closing:
                        writer.close()
                        reader = writer = None
                lat.append(loop.time() - when)
                if 200 <= status < 300:
                    st["ok"] += 1
                else:
                    fail(f"status {status}", index=i, path="new connection" if new else "keep-alive", when=when)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as e:
                fail(type(e).__name__, index=i, path="new connection" if new else "keep-alive", when=when)
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    async def h2_worker(client) -> None:
        async for i, when in scheduled("h2", h2_rate):
            method, req, resp = pick(i)
            url = f"https://{HOST}:{a.port}{base}/h2-{i}?r={resp}&t={a.tag}"
            body = stamp(pools[req][i % 16], i) if req else None
            st["sent"] += 1
            try:
                r = await client.request(method, url, content=body, timeout=a.timeout,
                                         headers={"content-type": "application/json"} if body else None)
                st["bytes"] += len(r.content)
                lat.append(loop.time() - when)
                if r.http_version != "HTTP/2":
                    fail(f"not h2 ({r.http_version})", index=i, path="http/2", when=when)
                elif 200 <= r.status_code < 300:
                    st["ok"] += 1
                    st["h2"] += 1
                else:
                    fail(f"h2 status {r.status_code}", index=i, path="http/2", when=when)
            except Exception as e:  # noqa: BLE001 - counted and reported
                fail(f"h2 {type(e).__name__}", index=i, path="http/2", when=when)

    async def progress() -> None:
        last = (t0, 0)
        while loop.time() < end:
            await asyncio.sleep(a.progress)
            now = loop.time()
            done = st["ok"] + st["failed"]
            print("PROGRESS " + json.dumps({"t": round(now - t0, 1), "done": done, "failed": st["failed"],
                                            "rate": round((done - last[1]) / (now - last[0]), 1)}), flush=True)
            last = (now, done)

    tasks = []
    clients = []
    if h1_rate > 0:
        tasks += [asyncio.create_task(h1_worker()) for _ in range(a.connections)]
    if h2_rate > 0:
        import httpx

        ctx = BrowserAlpn(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(a.ca)
        for _ in range(a.h2_connections):
            # One client = one long-lived HTTP/2 connection; its workers multiplex streams on it.
            client = httpx.AsyncClient(http2=True, verify=ctx,
                                       limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
            clients.append(client)
            tasks += [asyncio.create_task(h2_worker(client)) for _ in range(a.h2_streams)]
    prog = asyncio.create_task(progress())
    await asyncio.gather(*tasks)
    elapsed = loop.time() - t0
    prog.cancel()
    for c in clients:
        await c.aclose()
    lat_sorted = sorted(lat)

    def pct(p: float) -> float:
        return lat_sorted[min(len(lat_sorted) - 1, int(p / 100 * len(lat_sorted)))] * 1000 if lat_sorted else 0.0

    done = st["ok"] + st["failed"]
    return {**st, "elapsed": elapsed, "target_rate": a.rate, "achieved_rate": done / elapsed if elapsed else 0,
            "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": pct(100)}


def generator_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--new-conn-every", type=int, default=10)
    p.add_argument("--h2-share", type=float, default=0.0)
    p.add_argument("--h2-connections", type=int, default=2)
    p.add_argument("--h2-streams", type=int, default=4)
    p.add_argument("--ca", default=None)
    p.add_argument("--tag", default="soak")
    p.add_argument("--timeout", type=float, default=15)
    p.add_argument("--progress", type=float, default=10)
    p.add_argument("--grace", type=float, default=5, help="stop sending this long after the window")
    a = p.parse_args(argv)
    res = asyncio.run(generate(a))
    print("RESULT " + json.dumps(res), flush=True)
    return 0


# ---------------------------------------------------------------- wrk with the same mix (the maximum)

def wrk_mix_lua() -> str:
    """wrk script sending the soak mix (same paths, sizes and bodies), for the maximum."""
    pools = {size: body_pool(size, 4, seed=3) for size in SIZES if any(m[2] == size for m in MIX)}
    lines = ["local bodies = {}"]
    for size, docs in pools.items():
        lines.append(f"bodies[{size}] = {{" + ", ".join("[==[" + d.decode() + "]==]" for d in docs) + "}")
    lines.append("local mix = {" + ", ".join(f'{{{w}, "{m}", {q}, {r}}}' for w, m, q, r in MIX) + "}")
    lines.append(r"""
local i = 0
request = function()
  i = i + 1
  local x = (i * 2654435761) % 100
  for _, m in ipairs(mix) do
    if x < m[1] then
      local path = "/soak/api/items/" .. i .. "?r=" .. m[4] .. "&t=max"
      if m[3] > 0 then
        local b = bodies[m[3]][(i % 4) + 1]
        return wrk.format(m[2], path, {["Content-Type"] = "application/json"}, b)
      end
      return wrk.format(m[2], path)
    end
    x = x - m[1]
  end
end
""")
    return "\n".join(lines) + WRK_LUA


def run_wrk_mix(wrk: str, lua: Path, port: int, duration: float, connections: int) -> dict:
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "-s", str(lua),
           f"http://{HOST}:{port}/"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise BenchError(f"wrk gave no result (exit {out.returncode}): {out.stderr.strip() or out.stdout[-300:]}")


def generator_cmd(a, port: int, work: Path, rate: float, duration: float, tag: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--generate", "--port", str(port),
            "--rate", f"{rate:.3f}", "--duration", str(duration), "--connections", str(a.connections),
            "--new-conn-every", str(a.new_conn_every), "--h2-share", str(a.h2_share),
            "--h2-connections", str(a.h2_connections), "--ca", str(work / "certs" / "mitmproxy-ca-cert.pem"),
            "--progress", str(a.sample), "--tag", tag, "--grace", "0"]


def run_generator(a, port: int, work: Path, rate: float, duration: float, tag: str) -> dict:
    out = subprocess.run(generator_cmd(a, port, work, rate, duration, tag), capture_output=True, text=True,
                         timeout=duration + 120)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise BenchError(f"load generator failed (exit {out.returncode}): {(out.stdout + out.stderr)[-500:]}")


# ---------------------------------------------------------------- probes: process and database

def proc_memory(pid: int) -> dict:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "VmHWM"):
                out[k] = int(v.split()[0])
            elif k == "Threads":
                out[k] = int(v)
        rollup = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            k, _, v = line.partition(":")
            rollup[k] = int(v.split()[0])
        out["Pss"] = rollup.get("Pss", 0)
        out["Uss"] = rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0)
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        pass
    return out


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class Database:
    """Read-only probes of the proxy's database: rows, proxy_stats, size."""

    def __init__(self, url: str, sqlite_path: Path | None) -> None:
        self.url, self.sqlite_path = url, sqlite_path

    def _query(self, sql: str, params=()) -> list[dict]:
        if self.sqlite_path is not None:
            if not self.sqlite_path.exists():
                return []
            con = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=10)
            try:
                cur = con.execute(sql.replace("%s", "?"), params)
                cols = [d[0] for d in cur.description]
                return [dict(zip(cols, row)) for row in cur.fetchall()]
            except sqlite3.Error:
                return []
            finally:
                con.close()
        import psycopg
        from psycopg.rows import dict_row

        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=5, row_factory=dict_row) as con:
                return con.execute(sql, params).fetchall()
        except psycopg.Error:
            return []

    def rows(self, proxy: str | None = None) -> int | None:
        q = "SELECT count(*) AS n FROM exchanges" + (" WHERE proxy = %s" if proxy else "")
        r = self._query(q, (proxy,) if proxy else ())
        return int(r[0]["n"]) if r else None

    def stats(self, proxy: str) -> dict:
        r = self._query("SELECT * FROM proxy_stats WHERE proxy = %s", (proxy,))
        return r[0] if r else {}

    def size(self) -> int:
        if self.sqlite_path is not None:
            # The -wal file is reused, not shrunk, and the proxy checkpoints only every 64 MiB of
            # it: copy the WAL into the database (a passive checkpoint: it waits for nobody and
            # changes no data), then the main file is the database's size.
            if not self.sqlite_path.exists():
                return 0
            con = sqlite3.connect(str(self.sqlite_path), timeout=10)
            try:
                con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                pass
            finally:
                con.close()
            return self.sqlite_path.stat().st_size
        r = self._query("SELECT pg_database_size(current_database()) AS n")
        return int(r[0]["n"]) if r else 0


def wait_until_written(db: Database, proxy: str, expect: int, timeout: float = 120) -> tuple[int | None, dict]:
    """Until the rows reach `expect` and the writer reports an empty queue (or nothing moves for 15 s)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        n = db.rows(proxy)
        s = db.stats(proxy)
        if n is not None and n >= expect and s.get("queue_depth", 0) == 0:
            return n, s
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since > 15:
            break
        time.sleep(1)
    return db.rows(proxy), db.stats(proxy)


# ---------------------------------------------------------------- the soak

def fmt_kib(k: float) -> str:
    return f"{k / 1024:.1f}"


def machine_line() -> str:
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "?"
    now = datetime.datetime.now(datetime.timezone.utc)
    return (f"{now.isoformat(timespec='seconds')}; {os.cpu_count()} CPU(s), {cpu_model()}; "
            f"load avg {load}")


def start_proxy(db_url: str, port: int, up_port: int, work: Path, name: str,
                cpus: str | None = None) -> subprocess.Popen:
    env = dict(os.environ, PASSAGEWAY_SPOOL_DIR=str(work / "spool"), XDG_STATE_HOME=str(work / "state"),
               XDG_DATA_HOME=str(work / "data"))
    cmd = [str(VENV_BIN / "passageway"), "proxy", "--db", db_url, "--listen", f"{HOST}:{port}",
           "--route", f"{SERVICE}=http://{HOST}:{up_port}", "--certs-dir", str(work / "certs"),
           "--proxy-name", name]
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    log = (work / f"{name}.log").open("wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=work, env=env)
    wait_for_port(port, proc, f"passageway proxy {name}", work / f"{name}.log", timeout=60)
    return proc


def soak(a, db_url: str, sqlite_path: Path | None, work: Path) -> int:
    wrk = ensure_wrk()
    up_port, port = free_port(), free_port()
    name = f"soak-{os.getpid()}"
    db = Database(db_url, sqlite_path)
    up_log = work / "upstream.log"
    upstream = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve-upstream", str(up_port)],
                                stdin=subprocess.DEVNULL, stdout=up_log.open("wb"), stderr=subprocess.STDOUT)
    proxy = gen = None
    try:
        wait_for_port(up_port, upstream, "upstream", up_log)
        proxy = start_proxy(db_url, port, up_port, work, name)
        print(f"proxy pid {proxy.pid} on {HOST}:{port}, database {db.url if sqlite_path is None else sqlite_path}, "
              f"upstream {HOST}:{up_port}", flush=True)

        # 1. The maximum, with wrk and the same mix.
        if a.rate:
            rate = a.rate
            print(f"rate given: {rate:.0f} req/s (no maximum measured)")
            max_rps = wrk_max = mix_max = None
        else:
            lua = work / "mix.lua"
            lua.write_text(wrk_mix_lua())
            print(f"maximum: wrk -t1 -c10 -d{a.max_duration:g}s, the soak mix ...", flush=True)
            cpu0 = cpu_seconds(proxy.pid)
            res = run_wrk_mix(wrk, lua, port, a.max_duration, 10)
            cpu1 = cpu_seconds(proxy.pid)
            max_rps = res["requests"] / (res["duration_us"] / 1e6)
            errs = {k: v for k, v in res.items() if k.startswith("err_") and v}
            print(f"maximum: {max_rps:.0f} req/s (p50 {res['p50_us'] / 1000:.1f} ms, p99 {res['p99_us'] / 1000:.1f} ms, "
                  f"proxy CPU {(cpu1 - cpu0) / res['requests'] * 1e6:.0f} us/req{', errors ' + str(errs) if errs else ''})",
                  flush=True)
            # wrk sends keep-alive HTTP/1.1 only; the soak's load also opens new connections and
            # speaks HTTP/2 over TLS, which cost the proxy more. So the maximum for the soak is
            # the paced generator's own, run flat out (closed loop) with the soak's settings;
            # the lower of the two is the 100% the load is taken from.
            print(f"maximum: the load generator flat out for {a.max_duration:g}s (the soak's mix, new "
                  f"connections and HTTP/2 included) ...", flush=True)
            gen_max = run_generator(a, port, work, rate=100000, duration=a.max_duration, tag="max")
            mix_max = gen_max["achieved_rate"]
            print(f"maximum: {mix_max:.0f} req/s with the soak's connections (p50 {gen_max['p50_ms']:.0f} ms "
                  f"from the scheduled time; {gen_max['failed']} failed)", flush=True)
            wrk_max = max_rps
            max_rps = min(max_rps, mix_max)
            rate = a.load * max_rps
        # Let the max run's rows land, so the soak's database growth is its own.
        base_rows, _ = wait_until_written(db, name, upstream_counts(up_port).get("max", 0), timeout=60)
        if not a.rate:
            print(f"  (rows of the maximum runs: {base_rows})", flush=True)
        base_rows = base_rows or 0
        base_size = db.size()
        base_answered = upstream_counts(up_port).get("soak", 0)

        # 2. The soak.
        gen_cmd = generator_cmd(a, port, work, rate, a.duration, "soak")
        gen_cmd[gen_cmd.index("--grace") + 1] = "5"
        warmup = a.warmup if a.warmup is not None else min(60.0, max(30.0, a.duration * 0.1))
        print(f"soak: {rate:.0f} req/s{f' ({a.load:.0%} of the maximum)' if max_rps else ''} for {a.duration:g} s; "
              f"{a.connections} keep-alive connections, every {a.new_conn_every}th request on a new connection, "
              f"{a.h2_share:.0%} over {a.h2_connections} HTTP/2 connection(s); sample every {a.sample:g} s, "
              f"warm-up {warmup:g} s excluded", flush=True)
        hdr = (f"{'t s':>5} {'req/s':>6} {'RSS MiB':>8} {'anon':>6} {'PSS':>6} {'USS':>6} {'fds':>4} {'thr':>3} "
               f"{'CPU%':>5} {'queue':>5} {'submitted':>9} {'written':>8} {'drop':>4} {'lost':>4} {'DB MiB':>8}"
               f"  other proxy_stats")
        print(hdr)
        import resource

        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        gen = subprocess.Popen(gen_cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
        gen_lines: list[str] = []
        latest = {"rate": 0.0}

        def read_gen() -> None:
            for line in gen.stdout:
                gen_lines.append(line)
                if line.startswith("PROGRESS "):
                    latest.update(json.loads(line[9:]))

        reader = threading.Thread(target=read_gen, daemon=True)
        reader.start()
        samples = []
        t0 = time.monotonic()
        cpu_prev, t_prev = cpu_seconds(proxy.pid), t0
        known = {"proxy", "started_at", "updated_at", "submitted", "written", "dropped", "lost", "queue_depth",
                 "last_error", "stopped_at", "write_seconds", "write_batches", "failed_batches"}
        next_at = t0 + a.sample
        while gen.poll() is None:
            time.sleep(max(0.0, min(next_at - time.monotonic(), 1.0)))
            if time.monotonic() < next_at:
                continue
            next_at += a.sample
            now = time.monotonic()
            m = proc_memory(proxy.pid)
            cpu = cpu_seconds(proxy.pid)
            s = db.stats(name)
            size = db.size()
            row = {"t": round(now - t0, 1), "rate": latest.get("rate", 0.0), **m,
                   "cpu_pct": (cpu - cpu_prev) / (now - t_prev) * 100, "db_bytes": size,
                   "stats": {k: (v.isoformat() if isinstance(v, datetime.datetime) else v) for k, v in s.items()}}
            cpu_prev, t_prev = cpu, now
            samples.append(row)
            other = " ".join(f"{k}={v}" for k, v in s.items() if k not in known and v not in (None, 0))
            print(f"{row['t']:>5.0f} {row['rate']:>6.0f} {fmt_kib(m.get('VmRSS', 0)):>8} "
                  f"{fmt_kib(m.get('RssAnon', 0)):>6} {fmt_kib(m.get('Pss', 0)):>6} {fmt_kib(m.get('Uss', 0)):>6} "
                  f"{m.get('fds', 0):>4} {m.get('Threads', 0):>3} {row['cpu_pct']:>5.0f} "
                  f"{s.get('queue_depth', '-'):>5} {s.get('submitted', '-'):>9} {s.get('written', '-'):>8} "
                  f"{s.get('dropped', '-'):>4} {s.get('lost', '-'):>4} {size / 2**20:>8.1f}  {other}", flush=True)
        gen.wait()
        reader.join(timeout=10)
        result = next((json.loads(line[7:]) for line in gen_lines if line.startswith("RESULT ")), None)
        if result is None:
            print("load generator failed:\n" + "".join(gen_lines[-20:]), file=sys.stderr)
            return 2
        # The generator's own CPU: it is the only child reaped since children0.
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        gen_cpu = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)

        # 3. Flush and count.
        sent = result["ok"] + result["failed"]
        print(f"load done: {sent} requests in {result['elapsed']:.1f} s; waiting for the writer to flush ...", flush=True)
        rows, stats_end = wait_until_written(db, name, base_rows + sent)
        size_end = db.size()
        mem_end = proc_memory(proxy.pid)
        answered = upstream_counts(up_port).get("soak", 0) - base_answered
        stop(proxy, timeout=30)
        rows_after_stop = db.rows(name)
        stats_stop = db.stats(name)
    finally:
        if gen is not None and gen.poll() is None:
            gen.kill()
        if proxy is not None:
            stop(proxy)
        stop(upstream, timeout=5)

    # 4. The report.
    stored = (rows or 0) - base_rows
    stored_after_stop = (rows_after_stop or 0) - base_rows
    post = [s for s in samples if s["t"] > warmup] or samples[-1:]
    rss0, rss1 = post[0].get("VmRSS", 0), post[-1].get("VmRSS", 0)
    rss_max = max(s.get("VmRSS", 0) for s in post)
    uss0, uss1 = post[0].get("Uss", 0), post[-1].get("Uss", 0)
    growth = (rss1 - rss0) / rss0 * 100 if rss0 else float("nan")
    growth_max = (rss_max - rss0) / rss0 * 100 if rss0 else float("nan")
    # Least-squares slope of RSS over the post-warm-up window, MiB per 10 minutes.
    if len(post) >= 3:
        xs = [s["t"] for s in post]
        ys = [s.get("VmRSS", 0) / 1024 for s in post]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        den = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den * 600 if den else 0.0
    else:
        slope = float("nan")
    fds = [s.get("fds", 0) for s in post]
    queue_max = max((s["stats"].get("queue_depth") or 0) for s in samples) if samples else 0
    per_1000 = (size_end - base_size) / stored * 1000 if stored > 0 else float("nan")
    ok_mem = growth == growth and growth <= a.max_growth
    ok_rows = stored == sent and stored_after_stop == sent
    ok_req = result["failed"] == 0
    print()
    print(f"Soak report — {machine_line()}")
    print(f"  proxy: passageway proxy, database {'SQLite (WAL)' if sqlite_path else 'PostgreSQL'}; "
          f"{'maximum %.0f req/s (the lower of wrk -t1 -c10 keep-alive %.0f and the generator flat out %.0f, %gs each, same mix)' % (max_rps, wrk_max, mix_max, a.max_duration) if max_rps else 'rate given'}")
    print(f"  load: target {rate:.0f} req/s{' = %.0f%% of the maximum' % (a.load * 100) if max_rps else ''}, "
          f"achieved {result['achieved_rate']:.1f} req/s ({(result['achieved_rate'] / rate - 1) * 100:+.1f}%) "
          f"over {result['elapsed']:.0f} s; latency from the scheduled time p50 {result['p50_ms']:.1f} ms, "
          f"p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.0f} ms; generator CPU "
          f"{gen_cpu / result['elapsed'] * 100:.0f}% of a core")
    if result["unsent"] or result["achieved_rate"] < 0.95 * rate:
        print(f"  WARNING: the proxy did not keep up with the target rate ({result['unsent']} scheduled requests "
              f"never sent): the machine is busier than when the maximum was measured, or the maximum is too "
              f"high for this mix; the memory figures are for an overloaded proxy")
    print(f"  requests: {sent} sent, {result['failed']} failed {result['errors'] or ''}; "
          f"{result['new_conns']} on new connections, {result['h2']} over HTTP/2; upstream answered {answered}")
    for failure in result.get("failures", []):
        print(f"    failed: {failure}")
    print(f"  exchanges stored: {stored} after the writer flushed, {stored_after_stop} after SIGINT "
          f"(sent {sent}): {'EQUAL' if ok_rows else 'DIFFERENT'}; writer at the end: "
          f"submitted {stats_stop.get('submitted')}, written {stats_stop.get('written')}, "
          f"dropped {stats_stop.get('dropped')}, lost {stats_stop.get('lost')}")
    print(f"  memory after warm-up ({warmup:g} s): RSS {fmt_kib(rss0)} -> {fmt_kib(rss1)} MiB ({growth:+.1f}%), "
          f"max {fmt_kib(rss_max)} MiB ({growth_max:+.1f}%), trend {slope:+.1f} MiB per 10 min; "
          f"USS {fmt_kib(uss0)} -> {fmt_kib(uss1)} MiB; after flush {fmt_kib(mem_end.get('VmRSS', 0))} MiB; "
          f"peak (VmHWM) {fmt_kib(mem_end.get('VmHWM', 0))} MiB")
    print(f"  file descriptors after warm-up: {fds[0] if fds else '-'} -> {fds[-1] if fds else '-'} "
          f"(min {min(fds) if fds else '-'}, max {max(fds) if fds else '-'}); threads "
          f"{post[0].get('Threads', '-') if post else '-'} -> {post[-1].get('Threads', '-') if post else '-'}")
    print(f"  writer queue depth: max {queue_max} (proxy_stats, reported every 5 s)")
    print(f"  database: {(size_end - base_size) / 2**20:.1f} MiB for {stored} exchanges = "
          f"{per_1000 / 1024:.0f} KiB per 1,000 exchanges ({'pg_database_size' if sqlite_path is None else 'the file after a passive WAL checkpoint'}"
          f"; before the search index, which the inspector builds)")
    verdict = [f"memory growth {growth:+.1f}% (<= {a.max_growth:g}%) {'PASS' if ok_mem else 'FAIL'}",
               f"stored = sent {'PASS' if ok_rows else 'FAIL'}",
               f"failed requests 0 {'PASS' if ok_req else 'FAIL'}"]
    print("  " + "; ".join(verdict))
    if a.json:
        a.json.write_text(json.dumps({"samples": samples, "result": result, "max_rps": max_rps, "rate": rate,
                                      "stored": stored, "sent": sent, "growth_pct": growth,
                                      "bytes_per_1000": per_1000}, indent=1, default=str))
    return 0 if (ok_mem and ok_rows and ok_req) else 1


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=600, help="soak seconds (default 600)")
    p.add_argument("--db", choices=("postgres", "sqlite"), default="postgres",
                   help="a fresh PostgreSQL database (default) or an SQLite file")
    p.add_argument("--load", type=float, default=0.8, help="share of the maximum to drive (default 0.8)")
    p.add_argument("--rate", type=float, default=None, help="req/s to drive; skips measuring the maximum")
    p.add_argument("--max-duration", type=float, default=15, help="seconds of wrk for the maximum (default 15)")
    p.add_argument("--sample", type=float, default=10, help="seconds between samples (default 10)")
    p.add_argument("--warmup", type=float, default=None,
                   help="seconds excluded from the memory figures (default 10%% of --duration, 30..60)")
    p.add_argument("--connections", type=int, default=16, help="keep-alive connections (default 16)")
    p.add_argument("--new-conn-every", type=int, default=10,
                   help="every Nth HTTP/1.1 request goes on a new connection (default 10; 0: never)")
    p.add_argument("--h2-share", type=float, default=0.05,
                   help="share of the rate sent over long-lived HTTP/2 connections via TLS (default 0.05)")
    p.add_argument("--h2-connections", type=int, default=2, help="HTTP/2 connections (default 2)")
    p.add_argument("--max-growth", type=float, default=10, help="RSS growth %% after warm-up that fails (10)")
    p.add_argument("--json", type=Path, default=None, help="also write the samples and totals here")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, SQLite file) and say where")
    a = p.parse_args(argv)
    if not (10 <= a.duration <= 7200 and 0 < a.load <= 1 and 0 <= a.h2_share <= 1 and a.sample >= 1):
        p.error("duration 10..7200, load 0..1, h2-share 0..1, sample >= 1")
    return a


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--serve-upstream"]:
        serve_upstream(int(argv[1]))
        return 0
    if argv[:1] == ["--generate"]:
        return generator_main(argv[1:])
    a = parse_args(argv)
    if not (VENV_BIN / "passageway").exists():
        print(f"error: {VENV_BIN / 'passageway'} not found: run `make venv` first", file=sys.stderr)
        return 2
    print(f"soak — {machine_line()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="passageway-soak-"))
    try:
        if a.db == "sqlite":
            path = work / "soak.db"
            return soak(a, f"sqlite:///{path}", path, work)
        with scratch_postgres("pw_soak") as url:
            if url is None:
                return 2
            return soak(a, url, None, work)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if a.keep:
            print(f"kept {work}")
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
