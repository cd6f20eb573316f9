"""GET /api/metrics: Prometheus text exposition of every proxy's writer, every service's health and
every monitor's state, and of this inspector (with its maintenance's failures, retention counters
when a retention limit is set, and its monitor runner's counters when it runs one).

Proxy figures come from proxy_stats (each proxy's writer reports every few seconds); a proxy
that has not reported for PROXY_STALE seconds is shown with passageway_proxy_up 0."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from radar.monitor_runner import MonitorRunner
from storage.contracts import violation_totals
from storage.maintenance import JobStats
from storage.monitors import MonitorRow, list_monitors
from storage.queries import index_backlog, proxy_stats
from storage.retention import RetentionTotals
from storage.spool_handoff import worker_of_row
from storage.services import service_overview

from ..deps import BroadcasterDep, MaintenanceDep, StoreDep

router = APIRouter(prefix="/api", tags=["metrics"])

PROXY_STALE = 30.0
# (metric, type, help, proxy_stats column)
PROXY_METRICS = (
    ("passageway_captured_total", "counter", "Exchange records the proxy handed to its writer.", "submitted"),
    ("passageway_written_total", "counter", "Records committed to the database.", "written"),
    ("passageway_dropped_total", "counter", "Records dropped because the writer's queue or spool was full.", "dropped"),
    ("passageway_lost_total", "counter", "Records accepted but never written.", "lost"),
    ("passageway_database_errors_total", "counter", "Failed write attempts (each retry counts).", "failed_batches"),
    ("passageway_queue_depth", "gauge", "Records waiting in the writer's queue.", "queue_depth"),
    ("passageway_spooled", "gauge", "Records in the proxy's spool that the database does not have yet.", "spooled"),
    ("passageway_spool_bytes", "gauge", "Bytes of those records on disk.", "spool_bytes"),
    ("passageway_write_seconds_sum", "counter", "Time spent in committed batch writes.", "write_seconds"),
    ("passageway_write_seconds_count", "counter", "Committed batch writes.", "write_batches"),
)  # fmt: skip

WORKER_METRICS = tuple(
    (name.replace("passageway_", "passageway_worker_", 1), kind, f"{text.rstrip('.')}: one worker of the proxy.", column)
    for name, kind, text, column in PROXY_METRICS
    if column in ("submitted", "written", "dropped", "lost", "queue_depth", "spooled", "spool_bytes")
)
"""A proxy's workers' counters (`passageway proxy --workers N`), labelled proxy and worker."""


def proxy_up(proxy: dict) -> bool:
    return proxy.get("stopped_at") is None and proxy["age_seconds"] < PROXY_STALE


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(
    proxies: list[dict],
    *,
    viewers: int,
    dropped_viewers: int,
    published: int,
    backlog: int,
    retention: RetentionTotals | None = None,
    maintenance_jobs: dict[str, JobStats] | None = None,
    services: list[dict] = (),
    monitors: list[MonitorRow] = (),
    runner: MonitorRunner | None = None,
    violations: list[tuple[str, str, str, int]] = (),
    contract_checks: int | None = None,
) -> str:
    lines: list[str] = []
    workers = [(*worker_of_row(p["proxy"]), p) for p in proxies]
    proxies = [p for _, worker, p in workers if worker is None]
    workers = [(proxy, worker, p) for proxy, worker, p in workers if worker is not None]
    for name, kind, text, column in PROXY_METRICS:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        lines += [f'{name}{{proxy="{_label(p["proxy"])}"}} {p[column]}' for p in proxies]
    lines += ["# HELP passageway_proxy_up 1 when the proxy runs and reported in the last 30 s.",
              "# TYPE passageway_proxy_up gauge"]  # fmt: skip
    lines += [f'passageway_proxy_up{{proxy="{_label(p["proxy"])}"}} {int(proxy_up(p))}' for p in proxies]
    # Each worker's share apart (its own families: a sum over passageway_captured_total stays right).
    for name, kind, text, column in WORKER_METRICS:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        lines += [f'{name}{{proxy="{_label(proxy)}",worker="{worker}"}} {p[column]}' for proxy, worker, p in workers]
    lines += _service_metrics([s for s in services if s["health"]["state"] in ("up", "down")])
    lines += _monitor_metrics(monitors)
    lines += _violation_metrics(violations)
    if runner is not None:
        lines += _runner_metrics(runner)
    for name, kind, text, value in (
        ("passageway_live_viewers", "gauge", "WebSocket viewers of /api/stream on this inspector.", viewers),
        ("passageway_viewers_dropped_total", "counter", "Viewers disconnected for falling behind.", dropped_viewers),
        ("passageway_stream_messages_total", "counter", "Messages published to viewers.", published),
        ("passageway_index_backlog", "gauge", "Exchanges waiting for the search indexer.", backlog),
        *(_retention_metrics(retention) if retention is not None else ()),
        *((("passageway_contract_checks_total", "counter",
            "Exchanges this inspector's maintenance checked against their service's contract.", contract_checks),)
          if contract_checks is not None else ()),
    ):  # fmt: skip
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value}"]
    if maintenance_jobs is not None:
        lines += ["# HELP passageway_maintenance_failures_total Failed runs of this inspector's maintenance jobs.",
                  "# TYPE passageway_maintenance_failures_total counter"]  # fmt: skip
        lines += [f'passageway_maintenance_failures_total{{job="{job}"}} {stats.failures}' for job, stats in maintenance_jobs.items()]
    return "\n".join(lines) + "\n"


def _service_metrics(services: list[dict]) -> list[str]:
    """Each probed service's state and last probe latency (unknown and stale ones are left out)."""
    lines = ["# HELP passageway_service_up 1 when the service's last health probes succeeded, 0 when one failed.",
             "# TYPE passageway_service_up gauge"]  # fmt: skip
    latencies = ["# HELP passageway_service_probe_seconds The last health probe's latency.",
                 "# TYPE passageway_service_probe_seconds gauge"]  # fmt: skip
    for service in services:
        labels = f'service="{_label(service["name"])}",realm="{_label(service["realm"] or "")}"'
        lines.append(f"passageway_service_up{{{labels}}} {int(service['health']['state'] == 'up')}")
        if service["health"]["latency_ms"] is not None:
            latencies.append(f"passageway_service_probe_seconds{{{labels}}} {service['health']['latency_ms'] / 1000:.6f}")
    return lines + latencies


def _violation_metrics(violations: list[tuple[str, str, str, int]]) -> list[str]:
    """Contract violations stored per service, realm and rule (storage.contracts); a gauge, as
    retention removes them with their exchanges."""
    lines = ["# HELP passageway_contract_violations Contract violations stored, by service, realm and rule.",
             "# TYPE passageway_contract_violations gauge"]  # fmt: skip
    for service, realm, rule, count in violations:
        lines.append(f'passageway_contract_violations{{service="{_label(service)}",realm="{_label(realm)}",'
                     f'rule="{_label(rule)}"}} {count}')  # fmt: skip
    return lines


def _monitor_metrics(monitors: list[MonitorRow]) -> list[str]:
    """Each monitor's state (up 1, down 0; left out while unknown), its last run's duration and its
    failures in a row: from the store, so every inspector shows every monitor."""
    up = ["# HELP passageway_monitor_up 1 when the monitor's last run passed, 0 when it failed.",
          "# TYPE passageway_monitor_up gauge"]  # fmt: skip
    durations = ["# HELP passageway_monitor_last_duration_seconds How long the monitor's last run took.",
                 "# TYPE passageway_monitor_last_duration_seconds gauge"]  # fmt: skip
    failures = ["# HELP passageway_monitor_consecutive_failures Failed runs of the monitor since it last passed.",
                "# TYPE passageway_monitor_consecutive_failures gauge"]  # fmt: skip
    for monitor in monitors:
        labels = f'monitor="{_label(monitor.name)}",realm="{_label(monitor.realm or "")}"'
        if monitor.state in ("up", "down"):
            up.append(f"passageway_monitor_up{{{labels}}} {int(monitor.state == 'up')}")
        if monitor.last_duration_ms is not None:
            durations.append(f"passageway_monitor_last_duration_seconds{{{labels}}} {monitor.last_duration_ms / 1000:.6f}")
        failures.append(f"passageway_monitor_consecutive_failures{{{labels}}} {monitor.consecutive_failures}")
    return up + durations + failures


def _runner_metrics(runner: MonitorRunner) -> list[str]:
    """The counters of the monitor runner this inspector runs."""
    lines: list[str] = []
    for name, text, value in (
        ("passageway_monitor_runs_total", "Monitor runs this inspector's runner made.", runner.stats.runs),
        ("passageway_monitor_failed_runs_total", "Those that failed.", runner.stats.failed_runs),
        ("passageway_monitor_notifications_failed_total", "Webhook notifications given up after every attempt.",
         runner.notifier.stats.failed),
        ("passageway_monitor_notifications_dropped_total", "Webhook notifications refused: too many waited.",
         runner.notifier.stats.dropped),
    ):  # fmt: skip
        lines += [f"# HELP {name} {text}", f"# TYPE {name} counter", f"{name} {value}"]
    return lines


def _retention_metrics(totals: RetentionTotals) -> tuple[tuple[str, str, str, int | float], ...]:
    return (
        ("passageway_retention_pruned_exchanges_total", "counter", "Exchanges this inspector's retention removed.",
         totals.exchanges),
        ("passageway_retention_pruned_bodies_total", "counter", "Bodies removed as no longer referenced.", totals.bodies),
        ("passageway_retention_freed_body_bytes_total", "counter", "Stored bytes of the bodies removed.",
         totals.body_bytes),
        ("passageway_retention_failures_total", "counter", "Retention passes that failed.", totals.failures),
        ("passageway_retention_last_run_timestamp_seconds", "gauge",
         "When the last retention pass ended (0: none yet).", totals.last_run or 0),
    )  # fmt: skip


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics: proxies' writers and this inspector")
async def metrics(request: Request, store: StoreDep, broadcaster: BroadcasterDep, maintenance: MaintenanceDep) -> Any:
    proxies, backlog, services, monitors, violations = await run_in_threadpool(
        lambda: (proxy_stats(store), index_backlog(store), service_overview(store, history=1), list_monitors(store),
                 violation_totals(store))  # fmt: skip
    )
    text = exposition(
        proxies,
        viewers=broadcaster.clients,
        dropped_viewers=broadcaster.dropped,
        published=broadcaster.published,
        backlog=backlog,
        retention=maintenance.retention if maintenance is not None else None,
        maintenance_jobs=maintenance.jobs if maintenance is not None else None,
        services=services,
        monitors=monitors,
        runner=getattr(request.app.state, "monitor_runner", None),  # set when this inspector runs monitors
        violations=violations,
        contract_checks=maintenance.contract_checks if maintenance is not None else None,
    )
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")
