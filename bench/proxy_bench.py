"""Proxy benchmark: Passageway against plain mitmdump, in one run, on one upstream.

Arms (each a fresh process per round, the order shuffled every round):

    direct          wrk -> upstream
    mitmdump        mitmdump --mode reverse (flow log printed, to /dev/null)
    mitmdump -q     the same, quiet: the baseline every ratio is taken against
    mitmdump -q -w  the same, saving every flow to a file
    passageway      passageway proxy, gateway routing, capturing to SQLite through its spool
    passageway memory   the same without the spool (--spool-max-bytes 0): what the spool costs

`passageway proxy` is a supervisor of worker processes and a writer process: for the passageway
arms the CPU column is the workers' (their event-loop threads in brackets) and the writer's is
printed apart.

Load: wrk, one thread, N connections (default 10), keep-alive, GET of a ~1 KiB
JSON body from a tiny asyncio upstream. Each arm gets a warm-up (discarded)
and a measured window on distinct paths, so the upstream, the flow file and
the database can each be counted for the measured window alone.

Every arm of a round runs at once, and its measured window is cut in slices (--slices; one per
2 s) taken in turn with the other arms', each arm paused with SIGSTOP (all its processes) while
another is measured: every arm spans the same stretch of the round, so the machine's other load
moving for a few seconds falls on all of them alike. Its p50 and p99 are those of all its slices'
requests together (pooled from wrk's percentiles at a 0.1% grid above p90).

Run via `make bench` (bench/run.py), or directly:
    .venv/bin/python bench/proxy_bench.py [--rounds 3] [--duration 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# A git worktree has no .venv of its own: PASSAGEWAY_BENCH_VENV names the one to use (its
# `passageway` still runs this tree's code: the passageway arms get PYTHONPATH=REPO).
VENV_BIN = Path(os.environ.get("PASSAGEWAY_BENCH_VENV") or REPO / ".venv") / "bin"
HOST = "127.0.0.1"  # the only address this benchmark ever sends traffic to
BASELINE = "mitmdump -q"
ARMS = ("direct", "mitmdump", "mitmdump -q", "mitmdump -q -w", "passageway", "passageway memory", "passageway base")
"""`passageway base`: the `passageway` arm on another checkout (--base-tree), e.g. main, to compare
a branch with it side by side in one run."""
STORING_ARMS = ("mitmdump -q -w", "passageway", "passageway memory", "passageway base")
CONNECTIONS_KEY = "__connections__"  # upstream's count of accepted connections
TARGET_RPS_RATIO = 0.95
TARGET_P99_RATIO = 1.05
"""The `passageway` arm's p99 against the same round's baseline, in every round."""

PERCENTILE_GRID = (*range(1, 90), *(p / 10 for p in range(900, 1000)), 99.95, 99.99, 100)
"""The percentiles wrk reports for each measured slice: enough to pool slices (pooled_percentile)."""
# wrk prints this line from the Lua `done` hook; easier and exacter than parsing its text.
WRK_LUA = r"""
local grid = {GRID}
done = function(summary, latency, requests)
  local e = summary.errors
  local values = {}
  -- percentile(100) is 0 in wrk 4: the top of the grid is the maximum
  for i, p in ipairs(grid) do values[i] = string.format("%d", p < 100 and latency:percentile(p) or latency.max) end
  io.write(string.format(
    "BENCH_JSON {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d," ..
    "\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,\"mean_us\":%.1f,\"max_us\":%d," ..
    "\"err_connect\":%d,\"err_read\":%d,\"err_write\":%d,\"err_status\":%d,\"err_timeout\":%d," ..
    "\"grid\":[%s]}\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(values, ",")))
end
""".replace("{GRID}", "{" + ", ".join(f"{p:g}" for p in PERCENTILE_GRID) + "}")


# ---------------------------------------------------------------- upstream

def _upstream_body() -> bytes:
    items = [{"id": i, "name": f"item-{i:04d}", "ok": True} for i in range(24)]
    body = json.dumps({"service": "bench-upstream", "items": items}).encode()
    return (body + b" " * 1024)[:1024] if len(body) < 1024 else body


def take_request(buf: bytearray) -> bytes | None:
    """The head of the first whole HTTP/1.1 request in `buf` (its body skipped by Content-Length),
    removed from `buf`; None while the request is incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end])
    low = head.lower()
    length = 0
    i = low.find(b"\r\ncontent-length:")
    if i >= 0:
        j = low.find(b"\r\n", i + 2)
        length = int(low[i + 17 : j if j >= 0 else None].strip() or 0)
    total = end + 4 + length
    if len(buf) < total:
        return None
    del buf[:total]
    return head


class _UpstreamProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 keep-alive server: fixed JSON body, counts requests per last path segment."""

    counts: dict[str, int] = {}
    response = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buf = bytearray()
        counts = _UpstreamProtocol.counts
        counts[CONNECTIONS_KEY] = counts.get(CONNECTIONS_KEY, 0) + 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (request_head := take_request(self.buf)) is not None:
            head = request_head.lower()
            target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
            if target.startswith(b"/__bench/count"):
                payload = json.dumps(_UpstreamProtocol.counts).encode()
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(payload), payload)
                )
            else:
                key = target.rsplit(b"/", 1)[-1].split(b"?", 1)[0].decode("latin-1")[:64]
                counts = _UpstreamProtocol.counts
                if key in counts or len(counts) < 10000:
                    counts[key] = counts.get(key, 0) + 1
                self.transport.write(_UpstreamProtocol.response)
            if b"\r\nconnection: close" in head:
                self.transport.close()
                return


def serve_upstream(port: int) -> None:
    body = _upstream_body()
    _UpstreamProtocol.response = (
        b"HTTP/1.1 200 OK\r\nServer: bench-upstream\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_UpstreamProtocol, HOST, port, backlog=1024, reuse_address=True)
        async with server:
            await server.serve_forever()

    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


# ---------------------------------------------------------------- helpers

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, log: Path | None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode} before listening{_log_tail(log)}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{what} did not listen on {HOST}:{port} within {timeout:.0f}s{_log_tail(log)}")


def _log_tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return ("\n  log " + str(log) + ":\n    " + "\n    ".join(tail)) if tail else ""


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGINT (mitmproxy flushes and shuts down cleanly on it), then SIGKILL if it hangs."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _stat_cpu(path: str) -> float:
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(all threads, main thread) utime + stime of a process, from /proc.

    The main thread runs mitmproxy's event loop; the rest is mostly Passageway's writer thread.
    """
    try:
        return _stat_cpu(f"/proc/{pid}/stat"), _stat_cpu(f"/proc/{pid}/task/{pid}/stat")
    except (OSError, IndexError, ValueError):
        return float("nan"), float("nan")


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def proxy_cpu_seconds(pid: int) -> tuple[float, float, float]:
    """(the proxy's CPU, its event loops', the writer process's). `passageway proxy` is a supervisor:
    then its workers' CPU (all threads; main threads) and its writer's; else the process's own."""
    workers, writers = [], []
    for child in _children(pid):
        try:
            words = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--worker" in words:
            workers.append(child)
        elif b"writer" in words:
            writers.append(child)
    if not workers:
        workers = [pid]
    parts = [cpu_seconds(worker) for worker in workers]
    writer_cpu = sum(cpu_seconds(w)[0] for w in writers) if writers else float("nan")
    return sum(p[0] for p in parts), sum(p[1] for p in parts), writer_cpu


class BenchError(Exception):
    """The benchmark cannot go on (a tool is missing, a process would not start)."""


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found; installing it with apt-get", file=sys.stderr)
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
            subprocess.run(install, env=env, stdout=subprocess.DEVNULL)
        wrk = shutil.which("wrk")
        if wrk:
            return wrk
    raise BenchError("wrk is not installed: install it (Debian/Ubuntu: sudo apt-get install wrk) and run again")


def upstream_count(up_port: int, key: str) -> int:
    with urllib.request.urlopen(f"http://{HOST}:{up_port}/__bench/count", timeout=5) as r:
        return int(json.load(r).get(key, 0))


def count_flows(path: Path, key: str) -> int:
    from mitmproxy import io as mio

    n = 0
    with path.open("rb") as f:
        for flow in mio.FlowReader(f).stream():
            req = getattr(flow, "request", None)
            if req is not None and req.path.rsplit("/", 1)[-1] == key:
                n += 1
    return n


def count_rows(db: Path, key: str) -> int | None:
    """Rows captured for the measured path; None while the schema is not there yet."""
    if not db.exists():
        return None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        table = "exchanges" if "exchanges" in tables else next((t for t in tables if "exchange" in t
                                                              and "websocket" not in t), None)
        if table is None:
            return None
        cols = {r[1] for r in con.execute(f'PRAGMA table_info("{table}")')}
        if "path" in cols:
            return con.execute(f'SELECT count(*) FROM "{table}" WHERE path LIKE ?', (f"%/{key}",)).fetchone()[0]
        return con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    except sqlite3.Error:
        return None
    finally:
        con.close()


def poll_until_stable(read, settle: float = 1.0, timeout: float = 30.0):
    """Call read() until its value has not changed for `settle` seconds (bounded by timeout)."""
    last = read()
    since = time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        value = read()
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= settle:
            break
    return last


# ---------------------------------------------------------------- profiling (optional)

def summarize_profile(raw: Path, top: int = 15) -> str:
    """Top frames from a py-spy raw (collapsed) profile: self time overall, inclusive time in our code."""
    self_t: dict[str, int] = {}
    incl_ours: dict[str, int] = {}
    threads = {"event loop": 0, "writer thread": 0, "other": 0}
    total = 0
    ours = (f"{REPO}/proxy/", f"{REPO}/storage/")
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        total += count
        # Aggregate by function, not line: "func (file:123)" -> "func (file)".
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        self_t[frames[-1]] = self_t.get(frames[-1], 0) + count
        for frame in set(frames):
            if any(o in frame for o in ours):
                incl_ours[frame] = incl_ours.get(frame, 0) + count
        if any("run_forever" in f or "_run_once" in f for f in frames):
            threads["event loop"] += count
        elif any("writer" in f for f in frames):
            threads["writer thread"] += count
        else:
            threads["other"] += count
    if not total:
        return "  (no samples)"

    def short(frame: str) -> str:
        return frame.replace(str(REPO) + "/", "").replace(str(REPO / ".venv/lib/python3.13/site-packages") + "/", "")

    out = ["  samples by thread: " + ", ".join(f"{k} {v / total:.0%}" for k, v in threads.items())]
    out.append(f"  top self time ({total} samples):")
    for frame, n in sorted(self_t.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"    {n / total:6.1%}  {short(frame)}")
    out.append("  our code, inclusive:")
    for frame, n in sorted(incl_ours.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"    {n / total:6.1%}  {short(frame)}")
    return "\n".join(out)


# ---------------------------------------------------------------- one arm, one round

@dataclass
class ArmResult:
    arm: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    completed: int           # wrk: requests completed in the measured window
    served: int              # upstream: requests it answered for the measured path
    stored: int | None       # flows in the -w file / rows in the db; None when the arm stores nothing
    stored_before_stop: int | None = None
    errors: dict = field(default_factory=dict)
    cpu_us_per_req: float = float("nan")   # proxy process CPU time per completed request
    loop_cpu_us_per_req: float = float("nan")  # the same, main (event loop) thread only
    writer_cpu_us_per_req: float = float("nan")  # the writer process's CPU per request
    slices: int = 1          # measured windows, interleaved with the other arms' (ArmRun)
    slice_p99_ms: list = field(default_factory=list)  # each slice's own p99, in the order run


def run_wrk(wrk: str, lua: Path, url: str, duration: float, connections: int) -> dict:
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "-s", str(lua), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise BenchError(f"wrk gave no result (exit {out.returncode}): {out.stderr.strip() or out.stdout[-300:]}")


def arm_command(arm: str, up_port: int, port: int, work: Path) -> list[str] | None:
    mitmdump = str(VENV_BIN / "mitmdump")
    reverse = ["--mode", f"reverse:http://{HOST}:{up_port}@{HOST}:{port}"]
    if arm == "direct":
        return None
    if arm == "mitmdump":
        return [mitmdump, *reverse]
    if arm == "mitmdump -q":
        return [mitmdump, "-q", *reverse]
    if arm == "mitmdump -q -w":
        return [mitmdump, "-q", "-w", str(work / "flows.mitm"), *reverse]
    if arm in ("passageway", "passageway memory", "passageway base"):
        spool = ["--spool-max-bytes", "0"] if arm == "passageway memory" else ["--spool-dir", str(work / "spool")]
        # `python -m cli`, not the venv's entry script: that one is written for the checkout installed
        # in the venv, and the passageway arms run this tree's (or --base-tree's) code.
        return [str(VENV_BIN / "python"), "-m", "cli", "proxy", "--db", f"sqlite:///{work / 'bench.db'}",
                "--listen", f"{HOST}:{port}", "--route", f"bench=http://{HOST}:{up_port}", *spool]
    raise ValueError(arm)


class ArmRun:
    """One arm in one round: its process started and warmed up once, then measured in slices that
    alternate with the other arms' (SIGSTOP keeps it, and every process it started, off the CPU
    while another arm is measured), then stopped and checked. Interleaving puts every arm across
    the same stretch of the round, so a change in the machine's other load (a noisy neighbour for
    a few seconds) falls on all arms alike instead of on whichever ran then."""

    def __init__(self, arm: str, rnd: int, args, wrk: str, lua: Path, up_port: int, tmp: Path) -> None:
        self.arm, self.rnd, self.args, self.wrk, self.lua, self.up_port = arm, rnd, args, wrk, lua, up_port
        self.work = Path(tempfile.mkdtemp(prefix=f"r{rnd}-{arm.replace(' ', '').replace('-', '_')}-", dir=tmp))
        self.port = up_port if arm == "direct" else free_port()
        tag = f"{rnd}-{arm.replace(' ', '').replace('-', '')}-{random.randrange(1 << 30):x}"
        self.warm_key, self.key = f"w{tag}", f"m{tag}"
        self.log = self.work / "proxy.log"
        self.proc: subprocess.Popen | None = None
        self.slices: list[dict] = []
        self.cpu = [0.0, 0.0, 0.0]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/bench/"

    def start(self) -> None:
        """Start the proxy, warm it up (discarded), let the warm-up's rows land, and pause it."""
        cmd = arm_command(self.arm, self.up_port, self.port, self.work)
        if cmd is not None:
            # The non-quiet mitmdump arm prints a line per flow: send it to /dev/null as in the reference.
            out = subprocess.DEVNULL if self.arm == "mitmdump" else self.log.open("wb")
            env = None
            if self.arm.startswith("passageway"):  # the code of this tree (or of --base-tree), not the venv's install
                env = {**os.environ, "PYTHONPATH": str(self.args.base_tree if self.arm == "passageway base" else REPO)}
            # A session of its own: SIGSTOP and SIGCONT reach the supervisor, its workers and its writer.
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         cwd=self.work, env=env, start_new_session=True)
            wait_for_port(self.port, self.proc, self.arm, None if self.arm == "mitmdump" else self.log)
        if self.args.warmup > 0:
            run_wrk(self.wrk, self.lua, self.url + self.warm_key, self.args.warmup, self.args.connections)
        if self.arm.startswith("passageway"):   # let the warm-up's rows land so they do not share the window
            poll_until_stable(lambda: count_rows(self.work / "bench.db", self.warm_key), settle=0.5, timeout=15)
        self._signal(signal.SIGSTOP)

    def _signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signum)

    def measure(self, seconds: float, profile: Path | None = None) -> dict:
        """One measured slice: resume, load for `seconds`, let what is in flight finish and be stored, pause."""
        self._signal(signal.SIGCONT)
        spy = None
        if profile is not None and self.proc is not None:
            spy = subprocess.Popen(
                [str(VENV_BIN / "py-spy"), "record", "--format", "raw", "--full-filenames", "--rate", "200",
                 "--subprocesses", "--duration", str(max(1, round(seconds))), "--pid", str(self.proc.pid),
                 "--output", str(profile)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = proxy_cpu_seconds(self.proc.pid) if self.proc else (float("nan"),) * 3
        res = run_wrk(self.wrk, self.lua, self.url + self.key, seconds, self.args.connections)
        after = proxy_cpu_seconds(self.proc.pid) if self.proc else (float("nan"),) * 3
        if spy is not None:
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait(timeout=5)
        self.cpu = [total + b - a for total, a, b in zip(self.cpu, before, after, strict=True)]
        self.slices.append(res)
        # Paused only once quiet: what wrk left in flight is answered, and (Passageway) the writer has
        # stored the slice, so no arm starts its next slice with the last one's work still to do.
        time.sleep(0.2)
        if self.arm.startswith("passageway"):
            poll_until_stable(lambda: count_rows(self.work / "bench.db", self.key), settle=0.3, timeout=10)
        self._signal(signal.SIGSTOP)
        return res

    def finish(self) -> ArmResult:
        """Resume, wait for the rows, stop the proxy, and count what reached the upstream and the store."""
        self._signal(signal.SIGCONT)
        stored = before_stop = None
        if self.arm.startswith("passageway"):
            before_stop = poll_until_stable(lambda: count_rows(self.work / "bench.db", self.key))
        if self.proc is not None:
            stop(self.proc)
            if self.proc.returncode not in (0, -signal.SIGINT, 130) and self.arm != "mitmdump":
                print(f"  note: {self.arm} exited with {self.proc.returncode}{_log_tail(self.log, 5)}", file=sys.stderr)
        if self.arm == "mitmdump -q -w":
            stored = count_flows(self.work / "flows.mitm", self.key)
        elif self.arm.startswith("passageway"):
            stored = count_rows(self.work / "bench.db", self.key)
        served = upstream_count(self.up_port, self.key)
        completed, secs, errors = slice_totals(self.slices)
        per_request = (lambda seconds: seconds / completed * 1e6) if completed else (lambda _: float("nan"))
        return ArmResult(
            arm=self.arm, round=self.rnd, rps=completed / secs if secs else 0.0,
            p50_ms=pooled_percentile(self.slices, 50) / 1000, p99_ms=pooled_percentile(self.slices, 99) / 1000,
            completed=completed, served=served, stored=stored, stored_before_stop=before_stop, errors=errors,
            slices=len(self.slices), slice_p99_ms=[s["p99_us"] / 1000 for s in self.slices],
            cpu_us_per_req=per_request(self.cpu[0]),
            loop_cpu_us_per_req=per_request(self.cpu[1]), writer_cpu_us_per_req=per_request(self.cpu[2]),
        )

    def close(self) -> None:
        if self.proc is not None:
            self._signal(signal.SIGCONT)
            stop(self.proc)
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)


def run_round(order: list[str], rnd: int, args, wrk: str, lua: Path, up_port: int, tmp: Path,
              failures: list[str]) -> list[ArmResult]:
    """Every arm of a round: each started and warmed up, then measured in args.slices slices
    taken in turn (the order rotated each time), then checked."""
    runs: list[ArmRun] = []
    results: list[ArmResult] = []

    def failed(run: ArmRun, error: BenchError) -> None:
        print(f"  {run.arm:<18} FAILED: {error}", flush=True)
        failures.append(f"round {rnd} {run.arm}: {str(error).splitlines()[0]}")
        runs.remove(run)
        run.close()

    try:
        for arm in order:
            run = ArmRun(arm, rnd, args, wrk, lua, up_port, tmp)
            runs.append(run)
            try:
                run.start()
            except BenchError as e:
                failed(run, e)
        seconds = args.duration / args.slices
        for index in range(args.slices):
            turn = index % len(runs) if runs else 0
            for run in runs[turn:] + runs[:turn]:
                try:
                    run.measure(seconds)
                except BenchError as e:
                    failed(run, e)
        for run in list(runs):
            try:
                r = run.finish()
            except BenchError as e:
                failed(run, e)
                continue
            results.append(r)
            extra = "" if r.stored is None else f", stored {r.stored}"
            print(f"  {r.arm:<18} {r.rps:8.0f} req/s  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms  "
                  f"(completed {r.completed}, upstream {r.served}{extra})", flush=True)
    finally:
        for run in runs:
            run.close()
    return results


def slice_totals(slices: list[dict]) -> tuple[int, float, dict[str, int]]:
    """What wrk reported for an arm's slices together: requests, seconds, and errors by kind."""
    errors: dict[str, int] = {}
    for s in slices:
        for name, count in s.items():
            if name.startswith("err_") and count:
                errors[name[4:]] = errors.get(name[4:], 0) + count
    return sum(s["requests"] for s in slices), sum(s["duration_us"] for s in slices) / 1e6, errors


def pooled_percentile(slices: list[dict], percent: float) -> float:
    """The `percent` percentile (µs) of the requests of all `slices` together, from each slice's
    count and its wrk percentiles at PERCENTILE_GRID: the latency at which the slices' cumulative
    shares (each interpolated between its grid points), weighted by their requests, reach `percent`."""
    slices = [s for s in slices if s.get("requests")]
    if not slices:
        return float("nan")
    total = sum(s["requests"] for s in slices)

    def share(latency: float) -> float:
        reached = 0.0
        for s in slices:
            values = s["grid"]
            i = bisect.bisect_right(values, latency)
            if i == 0:
                below = 0.0
            elif i == len(values):
                below = 100.0
            else:
                low, high = values[i - 1], values[i]
                below = PERCENTILE_GRID[i - 1] + (PERCENTILE_GRID[i] - PERCENTILE_GRID[i - 1]) * (latency - low) / (high - low)
            reached += s["requests"] * below / 100
        return reached / total

    low, high = min(s["grid"][0] for s in slices), max(s["grid"][-1] for s in slices)
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if share(middle) < percent / 100 else (low, middle)
    return high


# ---------------------------------------------------------------- report

def med(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def integrity(r: ArmResult, connections: int) -> str:
    """Every completed request reached the upstream, and (storing arms) every one was stored.

    wrk stops with up to `connections` requests in flight: the upstream (and a proxy) may finish
    those after wrk has stopped counting, so served/stored may exceed completed by at most that,
    in each of the arm's slices.
    """
    connections *= r.slices
    got = r.served if r.stored is None else r.stored
    if got < r.completed:
        return f"MISSING {r.completed - got}"
    if got - r.completed > connections:
        return f"EXTRA {got - r.completed}"
    if r.stored is not None and r.stored != r.served:
        return f"stored!=served ({r.stored - r.served:+d})"
    return "ok" if got == r.completed else f"ok (+{got - r.completed} in flight)"


def report(results: list[ArmResult], arms: list[str], args) -> bool:
    by_arm = {a: [r for r in results if r.arm == a] for a in arms}
    base = by_arm.get(BASELINE) or []
    base_rps = med(r.rps for r in base)
    base_p99 = med(r.p99_ms for r in base)
    base_by_round = {r.round: r for r in base}
    base_cpu = med(r.cpu_us_per_req for r in base)

    print()
    print(f"Proxy benchmark: wrk -t1 -c{args.connections}, {args.duration:g}s per arm in {args.slices} slice(s) "
          f"taken in turn with the other arms' (+{args.warmup:g}s warm-up), {args.rounds} round(s), medians over rounds; "
          f"ratios to `{BASELINE}`")
    hdr = (f"{'arm':<18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'x req/s':>8} {'x p99':>7} "
           f"{'CPU us/req':>15} {'x CPU':>6}  {'completed / stored-or-served':<30}")
    print(hdr)
    print("-" * len(hdr))
    for a in arms:
        rs = by_arm[a]
        if not rs:
            continue
        rps, p50, p99 = med(r.rps for r in rs), med(r.p50_ms for r in rs), med(r.p99_ms for r in rs)
        x_rps = rps / base_rps if base_rps else float("nan")
        x_p99 = p99 / base_p99 if base_p99 else float("nan")
        completed = sum(r.completed for r in rs)
        got = sum((r.served if r.stored is None else r.stored) for r in rs)
        what = "served" if rs[0].stored is None else ("flows" if a == "mitmdump -q -w" else "rows")
        checks = [integrity(r, args.connections) for r in rs]
        status = "ok" if all(c.startswith("ok") for c in checks) else "; ".join(c for c in checks if not c.startswith("ok"))
        cpu, loop_cpu = med(r.cpu_us_per_req for r in rs), med(r.loop_cpu_us_per_req for r in rs)
        cpu_s = "-" if cpu != cpu else f"{cpu:.0f} ({loop_cpu:.0f})"
        x_cpu = "-" if cpu != cpu or not base_cpu else f"{cpu / base_cpu:.2f}x"
        print(f"{a:<18} {rps:>8.0f} {p50:>8.2f} {p99:>8.2f} {x_rps:>7.2f}x {x_p99:>6.2f}x "
              f"{cpu_s:>15} {x_cpu:>6}  {completed} / {got} {what}: {status}")

    for a in arms:
        writer_cpu = med(r.writer_cpu_us_per_req for r in by_arm[a])
        if writer_cpu == writer_cpu:
            print(f"{a}: the writer process's CPU per request {writer_cpu:.0f} us (beside the worker's above)")
    print("CPU us/req: the proxy process's CPU time per completed request, all threads (event-loop thread);")
    print("x CPU: all-thread CPU per request against the baseline (steadier than req/s on a busy machine)")
    print()
    print("Per round (req/s, p99 ms; paired ratio to the same round's baseline):")
    for a in arms:
        if not by_arm[a]:
            continue
        cells = []
        for r in sorted(by_arm[a], key=lambda r: r.round):
            b = base_by_round.get(r.round)
            ratio = f" {r.rps / b.rps:.2f}x" if b and b.rps and a != BASELINE else ""
            err = f" errors={r.errors}" if r.errors else ""
            cells.append(f"r{r.round}: {r.rps:.0f} {r.p99_ms:.1f}{ratio}{err}")
        paired = [r.rps / base_by_round[r.round].rps for r in by_arm[a]
                  if a != BASELINE and r.round in base_by_round and base_by_round[r.round].rps]
        tail = f"  (median paired {med(paired):.2f}x)" if len(paired) > 1 else ""
        print(f"  {a:<18} " + " | ".join(cells) + tail)

    print()
    print("Integrity (completed by wrk / answered by upstream / stored) per round:")
    for a in arms:
        for r in sorted(by_arm[a], key=lambda r: r.round):
            stored = "-" if r.stored is None else str(r.stored)
            before = "" if r.stored_before_stop is None else f" (before SIGINT: {r.stored_before_stop})"
            print(f"  {a:<18} r{r.round}: {r.completed} / {r.served} / {stored}{before}  "
                  f"{integrity(r, args.connections)}")

    ok = True
    if "passageway" in by_arm and by_arm["passageway"] and base:
        pw = by_arm["passageway"]
        x_rps = med(r.rps for r in pw) / base_rps
        p99s = [(r.round, r.p99_ms / base_by_round[r.round].p99_ms) for r in pw
                if r.round in base_by_round and base_by_round[r.round].p99_ms]
        worst = max((ratio for _, ratio in p99s), default=float("nan"))
        rps_ok, p99_ok = x_rps >= TARGET_RPS_RATIO, worst <= TARGET_P99_RATIO
        rows_ok = all(integrity(r, args.connections).startswith("ok") for r in pw)
        ok = rps_ok and p99_ok and rows_ok
        print()
        print(f"Targets: passageway throughput {x_rps:.2f}x (>= {TARGET_RPS_RATIO}x) "
              f"{'PASS' if rps_ok else 'FAIL'}; p99 per round "
              + ", ".join(f"r{rnd} {ratio:.2f}x" for rnd, ratio in sorted(p99s))
              + f", worst {worst:.2f}x (<= {TARGET_P99_RATIO}x in every round) {'PASS' if p99_ok else 'FAIL'}; "
              f"rows stored = requests {'PASS' if rows_ok else 'FAIL'}")
    return ok


# ---------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds; each runs every arm once, shuffled (default 3)")
    p.add_argument("--duration", type=float, default=10, help="measured seconds per arm (default 10)")
    p.add_argument("--slices", type=int, default=0,
                   help="measured slices per arm and round, taken in turn with the other arms' "
                        "(default: one per 2 s of --duration)")
    p.add_argument("--warmup", type=float, default=2, help="warm-up seconds per arm, discarded (default 2)")
    p.add_argument("--connections", type=int, default=10, help="wrk connections (default 10)")
    p.add_argument("--quick", action="store_true", help="1 round of 3 s (+1 s warm-up): a smoke run")
    p.add_argument("--arms", default=",".join(ARMS),
                   help=f"comma-separated subset of: {', '.join(ARMS)} (the baseline is always run)")
    p.add_argument("--base-tree", type=Path, default=None,
                   help="another checkout (e.g. main) for the `passageway base` arm")
    p.add_argument("--seed", type=int, default=None, help="seed for the arm order")
    p.add_argument("--json", type=Path, default=None, help="also write every result to this JSON file")
    p.add_argument("--keep", action="store_true", help="keep each arm's work dir (db, flow file, log)")
    p.add_argument("--profile", metavar="ARM", default=None,
                   help="after the rounds, run ARM once more (not scored) under py-spy and print its top "
                        "frames (needs py-spy in the venv: .venv/bin/pip install py-spy)")
    p.add_argument("--serve-upstream", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 3, 1
    if not (1 <= args.rounds <= 50 and 1 <= args.duration <= 600 and 0 <= args.warmup <= 60
            and 1 <= args.connections <= 1000):
        p.error("rounds 1..50, duration 1..600, warmup 0..60, connections 1..1000")
    if args.slices == 0:
        args.slices = max(1, int(args.duration // 2))
    if not 1 <= args.slices <= args.duration:
        p.error("slices 1..duration (a slice is at least one second)")
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        p.error(f"unknown arm(s): {', '.join(unknown)}; known: {', '.join(ARMS)}")
    if BASELINE not in arms:
        arms.append(BASELINE)
    if args.serve_upstream is None and ("passageway base" in arms) != (args.base_tree is not None):
        p.error("the `passageway base` arm and --base-tree go together")
    args.arm_list = [a for a in ARMS if a in arms]
    if args.profile is not None and args.profile not in ARMS[1:]:
        p.error(f"--profile takes one of: {', '.join(ARMS[1:])}")
    return args


def check_upstream(wrk: str, lua: Path, up_port: int, connections: int) -> float:
    res = run_wrk(wrk, lua, f"http://{HOST}:{up_port}/check", 2, connections)
    return res["requests"] / (res["duration_us"] / 1e6)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.serve_upstream is not None:
        serve_upstream(args.serve_upstream)
        return 0
    try:
        wrk = ensure_wrk()
        for tool in ["mitmdump"] + (["passageway"] if "passageway" in args.arm_list else []):
            if not (VENV_BIN / tool).exists():
                raise BenchError(f"{VENV_BIN / tool} not found: run `make venv` first")
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    rng = random.Random(args.seed)
    profile_text = None
    failures: list[str] = []
    results: list[ArmResult] = []
    with tempfile.TemporaryDirectory(prefix="passageway-bench-") as tmpdir:
        tmp = Path(tempfile.mkdtemp(prefix="passageway-bench-keep-")) if args.keep else Path(tmpdir)
        if args.keep:
            print(f"keeping work dirs under {tmp}")
        lua = tmp / "report.lua"
        lua.write_text(WRK_LUA)
        up_port = free_port()
        up_log = tmp / "upstream.log"
        upstream = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve-upstream", str(up_port)],
            stdin=subprocess.DEVNULL, stdout=up_log.open("wb"), stderr=subprocess.STDOUT)
        try:
            wait_for_port(up_port, upstream, "upstream", up_log)
            up_rps = check_upstream(wrk, lua, up_port, args.connections)
            print(f"upstream: asyncio HTTP/1.1 on {HOST}:{up_port}, 1 KiB JSON, keep-alive; "
                  f"{up_rps:.0f} req/s direct (2 s check)")
            for rnd in range(1, args.rounds + 1):
                order = list(args.arm_list)
                rng.shuffle(order)
                print(f"round {rnd}/{args.rounds}: {', '.join(order)}", flush=True)
                results += run_round(order, rnd, args, wrk, lua, up_port, tmp, failures)
            if args.profile is not None:
                if not (VENV_BIN / "py-spy").exists():
                    print("profile skipped: .venv/bin/py-spy not found (.venv/bin/pip install py-spy)")
                else:
                    raw = tmp / "profile.txt"
                    run = ArmRun(args.profile, 0, args, wrk, lua, up_port, tmp)
                    try:
                        run.start()
                        sampled = run.measure(args.duration, profile=raw)
                    finally:
                        run.close()
                    rps = sampled["requests"] / (sampled["duration_us"] / 1e6)
                    profile_text = (f"Profile of `{args.profile}` under py-spy (not scored; "
                                    f"{rps:.0f} req/s while sampled):\n"
                                    + (summarize_profile(raw) if raw.exists() else "  (py-spy wrote nothing)"))
        except KeyboardInterrupt:
            print("interrupted; reporting what ran", file=sys.stderr)
        except BenchError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        finally:
            stop(upstream, timeout=5)

    if not results:
        print("error: no arm completed", file=sys.stderr)
        return 1
    ok = report(results, args.arm_list, args)
    if failures:
        ok = False
        print()
        print(f"{len(failures)} arm run(s) FAILED (not in the figures above):")
        for f in failures:
            print(f"  {f}")
    if profile_text:
        print()
        print(profile_text)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
