"""serve() / InspectorServer: real sockets, port-in-use, clean shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from inspector_ui import InspectorSettings, PortInUseError
from inspector_ui.registration import registered_addresses
from inspector_ui.server import InspectorServer, bind_socket
from passageway.addresses import local_addresses
from storage.inspectors import live_inspector_addresses

from ui_support import live_inspector


def test_port_in_use_is_a_one_line_error():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(PortInUseError, match=rf"^cannot listen on 127\.0\.0\.1:{port}: address already in use$"):
            bind_socket("127.0.0.1", port)
    finally:
        taken.close()


def test_live_server_answers_and_stops(store):
    with live_inspector(store) as inspector:
        with urllib.request.urlopen(inspector.http + "/api/health", timeout=5) as response:
            assert json.load(response)["status"] == "ok"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers.get("server") is None


def test_a_running_inspector_registers_where_it_listens_until_it_stops(store):
    with live_inspector(store) as inspector:
        assert ("127.0.0.1", inspector.server.port) in live_inspector_addresses(store)
    assert ("127.0.0.1", inspector.server.port) not in live_inspector_addresses(store)


def test_a_wildcard_bind_also_registers_this_machines_own_addresses():
    own = local_addresses()
    registered = registered_addresses("0.0.0.0", 8081, own)
    assert registered[0] == ("0.0.0.0", 8081)
    assert {host for host, _ in registered[1:]} == {str(a) for a in own if not a.is_loopback}
    assert registered_addresses("127.0.0.1", 8081, own) == [("127.0.0.1", 8081)]
    assert registered_addresses("::", 8081, ()) == [("::", 8081)]


SERVE = """
import sys
from inspector_ui import InspectorSettings, serve
serve(InspectorSettings(db_url=sys.argv[1], port=int(sys.argv[2])))
print("returned cleanly", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_shuts_down_cleanly_on_signal(sqlite_url, sig):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    proc = subprocess.Popen([sys.executable, "-c", SERVE, sqlite_url, str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as response:
                    assert response.status == 200
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "serve() did not start"
                time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.strip() == "returned cleanly"
    assert "Traceback" not in err
    assert "GET /api/health" not in err  # no access log by default


def test_serve_reports_port_in_use_in_a_subprocess(sqlite_url):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        proc = subprocess.run([sys.executable, "-c", SERVE, sqlite_url, str(port)], capture_output=True, text=True, timeout=30)
    finally:
        taken.close()
    assert proc.returncode != 0
    assert f"PortInUseError: cannot listen on 127.0.0.1:{port}: address already in use" in proc.stderr


def test_settings_validate():
    with pytest.raises(ValueError):
        InspectorSettings(db_url="sqlite://", port=70000)
    with pytest.raises(ValueError):
        InspectorSettings(db_url="sqlite://", log_level="loud")
    assert InspectorServer(InspectorSettings(db_url="sqlite://")).port is None


def test_inspector_does_not_import_mitmproxy():
    code = "import sys, inspector_ui, inspector_ui.server; print('mitmproxy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
