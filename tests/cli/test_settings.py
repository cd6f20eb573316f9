"""cli.settings: one schema, and everything derived from it (flags, children's arguments, the
README's table, each role's view) agrees with it."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from cli.main import build_parser
from cli.roles import INSPECTOR_DERIVED, PROXY_DERIVED, inspector_view, proxy_view
from cli.settings import COMMAND_ROLES, ROLES, SETTINGS, child_arguments, load_settings, settings_table
from inspector_ui.settings import InspectorSettings
from proxy.settings import ProxySettings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_table_is_the_schemas():
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- settings: .*? -->\n(.*?)\n<!-- end of settings -->", text, re.S)
    assert found, "README.md lost its settings table markers"
    assert found.group(1) == settings_table(), (
        "README.md's settings table differs from cli/settings.py; paste this in its place:\n" + settings_table()
    )


def test_every_setting_has_a_source_and_roles():
    for name, meta in SETTINGS.items():
        assert meta.flag or meta.env or meta.file, name
        assert meta.roles and meta.roles <= set(ROLES), name
        assert meta.help and meta.help[0].islower() or meta.help[0] == "`", name


def test_the_proxys_view_holds_every_setting_the_proxy_uses():
    used = {name for name, meta in SETTINGS.items() if "proxy" in meta.roles} - {"config_file"}
    assert {field.name for field in dataclasses.fields(ProxySettings)} == used | set(PROXY_DERIVED)


def test_every_setting_the_inspector_and_its_maintenance_use_reaches_its_view():
    used = {name for name, meta in SETTINGS.items() if meta.roles & {"inspector", "maintenance"}} - {"config_file"}
    same_name = used & set(InspectorSettings.model_fields)
    derived_from = {source for sources in INSPECTOR_DERIVED.values() for source in sources}
    assert used - same_name - derived_from == set()
    assert set(INSPECTOR_DERIVED) <= set(InspectorSettings.model_fields)


def test_the_views_carry_the_values(tmp_path):
    (tmp_path / "passageway.toml").write_text(
        'body_cap = "2MiB"\nallow_any_replay_target = true\nretention_max_age = "1d"\n[services.a]\nurl = "http://h:1"\n'
    )
    settings = load_settings({"listen": "127.0.0.1:7000", "forward_port": "7001", "ui": "0.0.0.0:7002"},
                             environ={"XDG_STATE_HOME": str(tmp_path)}, cwd=tmp_path)  # fmt: skip
    proxy = proxy_view(settings)
    assert (proxy.body_cap, proxy.listen, proxy.ui) == (2 * 1024**2, ("127.0.0.1", 7000), ("0.0.0.0", 7002))
    inspector = inspector_view(settings, token="t" * 16)
    assert (inspector.host, inspector.port, inspector.token) == ("0.0.0.0", 7002, "t" * 16)
    assert inspector.replay_gateway == "http://127.0.0.1:7000" and inspector.replay_forward_proxy == "http://127.0.0.1:7001"
    assert inspector.replay_services == {"a": "http://h:1"} and inspector.allow_any_replay_target
    assert inspector.retention_max_age == 86400 and inspector.replay_timeout == 35


def subcommand(parser: argparse.ArgumentParser, words: str) -> argparse.ArgumentParser:
    """The parser of `words` ("up", "test run")."""
    for word in words.split():
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    return parser


def test_each_command_offers_the_flags_of_its_roles():
    parser = build_parser()
    for command, roles in COMMAND_ROLES.items():
        # A command's own option may share a setting's flag (`openapi show --realm`: a filter, not
        # the settings' realm); only options that set a setting count as offering it.
        offered = {option for action in subcommand(parser, command)._actions for option in action.option_strings
                   if action.dest in SETTINGS}  # fmt: skip
        for meta in SETTINGS.values():
            if meta.flag:
                assert (meta.flag in offered) == bool(meta.roles & set(roles)), (command, meta.flag)


def every_up_flag() -> list[str]:
    """`up` with each of its options given once (a value where it takes one)."""
    parser = build_parser()
    up = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["up"]
    argv = ["up"]
    for action in up._actions:
        flag = max(action.option_strings, key=len, default=None)
        if flag is None or flag == "--help":
            continue
        argv += [flag] if action.nargs == 0 else [flag, action.choices[0] if action.choices else "1"]
    return argv


@pytest.mark.parametrize("command", ["proxy", "ui"])
def test_each_child_of_up_gets_exactly_the_flags_its_roles_use(command):
    argv = every_up_flag()
    given = child_arguments(argv, COMMAND_ROLES[command])
    build_parser().parse_args([command, *given])  # the child accepts every flag it is given
    flags = {word.partition("=")[0] for word in given if word.startswith("-")}
    short = {meta.short: meta.flag for meta in SETTINGS.values() if meta.short}
    flags = {short.get(flag, flag) for flag in flags}
    expected = {meta.flag for meta in SETTINGS.values() if meta.flag and meta.roles & set(COMMAND_ROLES[command])}
    assert flags == expected and "--demo" not in given


def test_the_proxy_child_is_told_the_inspectors_address_however_it_is_written():
    for written in (["--ui", "127.0.0.1:9"], ["--ui=127.0.0.1:9"]):
        argv = ["up", "--upstream-insecure", *written, "--allow-any-replay-target", "--body-cap", "2MiB"]
        proxy = child_arguments(argv, COMMAND_ROLES["proxy"])
        assert build_parser().parse_args(["proxy", *proxy]).ui == "127.0.0.1:9"
        assert "--allow-any-replay-target" not in proxy and "--upstream-insecure" in proxy
        inspector = child_arguments(argv, COMMAND_ROLES["ui"])
        assert inspector == [*written, "--allow-any-replay-target"]


@pytest.mark.parametrize(
    "name", sorted(name for name, meta in SETTINGS.items() if meta.env and meta.file and not meta.env_prefix)
)
def test_every_setting_is_read_from_its_variable_and_its_file_key(name, tmp_path):
    meta = SETTINGS[name]
    sample = {
        "db": "sqlite:///x.db", "listen": "127.0.0.1:7100", "ui": "127.0.0.1:7101", "services": "a=http://h:1",
        "realm": "dev", "tracing": "start", "forward_port": "7102", "body_cap": "1k", "upstream_timeout": "5",
        "eject_after": "5",
        "proxy_name": "edge", "certs_dir": str(tmp_path), "upstream_ca": __file__, "upstream_insecure": "true",
        "replay_via": "http://h:2", "allow_any_replay_target": "true", "ui_token": "x" * 16,
        "redact_at_capture": "true", "redact_add": "x-pin", "redact_remove": "cookie", "retention_max_age": "1h",
        "retention_max_exchanges": "5", "retention_max_body_bytes": "1k", "spool_dir": str(tmp_path),
        "spool_max_bytes": "0", "maintenance": "false", "max_decoded_body": "1MiB", "monitor_runner": "false",
        "mocks": f"a={__file__}", "workers": "3",
    }[name]  # fmt: skip
    empty = tmp_path / "empty"
    empty.mkdir()
    default = getattr(load_settings({}, environ={}, cwd=empty), name)
    from_env = getattr(load_settings({}, environ={meta.env: sample}, cwd=empty), name)
    toml = {"services": '[services]\na = "http://h:1"', "redact_add": 'redact_add = ["x-pin"]',
            "redact_remove": 'redact_remove = ["cookie"]', "mocks": f'[mocks]\na = "{__file__}"'}.get(
        name, f"{meta.file} = {sample!r}")  # fmt: skip
    (tmp_path / "passageway.toml").write_text(toml.replace("'", '"') + "\n")
    from_file = getattr(load_settings({}, environ={}, cwd=tmp_path), name)
    assert from_env == from_file != default
