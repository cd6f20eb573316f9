"""storage.services on SQLite and PostgreSQL: registry, samples, overview, history, pruning."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, text

from storage.models import HealthSample
from storage.services import (
    ERROR_MAX,
    ProbeSample,
    health_history,
    known_realms,
    one_line_error,
    overall_health,
    prune_health,
    record_health,
    register_services,
    service_known,
    service_overview,
    touch_registrations,
)
from storage.store import Store

T0 = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def db(store: Store) -> Store:
    """The shared fixture's store (emptied before each test, PostgreSQL's too: tests/storage/conftest.py)."""
    return store


def spec(service: str, upstream: str = "http://127.0.0.1:9001", health: str | None = "/healthz") -> dict:
    return {"service": service, "upstream": upstream, "health_path": health,
            "health_interval": 10.0 if health else None, "listen": None}  # fmt: skip


def samples(proxy: str, service: str, states: str, *, realm: str | None = "prod", start: dt.datetime = T0,
            step: float = 10.0) -> list[ProbeSample]:  # fmt: skip
    """One sample per character of `states` ('u' up, 'd' down), `step` seconds apart."""
    return [
        ProbeSample(proxy, realm, service, start + dt.timedelta(seconds=i * step), state == "u",
                    200 if state == "u" else 500, 5.0 + i, None if state == "u" else "HTTP 500")  # fmt: skip
        for i, state in enumerate(states)
    ]


def test_register_replaces_the_proxys_rows_in_any_realm(db: Store) -> None:
    register_services(db, proxy="p1", realm="dev", services=[spec("a"), spec("b")], now=T0)
    register_services(db, proxy="p2", realm="dev", services=[spec("a")], now=T0)
    register_services(db, proxy="p1", realm="prod", services=[spec("c")], now=T0)
    overview = service_overview(db, now=T0)
    assert [(s["realm"], s["name"], [p["proxy"] for p in s["proxies"]]) for s in overview] == [
        ("dev", "a", ["p2"]),
        ("prod", "c", ["p1"]),
    ]
    assert known_realms(db) == ["dev", "prod"]


def test_no_realm_is_stored_as_empty_and_given_back_as_none(db: Store) -> None:
    register_services(db, proxy="p1", realm=None, services=[spec("a")], now=T0)
    record_health(db, samples=samples("p1", "a", "u", realm=None))
    [row] = service_overview(db, now=T0)
    assert row["realm"] is None and row["health"]["state"] == "up"
    assert known_realms(db) == []
    assert [s["realm"] for s in health_history(db, service="a", since=T0)] == [None]


def test_touch_refreshes_and_stale_proxies_do_not_count(db: Store) -> None:
    register_services(db, proxy="old", realm="prod", services=[spec("a")], now=T0)
    register_services(db, proxy="new", realm="prod", services=[spec("a")], now=T0)
    record_health(db, samples=samples("old", "a", "d") + samples("new", "a", "u"))
    later = T0 + dt.timedelta(minutes=10)
    assert touch_registrations(db, proxy="new", now=later) == 1
    assert touch_registrations(db, proxy="unknown", now=later) == 0
    [row] = service_overview(db, now=later)
    assert {p["proxy"]: p["stale"] for p in row["proxies"]} == {"new": False, "old": True}
    assert row["health"]["state"] == "up"  # the stale proxy's failure does not count
    [row] = service_overview(db, now=later + dt.timedelta(minutes=10))
    assert row["health"]["state"] == "stale"


def test_overview_state_since_history_and_uptime(db: Store) -> None:
    register_services(db, proxy="p1", realm="prod", services=[spec("a", "https://a.internal:8443/api")], now=T0)
    record_health(db, samples=samples("p1", "a", "uuuddduu"))
    [row] = service_overview(db, realm="prod", history=5, now=T0)
    assert row["upstreams"] == ["https://a.internal:8443/api"]
    health = row["health"]
    assert health["state"] == "up"
    assert health["since"] == "2026-11-28T12:01:00.000000Z"  # the 7th sample ended the failure
    assert health["checked_at"] == "2026-11-28T12:01:10.000000Z"
    assert health["latency_ms"] == 12.0 and health["status"] == 200
    assert [h["ok"] for h in row["history"]] == [False, False, False, True, True]
    assert row["history"][0]["t"] < row["history"][-1]["t"]
    assert row["uptime"] == 40.0


def test_since_found_beyond_the_history_window(db: Store) -> None:
    register_services(db, proxy="p1", realm="prod", services=[spec("a")], now=T0)
    record_health(db, samples=samples("p1", "a", "u" + "d" * 30))
    [row] = service_overview(db, history=3, now=T0)
    assert row["health"]["state"] == "down" and row["health"]["error"] == "HTTP 500"
    assert row["health"]["since"] == "2026-11-28T12:00:10.000000Z"
    assert row["uptime"] == 0.0


def test_down_on_any_live_proxy_wins(db: Store) -> None:
    for proxy in ("p1", "p2"):
        register_services(db, proxy=proxy, realm="prod", services=[spec("a")], now=T0)
    record_health(db, samples=samples("p1", "a", "uuu") + samples("p2", "a", "uud", start=T0 + dt.timedelta(seconds=1)))
    [row] = service_overview(db, now=T0)
    assert row["health"]["state"] == "down"
    assert row["health"]["since"] == "2026-11-28T12:00:21.000000Z"
    states = {p["proxy"]: p["health"]["state"] for p in row["proxies"]}
    assert states == {"p1": "up", "p2": "down"}


def test_a_proxys_latest_sample_outside_the_recent_window_is_still_found(db: Store) -> None:
    for proxy in ("fast", "slow"):
        register_services(db, proxy=proxy, realm="prod", services=[spec("a")], now=T0)
    record_health(db, samples=samples("slow", "a", "d") + samples("fast", "a", "u" * 50, start=T0 + dt.timedelta(seconds=1), step=1))
    [row] = service_overview(db, history=5, now=T0)
    assert {p["proxy"]: p["health"]["state"] for p in row["proxies"]} == {"fast": "up", "slow": "down"}
    assert row["health"]["state"] == "down"


def test_without_health_path_or_samples_the_state_is_unknown(db: Store) -> None:
    register_services(db, proxy="p1", realm="prod", services=[spec("plain", health=None), spec("new")], now=T0)
    rows = {row["name"]: row for row in service_overview(db, now=T0)}
    assert rows["plain"]["health"]["state"] == "unknown" and rows["plain"]["uptime"] is None
    assert rows["new"]["health"]["state"] == "unknown" and rows["new"]["history"] == []
    assert rows["plain"]["proxies"][0]["health"] is None


def test_realms_are_kept_apart(db: Store) -> None:
    register_services(db, proxy="p1", realm="prod", services=[spec("a")], now=T0)
    register_services(db, proxy="p2", realm="dev", services=[spec("a")], now=T0)
    record_health(db, samples=samples("p1", "a", "uu") + samples("p2", "a", "dd", realm="dev"))
    assert [r["health"]["state"] for r in service_overview(db, realm="prod", now=T0)] == ["up"]
    assert [r["health"]["state"] for r in service_overview(db, realm="dev", now=T0)] == ["down"]
    assert service_overview(db, realm="staging", now=T0) == []
    assert len(health_history(db, service="a", realm="dev", since=T0)) == 2
    assert len(health_history(db, service="a", since=T0)) == 4


def test_history_since_and_limit(db: Store) -> None:
    record_health(db, samples=samples("p1", "a", "udu"))
    history = health_history(db, service="a", realm="prod", since=T0 + dt.timedelta(seconds=5))
    assert [(h["t"], h["ok"], h["status"], h["error"]) for h in history] == [
        ("2026-11-28T12:00:10.000000Z", False, 500, "HTTP 500"),
        ("2026-11-28T12:00:20.000000Z", True, 200, None),
    ]
    assert [h["t"] for h in health_history(db, service="a", since=T0, limit=1)] == ["2026-11-28T12:00:20.000000Z"]


def test_errors_are_one_capped_line_and_hostile_text_round_trips(db: Store) -> None:
    hostile = "<script>alert(1)</script>\x00\ud800 é"
    record_health(db, samples=[ProbeSample("p\x00", "prod", hostile, T0, False, None, None, "refused\r\nX-Evil: 1" + "x" * 1000)])
    [sample] = health_history(db, service=hostile, since=T0)
    assert sample["proxy"] == "p\x00"
    assert "\n" not in sample["error"] and len(sample["error"]) == ERROR_MAX
    assert one_line_error("  a \n\t b ") == "a b"


def test_prune_deletes_old_samples_in_batches(db: Store) -> None:
    record_health(db, samples=samples("p1", "a", "u" * 25, start=T0 - dt.timedelta(days=8)) + samples("p1", "a", "u" * 5))
    assert prune_health(db, older_than=T0 - dt.timedelta(days=7), batch_size=10, max_batches=2) == 20
    assert prune_health(db, older_than=T0 - dt.timedelta(days=7), batch_size=10) == 5
    with db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(HealthSample)).scalar_one() == 5


def test_overview_rejects_a_bad_history_length(db: Store) -> None:
    with pytest.raises(ValueError, match="history must be between"):
        service_overview(db, history=0)


def test_overall_health_is_pure() -> None:
    t1, t2 = T0, T0 + dt.timedelta(seconds=5)
    up = {"state": "up", "checked_at": t2, "latency_ms": 1.0, "status": 200, "error": None, "since": t1}
    assert overall_health([], probed=True)["state"] == "stale"
    assert overall_health([{"stale": False, "health": None}], probed=True)["state"] == "unknown"
    assert overall_health([{"stale": False, "health": up}], probed=True) == up
    assert overall_health([{"stale": False, "health": up}], probed=False)["state"] == "unknown"


def test_the_overview_reads_through_indexes(db: Store) -> None:
    """No full scan or sort of health_samples for the latest sample in a state or a service's newest samples."""
    for service in range(20):  # enough rows for PostgreSQL's planner to prefer an index to a scan
        record_health(db, samples=[
            ProbeSample(proxy, "", f"s{service}", T0 + dt.timedelta(seconds=i), i % 7 != 0)
            for proxy in ("p", "q") for i in range(150)
        ])  # fmt: skip
    queries = (
        "SELECT * FROM health_samples WHERE service='s1' AND realm='' AND proxy='p' AND ok = true "
        "ORDER BY checked_at DESC LIMIT 1",
        "SELECT * FROM health_samples WHERE service='s1' AND realm='' ORDER BY checked_at DESC LIMIT 60",
    )
    with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            conn.exec_driver_sql("ANALYZE")
            plans = [" ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {q}")) for q in queries]
            assert all("USING INDEX" in plan and "TEMP B-TREE" not in plan for plan in plans), plans
            return
        conn.execute(text("ANALYZE health_samples"))
        for query in queries:
            plan = "\n".join(row[0] for row in conn.execute(text(f"EXPLAIN {query}")))
            assert "Index" in plan and "Sort" not in plan and "Seq Scan" not in plan, plan


def test_a_service_is_known_by_registry_traffic_or_probes(db: Store) -> None:
    from storage import write_records
    from tests.support.records import make_record

    assert not service_known(db, service="identity")
    register_services(db, proxy="gone", realm="prod", services=[spec("identity", health=None)], now=T0)
    write_records(db, [make_record(service="seen-only")])
    record_health(db, samples=samples("edge-1", "probed-only", "u"))
    for name in ("identity", "seen-only", "probed-only"):  # a stale registration still counts
        assert service_known(db, service=name), name
    for name in ("Identity", "identity ", "seen", "%", ""):
        assert not service_known(db, service=name), name
