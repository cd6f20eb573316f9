"""Inspector settings: read once at start-up (by the CLI) and passed down."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from radar.transport import Route
from storage.pure.decoding import DEFAULT_DECODE_LIMIT
from storage.pure.redaction import RedactionRules, rules_from_config
from storage.pure.retention_policy import RetentionPolicy

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


class InspectorSettings(BaseModel):
    """Everything the inspector needs to run; the CLI builds one and passes it to `create_app`/`serve`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    db_url: str = Field(min_length=1, description="SQLAlchemy URL of the capture store.")
    host: str = Field("127.0.0.1", min_length=1, description="Interface to listen on.")
    port: int = Field(8081, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    stream_poll_interval: float = Field(
        0.05, gt=0, le=5, description="SQLite change-feed poll interval, seconds (PostgreSQL uses LISTEN)."
    )
    stream_queue_size: int = Field(
        1000, ge=1, le=1_000_000, description="Messages a WebSocket viewer may fall behind before it is dropped."
    )
    stream_close_timeout: float = Field(
        1.0, gt=0, le=60, description="Seconds to spend closing a dropped viewer's socket."
    )
    allowed_hosts: tuple[str, ...] | None = Field(
        None,
        description=(
            "Host header values accepted (DNS-rebinding guard). None derives them from `host`: "
            "the loopback names for a loopback bind, anything for a wildcard bind. '*' allows all."
        ),
    )
    max_decoded_body: int = Field(
        DEFAULT_DECODE_LIMIT,
        ge=1,
        description="The most a body is inflated to for viewing, replaying, sharing, exporting, snippets and "
        "diffs (decompression-bomb guard).",
    )
    replay_gateway: str | None = Field(
        None, description="The proxy's gateway (e.g. http://127.0.0.1:8080), where replays are sent; None: no replay."
    )
    replay_forward_proxy: str | None = Field(
        None, description="The proxy's forward port as a proxy URL, for replays to URLs that are not services."
    )
    replay_services: dict[str, str] = Field(
        default_factory=dict, description="Configured services (name -> upstream base URL): the replay targets."
    )
    replay_ca: str | None = Field(None, description="mitmproxy's CA (PEM), trusted for HTTPS through the forward port.")
    allow_any_replay_target: bool = Field(
        False, description="Also replay to any public address, not only to services and the captured host."
    )
    replay_timeout: float = Field(35.0, gt=0, le=3600, description="Seconds a replay may take.")
    test_variables: dict[str, Any] = Field(
        default_factory=dict, description="Variables of the tests run through the API (`{{NAME}}` in Hurl files)."
    )
    test_secrets: dict[str, str] = Field(
        default_factory=dict,
        description="Secret variables of the tests run through the API: their values never appear in results, "
        "and shares, HAR exports and snippets redact them wherever they reappear in captured traffic.",
    )
    redact_add: tuple[str, ...] = Field(
        (), description="Header / query / body field names redacted on top of the defaults (storage.pure.redaction)."
    )
    redact_remove: tuple[str, ...] = Field((), description="Default redaction rules to leave out.")
    token: str | None = Field(
        None,
        min_length=16,
        description="Required of every client (bearer or cookie) when set; `passageway ui` makes one when "
        "the inspector listens beyond loopback and none is configured.",
    )
    retention_max_age: float | None = Field(
        None, gt=0, description="Seconds: older exchanges are pruned (storage.retention); None keeps them."
    )
    retention_max_exchanges: int | None = Field(None, ge=1, description="Keep only the newest this many exchanges.")
    retention_max_body_bytes: int | None = Field(
        None, ge=0, description="Stored (compressed) bytes of bodies; the oldest exchanges go until they fit."
    )
    retention_interval: float = Field(
        60.0, gt=0, le=86400, description="Seconds between two retention passes (when a limit is set)."
    )
    maintenance: bool = Field(
        True,
        description="Also run the database's maintenance (storage.maintenance: search indexing, planner "
        "statistics, retention); false where `passageway maintain` or another inspector does it.",
    )
    test_variables: dict[str, Any] = Field(default_factory=dict, description="Variables of API tests and monitors.")
    test_secrets: dict[str, str] = Field(
        default_factory=dict, description="Secret variables of API tests and monitors: never shown in results."
    )
    monitor_runner: bool = Field(
        False,
        description="Also run the monitors (radar.monitor_runner): their tests through the replay gateway, with "
        "`test_variables` and `test_secrets`; false where `passageway monitor` or another inspector does it.",
    )
    monitor_realm: str | None = Field(
        None, description="The realm whose monitors this inspector runs (and those without one); None: every monitor."
    )
    inspector_url: str | None = Field(
        None, description="This inspector's address in links sent out (monitors' webhooks); None: http://host:port."
    )
    docs: bool = Field(True, description="Serve the OpenAPI document and Swagger UI at /docs.")
    log_level: str = Field("warning", description="uvicorn log level.")
    access_log: bool = Field(False, description="Log one line per request.")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.lower()
        if value not in {"critical", "error", "warning", "info", "debug", "trace"}:
            raise ValueError(f"unknown log level {value!r}")
        return value

    def retention_policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            max_age=self.retention_max_age,
            max_exchanges=self.retention_max_exchanges,
            max_body_bytes=self.retention_max_body_bytes,
        )

    def test_route(self) -> Route:
        """Where API tests and monitors send: where replays go (the proxy's gateway and forward
        port), so that every test request is captured and traced."""
        if self.replay_gateway is None:
            raise ValueError("no replay_gateway: tests have nowhere to go")
        return Route(
            gateway=self.replay_gateway,
            forward_proxy=self.replay_forward_proxy,
            proxy_ca=Path(self.replay_ca) if self.replay_ca else None,
            timeout=self.replay_timeout,
        )

    def redaction_rules(self) -> RedactionRules:
        """The configured rules, following the test secrets' values too: a test step that sends one
        is captured like any exchange, and must not give it away in a share or an export."""
        return rules_from_config(self.redact_add, self.redact_remove).with_values(*self.test_secrets.values())

    def effective_allowed_hosts(self) -> frozenset[str] | None:
        """Lower-case host names (no port) the Host header may carry; None means any."""
        if self.allowed_hosts is not None:
            hosts = {h.lower().strip("[]") for h in self.allowed_hosts}
            return None if "*" in hosts else frozenset(hosts)
        host = self.host.strip("[]").lower()
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return frozenset({host, *LOOPBACK_NAMES})
        if address.is_unspecified:
            return None  # bound to every interface: the name used to reach us is unknowable
        return frozenset({host, *LOOPBACK_NAMES})
