"""The settings of API tests and monitors: variables, secrets, [monitors.NAME], per realm;
every way each is given, which wins, and every mistake in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.settings import ConfigError, MonitorSpec, load_settings


def write(directory: Path, text: str) -> Path:
    path = directory / "passageway.toml"
    path.write_text(text)
    return path


CONFIG = """
[variables]
host = "top"
count = 3
only_top = "t"

[secrets]
token = "file-token"
file_only = "file-secret"

[realms.dev.variables]
host = "dev"
only_dev = true

[realms.dev.secrets]
token = "dev-token"

[realms.prod.services]
api = "http://h:1"
"""


def test_variables_from_the_file_the_realm_and_flags_the_later_winning(tmp_path):
    write(tmp_path, CONFIG)
    plain = load_settings({"realm": "prod"}, environ={}, cwd=tmp_path)
    assert plain.variables == {"host": "top", "count": 3, "only_top": "t"}
    dev = load_settings({"realm": "dev"}, environ={}, cwd=tmp_path)
    assert dev.variables == {"host": "dev", "count": 3, "only_top": "t", "only_dev": True}
    flagged = load_settings({"realm": "dev", "variables": ["host=flag", "extra=x"]}, environ={}, cwd=tmp_path)
    assert flagged.variables["host"] == "flag" and flagged.variables["extra"] == "x"


def test_a_realm_given_in_the_environment_brings_its_variables(tmp_path):
    write(tmp_path, CONFIG)
    assert load_settings({}, environ={"PASSAGEWAY_REALM": "dev"}, cwd=tmp_path).variables["host"] == "dev"


def test_variables_without_a_file(tmp_path):
    settings = load_settings({"variables": ["a=1", "b=x=y"]}, environ={}, cwd=tmp_path)
    assert settings.variables == {"a": 1, "b": "x=y"}
    assert load_settings({}, environ={}, cwd=tmp_path).variables == {}


@pytest.mark.parametrize(
    ("given", "value"),
    [("3", 3), ("-2", -2), ("1.5", 1.5), ("true", True), ("false", False), ("null", None), ('"3"', "3"),
     ("text", "text"), ("", "")],
)  # fmt: skip
def test_a_flags_value_is_typed_as_hurl_types_it(tmp_path, given, value):
    assert load_settings({"variables": [f"v={given}"]}, environ={}, cwd=tmp_path).variables["v"] == value


def test_secrets_from_the_file_the_realm_the_environment_and_flags(tmp_path):
    write(tmp_path, CONFIG)
    assert load_settings({"realm": "prod"}, environ={}, cwd=tmp_path).secrets == {
        "token": "file-token", "file_only": "file-secret"}  # fmt: skip
    assert load_settings({"realm": "dev"}, environ={}, cwd=tmp_path).secrets["token"] == "dev-token"
    environ = {"PASSAGEWAY_SECRET_token": "env-token", "PASSAGEWAY_SECRET_API_KEY": "env-key-1"}
    from_env = load_settings({"realm": "dev"}, environ=environ, cwd=tmp_path)
    assert from_env.secrets == {"token": "env-token", "file_only": "file-secret", "API_KEY": "env-key-1"}
    flagged = load_settings({"realm": "dev", "secrets": ["token=flag-token"]}, environ=environ, cwd=tmp_path)
    assert flagged.secrets["token"] == "flag-token" and flagged.secrets["API_KEY"] == "env-key-1"


def test_a_secret_environment_variable_keeps_its_names_case(tmp_path):
    environ = {"PASSAGEWAY_SECRET_apiKey": "abcdef", "PASSAGEWAY_SECRET_APIKEY": "ghijkl"}
    assert load_settings({}, environ=environ, cwd=tmp_path).secrets == {"apiKey": "abcdef", "APIKEY": "ghijkl"}


def test_secrets_stay_text(tmp_path):
    write(tmp_path, "[secrets]\npin = 123456\n")
    assert load_settings({"secrets": ["flag=true-ish"]}, environ={}, cwd=tmp_path).secrets == {
        "pin": "123456", "flag": "true-ish"}  # fmt: skip


MONITORS = """
[realms.staging.services]
api = "http://h:1"

[monitors.checkout]
file = "checks/checkout.hurl"
every = "1m"
realm = "staging"
notify = ["https://hooks.example/a", "http://127.0.0.1:9/b"]

[monitors.ping]
file = "/abs/ping.hurl"
every = "10s"

[monitors.quick]
file = "q.hurl"
every = 1
notify = "https://hooks.example/q"
"""


def test_monitors_from_the_file_relative_to_its_directory(tmp_path):
    (tmp_path / "conf").mkdir()
    config = write(tmp_path / "conf", MONITORS)
    monitors = load_settings({"config_file": str(config)}, environ={}, cwd=tmp_path).monitors
    assert monitors["checkout"] == MonitorSpec(
        "checkout", tmp_path / "conf" / "checks" / "checkout.hurl", 60.0, "staging",
        ("https://hooks.example/a", "http://127.0.0.1:9/b"),
    )  # fmt: skip
    assert monitors["ping"] == MonitorSpec("ping", Path("/abs/ping.hurl"), 10.0, None, ())
    assert monitors["quick"].every == 1.0 and monitors["quick"].notify == ("https://hooks.example/q",)


def test_no_monitors_by_default(tmp_path):
    assert load_settings({}, environ={}, cwd=tmp_path).monitors == {}


@pytest.mark.parametrize(
    ("text", "flags", "environ", "message"),
    [
        ('[monitors.a]\nfile = "a.hurl"\nevery = "500ms"\n', {}, {}, r"bad every of .*monitor 'a' '500ms'"),
        ('[monitors.a]\nfile = "a.hurl"\nevery = "0.5s"\n', {}, {}, r"monitor 'a' '0.5s': at least 1 s"),
        ('[monitors.a]\nfile = "a.hurl"\nevery = 0\n', {}, {}, r"bad every of .*monitor 'a' 0: must be more than 0"),
        ('[monitors.a]\nfile = "a.hurl"\n', {}, {}, r"monitor 'a' needs file = .* and every = "),
        ('[monitors.a]\nfile = "a.hurl"\nevery = "1m"\ncolour = 1\n', {}, {}, r"monitor 'a' has unknown key 'colour'"),
        ('[monitors.a]\nfile = "a.hurl"\nevery = "1m"\nnotify = ["ftp://x"]\n', {}, {},
         r"bad notify URL of .*monitor 'a' 'ftp://x': expected an http\(s\):// URL"),
        ('[monitors.a]\nfile = "a.hurl"\nevery = "1m"\nnotify = 3\n', {}, {}, r"notify must be a list"),
        ('[monitors.a]\nfile = "a.hurl"\nevery = "1m"\nrealm = "qa"\n[realms.dev.services]\nx = "http://h:1"\n', {},
         {}, r"monitor 'a': unknown realm 'qa': defined are dev"),
        ('[monitors."a b"]\nfile = "a.hurl"\nevery = "1m"\n', {}, {}, r"bad monitor name 'a b'"),
        ("monitors = 3\n", {}, {}, r"'monitors' must be a table"),
        ('[variables]\n"bad name" = 1\n', {}, {}, r"bad variable name 'bad name'"),
        ("[variables]\nv = [1, 2]\n", {}, {}, r"variable 'v' must be text, a number or true/false"),
        ("variables = 3\n", {}, {}, r"'variables' must be a table"),
        ("", {"variables": ["novalue"]}, {}, r"flags: --variable wants NAME=VALUE, not 'novalue'"),
        ("", {"variables": ["a b=1"]}, {}, r"flags: bad variable name 'a b'"),
        ('[secrets]\npin = "12"\n', {}, {}, r"secret 'pin' is shorter than 4 characters"),
        ("[secrets]\nflag = true\n", {}, {}, r"secret 'flag' must be text"),
        ("", {"secrets": ["x=abc"]}, {}, r"flags: secret 'x' is shorter than 4"),
        ("", {}, {"PASSAGEWAY_SECRET_a.b": "abcdef"}, r"environment: bad secret name 'a.b'"),
        ('[realms.dev.secrets]\nk = "ab"\n', {}, {}, r"realm 'dev': secret 'k' is shorter"),
        ("[realms.dev]\nthings = 1\n", {}, {}, r"realm 'dev' may only hold \[realms.dev.services\], .variables and .secrets"),
    ],
)  # fmt: skip
def test_mistakes_are_one_line_naming_the_problem(tmp_path, text, flags, environ, message):
    write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as error:
        load_settings(flags, environ=environ, cwd=tmp_path)
    assert "\n" not in str(error.value)
