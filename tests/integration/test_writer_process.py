"""The writer process (`passageway writer`) with proxy workers (`passageway proxy --worker K`):
what "What survives what" promises, with the write path split in two processes.

Real processes, real upstreams, SQLite and PostgreSQL (the database away under load, through
`passageway proxy`'s worker and writer, is tests/integration/test_outages.py's); kill -9
of the writer mid-burst, then started again (every request stored exactly once); kill -9 of a
worker (at most the last ~100 ms lost, none doubled); segments an older version left in
spool_dir; pending notices across the process boundary; a second writer refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from storage.pending import list_pending
from storage.queries import proxy_stats
from storage.record_codec import encode_record
from storage.spool import Spool
from storage.store import open_store
from tests.integration.test_outages import Load, answered_not_stored, assert_none_lost_before, stored_queries
from tests.support import free_port, running_upstream, start_process, wait_for

PASSAGEWAY = [sys.executable, "-m", "cli"]


def common_args(db_url: str, tmp_path: Path, name: str) -> list[str]:
    return ["--db", db_url, "--proxy-name", name, "--spool-dir", str(tmp_path / "spool"),
            "--certs-dir", str(tmp_path / "certs")]  # fmt: skip


def worker_args(db_url: str, port: int, upstream_url: str, tmp_path: Path, name: str, k: int = 1) -> list[str]:
    return [*PASSAGEWAY, "proxy", "--worker", str(k), "--listen", f"127.0.0.1:{port}", "--route", f"up={upstream_url}",
            *common_args(db_url, tmp_path, name)]  # fmt: skip


def writer_args(db_url: str, tmp_path: Path, name: str) -> list[str]:
    return [*PASSAGEWAY, "writer", *common_args(db_url, tmp_path, name)]


def start_writer(db_url: str, tmp_path: Path, name: str, label: str = "passageway writer"):  # type: ignore[no-untyped-def]
    writer = start_process(writer_args(db_url, tmp_path, name), name=label, timeout=30)
    time.sleep(0.5)
    assert writer.running, writer.describe()
    return writer


@pytest.mark.exclusive  # a timing bound: nothing else runs beside it under xdist
@pytest.mark.parametrize("killed", ["writer", "worker"])
def test_kill_9_mid_burst_stores_every_request_once(killed: str, tmp_path) -> None:
    port, db_url, name = free_port(), f"sqlite:///{tmp_path}/kill.db", "killed"
    with running_upstream() as upstream:
        args = worker_args(db_url, port, upstream.url, tmp_path, name)
        worker = start_process(args, port=port, name="passageway proxy --worker 1", timeout=30)
        writer = start_writer(db_url, tmp_path, name)
        try:
            load = Load(f"http://127.0.0.1:{port}").start(clients=6, per_client_rate=60)
            time.sleep(3)
            victim = writer if killed == "writer" else worker
            assert victim.proc is not None
            os.kill(victim.proc.pid, signal.SIGKILL)
            killed_at = time.time()
            if killed == "writer":
                time.sleep(1)  # the worker keeps serving and spooling meanwhile
            load.finish()
            victim.cleanup()
            if killed == "writer":
                writer = start_writer(db_url, tmp_path, name, "passageway writer (restarted)")
            else:
                worker = start_process(args, port=port, name="passageway proxy --worker 1 (restarted)", timeout=30)
            store = open_store(db_url, migrate=False)
            try:
                expected = len(load.completed) if killed == "writer" else 0
                wait_for(lambda: _spool_empty(tmp_path) and len(stored_queries(store, load.run)) >= expected,
                         timeout=30, message=lambda: writer.describe())  # fmt: skip
                time.sleep(0.5)
                stored = stored_queries(store, load.run)
                if killed == "writer":  # the restarted writer goes on with the killed one's counters
                    wait_for(lambda: next((row for row in proxy_stats(store) if row["proxy"] == name
                                           and row["written"] >= row["submitted"] >= len(stored)), None),
                             timeout=15, message=lambda: str(proxy_stats(store)))  # fmt: skip
            finally:
                store.close()
        finally:
            worker.stop()
            writer.stop()
    completed = load.completed
    missing = answered_not_stored(load, stored)
    if killed == "writer":
        assert missing == {}, f"{len(missing)} requests answered but not stored"
    else:
        assert_none_lost_before(missing, killed_at)
    print(f"kill -9 of the {killed}: {len(completed)} completed, {len(stored)} stored once, {len(missing)} missing")


def _spool_empty(tmp_path: Path) -> bool:
    directory = tmp_path / "spool" / "worker-1"
    try:
        acked = int((directory / "acked").read_text().split()[0])
    except FileNotFoundError:
        return False
    segments = sorted(directory.glob("*.seg"))
    return bool(segments) and int(segments[-1].name.removesuffix(".seg")) + segments[-1].stat().st_size == acked


def test_segments_an_older_version_left_in_spool_dir_are_written(tmp_path) -> None:
    from tests.support.records import make_record

    db_url = f"sqlite:///{tmp_path}/legacy.db"
    open_store(db_url).close()
    legacy = Spool(tmp_path / "spool", max_bytes=10_000_000)
    records = [make_record(path=f"/legacy/{i}") for i in range(25)]
    legacy.append([encode_record(r) for r in records])
    legacy.close()
    with start_writer(db_url, tmp_path, "legacy") as writer:
        store = open_store(db_url, migrate=False)
        try:
            wait_for(lambda: _count(store, "/legacy/%") == 25, timeout=20, message=writer.describe)
        finally:
            store.close()
    assert not list((tmp_path / "spool").glob("*.seg")) or (tmp_path / "spool" / "acked").exists()


def test_a_writer_started_while_the_database_is_locked_waits_for_it(tmp_path) -> None:
    """Started by the supervisor during an outage (after one died, say), the writer does not exit:
    it tries again until the database opens, and the spooled records then reach it."""
    import sqlite3

    from tests.support.records import make_record

    db_url = f"sqlite:///{tmp_path}/locked.db"
    open_store(db_url).close()
    spool = Spool(tmp_path / "spool" / "worker-1", max_bytes=10_000_000, shared=True)
    spool.append([encode_record(make_record(path=f"/locked/{i}")) for i in range(10)])
    spool.close()
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        writer = start_writer(db_url, tmp_path, "locked")
        with writer:
            wait_for(lambda: "cannot open the database yet, trying again" in writer.stderr, timeout=30,
                     message=writer.describe)  # fmt: skip
            assert writer.running
            holder.execute("ROLLBACK")
            store = open_store(db_url, migrate=False)
            try:
                wait_for(lambda: _count(store, "/locked/%") == 10, timeout=30, message=writer.describe)
            finally:
                store.close()
            wait_for(lambda: "the database opened after" in writer.stderr, timeout=5, message=writer.describe)
    finally:
        holder.close()


def _count(store, pattern: str) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    with store.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM exchanges WHERE path LIKE :p"), {"p": pattern}).scalar_one()


@pytest.mark.parametrize(("dialect", "kill_writer"), [("sqlite", False), ("postgresql", False), ("sqlite", True)])
def test_a_slow_call_is_pending_then_replaced_by_its_exchange(dialect: str, kill_writer: bool, tmp_path) -> None:
    """With kill_writer, the writer that wrote the notice is killed (-9) and another, started after
    the call ended, stores the exchange: the notice goes all the same (not 30 s later by expiry)."""
    from tests.support import fresh_postgres_database, require_or_skip_postgres

    if dialect == "postgresql":
        require_or_skip_postgres()
        context = fresh_postgres_database("passageway_writer_pending")
    else:
        from contextlib import nullcontext

        context = nullcontext(f"sqlite:///{tmp_path}/pending.db")
    port = free_port()
    with context as db_url, running_upstream() as upstream:
        open_store(db_url).close()
        with (
            start_process(worker_args(db_url, port, upstream.url, tmp_path, "pending-w"), port=port,
                          name="passageway proxy --worker 1", timeout=30),
            start_writer(db_url, tmp_path, "pending-w") as first_writer,
        ):  # fmt: skip
            writer = first_writer
            store = open_store(db_url, migrate=False)
            try:
                request_id = f"slow-{uuid.uuid4().hex[:8]}"
                with httpx.Client(timeout=30) as client:
                    import threading

                    outcome: dict = {}
                    thread = threading.Thread(target=lambda: outcome.update(
                        response=client.get(f"http://127.0.0.1:{port}/up/slow?seconds=3",
                                            headers={"X-Request-ID": request_id})))  # fmt: skip
                    thread.start()
                    notice = wait_for(lambda: next((r.notice for r in list_pending(store)
                                                    if r.notice.trace_id == request_id), None),
                                      timeout=10, message=writer.describe)  # fmt: skip
                    if kill_writer:
                        assert writer.proc is not None
                        os.kill(writer.proc.pid, signal.SIGKILL)
                        writer.cleanup()
                    thread.join(30)
                    if kill_writer:  # started once the call is over: only the database says it was announced
                        time.sleep(1)
                        writer = start_writer(db_url, tmp_path, "pending-w", "passageway writer (restarted)")
                assert outcome["response"].status_code == 200
                wait_for(lambda: _count(store, "/slow") >= 1, timeout=10)
                wait_for(lambda: not [r for r in list_pending(store) if r.notice.uuid == notice.uuid], timeout=10)
                from sqlalchemy import text

                with store.engine.connect() as conn:
                    stored = conn.execute(text("SELECT status FROM exchanges WHERE uuid = :u"),
                                          {"u": notice.uuid}).scalars().all()  # fmt: skip
            finally:
                store.close()
                writer.stop()
    assert notice.state == "waiting" and notice.path == "/slow"
    assert stored == [200]


def test_a_second_writer_on_the_same_spools_is_refused_in_one_line(tmp_path) -> None:
    db_url = f"sqlite:///{tmp_path}/two.db"
    with start_writer(db_url, tmp_path, "two"):
        second = subprocess.run(writer_args(db_url, tmp_path, "two"), capture_output=True, text=True, timeout=30)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"passageway: error: writer: another writer process already drains the spools in {tmp_path / 'spool'}"
    ]
