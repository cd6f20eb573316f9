"""Ctrl-C ends every long-running command quietly (issue 16, point 10): `passageway up`, `proxy`,
`ui` and `monitor`, real processes on a temporary SQLite database, each sent SIGINT the way a
terminal sends it (to its process group) once running, and while still loading its modules.
The exit status is 0 (a clean stop) or 130 (interrupted while starting) and stderr holds no
traceback (no CancelledError, no KeyboardInterrupt)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from tests.support import ManagedProcess, free_port, port_is_open, wait_for

PASSAGEWAY = [sys.executable, "-m", "cli"]
READY_TIMEOUT = 120  # loading the application takes seconds on a machine that runs other tests


def role(name: str, tmp_path: Path, *extra: str) -> tuple[ManagedProcess, object]:
    """A started `passageway NAME` on a database of its own, and how to tell it is running."""
    db = f"sqlite:///{tmp_path / f'{name}-{free_port()}.db'}"
    args = [*PASSAGEWAY, name, "--db", db, *extra]
    ready = None
    if name in ("up", "proxy"):
        port = free_port()
        args += ["--listen", f"127.0.0.1:{port}", "--certs-dir", str(tmp_path / "certs")]
        ready = port
    if name in ("up", "ui"):
        ui = free_port()
        args += ["--ui", f"127.0.0.1:{ui}"]
        ready = ui
    process = ManagedProcess(args, name=f"passageway {name}", sigint_timeout=40).start()
    if name == "up":
        return process, lambda: "Ctrl-C stops" in process.stdout
    if name == "monitor":
        return process, lambda: "Ctrl-C stops" in process.stdout
    return process, lambda: port_is_open(ready)


def children_of(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def catches_sigint(pid: int) -> bool:
    """The interpreter has installed its SIGINT handler: before that (the first fraction of a
    second, longer on a busy machine) SIGINT kills any program silently, Python or not."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught, 16) & (1 << (signal.SIGINT - 1)))


def assert_quiet_stop(process: ManagedProcess, codes: tuple[int, ...]) -> None:
    code = process.stop()
    assert process.stop_signal == "SIGINT", f"SIGINT did not stop it\n{process.describe()}"
    assert code in codes, process.describe()
    for word in ("Traceback", "CancelledError", "KeyboardInterrupt"):
        assert word not in process.stderr, process.describe()


@pytest.mark.exclusive  # four applications starting at once: nothing else beside them under xdist
def test_ctrl_c_stops_every_role_without_a_traceback(tmp_path):
    started = [role(name, tmp_path) for name in ("up", "proxy", "ui", "monitor")]
    # Ctrl-C while `up`'s children are still loading their modules: they must end quietly too.
    early, _ = role("up", tmp_path)
    try:
        wait_for(lambda: children_of(early.pid), timeout=READY_TIMEOUT, message=early.describe)
        assert_quiet_stop(early, (0, 130))
        loading = ManagedProcess([*PASSAGEWAY, "ui", "--db", f"sqlite:///{tmp_path / 'loading.db'}"],
                                 name="passageway ui (loading)", sigint_timeout=40).start()  # fmt: skip
        wait_for(lambda: catches_sigint(loading.pid), timeout=READY_TIMEOUT, message=loading.describe)
        time.sleep(0.2)  # well inside its imports (they take seconds)
        assert_quiet_stop(loading, (0, 130))
        for process, ready in started:
            wait_for(ready, timeout=READY_TIMEOUT, message=process.describe)
        for process, _ in started:
            assert_quiet_stop(process, (0,))
    finally:
        for process, _ in [*started, (early, None)]:
            process.stop()
            process.cleanup()
