"""Subprocess helpers for integration tests: start, wait for a port, stop politely, keep output.

    with ManagedProcess([sys.executable, "-m", "cli", "proxy", ...], name="proxy") as proc:
        proc.wait_for_port(port)             # fails fast, with stderr, if the process dies
        ...
    print(proc.stderr)                       # output is kept after the block

Output goes to files (never pipes, so a chatty process cannot block on a full pipe) in a temp
directory, or under $PASSAGEWAY_TEST_OUTPUT if set. The files are removed when the block exits
normally and kept (path in the error message) when it exits with an exception.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

OUTPUT_TAIL = 6000  # characters of stdout/stderr quoted in failure messages


class WaitTimeout(AssertionError):
    """wait_for() gave up."""


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
             message: str | Callable[[], str] | None = None) -> T:
    """Call ``predicate`` until it returns something truthy; return that value.

    Raises WaitTimeout (an AssertionError) after ``timeout`` seconds; ``message`` (or its result, if
    callable, evaluated only on failure) is included. Exceptions from the predicate propagate.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            name = getattr(predicate, "__name__", repr(predicate))
            raise WaitTimeout(f"timed out after {timeout}s waiting for {name}" + (f": {text}" if text else ""))
        time.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind to 0 and release). Prefer pre-bound sockets in-process."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tail(text: str, limit: int = OUTPUT_TAIL) -> str:
    return text if len(text) <= limit else "...[cut]...\n" + text[-limit:]


class ManagedProcess:
    """A subprocess whose output goes to temp files and which is always stopped on exit.

    Stopping sends SIGINT, then SIGTERM, then SIGKILL, each after the previous one's timeout,
    to the whole process group (the child is started in its own session), so helpers it spawned
    are stopped too.
    """

    def __init__(self, args: Sequence[str | os.PathLike[str]], *, name: str | None = None,
                 env: Mapping[str, str] | None = None, extra_env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None, sigint_timeout: float = 5.0,
                 sigterm_timeout: float = 5.0, stdin: Any = subprocess.DEVNULL) -> None:
        self.args = [os.fspath(a) for a in args]
        self.name = name or Path(self.args[0]).name
        base_env = dict(os.environ if env is None else env)
        base_env.setdefault("PYTHONUNBUFFERED", "1")
        base_env.update(extra_env or {})
        # Each proxy its own spool: two proxies of one name (every test's) must not share one.
        self._own_spool = None if "PASSAGEWAY_SPOOL_DIR" in base_env else tempfile.mkdtemp(prefix="passageway-spool-")
        if self._own_spool:
            base_env["PASSAGEWAY_SPOOL_DIR"] = self._own_spool
        self.env = base_env
        self.cwd = cwd
        self.sigint_timeout = sigint_timeout
        self.sigterm_timeout = sigterm_timeout
        self._stdin = stdin
        self.proc: subprocess.Popen[bytes] | None = None
        self.output_dir: Path | None = None
        self._stdout_text: str | None = None
        self._stderr_text: str | None = None
        self.stop_signal: str | None = None  # which signal finally stopped it ("exited" if it ended itself)

    # --- lifecycle ---

    def start(self) -> ManagedProcess:
        if self.proc is not None:
            raise RuntimeError(f"{self.name} already started")
        root = os.environ.get("PASSAGEWAY_TEST_OUTPUT")
        if root:
            Path(root).mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.name)
        self.output_dir = Path(tempfile.mkdtemp(prefix=f"{safe}-", dir=root or None))
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.args, stdout=out, stderr=err, stdin=self._stdin, env=self.env, cwd=self.cwd,
                start_new_session=True, preexec_fn=_default_stop_signals,
            )
        return self

    def __enter__(self) -> ManagedProcess:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop()
        if exc_type is None:
            self.cleanup()
        elif self.output_dir is not None and exc is not None and hasattr(exc, "add_note"):
            exc.add_note(f"[{self.name}] output kept in {self.output_dir}")

    def stop(self) -> int | None:
        """Stop politely (SIGINT, SIGTERM, SIGKILL); return the exit code. Idempotent."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            for sig, timeout in ((signal.SIGINT, self.sigint_timeout), (signal.SIGTERM, self.sigterm_timeout),
                                 (signal.SIGKILL, 10.0)):
                self._signal(sig)
                try:
                    proc.wait(timeout)
                    self.stop_signal = sig.name
                    break
                except subprocess.TimeoutExpired:
                    continue
        elif self.stop_signal is None:
            self.stop_signal = "exited"
        # Anything left in the group (children that ignored the signal) goes too.
        self._signal(signal.SIGKILL, quiet=True)
        self._read_output()
        if self._own_spool:
            shutil.rmtree(self._own_spool, ignore_errors=True)
        return proc.returncode

    def _signal(self, sig: signal.Signals, quiet: bool = False) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            if not quiet:
                self.proc.send_signal(sig)

    def cleanup(self) -> None:
        """Remove the output files (their text stays available on .stdout/.stderr)."""
        self._read_output()
        if self.output_dir is not None:
            shutil.rmtree(self.output_dir, ignore_errors=True)
            self.output_dir = None

    # --- state and output ---

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def stdout_path(self) -> Path:
        assert self.output_dir is not None, "not started"
        return self.output_dir / "stdout.log"

    @property
    def stderr_path(self) -> Path:
        assert self.output_dir is not None, "not started"
        return self.output_dir / "stderr.log"

    def _read_output(self) -> None:
        if self.output_dir is not None and self.output_dir.exists():
            self._stdout_text = self.stdout_path.read_bytes().decode("utf-8", "replace")
            self._stderr_text = self.stderr_path.read_bytes().decode("utf-8", "replace")

    @property
    def stdout(self) -> str:
        """Output so far (read fresh while the files exist)."""
        if self.output_dir is not None and self.output_dir.exists():
            return self.stdout_path.read_bytes().decode("utf-8", "replace")
        return self._stdout_text or ""

    @property
    def stderr(self) -> str:
        if self.output_dir is not None and self.output_dir.exists():
            return self.stderr_path.read_bytes().decode("utf-8", "replace")
        return self._stderr_text or ""

    def describe(self) -> str:
        """Command, state and output tails, for assertion messages."""
        state = "running" if self.running else f"exited with {self.returncode}"
        return (
            f"[{self.name}] $ {shlex.join(self.args)}\n[{self.name}] {state}"
            + (f"; output in {self.output_dir}" if self.output_dir else "")
            + f"\n--- stderr ---\n{_tail(self.stderr)}\n--- stdout ---\n{_tail(self.stdout)}"
        )

    # --- waiting ---

    def wait_for_port(self, port: int, host: str = "127.0.0.1", timeout: float = 20.0) -> None:
        """Wait until host:port accepts TCP connections; fail at once (with stderr) if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            if port_is_open(port, host):
                return
            if not self.running:
                raise AssertionError(f"{self.name} exited before listening on {host}:{port}\n{self.describe()}")
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.name} did not listen on {host}:{port} within {timeout}s\n{self.describe()}")
            time.sleep(0.02)

    def wait_for_output(self, text: str, timeout: float = 20.0, stream: str = "both") -> None:
        """Wait until ``text`` appears on stderr/stdout ("stderr", "stdout" or "both")."""
        def seen() -> bool:
            if stream in ("stderr", "both") and text in self.stderr:
                return True
            if stream in ("stdout", "both") and text in self.stdout:
                return True
            if not self.running:
                raise AssertionError(f"{self.name} exited before printing {text!r}\n{self.describe()}")
            return False

        wait_for(seen, timeout, 0.02, message=lambda: f"{text!r} not printed\n{self.describe()}")

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait for the process to end by itself; AssertionError (with output) if it does not."""
        assert self.proc is not None, "not started"
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {timeout}s\n{self.describe()}") from None
        self.stop_signal = self.stop_signal or "exited"
        return code


def start_process(args: Sequence[str | os.PathLike[str]], *, port: int | None = None, host: str = "127.0.0.1",
                  timeout: float = 20.0, **kwargs: Any) -> ManagedProcess:
    """Start a ManagedProcess and (if ``port``) wait until it listens. On failure the process is
    stopped and the AssertionError carries its stderr. Use the result as a context manager."""
    proc = ManagedProcess(args, **kwargs).start()
    if port is not None:
        try:
            proc.wait_for_port(port, host, timeout)
        except BaseException:
            proc.stop()
            raise
    return proc


def _default_stop_signals() -> None:
    """In the child, before exec: SIGINT and SIGTERM unblocked and at their default action, so a
    test's process answers Ctrl-C as a user's would, whatever the pytest worker that started it
    inherited or set (an ignored or blocked SIGINT passes to children through exec)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
