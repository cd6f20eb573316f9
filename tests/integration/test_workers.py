"""`passageway proxy --workers N`: real worker processes sharing the port (SO_REUSEPORT) under
one supervisor that restarts a dead worker and stops them together."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from storage.store import open_store
from tests.support import free_port, running_upstream, start_process
from tests.support.processes import wait_for

PASSAGEWAY = [sys.executable, "-m", "cli"]
pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="workers share ports with SO_REUSEPORT")


def children(pid: int) -> dict[int, list[str]]:
    """The live child processes of `pid` and their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != pid:
                continue
            found[int(entry.name)] = (entry / "cmdline").read_bytes().decode().split("\0")
        except (OSError, IndexError, ValueError):
            continue
    return found


def worker_pids(supervisor: int) -> dict[int, int]:
    """Worker number -> pid, of the workers `supervisor` runs now."""
    pids = {}
    for pid, words in children(supervisor).items():
        if "--worker" in words:
            pids[int(words[words.index("--worker") + 1])] = pid
    return pids


def listening_pids(port: int) -> set[int]:
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return {int(part.split("=")[1]) for part in out.replace(")", ",").split(",") if part.startswith("pid=")}


def connected_pids(port: int) -> set[int]:
    """The processes holding the accepted ends of established connections to `port`."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", f"sport = :{port}"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return {int(part.split("=")[1]) for part in out.replace(")", ",").split(",") if part.startswith("pid=")}


def all_listen(proxy, port: int, count: int) -> dict[int, int] | None:  # type: ignore[no-untyped-def]
    pids = worker_pids(proxy.pid)
    return pids if len(pids) == count and set(pids.values()) <= listening_pids(port) else None


def count_stored(db: str, prefix: str) -> dict[str, int]:
    store = open_store(db, migrate=False)
    try:
        with store.connect() as conn:
            rows = conn.exec_driver_sql("SELECT path, count(*) FROM exchanges WHERE path LIKE ? GROUP BY path",
                                        (f"%/{prefix}%",)).all()  # fmt: skip
    finally:
        store.close()
    return {path: count for path, count in rows}


@pytest.fixture
def upstream():  # type: ignore[no-untyped-def]
    with running_upstream() as upstream:
        yield upstream


def start_proxy(tmp_path, upstream, port: int, *extra: str, **how):  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path / 'workers.db'}"
    args = [*PASSAGEWAY, "proxy", "--db", db, "--listen", f"127.0.0.1:{port}", "--route", f"up={upstream.url}",
            "--certs-dir", str(tmp_path / "certs"), "--spool-dir", str(tmp_path / "spool"), *extra]  # fmt: skip
    return db, start_process(args, port=port, name="passageway proxy", timeout=40, **how)


def test_two_workers_share_the_port_hold_connections_apart_and_store_every_request_once(tmp_path, upstream):
    port = free_port()
    db, proxy = start_proxy(tmp_path, upstream, port, "--workers", "2")
    with proxy:
        pids = wait_for(lambda: all_listen(proxy, port, 2), timeout=30, message=proxy.describe)
        assert sorted(pids) == [1, 2]
        # Sixteen kept-alive connections: the kernel spreads them over both workers (all on one: 1 in 32,768).
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) for _ in range(16)]
        try:
            for index, client in enumerate(clients):
                assert client.get(f"/up/json/shared-{index}-0").status_code == 200
            assert connected_pids(port) == set(pids.values())

            def run(index: int) -> None:
                for request in range(1, 11):
                    assert clients[index].get(f"/up/json/shared-{index}-{request}").status_code == 200

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(run, range(16)))
        finally:
            for client in clients:
                client.close()
        wait_for(lambda: sum(count_stored(db, "shared-").values()) >= 16 * 11, timeout=30, message=proxy.describe)
        stored = count_stored(db, "shared-")
        assert len(stored) == 16 * 11 and set(stored.values()) == {1}
        assert proxy.stop() == 0
    assert not worker_pids(proxy.pid)


def test_workers_on_a_new_certs_directory_serve_tls_with_the_one_ca_it_holds(tmp_path, upstream):
    """The supervisor makes the CA before the workers start: each making its own, the files would
    hold one and the other worker's connections would fail a client that trusts them."""
    port = free_port()
    assert not (tmp_path / "certs").exists()
    _, proxy = start_proxy(tmp_path, upstream, port, "--workers", "2")
    with proxy:
        pids = wait_for(lambda: all_listen(proxy, port, 2), timeout=30, message=proxy.describe)
        trust = ssl.create_default_context(cafile=str(tmp_path / "certs" / "mitmproxy-ca-cert.pem"))
        clients = [httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=trust, timeout=10) for _ in range(16)]
        try:
            for index, client in enumerate(clients):
                assert client.get(f"/up/json/tls-{index}").status_code == 200
            assert connected_pids(port) == set(pids.values())  # both workers answered some
        finally:
            for client in clients:
                client.close()
        assert proxy.stop() == 0


def test_a_killed_worker_is_restarted_while_the_other_serves(tmp_path, upstream):
    port = free_port()
    db, proxy = start_proxy(tmp_path, upstream, port, "--workers", "2")
    with proxy:
        before = wait_for(lambda: all_listen(proxy, port, 2), timeout=30, message=proxy.describe)
        os.kill(before[2], signal.SIGKILL)
        # Once its socket is closed (what sat in its accept queue is reset: it died), every new
        # connection goes to a worker that listens, until the restarted one shares the port again.
        wait_for(lambda: before[2] not in listening_pids(port), timeout=10)
        for request in range(30):
            assert httpx.get(f"http://127.0.0.1:{port}/up/json/during-{request}", timeout=10).status_code == 200
        after = wait_for(lambda: (p := all_listen(proxy, port, 2)) and p[2] != before[2] and p, timeout=30,
                         message=proxy.describe)  # fmt: skip
        assert after[1] == before[1]
        wait_for(lambda: "worker 2 exited (killed by SIGKILL); restarting it" in proxy.stderr, timeout=5)
        wait_for(lambda: len(count_stored(db, "during-")) == 30, timeout=30, message=proxy.describe)
        assert proxy.stop() == 0


def test_killing_the_supervisor_stops_its_workers(tmp_path, upstream):
    port = free_port()
    _, proxy = start_proxy(tmp_path, upstream, port, "--workers", "2")
    with proxy:
        pids = wait_for(lambda: all_listen(proxy, port, 2), timeout=30, message=proxy.describe)
        os.kill(proxy.pid, signal.SIGKILL)
        proxy.proc.wait(10)

        def gone() -> bool:
            return all(not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
                       for pid in pids.values())  # fmt: skip

        wait_for(gone, timeout=20, message="workers outlived their supervisor")
        assert not listening_pids(port)


def test_a_second_proxy_on_the_port_fails_in_one_line(tmp_path, upstream):
    port = free_port()
    _, proxy = start_proxy(tmp_path, upstream, port, "--workers", "2")
    with proxy:
        wait_for(lambda: all_listen(proxy, port, 2), timeout=30, message=proxy.describe)
        second = subprocess.run(
            [*PASSAGEWAY, "proxy", "--db", f"sqlite:///{tmp_path / 'other.db'}", "--listen", f"127.0.0.1:{port}",
             "--certs-dir", str(tmp_path / "certs"), "--spool-dir", str(tmp_path / "other-spool"), "--workers", "2"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 2
        assert second.stderr.strip() == f"passageway: error: gateway: 127.0.0.1:{port} is already in use"
        assert proxy.running


def test_a_worker_that_cannot_start_stops_the_proxy_with_its_one_line_error(tmp_path, upstream):
    (tmp_path / "spool").write_text("a file, not a directory")
    port = free_port()
    args = [*PASSAGEWAY, "proxy", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--listen", f"127.0.0.1:{port}",
            "--route", f"up={upstream.url}", "--certs-dir", str(tmp_path / "certs"),
            "--spool-dir", str(tmp_path / "spool"), "--workers", "2"]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"passageway: error: cannot use spool directory {tmp_path / 'spool'}: File exists"
    )
    assert time.monotonic() - started < 30
