"""What the capturing proxy needs to run: its view of Passageway's settings.

The command line (cli.settings) reads and checks every setting once and fills this view by
field name (cli.roles.proxy_view); tests/cli/test_settings.py checks that it holds exactly
the settings whose roles include "proxy".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .routing import Service


@dataclass(frozen=True, slots=True)
class ProxySettings:
    db: str
    listen: tuple[str, int]
    ui: tuple[str, int]
    """The inspector this proxy must never forward to (proxy.inspector_guard)."""
    proxy_name: str
    certs_dir: Path
    """mitmproxy's confdir: its CA, which clients of HTTPS through the proxy must trust."""
    spool_dir: Path
    """Where the writer keeps records until the database has them (storage.spool)."""
    services: dict[str, Service] = field(default_factory=dict)
    realm: str | None = None
    realms: tuple[str, ...] = ()
    tracing: str = "propagate"
    forward_port: int | None = None
    body_cap: int = 1024 * 1024
    upstream_timeout: float = 30.0
    eject_after: int = 3
    """Connection failures in a row that eject a registered instance (proxy.balancing)."""
    upstream_ca: Path | None = None
    upstream_insecure: bool = False
    redact_at_capture: bool = False
    redact_add: tuple[str, ...] = ()
    redact_remove: tuple[str, ...] = ()
    secrets: dict[str, str] = field(default_factory=dict)
    """The test secrets: redact_at_capture follows their values too."""
    spool_max_bytes: int = 1024**3
    """0: no spool on disk; records wait in memory only."""
    max_decoded_body: int = 64 * 1024 * 1024
    """The most redact_at_capture inflates a body to (beyond: not stored)."""
    verbose: bool = False
    mocks: dict[str, Path] = field(default_factory=dict)
    """Services answered from a HAR file's recordings (written to the store at start: proxy.runner)."""
    workers: int = 1
    """Worker processes the supervisor (cli.proxy_supervisor) runs; each is one of these."""
    worker: int | None = None
    """Which worker this process is (1..workers), under the supervisor; None: run alone (embedded)."""
