"""`passageway prune`: one retention pass from the command line, limits from the environment or passageway.toml."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from storage.sink import write_records
from storage.store import open_store
from tests.support.records import make_record

PASSAGEWAY = [sys.executable, "-m", "cli"]


def run(*args: str, cwd, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PASSAGEWAY_RETENTION_")}
    return subprocess.run([*PASSAGEWAY, *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**environ, **(env or {})})  # fmt: skip


def _store_with_old_and_new(path) -> str:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{path}"
    store = open_store(url)
    try:
        write_records(store, [make_record(captured_at=time.time() - 3 * 86400, path=f"/old/{i}") for i in range(5)])
        write_records(store, [make_record(path="/new")])
    finally:
        store.close()
    return url


def _exchanges(url: str) -> int:
    store = open_store(url)
    try:
        with store.engine.connect() as conn:
            return conn.exec_driver_sql("SELECT count(*) FROM exchanges").scalar_one()
    finally:
        store.close()


def test_dry_run_then_prune(tmp_path):
    url = _store_with_old_and_new(tmp_path / "capture.db")
    env = {"PASSAGEWAY_RETENTION_MAX_AGE": "1d"}

    dry = run("prune", "--dry-run", "--db", url, cwd=tmp_path, env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("\n") == 1 and dry.stdout.startswith("would prune 5 exchanges")
    assert "max age 1d" in dry.stdout
    assert _exchanges(url) == 6

    done = run("prune", "--db", url, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and done.stdout.startswith("pruned 5 exchanges")
    assert _exchanges(url) == 1

    again = run("prune", "--db", url, cwd=tmp_path, env=env)
    assert again.stdout.startswith("pruned nothing")


def test_limits_from_the_config_file(tmp_path):
    url = _store_with_old_and_new(tmp_path / "capture.db")
    (tmp_path / "passageway.toml").write_text(f'db = "{url}"\nretention_max_exchanges = 2\n')
    result = run("prune", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pruned 4 exchanges")
    assert _exchanges(url) == 2


def test_no_limit_set_keeps_everything(tmp_path):
    url = _store_with_old_and_new(tmp_path / "capture.db")
    result = run("prune", "--db", url, cwd=tmp_path)
    assert result.returncode == 0 and "no retention limit is set" in result.stdout
    assert _exchanges(url) == 6


def test_a_store_that_cannot_be_opened_is_one_line(tmp_path):
    result = run("prune", "--db", "postgresql://postgres@127.0.0.1:1/nope", cwd=tmp_path,
                 env={"PASSAGEWAY_RETENTION_MAX_AGE": "30d"})  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("passageway: error: ") and "127.0.0.1:1" in lines[0]


def test_maintain_indexes_and_prunes_alone_until_stopped(tmp_path):
    """`passageway maintain`: the maintenance role with no inspector, stopped by SIGINT."""
    from storage.queries import index_backlog, list_exchanges
    from tests.support import start_process, wait_for

    url = _store_with_old_and_new(tmp_path / "m.db")
    env = {"PASSAGEWAY_RETENTION_MAX_AGE": "1d"}
    with start_process([*PASSAGEWAY, "maintain", "--db", url], name="passageway maintain", cwd=tmp_path,
                       extra_env=env) as maintain:  # fmt: skip
        maintain.wait_for_output("Ctrl-C stops", stream="stdout")
        wait_for(lambda: _exchanges(url) == 1, timeout=20, message=maintain.describe)
        store = open_store(url)
        try:
            wait_for(lambda: index_backlog(store) == 0, timeout=20, message=maintain.describe)
            assert [x["path"] for x in list_exchanges(store, q="new").data] == ["/new"]  # free text: indexed
        finally:
            store.close()
        assert maintain.stop() == 0 and maintain.stop_signal == "SIGINT"  # Ctrl-C ends it cleanly
    assert "Traceback" not in maintain.stderr
