"""Where the proxy listens, and whether it can: light enough for the supervisors (no mitmproxy)."""

from __future__ import annotations

import errno
import socket

from .errors import StartError
from .settings import ProxySettings


def listen_addresses(settings: ProxySettings) -> list[tuple[str, tuple[str, int]]]:
    addresses = [("gateway", settings.listen)]
    addresses += [(f"service {s.name!r}", s.listen) for s in settings.services.values() if s.listen is not None]
    if settings.forward_port is not None:
        addresses.append(("forward proxy", (settings.listen[0], settings.forward_port)))
    return addresses


def check_bindable(what: str, address: tuple[str, int]) -> None:
    """Fail early, in one line, when a listen address cannot be used."""
    host, port = address
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise StartError(f"{what}: cannot resolve listen host {host!r}: {e.strerror}") from None
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(sockaddr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise StartError(f"{what}: {host}:{port} is already in use") from None
            raise StartError(f"{what}: cannot listen on {host}:{port}: {e.strerror}") from None
