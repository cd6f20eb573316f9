"""Monitors as a team runs them: a real proxy, two `passageway monitor` processes sharing one
PostgreSQL, a monitor from passageway.toml watching a service that goes down and comes back,
and a real webhook receiver that hears of each change once."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

from storage.monitors import get_monitor
from storage.queries import list_exchanges
from storage.store import open_store
from storage.test_runs import get_run, list_runs
from tests.support import free_port, start_process, wait_for
from tests.support.postgres import fresh_postgres_database
from tests.support.switchable import running_switchable_upstream
from tests.support.webhooks import Hook

PASSAGEWAY = [sys.executable, "-m", "cli"]


def test_two_runners_share_one_schedule_and_notify_each_change_once(tmp_path: Path) -> None:
    hook = Hook()
    with (
        fresh_postgres_database("passageway_monitors") as db_url,
        running_switchable_upstream() as shop,
    ):
        port, ui_port = free_port(), free_port()
        (tmp_path / "checks").mkdir()
        (tmp_path / "checks" / "shop.hurl").write_text("GET service://shop/status\nHTTP 200\n")
        (tmp_path / "passageway.toml").write_text(
            f'db = "{db_url}"\nlisten = "127.0.0.1:{port}"\nui = "127.0.0.1:{ui_port}"\n'
            f'[services]\nshop = "{shop.url}"\n'
            f'[monitors.shop]\nfile = "checks/shop.hurl"\nevery = "1s"\nnotify = ["{hook.url}"]\n'
        )
        common = ["--config", str(tmp_path / "passageway.toml")]
        proxy_args = [*PASSAGEWAY, "proxy", *common, "--spool-dir", str(tmp_path / "spool"), "--certs-dir", str(tmp_path / "certs")]
        with (
            start_process(proxy_args, port=port, name="proxy", timeout=30, cwd=tmp_path),
            start_process([*PASSAGEWAY, "monitor", *common], name="runner a", cwd=tmp_path) as a,
            start_process([*PASSAGEWAY, "monitor", *common], name="runner b", cwd=tmp_path) as b,
        ):
            store = open_store(db_url)
            try:
                monitor = lambda: get_monitor(store, "shop")  # noqa: E731
                wait_for(lambda: monitor() is not None and monitor().state == "up", timeout=30)
                shop.status = 503
                wait_for(lambda: monitor().state == "down", timeout=15)
                time.sleep(2.2)  # still failing: no second notice
                shop.status = 200
                wait_for(lambda: monitor().state == "up", timeout=15)
                wait_for(lambda: len(hook.received) == 2, timeout=15)
                time.sleep(1.5)
                assert a.running and b.running
                runs = list_runs(store, monitor="shop", limit=500)
                starts = sorted(dt.datetime.fromisoformat(run["started_at"]) for run in runs)
                # each due run ran once, by one of the two runners
                assert all((later - earlier).total_seconds() > 0.5 for earlier, later in zip(starts, starts[1:]))
                assert [payload["state"] for payload in hook.received] == ["down", "up"]
                down = hook.received[0]
                assert down["monitor"] == "shop" and down["failure"]["actual"] == "503"
                assert down["text"].startswith("Monitor shop is FAILING: line 2: HTTP 200: expected 200, actual 503 <http")
                # every monitor request went through the proxy: captured, marked and traced
                failed = get_run(store, down["run_id"])
                wait_for(lambda: list_exchanges(store, q=f"test:shop trace:{failed['trace_id']}").data)
                (exchange,) = list_exchanges(store, q=f"test:shop trace:{failed['trace_id']}").data
                assert exchange["status"] == 503 and exchange["service"] == "shop" and exchange["test_name"] == "shop"
                assert down["exchange"] == f"http://127.0.0.1:{ui_port}/?id={exchange['id']}"  # the failing call
            finally:
                store.close()
    hook.close()
