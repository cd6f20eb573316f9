"""GET /api/health: 200 with the database's state, 503 when the database is gone."""

from __future__ import annotations

import os
import re

from fastapi.testclient import TestClient
from sqlalchemy import text
from ui_support import settings_for

from inspector_ui import create_app
from storage.sink import write_records
from storage.store import open_store
from tests.support.postgres import drop_database, name_of
from tests.support.records import make_record


def test_health_ok(store, client):
    write_records(store, [make_record(), make_record()])
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["database"]["dialect"] == "sqlite"
    assert body["database"]["exchanges"] == 2
    assert body["stream"]["clients"] == 0


def test_health_503_when_the_sqlite_file_is_destroyed(tmp_path):
    path = tmp_path / "broken.db"
    store = open_store(f"sqlite:///{path}")
    try:
        # No maintenance or monitor runner: a job writing to the old file between the unlinks below
        # and the replace would recreate its -wal there, and a new connection would read the old
        # database's first page from it (this test then saw 200 on a busy machine).
        app = create_app(settings_for(store, maintenance=False, monitor_runner=False), store=store)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            assert client.get("/api/health").status_code == 200
            store.engine.dispose()
            # replaced in one step: a background connection (the change feed, maintenance) opening
            # the path while it was missing would make a new, empty database there instead
            garbage = tmp_path / "garbage"
            garbage.write_bytes(b"this is not a database" * 100)
            for suffix in ("-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            os.replace(garbage, path)
            response = client.get("/api/health")
            assert response.status_code == 503
            body = response.json()
            assert body["status"] == "unavailable"
            assert body["database"]["ok"] is False and body["database"]["error"]
            # the other endpoints answer 503 JSON too, not a 500 page
            listing = client.get("/api/exchanges")
            assert listing.status_code == 503
            assert listing.json()["detail"].startswith("database unavailable")
    finally:
        store.close()


def test_a_statement_the_database_refuses_is_a_500_not_a_503(store, client):
    """Only a database that cannot be reached or used is "unavailable"; a statement it refuses
    (here: a table this version needs is gone) is a bug, answered 500 with the reason."""
    (exchange_id,) = write_records(store, [make_record()])
    with store.begin() as conn:
        conn.execute(text("DROP TABLE websocket_messages"))
    response = client.get(f"/api/exchanges/{exchange_id}/websocket")
    assert response.status_code == 500
    assert response.json()["detail"] == "storage error: no such table: websocket_messages"


def test_health_503_when_postgresql_database_is_dropped(pg_url):
    store = open_store(pg_url)
    try:
        with TestClient(create_app(settings_for(store), store=store), base_url="http://127.0.0.1") as client:
            assert client.get("/api/health").json()["database"]["dialect"] == "postgresql"
            drop_database(name_of(pg_url))
            response = client.get("/api/health")
            assert response.status_code == 503
            assert response.json()["database"]["ok"] is False
    finally:
        store.close()


def test_metrics_are_prometheus_text_with_escaped_labels():
    from inspector_ui.routers.metrics import exposition

    proxy = {"proxy": 'edge "1"\\', "submitted": 5, "written": 4, "dropped": 1, "lost": 0, "failed_batches": 2,
             "queue_depth": 1, "spooled": 6, "spool_bytes": 6000, "write_seconds": 0.5, "write_batches": 3,
             "age_seconds": 45.0}  # fmt: skip
    worker = {**proxy, "proxy": 'edge "1"\\/worker-2', "written": 3}
    text = exposition([proxy, worker], viewers=2, dropped_viewers=1, published=10, backlog=7)
    assert 'passageway_written_total{proxy="edge \\"1\\"\\\\"} 4' in text
    assert 'passageway_worker_written_total{proxy="edge \\"1\\"\\\\",worker="2"} 3' in text
    assert "worker-2" not in text  # a worker's row is never a proxy of its own
    assert 'passageway_proxy_up{proxy="edge \\"1\\"\\\\"} 0' in text  # silent for 45 s
    assert 'passageway_spooled{proxy="edge \\"1\\"\\\\"} 6' in text
    assert "passageway_live_viewers 2\n" in text and "passageway_index_backlog 7\n" in text
    names = re.findall(r"^# TYPE (\S+) (counter|gauge)$", text, flags=re.MULTILINE)
    assert len(names) == len({name for name, _ in names}) == 28  # passageway_contract_violations included
    assert text.endswith("\n")


def test_metrics_give_each_probed_service_its_state_and_latency():
    from inspector_ui.routers.metrics import exposition

    def service(name, realm, state, latency):
        return {"name": name, "realm": realm, "health": {"state": state, "latency_ms": latency}}

    services = [service("identity", "prod", "up", 12.5), service('a"b', None, "down", None),
                service("new", "prod", "unknown", None), service("gone", "prod", "stale", 3.0)]  # fmt: skip
    text = exposition([], viewers=0, dropped_viewers=0, published=0, backlog=0, services=services)
    assert 'passageway_service_up{service="identity",realm="prod"} 1\n' in text
    assert 'passageway_service_up{service="a\\"b",realm=""} 0\n' in text
    assert 'passageway_service_probe_seconds{service="identity",realm="prod"} 0.012500\n' in text
    assert 'service="new"' not in text and 'service="gone"' not in text


def test_metrics_endpoint(client):
    response = client.get("/api/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert "passageway_live_viewers 0" in response.text


def test_metrics_count_maintenance_failures_per_job_only_where_maintenance_runs(store, make_client):
    with_maintenance = make_client().get("/api/metrics").text
    assert 'passageway_maintenance_failures_total{job="indexing"} 0\n' in with_maintenance
    assert 'passageway_maintenance_failures_total{job="statistics"} 0\n' in with_maintenance
    assert "passageway_retention_" not in with_maintenance  # no retention limit: no retention job
    pruning = make_client(retention_max_exchanges=10).get("/api/metrics").text
    assert 'passageway_maintenance_failures_total{job="retention"} 0\n' in pruning
    assert "passageway_retention_pruned_exchanges_total 0\n" in pruning

    app = create_app(settings_for(store, retention_max_exchanges=10, maintenance=False), store=store)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        without = client.get("/api/metrics").text
    assert "passageway_maintenance_" not in without and "passageway_retention_" not in without
    assert "passageway_index_backlog 0\n" in without  # the backlog is the store's, whoever indexes it
