"""No listener of Passageway forwards to an inspector, however its address is spelled or configured.

Real `passageway up`, `proxy` and `ui` processes, one stack per way the proxy can learn the
inspector's address: `up --ui`, PASSAGEWAY_UI, `ui` in passageway.toml, and a `passageway ui`
started apart whose address the proxy knows only from the database. Each stack is asked for the
inspector through the gateway (a route whose URL is the inspector), the forward proxy
(absolute-form, origin-form with the inspector's Host, CONNECT with HTTP or raw bytes inside),
in every spelling. Every answer must be the proxy's refusal, and the inspector must never see
a request: a share created through the proxy would show in its list, which stays empty.

Requests are written on raw sockets, so what is sent is exactly the spelling under test. Nothing
leaves this machine: every address asked for is loopback or this machine's own.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from passageway.addresses import local_addresses
from storage.inspectors import register_inspector, unregister_inspector
from storage.store import open_store
from tests.support import ManagedProcess, free_port, fresh_postgres_database, require_or_skip_postgres, start_process, wait_for

PASSAGEWAY = [sys.executable, "-m", "cli"]
TOKEN = "guard-test-token-0123456789"
REFUSAL = b"does not forward requests to an inspector"
LOOPBACK_SPELLINGS = ["127.0.0.1", "localhost", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "[::ffff:127.0.0.1]", "127.1"]


def machine_name_if_local() -> list[str]:
    """This machine's host name, when every address it resolves to is loopback (so the test never
    sends anything beyond this machine whatever happens)."""
    name = socket.gethostname()
    try:
        answers = {info[4][0] for info in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
    except OSError:
        return []
    return [name] if answers and all(ipaddress.ip_address(a.partition("%")[0]).is_loopback for a in answers) else []


def own_addresses() -> list[str]:
    """This machine's non-loopback addresses, as URL hosts."""
    found = sorted((a for a in local_addresses() if not a.is_loopback and not a.is_link_local), key=str)
    return [f"[{a}]" if a.version == 6 else str(a) for a in found]


@dataclass
class Stack:
    way: str
    gateway: int
    forward: int
    ui: int
    spellings: list[str]
    db_url: str
    service_port: int | None = None
    """A service's own listen port whose upstream is the inspector (the config-file stack only)."""
    processes: list[ManagedProcess] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    """What a direct client of the inspector sends (a token when it listens beyond loopback)."""

    def shares(self) -> list:
        response = httpx.get(f"http://127.0.0.1:{self.ui}/api/shares", headers=self.headers, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def describe(self) -> str:
        return "\n".join(process.describe() for process in self.processes)


def routes(spellings: list[str], port: int) -> list[str]:
    return [arg for index, host in enumerate(spellings) for arg in ("--route", f"s{index}=http://{host}:{port}")]


WAYS = ["up --ui", "up with PASSAGEWAY_UI", "up with ui in passageway.toml", "separate ui, known from the database"]


@pytest.fixture(scope="module", params=WAYS)
def stack(request, tmp_path_factory) -> Iterator[Stack]:
    way = request.param
    tmp = tmp_path_factory.mktemp("guard")
    gateway, forward, ui = free_port(), free_port(), free_port()
    spellings = LOOPBACK_SPELLINGS + machine_name_if_local()
    common = ["--listen", f"127.0.0.1:{gateway}", "--forward-port", str(forward), "--certs-dir", str(tmp / "certs")]
    if way != WAYS[3]:
        db_url = f"sqlite:///{tmp / 'guard.db'}"
        env: dict[str, str] = {}
        args = [*PASSAGEWAY, "up", "--db", db_url, *common, *routes(spellings, ui)]
        if way == WAYS[0]:
            args += ["--ui", f"127.0.0.1:{ui}"]
        elif way == WAYS[1]:
            env["PASSAGEWAY_UI"] = f"127.0.0.1:{ui}"
        else:
            service_port = free_port()
            (tmp / "passageway.toml").write_text(
                f'ui = "127.0.0.1:{ui}"\n\n[services.own-port]\nurl = "http://2130706433:{ui}"\n'
                f'listen = "127.0.0.1:{service_port}"\n'
            )
            args += ["--config", str(tmp / "passageway.toml")]
        with start_process(args, port=gateway, name="passageway up", timeout=30, extra_env=env, cwd=tmp) as up:
            up.wait_for_port(ui)
            up.wait_for_port(forward)
            stack = Stack(way, gateway, forward, ui, spellings, db_url, processes=[up])
            if way == WAYS[2]:
                up.wait_for_port(service_port)
                stack.service_port = service_port
            yield stack
        return
    # The inspector listens on every interface and the proxy is told nothing about it: it must
    # learn it from the database, and also refuse this machine's own addresses.
    require_or_skip_postgres()
    with fresh_postgres_database() as db_url:
        ui_env = {"PASSAGEWAY_UI_TOKEN": TOKEN}
        ui_args = [*PASSAGEWAY, "ui", "--db", db_url, "--ui", f"0.0.0.0:{ui}", "--listen", f"127.0.0.1:{gateway}"]
        with start_process(ui_args, port=ui, name="passageway ui", timeout=30, extra_env=ui_env, cwd=tmp) as inspector:
            spellings += ["0.0.0.0", *own_addresses()]
            proxy_args = [*PASSAGEWAY, "proxy", "--db", db_url, *common, *routes(spellings, ui)]
            with start_process(proxy_args, port=gateway, name="passageway proxy", timeout=30, cwd=tmp) as proxy:
                proxy.wait_for_port(forward)
                stack = Stack(way, gateway, forward, ui, spellings, db_url, processes=[inspector, proxy])
                stack.headers = {"Authorization": f"Bearer {TOKEN}"}
                yield stack


def exchange(port: int, data: bytes, *, then: bytes = b"", linger: float = 0.15) -> bytes:
    """Send `data` to 127.0.0.1:port and read one answer (head and Content-Length body); then send
    `then` and read whatever else comes within `linger` seconds, or until the proxy closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                return answer
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length and (chunk := sock.recv(65536)):
            body += chunk
        answer = head + b"\r\n\r\n" + body
        if not then:
            return answer
        sock.settimeout(linger)
        try:
            sock.sendall(then)
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            pass
    return answer


def get(target: str, host: str, *, method: str = "GET", body: bytes = b"") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def assert_refused(answer: bytes, stack: Stack, what: str) -> None:
    status = answer.split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 403"), f"{what}: {answer[:300]!r}\n{stack.describe()}"
    assert REFUSAL in answer, f"{what}: {answer[:300]!r}"
    assert b'"status": "ok"' not in answer and b'"status":"ok"' not in answer


def test_the_gateway_refuses_a_route_whose_url_is_the_inspector(stack):
    for index, host in enumerate(stack.spellings):
        answer = exchange(stack.gateway, get(f"/s{index}/api/health", f"127.0.0.1:{stack.gateway}"))
        assert_refused(answer, stack, f"gateway route to {host}")


@pytest.mark.parametrize("stack", [WAYS[2]], indirect=True)  # the stack whose file gives a service its own port
def test_a_service_port_whose_upstream_is_the_inspector_refuses(stack):
    assert stack.service_port is not None
    answer = exchange(stack.service_port, get("/api/health", f"127.0.0.1:{stack.service_port}"))
    assert_refused(answer, stack, "a service's own port")


def test_the_forward_proxy_refuses_absolute_form_requests(stack):
    for host in stack.spellings:
        authority = f"{host}:{stack.ui}"
        answer = exchange(stack.forward, get(f"http://{authority}/api/exchanges/1", authority))
        assert_refused(answer, stack, f"GET http://{authority}/")


def test_the_forward_proxy_refuses_origin_form_with_the_inspectors_host(stack):
    for host in stack.spellings:
        answer = exchange(stack.forward, get("/api/health", f"{host}:{stack.ui}"))
        assert_refused(answer, stack, f"Host: {host}")


@pytest.mark.parametrize("inside", [b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00\x01raw bytes\r\n"])
def test_the_forward_proxy_refuses_a_tunnel_to_the_inspector(stack, inside):
    for host in stack.spellings:
        authority = f"{host}:{stack.ui}"
        connect = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()
        answer = exchange(stack.forward, connect, then=inside)
        assert_refused(answer, stack, f"CONNECT {authority}")


def test_a_share_asked_for_through_the_proxy_never_reaches_the_inspector(stack):
    body = json.dumps({"q": "method:GET", "note": "through the proxy"}).encode()
    for host in stack.spellings:
        authority = f"{host}:{stack.ui}"
        answer = exchange(stack.forward, get(f"http://{authority}/api/shares", authority, method="POST", body=body))
        assert_refused(answer, stack, f"POST http://{authority}/api/shares")
    assert stack.shares() == []


@pytest.mark.parametrize("stack", [WAYS[3]], indirect=True)  # the stack that learns inspectors from the database
def test_an_inspector_started_after_the_proxy_is_refused_within_the_refresh_window(stack, tmp_path):
    late = free_port()
    args = [*PASSAGEWAY, "ui", "--db", stack.db_url, "--ui", f"127.0.0.1:{late}", "--listen", f"127.0.0.1:{stack.gateway}"]
    with start_process(args, port=late, name="late passageway ui", timeout=30, cwd=tmp_path):
        authority = f"2130706433:{late}"

        def refused() -> bool:
            return REFUSAL in exchange(stack.forward, get(f"http://{authority}/api/health", authority))

        wait_for(refused, timeout=5, interval=0.2, message=stack.describe)
        body = json.dumps({"q": "method:GET"}).encode()
        assert_refused(exchange(stack.forward, get(f"http://{authority}/api/shares", authority, method="POST", body=body)),
                       stack, "late inspector")  # fmt: skip
        assert httpx.get(f"http://127.0.0.1:{late}/api/shares", timeout=5).json()["data"] == []


@pytest.mark.parametrize("stack", [WAYS[3]], indirect=True)
def test_a_tunnel_opened_before_an_inspector_registered_is_killed_at_connect(stack):
    """The backstop (server_connect): the CONNECT was allowed, the port became an inspector's
    before the first bytes went through, so the connection to it is never opened."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", stack.forward), timeout=5) as tunnel:
            tunnel.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            assert tunnel.recv(65536).startswith(b"HTTP/1.1 200")
            store = open_store(stack.db_url, migrate=False)
            try:
                register_inspector(store, inspector="test-late", machine="test", addresses=[("127.0.0.1", port)])
                # Another loopback address at that port: refused once the proxy knows the port is an
                # inspector's, and nothing listens there before (the listener is on 127.0.0.1 only).
                probe = f"127.0.0.2:{port}"
                wait_for(lambda: REFUSAL in exchange(stack.forward, get(f"http://{probe}/", probe)), timeout=5, interval=0.2)
                tunnel.sendall(b"\x00\x01raw bytes\r\n")
                try:
                    rest = tunnel.recv(65536)
                except ConnectionResetError:
                    rest = b""
                assert rest == b"", rest
            finally:
                unregister_inspector(store, inspector="test-late")
                store.close()
        with pytest.raises(TimeoutError):
            listener.accept()  # the proxy never connected


def test_the_proxy_says_where_it_refuses(stack):
    proxy = stack.processes[-1]
    wait_for(lambda: "reaches the inspector" in proxy.stderr + proxy.stdout, timeout=5, message=stack.describe)
    assert "Traceback" not in proxy.stderr

