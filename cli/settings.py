"""Passageway's settings: one schema, read from flags, then PASSAGEWAY_* environment variables,
then passageway.toml (the one named by --config or PASSAGEWAY_CONFIG, else ./passageway.toml).

Each field of `Settings` is declared once, with its type, default and a `Setting` record: its
flag, environment variable and file key, its help text, how the README shows its default, and
which roles use it. Everything else is derived from that one declaration:

- the flags each command offers (`add_flags`, by the roles the command runs);
- what `passageway up` hands each child process (`child_arguments`);
- the README's settings table (`settings_table`; tests/cli/test_settings.py fails when the two
  disagree);
- each role's view: `proxy_settings` (proxy.settings.ProxySettings) and `inspector_settings`
  (inspector_ui.settings.InspectorSettings), filled field by field from the same names.

Values are converted by the fields' validators; a malformed one becomes a `ConfigError` of one
line naming the setting and the problem. Layering is a short explicit loader rather than a
pydantic-settings source chain because services merge across the layers (a file's
[services], the chosen realm's, PASSAGEWAY_ROUTES and --route all add up, the later winning for
one name), where pydantic-settings replaces a whole value per key.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import socket
import tomllib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from proxy.routing import (
    HealthCheck,
    RouteError,
    Service,
    check_service_name,
    format_address,
    parse_health_path,
    parse_listen,
    parse_route,
    parse_upstream,
)
from proxy.tracing import MODES as TRACING_MODES
from storage.pure.redaction import RedactionRules, rules_from_config
from storage.pure.retention_policy import RetentionPolicy

__all__ = [
    "COMMAND_ROLES", "ROLES", "ConfigError", "MonitorSpec", "Setting", "Settings", "add_flags", "child_arguments",
    "client_url", "load_settings", "parse_duration", "parse_size", "settings_table",
]  # fmt: skip

CONFIG_FILE_NAME = "passageway.toml"
ROLES = ("proxy", "inspector", "maintenance", "client", "store", "tests", "monitors")
"""Who uses a setting: the capturing proxy, the inspector, the database's maintenance (run by each
inspector, or alone by `passageway maintain`), the commands that talk to running processes
(`call`, `replay`), the commands that work on the store (export, import, status, prune), the
API-test commands (`test run`, `test new`) and the monitor runner (Hurl tests on a schedule)."""
EVERY_ROLE = frozenset(ROLES)

# The roles each command runs (its flags are those of the settings these roles use).
COMMAND_ROLES = {
    "up": ("proxy", "inspector", "maintenance", "monitors"),
    "proxy": ("proxy",),
    "writer": ("proxy",),
    "ui": ("inspector", "maintenance", "monitors"),
    "maintain": ("maintenance",),
    "monitor": ("client", "monitors"),
    "call": ("client",),
    "replay": ("client",),
    "export": ("store",),
    "import": ("store",),
    "status": ("store",),
    "prune": ("store",),
    "test run": ("client", "tests"),
    "test new": ("store", "client"),
    "fault add": ("store", "client"),
    "fault list": ("store",),
    "fault clear": ("store",),
    "mock": ("store", "client"),
    "registry list": ("client",),
    "registry forget": ("client",),
    "openapi show": ("store",),
    "openapi diff": ("store",),
    "contract set": ("store", "client"),
    "contract show": ("store", "client"),
    "contract accept": ("store", "client"),
    "contract clear": ("store", "client"),
}
"""A command with sub-commands is keyed "GROUP SUB" (`passageway test run`)."""


class ConfigError(ValueError):
    """A setting is malformed; the message is one line naming it."""


@dataclass(frozen=True, slots=True)
class Setting:
    """How one setting is given and shown; attached to its field of `Settings`."""

    help: str
    roles: frozenset[str]
    flag: str | None = None
    """`--listen`; None: no flag."""
    env: str | None = None
    file: str | None = None
    """Its key in passageway.toml; None: not in the file."""
    metavar: str | None = None
    default: str = ""
    """The README's default column (the code's default may depend on the machine)."""
    switch: bool = False
    """A flag without a value: it sets `switch_sets`."""
    switch_sets: bool = True
    repeatable: bool = False
    choices: tuple[str, ...] | None = None
    short: str | None = None
    """A one-letter flag besides `flag` (-v)."""
    shown_env: str = ""
    """The README's environment cell, when more than the variable's name (a format)."""
    shown_file: str = ""
    """The README's file cell, when more than the key."""
    env_prefix: bool = False
    """`env` is a prefix: each `PREFIX<NAME>=VALUE` variable gives one entry NAME (case kept)."""


def setting(help: str, *roles: str, **how: Any) -> Setting:  # noqa: A002 - argparse's word for it
    unknown = set(roles) - EVERY_ROLE
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    return Setting(help=help, roles=frozenset(roles), **how)


# --- values -----------------------------------------------------------------------------------

SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
              "mib": 1024**2, "g": 1024**3, "gb": 1024**3, "gib": 1024**3}  # fmt: skip
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


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


def _workers(value: Any, *, what: str) -> int:
    """A count, or `auto`: the cores this process may run on."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if isinstance(value, bool) or not re.fullmatch(r"\s*\d+\s*", str(value)) or int(value) < 1:
        raise ConfigError(f"bad {what} {value!r}: expected a whole number of at least 1, or auto")
    return int(value)


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


def _address(value: Any, *, what: str) -> tuple[str, int]:
    if isinstance(value, tuple):
        return value
    try:
        return parse_listen(value, what=what)
    except RouteError as e:
        raise ConfigError(str(e)) from None


def _boolean(value: Any, *, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"bad {what} {value!r}: expected true or false")


def _names(value: Any, *, what: str) -> tuple[str, ...]:
    if isinstance(value, str):  # the environment's comma-separated form
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{what} must be a list of names, e.g. [\"x-session\"]")
    return tuple(value)


def _token(value: Any, *, what: str) -> str:
    token = str(value)
    if len(token) < 16 or not token.isascii() or not token.isprintable() or " " in token:
        raise ConfigError(f"{what} must be at least 16 printable ASCII characters without spaces")
    return token


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


def _directory(value: Any, *, what: str) -> Path:
    return Path(str(value)).expanduser()


def _tracing(value: Any, *, what: str) -> str:
    mode = str(value).strip().lower()
    if mode not in TRACING_MODES:
        raise ConfigError(f"bad {what} {value!r}: expected one of {', '.join(TRACING_MODES)}")
    return mode


def _optional(convert: Callable[..., Any]) -> Callable[..., Any]:
    def optional(value: Any, *, what: str) -> Any:
        return None if value is None or value == "" else convert(value, what=what)

    return optional


def _as(convert: Callable[..., Any], what: str) -> BeforeValidator:
    return BeforeValidator(lambda value: convert(value, what=what))


def _faults(value: Any, *, what: str) -> tuple[Any, ...]:
    """`[[faults]]`: fault rules written to the store at start (cli.faults)."""
    from .faults import config_faults  # cli.faults needs this module's neighbours: imported late

    try:
        return config_faults(value, what=what)
    except ValueError as e:
        raise ConfigError(str(e)) from None


# --- test variables, secrets and monitors ---------------------------------------------------------

VARIABLE_NAME = re.compile(r"[A-Za-z0-9_-]+")
"""Hurl's variable names (case-sensitive)."""
MIN_SECRET_LENGTH = 4
"""Shorter values cannot be hidden in results without hiding every occurrence of, say, "42"
(storage.pure.secret_forms.MIN_FOLLOWED)."""
MIN_MONITOR_INTERVAL = 1.0
SECRET_ENV_PREFIX = "PASSAGEWAY_SECRET_"


def _pairs(value: Any, *, what: str, source: str) -> dict[str, Any]:
    """A table (file), a {NAME: VALUE} (environment) or `NAME=VALUE` words (flags) -> {NAME: value}."""
    if isinstance(value, dict):
        return dict(value)
    pairs = {}
    for word in value:
        name, sep, text = str(word).partition("=")
        if not sep:
            raise ConfigError(f"{source}: {what} wants NAME=VALUE, not {word!r}")
        pairs[name] = text
    return pairs


def variables_from(value: Any, *, source: str, typed: bool = False) -> dict[str, Any]:
    """Test variables: text, numbers, booleans (a file's values keep their TOML type; `typed`: flag
    text typed as Hurl types --variable)."""
    if not isinstance(value, dict | list | tuple):
        raise ConfigError(f"{source}: 'variables' must be a table of NAME = VALUE")
    variables = {}
    for name, item in _pairs(value, what="--variable", source=source).items():
        if not VARIABLE_NAME.fullmatch(name):
            raise ConfigError(f"{source}: bad variable name {name!r}: use letters, digits, '_' or '-'")
        if typed and isinstance(item, str):
            from radar.runner import hurl_typed  # only with --variable: the runner's imports are not light

            item = hurl_typed(item)
        elif not isinstance(item, str | int | float | bool):
            raise ConfigError(f"{source}: variable {name!r} must be text, a number or true/false")
        variables[name] = item
    return variables


def secrets_from(value: Any, *, source: str) -> dict[str, str]:
    """Secret test variables (always text): kept out of every result."""
    if not isinstance(value, dict | list | tuple):
        raise ConfigError(f"{source}: 'secrets' must be a table of NAME = \"VALUE\"")
    secrets = {}
    for name, item in _pairs(value, what="--secret", source=source).items():
        if not VARIABLE_NAME.fullmatch(name):
            raise ConfigError(f"{source}: bad secret name {name!r}: use letters, digits, '_' or '-'")
        if not isinstance(item, str | int) or isinstance(item, bool):
            raise ConfigError(f"{source}: secret {name!r} must be text")
        if len(str(item).strip()) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"{source}: secret {name!r} is shorter than {MIN_SECRET_LENGTH} characters: too short to hide in results")
        secrets[name] = str(item)
    return secrets


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    """`[monitors.NAME]`: a Hurl file run every `every` seconds against `realm`, webhooks on a change."""

    name: str
    file: Path
    """Relative paths are resolved against the config file's directory."""
    every: float
    realm: str | None = None
    """None: the settings' realm."""
    notify: tuple[str, ...] = ()


MONITOR_KEYS = {"file", "every", "realm", "notify"}


def _webhook(url: Any, *, what: str) -> str:
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError as e:
        raise ConfigError(f"bad {what} {text!r}: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not text.isprintable() or " " in text:
        raise ConfigError(f"bad {what} {text!r}: expected an http(s):// URL")
    return text


def monitors_from(table: Any, *, source: str, base: Path, realms: Collection[str]) -> dict[str, MonitorSpec]:
    """The `[monitors.NAME]` tables of passageway.toml."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: 'monitors' must be a table of [monitors.NAME]")
    monitors = {}
    for name, spec in table.items():
        where = f"{source}: monitor {name!r}"
        try:
            check_service_name(name)
        except RouteError:
            raise ConfigError(f"{source}: bad monitor name {name!r}: use letters, digits, '_', '.' or '-'") from None
        if not isinstance(spec, dict) or "file" not in spec or "every" not in spec:
            raise ConfigError(f"{where} needs file = \"checks/NAME.hurl\" and every = \"1m\"")
        unknown = set(spec) - MONITOR_KEYS
        if unknown:
            raise ConfigError(f"{where} has unknown key {sorted(unknown)[0]!r}")
        every = parse_duration(spec["every"], what=f"every of {where}")
        if every < MIN_MONITOR_INTERVAL:
            raise ConfigError(f"bad every of {where} {spec['every']!r}: at least {MIN_MONITOR_INTERVAL:g} s")
        realm = spec.get("realm")
        if realm is not None:
            realm = str(realm)
            if realms and realm not in realms:
                raise ConfigError(f"{where}: unknown realm {realm!r}: defined are {', '.join(sorted(realms))}")
        notify = spec.get("notify", [])
        if isinstance(notify, str):
            notify = [notify]
        if not isinstance(notify, list):
            raise ConfigError(f"{where}: notify must be a list of http(s) URLs")
        monitors[name] = MonitorSpec(
            name=name,
            file=base / Path(str(spec["file"])).expanduser(),
            every=every,
            realm=realm,
            notify=tuple(_webhook(url, what=f"notify URL of {where}") for url in notify),
        )
    return monitors


# --- the schema -------------------------------------------------------------------------------

DEFAULT_LISTEN = ("127.0.0.1", 8080)
DEFAULT_UI = ("127.0.0.1", 8081)
_NETWORK = ("proxy", "inspector", "client")


class Settings(BaseModel):
    """Every setting of every role, read once at start-up (load_settings) and passed down."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    config_file: Annotated[Path | None, setting(
        "settings file", *ROLES, flag="--config", env="PASSAGEWAY_CONFIG", metavar="FILE",
        default="`./passageway.toml`")] = None
    db: Annotated[str, setting(
        "`sqlite:///path.db` or `postgresql://user@host/db`", *ROLES, flag="--db", env="PASSAGEWAY_DB", file="db",
        metavar="URL", default="`sqlite:///$XDG_DATA_HOME/passageway/passageway.db` (`~/.local/share/...`)")]
    listen: Annotated[tuple[str, int], _as(_address, "listen address"), setting(
        "the gateway", *_NETWORK, flag="--listen", env="PASSAGEWAY_LISTEN", file="listen", metavar="HOST:PORT",
        default="`127.0.0.1:8080`")] = DEFAULT_LISTEN
    ui: Annotated[tuple[str, int], _as(_address, "ui address"), setting(
        "the inspector (a proxy never forwards to it)", *_NETWORK, flag="--ui", env="PASSAGEWAY_UI", file="ui",
        metavar="HOST:PORT", default="`127.0.0.1:8081`")] = DEFAULT_UI
    services: Annotated[dict[str, Service], setting(
        "a service behind the gateway; `listen = \"HOST:PORT\"` in the file gives it its own port, "
        "`health = \"/path\"` a health probe, `contract = \"openapi.yaml\"` the OpenAPI contract its traffic is "
        "checked against (see [Contracts](#contracts))", *_NETWORK, flag="--route", env="PASSAGEWAY_ROUTES", file="services",
        metavar="NAME=URL", repeatable=True, shown_env="`PASSAGEWAY_ROUTES` (`a=URL,b=URL`)",
        shown_file="`[services.NAME] url = ...`")] = {}
    realm: Annotated[str | None, setting(
        "which `[realms.NAME.services]` to add to (and override) `[services]`, see "
        "[Services, realms, health and traces](#services-realms-health-and-traces)", *_NETWORK, flag="--realm",
        env="PASSAGEWAY_REALM", file="realm", metavar="NAME", default="the only realm, if one")] = None
    realms: Annotated[tuple[str, ...], setting(
        "the services, test variables and secrets of each realm (dev, staging, prod...)", *_NETWORK, "tests",
        "monitors", file="realms", shown_file="`[realms.NAME.services]`, `.variables`, `.secrets`")] = ()
    variables: Annotated[dict[str, Any], setting(
        "a test variable (`{{NAME}}` in Hurl files); the chosen realm's `[realms.NAME.variables]` win over "
        "`[variables]`, flags over both; a flag's value is typed as Hurl types it (`3`, `true`, `null`, "
        "`\"quoted text\"`), see [Running tests in CI](#running-tests-in-ci)", "tests", "monitors",
        flag="--variable", file="variables", metavar="NAME=VALUE", repeatable=True,
        shown_file="`[variables]`, `[realms.NAME.variables]`")] = {}
    secrets: Annotated[dict[str, str], setting(
        "a test variable whose value never appears in results, JUnit or logs (`[secret:NAME]` instead), nor in "
        "what the inspector, `export` and `redact_at_capture` redact; at least 4 characters; the environment's beat "
        "the file's (the realm's winning over `[secrets]`), flags beat both",
        "tests", "monitors", "proxy", "store", flag="--secret", env=SECRET_ENV_PREFIX, env_prefix=True, file="secrets",
        metavar="NAME=VALUE", repeatable=True, shown_env="`PASSAGEWAY_SECRET_<NAME>` (NAME as written, case kept)",
        shown_file="`[secrets]`, `[realms.NAME.secrets]`")] = {}
    monitors: Annotated[dict[str, MonitorSpec], setting(
        "a Hurl test run on a schedule: `file` (relative to the config file), `every` (`10s`, `1m`; at least 1 s), "
        "`realm`, `notify` (webhook URLs)", "monitors", file="monitors",
        shown_file="`[monitors.NAME]`")] = {}
    faults: Annotated[tuple[Any, ...], _as(_faults, "faults"), setting(
        "a fault rule injected by the proxies of its realm: `service`, `delay` (`300ms`, `100ms-2s`), `status`, "
        "`reset`, `stall`, `rate` (`20%`), `for` (`10m`; at most 7 days) or `expires`, `method`, `path`, `header`, "
        "`realm`, `note`; written to the store when a proxy or an inspector starts, see [Faults](#faults)", "store",
        file="faults",
        shown_file="`[[faults]]`")] = ()
    mocks: Annotated[dict[str, Path], setting(
        "a service the proxy answers from a HAR file's recordings instead of forwarding (no upstream needed); a "
        "file's paths are relative to it; also `[services.NAME] mock = \"FILE\"`, see [Mocks](#mocks)", "proxy",
        flag="--mock", env="PASSAGEWAY_MOCKS", file="mocks", metavar="NAME=FILE", repeatable=True,
        shown_env="`PASSAGEWAY_MOCKS` (`a=FILE,b=FILE`)", shown_file="`[mocks]` NAME = \"FILE\"",
        default="none")] = {}
    tracing: Annotated[str, _as(_tracing, "tracing"), setting(
        "`propagate`: each traced exchange gets a span of its own; `start`: also start traces; `off`: never "
        "change a request", "proxy", flag="--tracing", env="PASSAGEWAY_TRACING", file="tracing", metavar="MODE",
        choices=TRACING_MODES, default="`propagate`")] = "propagate"
    forward_port: Annotated[int | None, _as(_optional(_port), "forward port"), setting(
        "also run a forward proxy on the gateway's host", *_NETWORK, flag="--forward-port",
        env="PASSAGEWAY_FORWARD_PORT", file="forward_port", metavar="PORT", default="off")] = None
    workers: Annotated[int, _as(_workers, "workers"), setting(
        "proxy processes sharing the listening ports (`auto`: one per core), each with its own spool; one writer "
        "process stores what they capture, see [Workers](#workers)", "proxy", flag="--workers",
        env="PASSAGEWAY_WORKERS", file="workers", metavar="N|auto", default="`1`")] = 1
    body_cap: Annotated[int, _as(parse_size, "body cap"), setting(
        "bytes of each body stored (`512k`, `4MiB`, ...)", "proxy", "store", flag="--body-cap",
        env="PASSAGEWAY_BODY_CAP", file="body_cap", metavar="BYTES", default="`1MiB`")] = 1024 * 1024
    upstream_timeout: Annotated[float, _as(_seconds, "upstream timeout"), setting(
        "give up on an upstream that has not answered (a replay gets 5 s more)", "proxy", "inspector", "client",
        flag="--upstream-timeout", env="PASSAGEWAY_UPSTREAM_TIMEOUT", file="upstream_timeout", metavar="SECONDS",
        default="`30`")] = 30.0
    eject_after: Annotated[int, _as(_count, "eject_after"), setting(
        "connection failures in a row that take a registered service's instance out of the gateway's rotation "
        "until a probe of it succeeds, see [Routes from the registry](#routes-from-the-registry)", "proxy",
        flag="--eject-after", env="PASSAGEWAY_EJECT_AFTER", file="eject_after", metavar="N", default="`3`")] = 3
    proxy_name: Annotated[str, setting(
        "recorded with each exchange", "proxy", "store", flag="--proxy-name", env="PASSAGEWAY_PROXY_NAME",
        file="proxy_name", metavar="NAME", default="host name")]
    certs_dir: Annotated[Path, _as(_directory, "certs_dir"), setting(
        "mitmproxy's CA and certificates", *_NETWORK, flag="--certs-dir", env="PASSAGEWAY_CERTS_DIR",
        file="certs_dir", metavar="DIR", default="`~/.mitmproxy`")]
    upstream_ca: Annotated[Path | None, _as(_optional(_existing_file), "upstream CA"), setting(
        "extra CA trusted for HTTPS upstreams", "proxy", flag="--upstream-ca", env="PASSAGEWAY_UPSTREAM_CA",
        file="upstream_ca", metavar="PEM")] = None
    upstream_insecure: Annotated[bool, _as(_boolean, "upstream_insecure"), setting(
        "do not verify HTTPS upstreams", "proxy", flag="--upstream-insecure", env="PASSAGEWAY_UPSTREAM_INSECURE",
        file="upstream_insecure", switch=True, default="`false`")] = False
    replay_via: Annotated[str | None, _as(_optional(_http_url), "replay_via"), setting(
        "the gateway the inspector sends replays through (an inspector on another machine)", "inspector",
        flag="--replay-via", env="PASSAGEWAY_REPLAY_VIA", file="replay_via", metavar="URL",
        default="`http://` the `--listen` address")] = None
    allow_any_replay_target: Annotated[bool, _as(_boolean, "allow_any_replay_target"), setting(
        "also replay to public addresses that are neither services nor the captured host", "inspector",
        flag="--allow-any-replay-target", env="PASSAGEWAY_ALLOW_ANY_REPLAY_TARGET", file="allow_any_replay_target",
        switch=True, default="`false`")] = False
    ui_token: Annotated[str | None, _as(_optional(_token), "ui_token"), setting(
        "the inspector's token (at least 16 characters)", "inspector", "client", env="PASSAGEWAY_UI_TOKEN",
        file="ui_token", default="made at start beyond loopback")] = None
    redact_at_capture: Annotated[bool, _as(_boolean, "redact_at_capture"), setting(
        "redact before anything is written (captures and imports)", "proxy", "store",
        env="PASSAGEWAY_REDACT_AT_CAPTURE", file="redact_at_capture", default="`false`")] = False
    redact_add: Annotated[tuple[str, ...], _as(_names, "redact_add"), setting(
        "names redacted on top of the defaults, see [Redaction](#redaction)", "proxy", "inspector", "store",
        env="PASSAGEWAY_REDACT_ADD", file="redact_add", shown_env="`PASSAGEWAY_REDACT_ADD` (`a,b`)")] = ()
    redact_remove: Annotated[tuple[str, ...], _as(_names, "redact_remove"), setting(
        "default rules left out, see [Redaction](#redaction)", "proxy", "inspector", "store",
        env="PASSAGEWAY_REDACT_REMOVE", file="redact_remove", shown_env="`PASSAGEWAY_REDACT_REMOVE` (`a,b`)")] = ()
    maintenance: Annotated[bool, _as(_boolean, "maintenance"), setting(
        "the inspector also runs the database's maintenance (search indexing, statistics, retention, API summaries, contract checks); off where "
        "`passageway maintain` or another inspector does it, see [Maintenance](#maintenance)", "inspector",
        flag="--no-maintenance", env="PASSAGEWAY_MAINTENANCE", file="maintenance", switch=True, switch_sets=False,
        default="`true`")] = True
    monitor_runner: Annotated[bool, _as(_boolean, "monitor_runner"), setting(
        "the inspector also runs the monitors (the monitor runner role); off where `passageway monitor` or another "
        "inspector does it, see [Monitors](#monitors)", "inspector", flag="--no-monitor-runner",
        env="PASSAGEWAY_MONITOR_RUNNER", file="monitor_runner", switch=True, switch_sets=False,
        default="`true`")] = True
    retention_max_age: Annotated[float | None, _as(_optional(parse_duration), "retention_max_age"), setting(
        "prune exchanges captured longer ago (`3600`, `12h`, `30d`, `2w`), see [Retention](#retention)",
        "maintenance", "store", env="PASSAGEWAY_RETENTION_MAX_AGE", file="retention_max_age",
        default="keep everything")] = None
    retention_max_exchanges: Annotated[int | None, _as(_optional(_count), "retention_max_exchanges"), setting(
        "keep only the newest this many exchanges", "maintenance", "store", env="PASSAGEWAY_RETENTION_MAX_EXCHANGES",
        file="retention_max_exchanges", default="keep everything")] = None
    retention_max_body_bytes: Annotated[int | None, _as(_optional(parse_size), "retention_max_body_bytes"), setting(
        "stored (compressed) size of all bodies (`512MiB`, `10GiB`); the oldest exchanges go until it fits",
        "maintenance", "store", env="PASSAGEWAY_RETENTION_MAX_BODY_BYTES", file="retention_max_body_bytes",
        default="keep everything")] = None
    spool_dir: Annotated[Path, _as(_directory, "spool_dir"), setting(
        "where the proxy keeps records until the database has them; one proxy per directory", "proxy",
        flag="--spool-dir", env="PASSAGEWAY_SPOOL_DIR", file="spool_dir", metavar="DIR",
        default="`$XDG_STATE_HOME/passageway/spool/PROXY_NAME` (`~/.local/state/...`)")]
    spool_max_bytes: Annotated[int, _as(parse_size, "spool size"), setting(
        "disk the spool may use; when full, new records are dropped (counted, logged). `0`: no spool, records wait "
        "in memory only", "proxy", flag="--spool-max-bytes", env="PASSAGEWAY_SPOOL_MAX_BYTES", file="spool_max_bytes",
        metavar="BYTES", default="`1GiB`")] = 1024**3
    max_decoded_body: Annotated[int, _as(parse_size, "max_decoded_body"), setting(
        "the most a body is inflated to (viewing, replay, shares, HAR, snippets, diffs, redaction at capture); "
        "beyond it a body is not decoded (a decompression bomb)", "proxy", "inspector", "store",
        env="PASSAGEWAY_MAX_DECODED_BODY", file="max_decoded_body", metavar="BYTES", default="`64MiB`")] = (
        64 * 1024 * 1024
    )
    verbose: Annotated[bool, setting(
        "log connections", *ROLES, flag="--verbose", short="-v", switch=True)] = False

    def redaction_rules(self) -> RedactionRules:
        """The redaction of every way out: the configured rules, and the test secrets' values."""
        return rules_from_config(self.redact_add, self.redact_remove).with_values(*self.secrets.values())

    def retention_policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            max_age=self.retention_max_age,
            max_exchanges=self.retention_max_exchanges,
            max_body_bytes=self.retention_max_body_bytes,
        )


def described() -> Iterator[tuple[str, Setting]]:
    """(field name, Setting) of every setting, in the schema's order."""
    for name, info in Settings.model_fields.items():
        yield name, next(item for item in info.metadata if isinstance(item, Setting))


SETTINGS = dict(described())
_BY_FILE_KEY = {meta.file: name for name, meta in SETTINGS.items() if meta.file}
_BY_FLAG = {flag: name for name, meta in SETTINGS.items() for flag in (meta.flag, meta.short) if flag}


# --- loading ----------------------------------------------------------------------------------


def default_database_url(environ: Mapping[str, str] = os.environ) -> str:
    """An SQLite file under $XDG_DATA_HOME (default ~/.local/share)/passageway/."""
    data_home = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(data_home) / 'passageway' / 'passageway.db'}"


def default_spool_dir(proxy_name: str, environ: Mapping[str, str] = os.environ) -> Path:
    """$XDG_STATE_HOME (default ~/.local/state)/passageway/spool/PROXY_NAME (made safe as one path part)."""
    state_home = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    part = re.sub(r"[^A-Za-z0-9_.-]", "_", proxy_name).lstrip(".") or "proxy"
    return Path(state_home) / "passageway" / "spool" / part


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


def load_settings(flags: Mapping[str, Any], *, environ: Mapping[str, str] = os.environ, cwd: Path | None = None) -> Settings:
    """Flags (field names; None = not given), then the environment, then the file, into Settings.

    Services add up across the layers (a file's [services], then the chosen realm's, then
    PASSAGEWAY_ROUTES, then --route), the later winning for a service of the same name.
    """
    config = flags.get("config_file") or environ.get("PASSAGEWAY_CONFIG")
    if config:
        config_file: Path | None = Path(config)
    else:
        candidate = (cwd or Path.cwd()) / CONFIG_FILE_NAME
        config_file = candidate if candidate.is_file() else None

    layers: list[tuple[str, dict[str, Any]]] = []
    if config_file is not None:
        data = read_config_file(config_file)
        unknown = sorted(set(data) - set(_BY_FILE_KEY))
        if unknown:
            raise ConfigError(f"{config_file}: unknown setting {unknown[0]!r}")
        layers.append((str(config_file), {_BY_FILE_KEY[key]: value for key, value in data.items()}))
    layers.append(("environment", environment_values(environ)))
    layers.append(("flags", {name: value for name, value in flags.items() if value is not None}))

    merged: dict[str, Any] = {"config_file": config_file}
    layer_services: list[dict[str, Service]] = []
    layer_variables: list[dict[str, Any]] = []
    layer_secrets: list[dict[str, str]] = []
    layer_mocks: list[dict[str, Path]] = []
    realms: dict[str, RealmTables] = {}
    monitor_table: tuple[str, Any] | None = None
    for source, values in layers:
        values = dict(values)
        values.pop("config_file", None)
        if "realms" in values:
            realms = realm_tables(values.pop("realms"), source=source)
        base = config_file.parent if config_file is not None and source == str(config_file) else (cwd or Path.cwd())
        if isinstance(values.get("services"), dict):  # `[services.NAME] mock = "FILE"`: a mock, with or without url
            values["services"], service_mocks = _service_mocks(values["services"], source=source, base=base)
            layer_mocks.append(service_mocks)
        if "mocks" in values:
            layer_mocks.append(mocks_from(values.pop("mocks"), source=source, base=base))
        if "services" in values:
            layer_services.append(_layer_services(values.pop("services"), source=source))
        if "variables" in values:
            layer_variables.append(variables_from(values.pop("variables"), source=source, typed=source == "flags"))
        if "secrets" in values:
            layer_secrets.append(secrets_from(values.pop("secrets"), source=source))
        if "monitors" in values:
            monitor_table = (source, values.pop("monitors"))
        merged.update(values)
    realm = _realm(merged.get("realm"), realms, config_file)
    if realm is not None and realm in realms:
        # Right after the file's own tables: the environment and flags still override them.
        chosen = realms[realm]
        file_has = config_file is not None
        layer_services.insert(1 if file_has and layer_services else 0, chosen.services)
        layer_variables.insert(1 if file_has and "variables" in layers[0][1] else 0, chosen.variables)
        layer_secrets.insert(1 if file_has and "secrets" in layers[0][1] else 0, chosen.secrets)
    if monitor_table is not None:
        source, table = monitor_table
        base = config_file.parent if config_file is not None else (cwd or Path.cwd())
        merged["monitors"] = monitors_from(table, source=source, base=base, realms=realms)
    merged.update(
        services=_with_contracts({name: service for layer in layer_services for name, service in layer.items()},
                                 config_file),  # fmt: skip
        variables={name: value for layer in layer_variables for name, value in layer.items()},
        secrets={name: value for layer in layer_secrets for name, value in layer.items()},
        mocks={name: path for layer in layer_mocks for name, path in layer.items()},
        realm=realm,
        realms=tuple(sorted(realms)),
    )
    merged.setdefault("db", default_database_url(environ))
    merged["proxy_name"] = str(merged.get("proxy_name") or socket.gethostname())
    merged.setdefault("certs_dir", Path.home() / ".mitmproxy")
    merged.setdefault("spool_dir", default_spool_dir(merged["proxy_name"], environ))
    merged["db"] = str(merged["db"])
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(_one_line(e)) from None
    try:
        settings.redaction_rules()
    except ValueError as e:
        raise ConfigError(f"redaction: {e}") from None
    check_addresses(settings)
    return settings


def _with_contracts(services: dict[str, Service], config_file: Path | None) -> dict[str, Service]:
    """Each service's contract file relative to the config file, read and checked now: a missing
    or invalid one stops the start with one line naming the file and the problem."""
    from .contracts import read_contract_file

    out = {}
    for name, service in services.items():
        if service.contract is not None:
            path = service.contract
            if not path.is_absolute() and config_file is not None:
                path = config_file.parent / path
            try:
                read_contract_file(path)
            except ConfigError as e:
                raise ConfigError(f"service {name!r}: {e}") from None
            service = dataclasses.replace(service, contract=path)
        out[name] = service
    return out


def environment_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given in the environment (field name -> value); a prefixed setting's entries
    as {NAME: VALUE}, the name as written after the prefix."""
    values: dict[str, Any] = {}
    for name, meta in SETTINGS.items():
        if meta.env is None:
            continue
        if meta.env_prefix:
            entries = {key[len(meta.env):]: value for key, value in environ.items() if key.startswith(meta.env)}
            if entries:
                values[name] = entries
        elif environ.get(meta.env):
            values[name] = environ[meta.env]
    return values


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):
        return str(cause)
    name = ".".join(str(part) for part in first["loc"])
    return f"bad {name} {first.get('input')!r}: {first['msg']}"


def _layer_services(value: Any, *, source: str) -> dict[str, Service]:
    """A layer's services: the file's [services.NAME] tables, or NAME=URL routes (a list from
    flags, a comma-separated string from the environment)."""
    if isinstance(value, dict):
        return services_from_table(value, source=source)
    routes = [part for part in value.split(",") if part.strip()] if isinstance(value, str) else list(value)
    services = {}
    for spec in routes:
        try:
            service = parse_route(spec)
        except RouteError as e:
            raise ConfigError(f"{source}: {e}") from None
        services[service.name] = service
    return services


SERVICE_KEYS = {"url", "listen", "health", "health_interval", "health_timeout", "contract"}


def mocks_from(value: Any, *, source: str, base: Path) -> dict[str, Path]:
    """`NAME=FILE` mocks: a table (file), a comma-separated string (environment) or words (flags);
    each FILE (relative to `base`) must be a readable file, its content is read when a proxy starts."""
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, dict | list | tuple):
        raise ConfigError(f"{source}: 'mocks' must be a table of NAME = \"FILE\"")
    mocks = {}
    for name, item in _pairs(value, what="--mock", source=source).items():
        name = str(name).strip()
        try:
            check_service_name(name)
        except RouteError as e:
            raise ConfigError(f"{source}: mock: {e}") from None
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"{source}: mock {name!r} wants a HAR file's path")
        path = base / Path(item.strip()).expanduser()
        if not path.is_file():
            raise ConfigError(f"{source}: mock {name!r}: no such file {str(path)!r}")
        mocks[name] = path
    return mocks


def _service_mocks(table: dict[str, Any], *, source: str, base: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    """`[services.NAME] mock = "FILE"` taken out of the services table: (the table left, the
    mocks); a service that only has a mock is no route (it needs no upstream)."""
    left: dict[str, Any] = {}
    mocks: dict[str, Any] = {}
    for name, spec in table.items():
        if isinstance(spec, dict) and "mock" in spec:
            mocks[name] = spec["mock"]
            spec = {key: value for key, value in spec.items() if key != "mock"}
            if not spec:
                continue
        left[name] = spec
    return left, mocks_from(mocks, source=source, base=base) if mocks else {}


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
            contract = spec.get("contract")
            if contract is not None and (not isinstance(contract, str) or not contract.strip()):
                raise ConfigError(f"{source}: service {name!r}: contract must be a file name such as \"openapi.yaml\"")
            services[name] = Service(name, parse_upstream(str(spec["url"])), listen, _health(name, spec, source),
                                     Path(contract) if contract else None)  # fmt: skip
        except RouteError as e:
            raise ConfigError(f"{source}: {e}") from None
    return services


def check_realm_name(name: str) -> str:
    try:
        return check_service_name(name)
    except RouteError:
        raise RouteError(f"bad realm name {name!r}: use letters, digits, '_', '.' or '-' (at most 63)") from None


@dataclass(frozen=True, slots=True)
class RealmTables:
    """What `[realms.NAME]` holds: services, test variables and secrets."""

    services: dict[str, Service]
    variables: dict[str, Any]
    secrets: dict[str, str]


REALM_KEYS = {"services", "variables", "secrets"}


def realm_tables(table: Any, *, source: str) -> dict[str, RealmTables]:
    """The `[realms.REALM.services.NAME]`, `[realms.REALM.variables]` and `[realms.REALM.secrets]` tables."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: 'realms' must be a table of [realms.NAME.services]")
    realms: dict[str, RealmTables] = {}
    for realm, spec in table.items():
        try:
            check_realm_name(realm)
        except RouteError as e:
            raise ConfigError(f"{source}: {e}") from None
        if not isinstance(spec, dict) or set(spec) - REALM_KEYS:
            raise ConfigError(
                f"{source}: realm {realm!r} may only hold [realms.{realm}.services], .variables and .secrets")
        where = f"{source}, realm {realm!r}"
        realms[realm] = RealmTables(
            services=services_from_table(spec.get("services", {}), source=where),
            variables=variables_from(spec.get("variables", {}), source=where),
            secrets=secrets_from(spec.get("secrets", {}), source=where),
        )
    return realms


def _realm(value: Any, realms: Mapping[str, RealmTables], config_file: Path | None) -> str | None:
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


# --- flags and child processes ------------------------------------------------------------------


def add_flags(parser: argparse.ArgumentParser, roles: Sequence[str]) -> None:
    """The flags of every setting one of `roles` uses (values stay text: load_settings converts)."""
    wanted = set(roles)
    for name, meta in SETTINGS.items():
        if meta.flag is None or not meta.roles & wanted:
            continue
        names = [meta.short, meta.flag] if meta.short else [meta.flag]
        options: dict[str, Any] = {"dest": name, "help": meta.help.split(", see [")[0].replace("`", "")}
        if meta.switch:
            options.update(action="store_const", const=meta.switch_sets)
        else:
            options["metavar"] = meta.metavar
            if meta.repeatable:
                options["action"] = "append"
            if meta.choices:
                options["choices"] = meta.choices
        parser.add_argument(*names, **options)


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags in parsed arguments (field name -> value, None when absent)."""
    return {name: getattr(args, name, None) for name in SETTINGS}


def child_arguments(argv: Sequence[str], roles: Sequence[str]) -> list[str]:
    """The flags of `argv` (a command's arguments) that any of `roles` uses, in their order; every
    other word (the command, its own options) is left out."""
    out: list[str] = []
    words = iter(argv)
    for word in words:
        flag, has_value, _ = word.partition("=")
        name = _BY_FLAG.get(flag)
        if name is None:
            continue
        meta = SETTINGS[name]
        taken = [word] if has_value or meta.switch else [word, next(words, "")]
        if meta.roles & set(roles):
            out += taken
    return out


def client_url(address: tuple[str, int]) -> str:
    """http:// URL a local client uses to reach a listen address (a wildcard bind means loopback)."""
    host, port = address
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://{format_address(host, port)}"


# --- the README's table -----------------------------------------------------------------------


def settings_table() -> str:
    """The README's settings table (Markdown), from the schema."""
    rows = ["| flag | environment | passageway.toml | default | used by | meaning |", "|---|---|---|---|---|---|"]
    for meta in SETTINGS.values():
        flag = ""
        if meta.flag:
            flag = f"`{meta.short}`, " if meta.short else ""
            flag += f"`{meta.flag}`" if meta.switch else f"`{meta.flag} {meta.metavar}`"
            if meta.repeatable:
                flag += " (repeatable)"
        env = meta.shown_env or (f"`{meta.env}`" if meta.env else "")
        file = meta.shown_file or (f"`{meta.file}`" if meta.file else "")
        roles = ", ".join(role for role in ROLES if role in meta.roles) if meta.roles != EVERY_ROLE else "all"
        rows.append(f"| {flag} | {env} | {file} | {meta.default} | {roles} | {meta.help} |")
    return "\n".join(rows)


# --- each role's view -----------------------------------------------------------------------


def view(cls: Any, settings: Settings, **given: Any) -> Any:
    """An instance of a role's settings class (a dataclass or a pydantic model): each of its
    fields that the schema has, from `settings`; the others from `given`."""
    names = (
        [field.name for field in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else list(cls.model_fields)
    )
    values = {name: getattr(settings, name) for name in names if name in SETTINGS and name not in given}
    return cls(**values, **given)
