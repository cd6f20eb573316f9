"""`up --demo` tells its demo services where the inspector is, so they register themselves."""

from __future__ import annotations

from cli.settings import load_settings
from cli.supervisor import demo_environment


def settings_with(tmp_path, **flags):
    return load_settings(flags, environ={"XDG_STATE_HOME": str(tmp_path)}, cwd=tmp_path)


def test_the_demo_reaches_the_inspector_on_loopback_with_its_token(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PASSAGEWAY_TOKEN", "from-the-shell-0000")
    monkeypatch.setenv("PASSAGEWAY_REALM", "elsewhere")
    env = demo_environment(settings_with(tmp_path, ui="0.0.0.0:7002"), "t" * 32)
    assert env["PASSAGEWAY_INSPECTOR_URL"] == "http://127.0.0.1:7002"
    assert env["PASSAGEWAY_TOKEN"] == "t" * 32
    assert "PASSAGEWAY_REALM" not in env

    env = demo_environment(settings_with(tmp_path, ui="[::]:7003"), None)
    assert env["PASSAGEWAY_INSPECTOR_URL"] == "http://[::1]:7003"
    assert "PASSAGEWAY_TOKEN" not in env


def test_the_demo_registers_in_the_proxys_realm(tmp_path) -> None:
    (tmp_path / "passageway.toml").write_text('realm = "staging"\n[realms.staging]\n')
    env = demo_environment(settings_with(tmp_path, ui="127.0.0.1:7004"), None)
    assert env["PASSAGEWAY_REALM"] == "staging"
    assert env["PASSAGEWAY_INSPECTOR_URL"] == "http://127.0.0.1:7004"


def test_the_demos_smart_client_calls_back_through_this_gateway(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PASSAGEWAY_URL", "http://127.0.0.1:8080")  # a shell's, for another gateway
    env = demo_environment(settings_with(tmp_path, listen="0.0.0.0:18080"), None)
    assert env["PASSAGEWAY_URL"] == "http://127.0.0.1:18080"
