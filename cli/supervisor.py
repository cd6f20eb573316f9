"""`passageway up`: the proxy and the inspector as two child processes that meet only in the
database, started with the settings each uses (cli.settings.child_arguments) and stopped together."""

from __future__ import annotations

import ctypes
import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from proxy.routing import format_address

from .settings import COMMAND_ROLES, Settings, child_arguments, client_url

PROG = "passageway"
DEMO_ADDRESS = ("127.0.0.1", 9001)
DEMO_SHOP_ADDRESS = ("127.0.0.1", 9002)
"""The demo's second service (`shop`, depends on `demo`): registered, not configured."""
COMMAND = (sys.executable, "-m", "cli")
"""How `up` starts its children: this same command."""


def inspector_token(settings: Settings) -> str | None:
    """The configured token, or a new one when the inspector listens beyond loopback."""
    if settings.ui_token or not listens_beyond_loopback(settings.ui[0]):
        return settings.ui_token
    return secrets.token_urlsafe(32)


def shown_host(host: str) -> str:
    """The host to print for a listen address: this machine's name for a wildcard bind."""
    return socket.gethostname() if host in ("0.0.0.0", "::", "") else host


def listens_beyond_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def stop_on_signals() -> threading.Event:
    """Set on SIGINT or SIGTERM from now on: a supervisor then stops its children in order (never
    a KeyboardInterrupt between two spawns)."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    return stopping


def spawn(args: list[str], env: dict[str, str] | None = None, pass_fds: Sequence[int] = ()) -> subprocess.Popen:
    """Start a child of `up` that only `up` stops.

    Its own process group keeps a terminal's Ctrl-C from reaching it twice
    (directly and forwarded); on Linux it also dies when `up` is killed outright.
    """
    if not sys.platform.startswith("linux"):
        return subprocess.Popen(args, process_group=0, env=env, pass_fds=pass_fds)

    def die_with_parent() -> None:
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)

    return subprocess.Popen(args, process_group=0, preexec_fn=die_with_parent, env=env, pass_fds=pass_fds)


def run_up(argv: Sequence[str], settings: Settings, *, demo: bool) -> int:
    """Start the proxy and the inspector; stop both when either stops or on Ctrl-C."""
    # Fail here, in one line, on what a child would otherwise fail on.
    from proxy.listen import check_bindable, listen_addresses
    from storage.store import open_store

    from .roles import proxy_view

    addresses = [*listen_addresses(proxy_view(settings)), ("inspector", settings.ui)]
    if demo:
        addresses += [("demo upstream", DEMO_ADDRESS), ("demo shop", DEMO_SHOP_ADDRESS)]
    for what, address in addresses:
        check_bindable(what, address)
    store = open_store(settings.db)
    database = store.display_url  # password masked
    store.close()

    stopping = stop_on_signals()
    children: dict[str, subprocess.Popen] = {}
    token = inspector_token(settings)
    if demo:
        children["demo upstream"] = spawn(
            [*COMMAND, "demo-upstream", "--listen", format_address(*DEMO_ADDRESS),
             "--shop-listen", format_address(*DEMO_SHOP_ADDRESS)],
            env=demo_environment(settings, token),
        )  # fmt: skip
    children["proxy"] = spawn([*COMMAND, "proxy", *child_arguments(argv, COMMAND_ROLES["proxy"])])
    children["inspector"] = spawn(
        [*COMMAND, "ui", *child_arguments(argv, COMMAND_ROLES["ui"])],
        env={**os.environ, "PASSAGEWAY_UI_TOKEN": token} if token else None,
    )
    settings = settings.model_copy(update={"ui_token": token})

    waiting_for = [settings.listen, settings.ui]
    exit_code = 0
    while not stopping.is_set():
        if waiting_for and accepts_connections(waiting_for[0]):
            waiting_for.pop(0)
            if not waiting_for:
                print_banner(settings, database=database, demo=demo)
        for name, child in list(children.items()):
            if child.poll() is None:
                continue
            if name == "demo upstream":
                # An extra: the proxy and the inspector go on without it (simulating the demo
                # with its upstream stopped is how the README shows mocks).
                print(f"{PROG}: the demo upstream exited with status {child.returncode}; the proxy and the inspector "
                      f"keep running", file=sys.stderr)  # fmt: skip
                del children[name]
                continue
            print(f"{PROG}: {name} exited with status {child.returncode}; stopping", file=sys.stderr)
            exit_code = exit_code or (1 if child.returncode != 0 else 0)
            stopping.set()
        time.sleep(0.1)
    # SIGTERM, which every role handles as it handles Ctrl-C: a child still starting (Python
    # itself, or our modules, loading) then ends quietly, where SIGINT printed a traceback.
    # The demo first, while the inspector still answers its goodbye (it deregisters).
    demo_child = children.get("demo upstream")
    if demo_child is not None and demo_child.poll() is None:
        demo_child.send_signal(signal.SIGTERM)
        try:
            demo_child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass  # stopped with the others below
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return exit_code


def demo_environment(settings: Settings, token: str | None) -> dict[str, str]:
    """The demo services register themselves with this inspector, in the proxy's realm."""
    host = settings.ui[0]
    reachable = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    env = {**os.environ, "PASSAGEWAY_INSPECTOR_URL": f"http://{format_address(reachable, settings.ui[1])}",
           # Its smart client calls back through this gateway (/checkout), wherever it listens.
           "PASSAGEWAY_URL": client_url(settings.listen)}  # fmt: skip
    # Ours, not whatever the shell had: the proxy's realm and this inspector's token, or none.
    for name, value in (("PASSAGEWAY_TOKEN", token), ("PASSAGEWAY_REALM", settings.realm)):
        if value:
            env[name] = value
        else:
            env.pop(name, None)
    return env


def accepts_connections(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=0.2).close()
    except OSError:
        return False
    return True


def print_banner(settings: Settings, *, database: str, demo: bool) -> None:
    gateway = format_address(*settings.listen)
    lines = [
        f"Passageway is up. Database: {database}",
        f"  inspector:  http://{format_address(shown_host(settings.ui[0]), settings.ui[1])}/"
        + (f"?token={settings.ui_token}  (the token is needed from beyond this machine)" if settings.ui_token else ""),
        f"  gateway:    http://{gateway}/SERVICE/path",
    ]
    for service in settings.services.values():
        where = f"http://{gateway}/{service.name}/"
        if service.listen:
            where += f"  and  http://{format_address(*service.listen)}/"
        lines.append(f"    {service.name:<12} {where}  ->  {service.upstream.url}")
    if settings.forward_port:
        lines.append(f"  forward proxy: http://{format_address(settings.listen[0], settings.forward_port)}")
    if demo:
        lines.append(f"Try:  curl http://{gateway}/demo/users/42")
        lines.append(f"      curl http://{format_address(*DEMO_SHOP_ADDRESS)}/readyz   (the shop, registered, depends on demo)")
    lines.append("Ctrl-C stops both.")
    print("\n".join(lines), flush=True)
