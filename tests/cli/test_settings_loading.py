"""cli.settings.load_settings: flags beat the environment beat the file; every mistake is one line."""

import os
from pathlib import Path

import pytest

from cli.settings import ConfigError, load_settings, parse_size

NO_FLAGS: dict = {}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "passageway.toml"
    path.write_text(text)
    return path


def test_defaults(tmp_path):
    settings = load_settings(NO_FLAGS, environ={"XDG_DATA_HOME": str(tmp_path)}, cwd=tmp_path)
    assert settings.listen == ("127.0.0.1", 8080)
    assert settings.ui == ("127.0.0.1", 8081)
    assert settings.body_cap == 1024 * 1024
    assert settings.db == f"sqlite:///{tmp_path}/passageway/passageway.db"
    assert settings.services == {}


def test_flags_beat_environment_beat_file(tmp_path):
    write(tmp_path, 'listen = "127.0.0.1:1001"\nbody_cap = "2MiB"\ndb = "sqlite:///file.db"\n'
          '[services.a]\nurl = "http://h:1"\n[services.b]\nurl = "http://h:2"\nlisten = "127.0.0.1:7002"\n')
    environ = {"PASSAGEWAY_LISTEN": "127.0.0.1:1002", "PASSAGEWAY_ROUTES": "a=http://env:1,c=http://h:3",
               "PASSAGEWAY_DB": "sqlite:///env.db"}
    settings = load_settings({"listen": "127.0.0.1:1003", "services": ["c=http://flag:3"]}, environ=environ, cwd=tmp_path)
    assert settings.listen == ("127.0.0.1", 1003)
    assert settings.db == "sqlite:///env.db"
    assert settings.body_cap == 2 * 1024 * 1024
    assert settings.services["a"].upstream.host == "env"
    assert settings.services["b"].listen == ("127.0.0.1", 7002)
    assert settings.services["c"].upstream.host == "flag"
    assert settings.config_file == tmp_path / "passageway.toml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("listen = ", "not valid TOML"),
        ("colour = 1", "unknown setting 'colour'"),
        ("[services.a]\nport = 1", "needs url"),
        ('[services.a]\nurl = "http://h:1"\nextra = 1', "unknown key 'extra'"),
        ('[services."a b"]\nurl = "http://h:1"', "bad service name"),
        ('body_cap = "lots"', "bad body cap"),
        ('listen = "h:x"', "bad listen address"),
        ('forward_port = 70000', "bad forward port"),
        ('upstream_timeout = 0', "bad upstream timeout"),
        ('listen = "127.0.0.1:8081"', "both use 127.0.0.1:8081"),
    ],
)
def test_bad_config_is_one_line_naming_the_problem(tmp_path, text, message):
    write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as e:
        load_settings(NO_FLAGS, environ={}, cwd=tmp_path)
    assert "\n" not in str(e.value)


def test_missing_config_file_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({"config_file": str(tmp_path / "nope.toml")}, environ={}, cwd=tmp_path)


def test_bad_route_flag(tmp_path):
    with pytest.raises(ConfigError, match="flags: bad route"):
        load_settings({"services": ["oops"]}, environ={}, cwd=tmp_path)


@pytest.mark.parametrize(("text", "size"), [("1048576", 1048576), ("512k", 524288), ("1MiB", 1048576), ("2 mb", 2097152), (7, 7)])
def test_parse_size(text, size):
    assert parse_size(text, what="x") == size


def test_spool_defaults_to_a_private_directory_per_proxy_name(tmp_path):
    environ = {"XDG_STATE_HOME": str(tmp_path / "state"), "PASSAGEWAY_PROXY_NAME": "../edge 1/"}
    settings = load_settings(NO_FLAGS, environ=environ, cwd=tmp_path)
    assert settings.spool_dir == tmp_path / "state" / "passageway" / "spool" / "_edge_1_"  # one safe path part
    assert settings.spool_max_bytes == 1024**3


def test_spool_and_retention_settings(tmp_path):
    write(tmp_path, 'spool_dir = "/var/spool/pw"\nspool_max_bytes = "64MiB"\nretention_max_age = "30d"\n'
          'retention_max_exchanges = 1000000\nretention_max_body_bytes = "10GiB"\n')  # fmt: skip
    settings = load_settings({"spool_max_bytes": "0"}, environ={}, cwd=tmp_path)
    assert (settings.spool_dir, settings.spool_max_bytes) == (Path("/var/spool/pw"), 0)
    assert settings.retention_max_age == 30 * 86400
    assert (settings.retention_max_exchanges, settings.retention_max_body_bytes) == (1_000_000, 10 * 1024**3)
    assert load_settings(NO_FLAGS, environ={"PASSAGEWAY_RETENTION_MAX_AGE": "90m"}, cwd=tmp_path / "..").retention_max_age == 5400


def test_workers_from_a_flag_a_variable_or_the_file_and_auto_is_the_cores(tmp_path):
    assert load_settings(NO_FLAGS, environ={}, cwd=tmp_path).workers == 1
    assert load_settings({"workers": "4"}, environ={}, cwd=tmp_path).workers == 4
    assert load_settings(NO_FLAGS, environ={"PASSAGEWAY_WORKERS": " Auto "}, cwd=tmp_path).workers == len(
        os.sched_getaffinity(0)
    )
    write(tmp_path, "workers = 2\n")  # a TOML integer
    assert load_settings(NO_FLAGS, environ={}, cwd=tmp_path).workers == 2
    assert load_settings({"workers": "3"}, environ={"PASSAGEWAY_WORKERS": "auto"}, cwd=tmp_path).workers == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workers = 0", "bad workers 0: expected a whole number of at least 1, or auto"),
        ('workers = "many"', "bad workers 'many'"),
        ("workers = true", "bad workers True"),
        ('retention_max_age = "soon"', "bad retention_max_age 'soon': expected a duration"),
        ("retention_max_age = 0", "bad retention_max_age 0: must be more than 0"),
        ("retention_max_exchanges = -5", "bad retention_max_exchanges -5: expected a whole number"),
        ('retention_max_exchanges = "many"', "bad retention_max_exchanges 'many'"),
        ('spool_max_bytes = "lots"', "bad spool size 'lots'"),
    ],
)
def test_bad_spool_or_retention_setting_is_one_line(tmp_path, text, message):
    write(tmp_path, text + "\n")
    with pytest.raises(ConfigError) as error:
        load_settings(NO_FLAGS, environ={}, cwd=tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("example", sorted((Path(__file__).parents[2] / "examples").rglob("*.toml")), ids=str)
def test_every_example_config_loads(example, tmp_path):
    settings = load_settings({"config_file": str(example)}, environ={"XDG_STATE_HOME": str(tmp_path)}, cwd=tmp_path)
    assert settings.config_file == example


REALMS = '''
[services.identity]
url = "http://127.0.0.1:9001"
health = "/healthz"
health_interval = "5s"

[services.billing]
url = "http://127.0.0.1:9002"

[realms.dev.services]
orders = "http://127.0.0.1:9003"

[realms.prod.services.identity]
url = "https://identity.prod.example"
health = "/ready"
'''


def test_a_realm_adds_and_overrides_services(tmp_path):
    write(tmp_path, REALMS)
    prod = load_settings({"realm": "prod"}, environ={}, cwd=tmp_path)
    assert prod.realm == "prod" and prod.realms == ("dev", "prod")
    assert prod.services["identity"].upstream.url == "https://identity.prod.example:443"
    assert prod.services["identity"].health.path == "/ready"
    assert set(prod.services) == {"identity", "billing"}
    dev = load_settings(NO_FLAGS, environ={"PASSAGEWAY_REALM": "dev"}, cwd=tmp_path)
    assert set(dev.services) == {"identity", "billing", "orders"}
    assert dev.services["identity"].health.interval == 5 and dev.services["identity"].health.timeout == 2


def test_routes_from_flags_still_beat_the_realm(tmp_path):
    write(tmp_path, REALMS)
    settings = load_settings({"realm": "prod", "services": ["identity=http://127.0.0.1:7000"]}, environ={}, cwd=tmp_path)
    assert settings.services["identity"].upstream.port == 7000


def test_realm_in_the_file_and_a_single_realm_need_no_flag(tmp_path):
    write(tmp_path, 'realm = "dev"\n' + REALMS)
    assert load_settings(NO_FLAGS, environ={}, cwd=tmp_path).realm == "dev"
    write(tmp_path, '[realms.only.services]\na = "http://h:1"\n')
    assert load_settings(NO_FLAGS, environ={}, cwd=tmp_path).realm == "only"
    write(tmp_path, '[services]\na = "http://h:1"\n')
    plain = load_settings(NO_FLAGS, environ={}, cwd=tmp_path)
    assert (plain.realm, plain.realms) == (None, ())
    assert load_settings({"realm": "laptop"}, environ={}, cwd=tmp_path).realm == "laptop"


@pytest.mark.parametrize(
    ("text", "flags", "message"),
    [
        (REALMS, {}, r"defines realms dev, prod: pick one with --realm"),
        (REALMS, {"realm": "qa"}, r"unknown realm 'qa': .* defines dev, prod"),
        (REALMS, {"realm": "bad realm"}, r"bad realm name 'bad realm'"),
        ('[realms."a b".services]\nx = "http://h:1"\n', {}, r"bad realm name 'a b'"),
        ('[realms.dev]\nurl = "http://h:1"\n', {}, r"realm 'dev' may only hold \[realms.dev.services\]"),
        ('realms = 3\n', {}, r"'realms' must be a table"),
        ('[services.a]\nurl = "http://h:1"\nhealth = "healthz"\n', {}, r"bad health path 'healthz'"),
        ('[services.a]\nurl = "http://h:1"\nhealth_interval = "5s"\n', {}, r"service 'a': health_interval needs health"),
        ('[services.a]\nurl = "http://h:1"\nhealth = "/h"\nhealth_interval = "soon"\n', {}, r"bad health_interval"),
        ('[services.a]\nurl = "http://h:1"\nhealth = "/h"\nhealth_interval = "1s"\nhealth_timeout = "3s"\n', {},
         r"health_timeout \(3 s\) is longer than health_interval \(1 s\)"),
        ('tracing = "on"\n', {}, r"bad tracing 'on': expected one of off, propagate, start"),
    ],
)  # fmt: skip
def test_bad_realms_health_and_tracing_are_one_line_errors(tmp_path, text, flags, message):
    write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as error:
        load_settings(flags, environ={}, cwd=tmp_path)
    assert "\n" not in str(error.value)


def test_tracing_defaults_to_propagate(tmp_path):
    assert load_settings(NO_FLAGS, environ={}, cwd=tmp_path).tracing == "propagate"
    assert load_settings({"tracing": "start"}, environ={"PASSAGEWAY_TRACING": "off"}, cwd=tmp_path).tracing == "start"
