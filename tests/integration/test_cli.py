"""The `passageway` command as a user runs it: mistakes get one line, `up` runs and stops cleanly."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import websockets

from tests.support import free_port, running_upstream, start_process, wait_for

PASSAGEWAY = [sys.executable, "-m", "cli"]


def run(*args: str, cwd=None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*PASSAGEWAY, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("passageway: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--route", "nonsense"], ["bad route 'nonsense'", "NAME=URL"]),
        (["--route", "x=ftp://h"], ["scheme must be http or https"]),
        (["--listen", "127.0.0.1:notaport"], ["bad listen address"]),
        (["--body-cap", "huge"], ["bad body cap"]),
        (["--db", "mysql://x/y"], ["mysql"]),
        (["--db", "postgresql://postgres@127.0.0.1:1/nope"], ["127.0.0.1:1"]),
        (["--config", "/nonexistent/passageway.toml"], ["does not exist"]),
    ],
)
def test_user_mistakes_are_one_line(tmp_path, args, fragments):
    # Later flags win, so each case overrides one of these sane defaults.
    defaults = ["--db", f"sqlite:///{tmp_path}/x.db", "--listen", f"127.0.0.1:{free_port()}"]
    assert_one_line_error(run("proxy", *defaults, *args, cwd=tmp_path), *fragments)


def test_malformed_config_file(tmp_path):
    (tmp_path / "passageway.toml").write_text("[services.a\nurl=1")
    assert_one_line_error(run("proxy", cwd=tmp_path), "passageway.toml", "not valid TOML")


def test_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("proxy", "--db", f"sqlite:///{tmp_path}/x.db", "--listen", f"127.0.0.1:{port}", cwd=tmp_path)
    assert_one_line_error(result, f"127.0.0.1:{port} is already in use")


@pytest.mark.exclusive  # a timing bound: nothing else runs beside it under xdist
def test_up_runs_both_streams_live_and_stops_on_ctrl_c(tmp_path):
    gateway, ui = free_port(), free_port()
    with running_upstream() as upstream:
        args = [
            *PASSAGEWAY, "up", "--db", f"sqlite:///{tmp_path}/up.db",
            "--listen", f"127.0.0.1:{gateway}", "--ui", f"127.0.0.1:{ui}",
            "--route", f"svc={upstream.url}", "--certs-dir", str(tmp_path / "certs"),
        ]
        with start_process(args, port=gateway, name="passageway up", timeout=30, cwd=tmp_path) as up:
            up.wait_for_port(ui)
            assert httpx.get(f"http://127.0.0.1:{ui}/api/health").status_code == 200

            async def watch_stream() -> tuple[dict, float]:
                async with websockets.connect(f"ws://127.0.0.1:{ui}/api/stream") as ws:
                    hello = json.loads(await ws.recv())
                    assert hello["type"] == "hello"
                    sent_at = time.monotonic()
                    await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{gateway}/svc/echo?live=1")
                    while True:
                        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                        if message["type"] == "exchange":
                            return message["data"], time.monotonic() - sent_at

            summary, latency = asyncio.run(watch_stream())
            assert (summary["service"], summary["path"], summary["query"]) == ("svc", "/echo", "live=1")
            assert latency < 2.0  # includes the request itself; the stream's own delay is checked in-process

            listed = httpx.get(f"http://127.0.0.1:{ui}/api/exchanges").json()
            assert listed["data"][0]["id"] == summary["id"]

            up.proc.send_signal(signal.SIGINT)
            assert up.wait_exit(timeout=15) == 0
        for port in (gateway, ui):
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", port)) != 0, "both children must be gone"


def test_an_inspector_beyond_loopback_gets_a_token(tmp_path):
    gateway, ui = free_port(), free_port()
    args = [
        *PASSAGEWAY, "up", "--db", f"sqlite:///{tmp_path}/up.db", "--listen", f"127.0.0.1:{gateway}",
        "--ui", f"0.0.0.0:{ui}", "--certs-dir", str(tmp_path / "certs"),
    ]  # fmt: skip
    with start_process(args, port=gateway, name="passageway up", timeout=30, cwd=tmp_path) as up:
        up.wait_for_port(ui)
        banner = wait_for(lambda: re.search(r"\?token=([A-Za-z0-9_-]{43})", up.stdout), timeout=10)
        token = banner[1]
        assert httpx.get(f"http://127.0.0.1:{ui}/api/health").status_code == 401
        assert httpx.get(f"http://127.0.0.1:{ui}/api/health", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        up.proc.send_signal(signal.SIGINT)
        assert up.wait_exit(timeout=15) == 0
