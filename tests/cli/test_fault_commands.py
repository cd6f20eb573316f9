"""`passageway fault add|list|clear` as a user runs them (real processes, a real SQLite store),
and `[[faults]]` in passageway.toml: checked when the settings load, written to the store at
start as config rules. Mistakes are one line and a non-zero exit."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.faults import sync_faults
from cli.settings import ConfigError, load_settings
from storage.faults import list_rules
from storage.store import open_store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PASSAGEWAY_DB": f"sqlite:///{tmp_path / 'faults.db'}"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", "fault", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    return run


@pytest.fixture
def run_here(tmp_path, monkeypatch, capsys):
    """run(), through cli.main.main in this process, on the same store: a process costs seconds of
    imports on a busy machine. The first and last commands of test_add_list_clear and one mistake
    keep real processes."""
    from cli.main import main

    monkeypatch.setenv("PASSAGEWAY_DB", f"sqlite:///{tmp_path / 'faults.db'}")
    monkeypatch.delenv("PASSAGEWAY_REALM", raising=False)
    monkeypatch.delenv("PASSAGEWAY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)

    def run_here(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        code = main(["fault", *args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run_here


def test_add_list_clear(run, run_here):
    added = run("add", "billing", "--delay", "300ms", "--rate", "20%", "--for", "10m")
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added #1 billing: delay 300 ms at 20%, until ")
    assert run_here("add", "billing", "--delay", "100ms-2s", "--method", "post", "--path", "/orders/{id}").returncode == 0
    assert run_here("add", "orders", "--status", "503", "--header", "X-Env=canary", "--realm", "staging").returncode == 0
    assert run_here("add", "orders", "--reset").returncode == 0
    assert run_here("add", "orders", "--stall", "--until", (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()).returncode == 0
    listed = run("list").stdout.splitlines()
    assert [line.split(":")[0] for line in listed] == [
        "#5 orders", "#4 orders", "#3 orders (realm staging) [x-env=canary]", "#2 billing POST /orders/{id}", "#1 billing"]
    assert "delay 100-2000 ms at 100%  active until" in listed[3]
    assert run_here("clear", "#1").stdout == "removed fault rule #1\n"
    assert run_here("clear", "orders").stdout == "removed 3 fault rule(s) on orders\n"
    assert run_here("clear").stdout == "removed 1 fault rule(s)\n"
    assert run("list").stdout == "no fault rules active or upcoming\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "billing"], "no effect: give --delay, --status, --reset or --stall"),
        (["add", "billing", "--delay", "fast"], "--delay: 'fast' is not a duration such as 300ms or 2s"),
        (["add", "billing", "--reset", "--rate", "120%"], "--rate: must be between 0% and 100%"),
        (["add", "billing", "--reset", "--for", "30d"], "--for: at most 7 days"),
        (["add", "billing", "--status", "503", "--reset"], "--reset: one outcome per rule: status and reset exclude each other"),
        (["add", "billing", "--status", "42"], "--status: an HTTP status between 100 and 599"),
        (["add", "bad name", "--reset"], "SERVICE: a service name"),
        (["add", "billing", "--reset", "--path", "orders"], "--path: a path from '/'"),
        (["add", "billing", "--reset", "--until", "tomorrow"], "--until: 'tomorrow' is not a time"),
        (["add", "billing", "--reset", "--until", "2020-01-01T00:00:00Z"], "--until: must be after the start"),
        (["clear", "99"], "no fault rule #99"),
        (["clear", "99999999999999999999"], "no fault rule #99999999999999999999"),
        (["clear", "nobody"], "no fault rule on 'nobody'"),
    ],
)
def test_mistakes_are_one_line(run, run_here, args, message):
    result = (run if args == ["add", "billing", "--delay", "fast"] else run_here)(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"passageway: error: {message}") and result.stderr.count("\n") == 1, result.stderr


def test_config_faults_are_checked_at_load_and_synced_at_start(tmp_path):
    config = tmp_path / "passageway.toml"
    config.write_text(
        f'db = "sqlite:///{tmp_path / "c.db"}"\n'
        '[[faults]]\nservice = "billing"\nstatus = 503\nrate = "10%"\nfor = "1h"\n'
        '[[faults]]\nservice = "orders"\ndelay = "100ms-300ms"\npath = "/orders/*"\nrealm = "staging"\n'
    )
    settings = load_settings({"config_file": str(config)})
    store = open_store(settings.db)
    try:
        sync_faults(store, settings)
        first = {rule.fields.service: rule for rule in list_rules(store)}
        assert {(r.fields.service, r.fields.realm, r.origin) for r in first.values()} == {
            ("billing", "", "config"), ("orders", "staging", "config")}
        assert first["billing"].fields.rate == pytest.approx(0.1) and first["orders"].fields.delay_max_ms == 300
        sync_faults(store, settings)  # a restart: the same rules, the same rows and expiries
        assert {r.id: r.fields.expires_at for r in list_rules(store)} == {r.id: r.fields.expires_at for r in first.values()}
    finally:
        store.close()
    for bad, message in [
        ('[[faults]]\nstatus = 503\n', 'faults #1 needs service = "NAME"'),
        ('[[faults]]\nservice = "b"\nstatus = 503\ncolour = 1\n', "faults #1 has unknown key 'colour'"),
        ('[[faults]]\nservice = "b"\nstatus = 503\n[[faults]]\nservice = "b"\nrate = "5%"\n', "faults #2: effect: no effect"),
        ('[[faults]]\nservice = "b"\nreset = "yes"\n', "faults #1: reset: true or false"),
        ('[[faults]]\nservice = "b"\nreset = true\nfor = "9d"\n', "faults #1: for: at most 7 days"),
        ('faults = "b"\n', "faults must be an array of tables"),
    ]:
        config.write_text(bad)
        with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(")):
            load_settings({"config_file": str(config)})
