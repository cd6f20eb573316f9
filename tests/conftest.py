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
# collection order, one at a time, to whichever worker is free. The files that start real
# processes come first and the longest of them lead, so the run ends on short files and all
# workers finish together. The order within a file is unchanged; a plain `pytest` keeps its order.
# Measured (junit times summed per file, issue 16): export/import and `test new` lead by far; the
# heaviest storage and inspector files go before the many short ones, so no long file comes last.
LONGEST_FIRST = (
    "tests/integration/test_transfer.py",
    "tests/integration/test_test_new.py",
    "tests/integration/test_outages.py",
    "tests/integration/test_redaction_echo.py",
    "tests/integration/test_inspector_unreachable.py",
    "tests/integration/test_capture.py",
    "tests/integration/test_viewers.py",
    "tests/integration/test_replay.py",
    "tests/integration/",
    "tests/browser/",
    "tests/storage/test_search_sql.py",
    "tests/storage/test_har.py",
    "tests/inspector_ui/test_ui_bad_input.py",
    "tests/storage/test_storage_writer.py",
    "tests/storage/test_snippets.py",
    "tests/radar/test_hurl_properties.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):
        return

    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if path.startswith(prefix)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: each file's tests keep their order
