"""Settings: flags, then PASSAGEWAY_* environment variables, then passageway.toml.

Everything is read once at start-up into one `Settings` value and passed
down. Every malformed value becomes a `ConfigError` whose message is one
line naming the setting and the problem.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.redaction import rules_from_config

from .tracing import MODES as TRACING_MODES
from .routing import (
    HealthCheck,
    RouteError,
    Service,
    check_service_name,
    parse_health_path,
    parse_listen,
    parse_route,
    parse_upstream,
)

DEFAULT_LISTEN = ("127.0.0.1", 8080)
DEFAULT_UI = ("127.0.0.1", 8081)
DEFAULT_BODY_CAP = 1024 * 1024
DEFAULT_UPSTREAM_TIMEOUT = 30.0
DEFAULT_SPOOL_MAX_BYTES = 1024**3
CONFIG_FILE_NAME = "passageway.toml"

SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
              "mib": 1024**2, "g": 1024**3, "gb": 1024**3, "gib": 1024**3}


class ConfigError(ValueError):
    """A setting is malformed; the message is one line naming it."""


def default_spool_dir(proxy_name: str, environ: Mapping[str, str] = os.environ) -> Path:
    """$XDG_STATE_HOME (default ~/.local/state)/passageway/spool/PROXY_NAME (made safe as one path part)."""
    state_home = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    part = re.sub(r"[^A-Za-z0-9_.-]", "_", proxy_name).lstrip(".") or "proxy"
    return Path(state_home) / "passageway" / "spool" / part


def default_database_url(environ: Mapping[str, str] = os.environ) -> str:
    """An SQLite file under $XDG_DATA_HOME (default ~/.local/share)/passageway/."""
    data_home = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(data_home) / 'passageway' / 'passageway.db'}"


@dataclass(frozen=True)
class Settings:
    db_url: str
    listen: tuple[str, int] = DEFAULT_LISTEN
    ui: tuple[str, int] = DEFAULT_UI
    services: dict[str, Service] = field(default_factory=dict)
    """The services of the chosen realm: `[services]` overridden by `[realms.REALM.services]`."""
    realm: str | None = None
    """The environment this proxy serves (dev, staging, prod...), recorded with each exchange."""
    realms: tuple[str, ...] = ()
    """Every realm passageway.toml defines."""
    forward_port: int | None = None
    body_cap: int = DEFAULT_BODY_CAP
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT
    proxy_name: str = field(default_factory=socket.gethostname)
    certs_dir: Path = field(default_factory=lambda: Path.home() / ".mitmproxy")
    """mitmproxy's confdir: its CA, which clients of HTTPS through the proxy must trust."""
    upstream_ca: Path | None = None
    """Extra CA bundle (PEM) trusted for HTTPS upstreams."""
    upstream_insecure: bool = False
    replay_via: str | None = None
    """The inspector sends replays through this proxy gateway URL (default: the listen address)."""
    allow_any_replay_target: bool = False
    redact_add: tuple[str, ...] = ()
    """Names redacted on top of storage.redaction's defaults (share links, exports)."""
    redact_remove: tuple[str, ...] = ()
    redact_at_capture: bool = False
    """Redact every record before it is written: secrets never reach the database."""
    ui_token: str | None = None
    """Required of the inspector's clients; made at start when the inspector listens beyond loopback."""
    spool_dir: Path | None = None
    """Where the proxy's writer keeps records until the database has them (storage.spool)."""
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    """Disk the spool may use; 0 keeps records in memory only (lost on a crash)."""
    tracing: str = "propagate"
    """proxy.tracing's mode: off, propagate (give each traced exchange a span) or start."""
    retention_max_age: float | None = None
    """Seconds: older exchanges are pruned (storage.retention)."""
    retention_max_exchanges: int | None = None
    retention_max_body_bytes: int | None = None
    config_file: Path | None = None


DURATION_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any, *, what: str) -> float:
    """`3600`, `90m`, `12h`, `30d`, `2w` -> seconds (more than 0)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    unit = match and DURATION_UNITS.get(match.group(2).lower())
    if not match or unit is None:
        raise ConfigError(f"bad {what} {value!r}: expected a duration, e.g. 3600, 12h or 30d")
    seconds = float(match.group(1)) * unit
    if not seconds > 0:
        raise ConfigError(f"bad {what} {value!r}: must be more than 0")
    return seconds


def _count(value: Any, *, what: str) -> int:
    if isinstance(value, bool) or not re.fullmatch(r"\s*\d+\s*", str(value)) or int(value) < 1:
        raise ConfigError(f"bad {what} {value!r}: expected a whole number of at least 1")
    return int(value)


def parse_size(value: Any, *, what: str) -> int:
    """`1048576`, `512k`, `1MiB`, `2 mb` -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", str(value))
        unit = match and SIZE_UNITS.get(match.group(2).lower())
        if not match or unit is None:
            raise ConfigError(f"bad {what} {value!r}: expected bytes, e.g. 1048576 or 1MiB")
        size = int(match.group(1)) * unit
    if size < 0:
        raise ConfigError(f"bad {what} {value!r}: must not be negative")
    return size


def _port(value: Any, *, what: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"bad {what} {value!r}: expected a port number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"bad {what} {value!r}: port must be 1-65535")
    return port


def _seconds(value: Any, *, what: str) -> float:
    try:
        seconds = float(str(value).removesuffix("s"))
    except ValueError:
        raise ConfigError(f"bad {what} {value!r}: expected seconds, e.g. 30 or 2.5") from None
    if not seconds > 0:
        raise ConfigError(f"bad {what} {value!r}: must be more than 0")
    return seconds


def _token(value: Any) -> str:
    token = str(value)
    if len(token) < 16 or not token.isascii() or not token.isprintable() or " " in token:
        raise ConfigError("ui_token must be at least 16 printable ASCII characters without spaces")
    return token


def _names(value: Any, *, what: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{what} must be a list of names, e.g. [\"x-session\"]")
    return tuple(value)


def _http_url(value: Any, *, what: str) -> str:
    try:
        return parse_upstream(str(value)).url
    except RouteError as e:
        raise ConfigError(f"{what}: {e}") from None


def _existing_file(value: Any, *, what: str) -> Path:
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise ConfigError(f"bad {what} {str(value)!r}: no such file")
    return path


def _boolean(value: Any, *, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"bad {what} {value!r}: expected true or false")


SERVICE_KEYS = {"url", "listen", "health", "health_interval", "health_timeout"}


def _health(name: str, spec: dict[str, Any], source: str) -> HealthCheck | None:
    """`health = "/healthz"` with optional `health_interval` and `health_timeout` (seconds or 10s, 1m)."""
    where = f"{source}: service {name!r}"
    if "health" not in spec:
        for key in ("health_interval", "health_timeout"):
            if key in spec:
                raise ConfigError(f"{where}: {key} needs health = \"/path\"")
        return None
    interval = parse_duration(spec.get("health_interval", 10), what=f"health_interval of {where}")
    timeout = parse_duration(spec.get("health_timeout", 2), what=f"health_timeout of {where}")
    if timeout > interval:
        raise ConfigError(f"{where}: health_timeout ({timeout:g} s) is longer than health_interval ({interval:g} s)")
    return HealthCheck(parse_health_path(str(spec["health"])), interval, timeout)


def realm_services(table: Any, *, source: str) -> dict[str, dict[str, Service]]:
    """The `[realms.REALM.services.NAME]` tables: realm -> its services."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: 'realms' must be a table of [realms.NAME.services]")
    realms: dict[str, dict[str, Service]] = {}
    for realm, spec in table.items():
        try:
            check_realm_name(realm)
        except RouteError as e:
            raise ConfigError(f"{source}: {e}") from None
        if not isinstance(spec, dict) or set(spec) - {"services"}:
            raise ConfigError(f"{source}: realm {realm!r} may only hold [realms.{realm}.services]")
        realms[realm] = services_from_table(spec.get("services", {}), source=f"{source}, realm {realm!r}")
    return realms


def check_realm_name(name: str) -> str:
    try:
        return check_service_name(name)
    except RouteError:
        raise RouteError(f"bad realm name {name!r}: use letters, digits, '_', '.' or '-' (at most 63)") from None


def services_from_table(table: Any, *, source: str) -> dict[str, Service]:
    """The `[services.NAME]` tables of passageway.toml (or `NAME = "URL"` shorthand)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: 'services' must be a table of [services.NAME]")
    services: dict[str, Service] = {}
    for name, spec in table.items():
        try:
            check_service_name(name)
            if isinstance(spec, str):
                spec = {"url": spec}
            if not isinstance(spec, dict) or "url" not in spec:
                raise ConfigError(f"{source}: service {name!r} needs url = \"http://host:port\"")
            unknown = set(spec) - SERVICE_KEYS
            if unknown:
                raise ConfigError(f"{source}: service {name!r} has unknown key {sorted(unknown)[0]!r}")
            listen = parse_listen(spec["listen"], what=f"listen of service {name!r}") if "listen" in spec else None
            services[name] = Service(name, parse_upstream(str(spec["url"])), listen, _health(name, spec, source))
        except RouteError as e:
            raise ConfigError(f"{source}: {e}") from None
    return services


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None


FILE_KEYS = {
    "db", "listen", "ui", "services", "forward_port", "body_cap", "upstream_timeout", "proxy_name",
    "certs_dir", "upstream_ca", "upstream_insecure", "replay_via", "allow_any_replay_target",
    "redact_add", "redact_remove", "ui_token", "redact_at_capture", "spool_dir", "spool_max_bytes",
    "retention_max_age", "retention_max_exchanges", "retention_max_body_bytes", "realm", "realms",
    "tracing",
}
ENV_KEYS = {
    "PASSAGEWAY_DB": "db",
    "PASSAGEWAY_REALM": "realm",
    "PASSAGEWAY_TRACING": "tracing",
    "PASSAGEWAY_LISTEN": "listen",
    "PASSAGEWAY_UI": "ui",
    "PASSAGEWAY_UI_TOKEN": "ui_token",
    "PASSAGEWAY_ROUTES": "routes",
    "PASSAGEWAY_FORWARD_PORT": "forward_port",
    "PASSAGEWAY_BODY_CAP": "body_cap",
    "PASSAGEWAY_UPSTREAM_TIMEOUT": "upstream_timeout",
    "PASSAGEWAY_PROXY_NAME": "proxy_name",
    "PASSAGEWAY_CERTS_DIR": "certs_dir",
    "PASSAGEWAY_UPSTREAM_CA": "upstream_ca",
    "PASSAGEWAY_UPSTREAM_INSECURE": "upstream_insecure",
    "PASSAGEWAY_SPOOL_DIR": "spool_dir",
    "PASSAGEWAY_SPOOL_MAX_BYTES": "spool_max_bytes",
    "PASSAGEWAY_RETENTION_MAX_AGE": "retention_max_age",
    "PASSAGEWAY_RETENTION_MAX_EXCHANGES": "retention_max_exchanges",
    "PASSAGEWAY_RETENTION_MAX_BODY_BYTES": "retention_max_body_bytes",
}


def load_settings(
    flags: Mapping[str, Any],
    *,
    environ: Mapping[str, str] = os.environ,
    cwd: Path | None = None,
) -> Settings:
    """Merge flags (None = not given), environment and config file into Settings.

    `flags` keys: config, db, listen, ui, routes (list of NAME=URL), forward_port,
    body_cap, upstream_timeout, proxy_name, certs_dir, upstream_ca, upstream_insecure.
    """
    config_path = flags.get("config") or environ.get("PASSAGEWAY_CONFIG")
    if config_path:
        config_file: Path | None = Path(config_path)
    else:
        candidate = (cwd or Path.cwd()) / CONFIG_FILE_NAME
        config_file = candidate if candidate.is_file() else None

    layers: list[tuple[str, dict[str, Any]]] = []
    if config_file is not None:
        data = read_config_file(config_file)
        unknown = set(data) - FILE_KEYS
        if unknown:
            raise ConfigError(f"{config_file}: unknown setting {sorted(unknown)[0]!r}")
        layers.append((str(config_file), data))
    env_values = {key: environ[name] for name, key in ENV_KEYS.items() if environ.get(name)}
    layers.append(("environment", env_values))
    layers.append(("flags", {k: v for k, v in flags.items() if v is not None and k != "config"}))

    merged: dict[str, Any] = {}
    # Per layer, the services it names; the chosen realm's come right after the file's own
    # [services], so environment and flag routes still override them.
    layer_services: list[dict[str, Service]] = []
    realms: dict[str, dict[str, Service]] = {}
    for source, values in layers:
        services: dict[str, Service] = {}
        if "realms" in values:
            realms = realm_services(values["realms"], source=source)
        if "services" in values:
            services.update(services_from_table(values["services"], source=source))
        routes = values.get("routes")
        if routes:
            if isinstance(routes, str):
                routes = [r for r in routes.split(",") if r.strip()]
            for spec in routes:
                try:
                    service = parse_route(spec)
                except RouteError as e:
                    raise ConfigError(f"{source}: {e}") from None
                services[service.name] = service
        layer_services.append(services)
        merged.update({k: v for k, v in values.items() if k not in ("services", "routes", "realms")})

    realm = _realm(merged.get("realm"), realms, config_file)
    if realm is not None and realm in realms:
        layer_services.insert(1 if config_file is not None else 0, realms[realm])
    services = {name: service for layer in layer_services for name, service in layer.items()}

    try:
        listen = parse_listen(merged["listen"], what="listen address") if "listen" in merged else DEFAULT_LISTEN
        ui = parse_listen(merged["ui"], what="ui address") if "ui" in merged else DEFAULT_UI
    except RouteError as e:
        raise ConfigError(str(e)) from None
    forward_port = _port(merged["forward_port"], what="forward port") if "forward_port" in merged else None
    proxy_name = str(merged.get("proxy_name") or socket.gethostname())
    settings = Settings(
        db_url=str(merged.get("db") or default_database_url(environ)),
        listen=listen,
        ui=ui,
        services=services,
        realm=realm,
        realms=tuple(sorted(realms)),
        tracing=_tracing(merged.get("tracing", "propagate")),
        forward_port=forward_port,
        body_cap=parse_size(merged.get("body_cap", DEFAULT_BODY_CAP), what="body cap"),
        upstream_timeout=_seconds(merged.get("upstream_timeout", DEFAULT_UPSTREAM_TIMEOUT), what="upstream timeout"),
        proxy_name=proxy_name,
        certs_dir=Path(merged["certs_dir"]).expanduser() if merged.get("certs_dir") else Path.home() / ".mitmproxy",
        upstream_ca=_existing_file(merged["upstream_ca"], what="upstream CA") if merged.get("upstream_ca") else None,
        upstream_insecure=_boolean(merged.get("upstream_insecure", False), what="upstream_insecure"),
        replay_via=_http_url(merged["replay_via"], what="replay_via") if merged.get("replay_via") else None,
        allow_any_replay_target=_boolean(
            merged.get("allow_any_replay_target", False), what="allow_any_replay_target"
        ),
        redact_add=_names(merged.get("redact_add", ()), what="redact_add"),
        redact_remove=_names(merged.get("redact_remove", ()), what="redact_remove"),
        ui_token=_token(merged["ui_token"]) if merged.get("ui_token") else None,
        redact_at_capture=_boolean(merged.get("redact_at_capture", False), what="redact_at_capture"),
        spool_dir=Path(merged["spool_dir"]).expanduser() if merged.get("spool_dir") else default_spool_dir(
            proxy_name, environ
        ),
        spool_max_bytes=parse_size(merged.get("spool_max_bytes", DEFAULT_SPOOL_MAX_BYTES), what="spool size"),
        retention_max_age=parse_duration(merged["retention_max_age"], what="retention_max_age")
        if merged.get("retention_max_age") is not None
        else None,
        retention_max_exchanges=_count(merged["retention_max_exchanges"], what="retention_max_exchanges")
        if merged.get("retention_max_exchanges") is not None
        else None,
        retention_max_body_bytes=parse_size(merged["retention_max_body_bytes"], what="retention_max_body_bytes")
        if merged.get("retention_max_body_bytes") is not None
        else None,
        config_file=config_file,
    )
    try:
        rules_from_config(settings.redact_add, settings.redact_remove)
    except ValueError as e:
        raise ConfigError(f"redaction: {e}") from None
    check_addresses(settings)
    return settings


def _tracing(value: Any) -> str:
    mode = str(value).strip().lower()
    if mode not in TRACING_MODES:
        raise ConfigError(f"bad tracing {value!r}: expected one of {', '.join(TRACING_MODES)}")
    return mode


def _realm(value: Any, realms: dict[str, dict[str, Service]], config_file: Path | None) -> str | None:
    """The chosen realm; with several realms configured one must be chosen (no silent default
    that could point a developer's traffic at prod)."""
    where = config_file or CONFIG_FILE_NAME
    if value is None or str(value).strip() == "":
        if len(realms) > 1:
            raise ConfigError(f"{where} defines realms {', '.join(sorted(realms))}: pick one with --realm or realm = \"...\"")
        return next(iter(realms), None)
    try:
        realm = check_realm_name(str(value).strip())
    except RouteError as e:
        raise ConfigError(str(e)) from None
    if realms and realm not in realms:
        raise ConfigError(f"unknown realm {realm!r}: {where} defines {', '.join(sorted(realms))}")
    return realm


def check_addresses(settings: Settings) -> None:
    """No two listeners may share an address."""
    seen: dict[tuple[str, int], str] = {}

    def claim(address: tuple[str, int], what: str) -> None:
        if address in seen:
            raise ConfigError(f"{what} and {seen[address]} both use {address[0]}:{address[1]}")
        seen[address] = what

    claim(settings.listen, "the gateway")
    claim(settings.ui, "the inspector")
    if settings.forward_port is not None:
        claim((settings.listen[0], settings.forward_port), "the forward proxy")
    for service in settings.services.values():
        if service.listen is not None:
            claim(service.listen, f"service {service.name!r}")
