"""A real proxy reports its writer's counters to the store; /api/metrics and `passageway status` show them."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
from fastapi.testclient import TestClient

from inspector_ui import create_app
from inspector_ui.settings import InspectorSettings
from storage.queries import proxy_stats
from storage.store import open_store
from tests.support import free_port, running_upstream, start_process, wait_for

PASSAGEWAY = [sys.executable, "-m", "cli"]


def test_proxy_counters_reach_metrics_and_status(tmp_path):
    port, url = free_port(), f"sqlite:///{tmp_path}/metrics.db"
    with running_upstream() as upstream:
        args = [*PASSAGEWAY, "proxy", "--db", url, "--listen", f"127.0.0.1:{port}", "--route", f"up={upstream.url}",
                "--proxy-name", "edge-1", "--certs-dir", str(tmp_path / "certs"), "--workers", "2"]  # fmt: skip
        with start_process(args, port=port, name="passageway proxy", timeout=30):
            for n in range(3):
                httpx.get(f"http://127.0.0.1:{port}/up/echo?n={n}", timeout=10)
            store = open_store(url)
            try:
                row = wait_for(lambda: next((p for p in proxy_stats(store) if p["written"] >= 3 and p["proxy"] == "edge-1"),
                                            None), timeout=15)  # fmt: skip
                assert (row["proxy"], row["submitted"], row["dropped"], row["lost"]) == ("edge-1", 3, 0, 0)
                settings = InspectorSettings(db_url=url)
                with TestClient(create_app(settings, store=store), base_url="http://127.0.0.1") as client:
                    text = client.get("/api/metrics").text
            finally:
                store.close()
        status = subprocess.run([*PASSAGEWAY, "status", "--db", url], capture_output=True, text=True, timeout=30)
    assert 'passageway_written_total{proxy="edge-1"} 3' in text
    assert 'passageway_proxy_up{proxy="edge-1"} 1' in text and "passageway_index_backlog " in text
    assert re.search(r"# TYPE passageway_queue_depth gauge\npassageway_queue_depth\{proxy=\"edge-1\"\} \d+", text)
    assert status.returncode == 0, status.stderr
    # `status` ran after the proxy stopped: its writer's last report said so
    assert re.search(r"proxy edge-1: stopped at \S+; captured 3, written 3, dropped 0, lost 0", status.stdout), status.stdout
    # and each of its two workers' share: three requests, on one worker or the other
    shares = re.findall(r"\n  worker ([12]): captured (\d), written (\d), dropped 0, lost 0", status.stdout)
    assert sorted(int(w) for w, _, _ in shares) == [1, 2], status.stdout
    assert sum(int(c) for _, c, _ in shares) == sum(int(w) for _, _, w in shares) == 3
    assert re.search(r'passageway_worker_captured_total\{proxy="edge-1",worker="[12]"\} \d', text)
