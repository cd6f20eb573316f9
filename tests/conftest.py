"""Session-wide: nothing a test starts writes under the real home's state directory."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Proxies keep their spool under $XDG_STATE_HOME unless told otherwise."""
    previous = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if previous is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = previous


# --- Timing-sensitive tests run alone under pytest-xdist ------------------------------------------
#
# `make test` runs the suite on three pytest-xdist workers. A few tests assert a timing bound that is
# a product property (kill -9 loses at most ~100 ms, a stream delivers within 250 ms, a replay keeps
# its rate within 10 %, ...). Those carry @pytest.mark.exclusive: while one runs, the other workers
# run no test at all (each waits before its next test starts), so they see the same quiet machine as
# in a serial run. Every other test takes a shared lock. A second "gate" lock gives an exclusive
# test priority: once it is waiting, no new test may start beside it. Without xdist (a plain
# `pytest` run) this is a no-op. The wait happens before pytest-timeout starts its clock.


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "exclusive: asserts a timing bound; under pytest-xdist no other test runs beside it",
    )


def _lock_dir(config: pytest.Config):  # type: ignore[no-untyped-def]
    """The directory all workers of this run share: the parent of each worker's basetemp."""
    if not hasattr(config, "workerinput"):
        return None
    return config._tmp_path_factory.getbasetemp().parent  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):  # type: ignore[no-untyped-def]
    directory = _lock_dir(item.config)
    if directory is None:
        yield
        return
    exclusive = item.get_closest_marker("exclusive") is not None
    with open(directory / "passageway-exclusive.gate", "a+") as gate, \
            open(directory / "passageway-exclusive.lock", "a+") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# Under xdist (`make test`: --dist loadfile --no-loadscope-reorder) whole files are handed out in
# collection order, one at a time, to whichever worker is free. The longest files lead, so the run
# ends on short files and all workers finish together. The order within a file is unchanged; a
# plain `pytest` keeps its order. Measured (junit times summed per file, `make test` on 3 workers,
# issue 19): every file of 14 s or more, longest first, then the directories whose files start
# real processes, then the rest (a file not named here, e.g. a new one, runs with its directory).
LONGEST_FIRST = (
    "tests/integration/test_replay.py",
    "tests/integration/test_transfer.py",
    "tests/integration/test_outages.py",
    "tests/integration/test_writer_process.py",
    "tests/browser/test_inspector.py",
    "tests/browser/test_list.py",
    "tests/browser/test_services_shares_16.py",
    "tests/browser/test_pending.py",
    "tests/integration/test_pending.py",
    "tests/browser/test_shares.py",
    "tests/integration/test_api_schema.py",
    "tests/integration/test_inspector_unreachable.py",
    "tests/browser/test_service_page.py",
    "tests/browser/test_replay_diff.py",
    "tests/integration/test_redaction_echo.py",
    "tests/integration/test_fault_rules.py",
    "tests/integration/test_live_routes.py",
    "tests/integration/test_test_new.py",
    "tests/integration/test_capture.py",
    "tests/integration/test_workers.py",
    "tests/integration/test_mocks.py",
    "tests/browser/test_har_download.py",
    "tests/browser/test_traces_16.py",
    "tests/browser/test_detail_pane.py",
    "tests/browser/test_faults_ui.py",
    "tests/integration/test_cli.py",
    "tests/inspector_ui/test_ui_server.py",
    "tests/integration/test_team.py",
    "tests/integration/test_mock_up.py",
    "tests/integration/test_faults.py",
    "tests/storage/test_search_sql.py",
    "tests/inspector_ui/test_ui_monitors.py",
    "tests/browser/test_monitors_page.py",
    "tests/integration/test_mesh.py",
    "tests/cli/test_fault_commands.py",
    "tests/integration/test_test_run.py",
    "tests/integration/test_contracts.py",
    "tests/radar/test_monitor_runner.py",
    "tests/integration/test_monitor_runners.py",
    "tests/integration/test_prune_cli.py",
    "tests/browser/test_contracts_ui.py",
    "tests/browser/test_test_run_page.py",
    "tests/cli/test_registry_cli.py",
    "tests/storage/test_snippets.py",
    "tests/integration/test_viewers.py",
    "tests/browser/test_trace_page.py",
    "tests/inspector_ui/test_ui_registry.py",
    "tests/inspector_ui/test_ui_bad_input.py",
    "tests/integration/",
    "tests/browser/",
    "tests/inspector_ui/",
    "tests/storage/",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):
        return

    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if path.startswith(prefix)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: each file's tests keep their order
