"""`passageway contract set|show|accept|clear` and `passageway openapi diff` as a user runs them
(real processes, a real SQLite store), and `[services.NAME] contract = "FILE"` in passageway.toml:
read and checked when the settings load (JSON or YAML, relative to the file), written to the store
at start (origin "file"). Mistakes are one line and a non-zero exit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.contracts import sync_contracts
from cli.settings import ConfigError, load_settings
from storage.contracts import get_contract
from storage.pure.record import CapturedBody
from storage.sink import write_records
from storage.store import open_store
from tests.support.records import make_record

ROOT = Path(__file__).resolve().parents[2]
PETSTORE = ROOT / "tests" / "data" / "openapi" / "v3.0-petstore-expanded.yaml"


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    """The command line in this process (cli.main.main, as `passageway` runs it): a process per
    command costs seconds; test_the_inspector_refuses_to_start_on_a_bad_contract runs a real one."""
    from cli.main import main

    monkeypatch.setenv("PASSAGEWAY_DB", f"sqlite:///{tmp_path / 'contracts.db'}")
    monkeypatch.delenv("PASSAGEWAY_REALM", raising=False)
    monkeypatch.delenv("PASSAGEWAY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"passageway: error: {message}\n"


def test_set_show_clear_and_their_mistakes(run, tmp_path):
    shutil.copy(PETSTORE, tmp_path / "pets.yaml")
    made = run("contract", "set", "pets", "pets.yaml")
    assert made.returncode == 0, made.stderr
    assert made.stdout == "contract of pets set from pets.yaml: 4 operation(s)\n"
    shown = run("contract", "show", "pets").stdout.splitlines()
    assert shown[0].startswith("pets: api contract pets.yaml of ") and shown[0].endswith(", 4 operation(s)")
    assert shown[1] == "violations in the last 24h: 0"
    assert json.loads(run("contract", "show", "pets", "--document").stdout)["info"]["title"] == "Swagger Petstore"
    assert run("contract", "clear", "pets").stdout == "contract of pets removed\n"

    one_line_error(run("contract", "clear", "pets"), "pets has no contract")
    one_line_error(run("contract", "show", "pets", "--realm", "prod"), "pets has no contract in realm prod")
    one_line_error(run("contract", "set", "pets", "nowhere.yaml"), "contract nowhere.yaml: no such file")
    (tmp_path / "bad.json").write_text('{"openapi": "3.1.0", "paths": {}}')
    one_line_error(run("contract", "set", "pets", "bad.json"),
                   'contract bad.json: invalid OpenAPI document: "info" is a required property')  # fmt: skip
    (tmp_path / "broken.yaml").write_text("openapi: [3.1\n")
    one_line_error(run("contract", "set", "pets", "broken.yaml"),
                   "contract broken.yaml: not valid YAML: expected ',' or ']', but got '<stream end>' at line 2, column 1")
    one_line_error(run("contract", "accept", "pets", "--window", "soon"),
                   "--window: expected a duration such as 7d or 24h, not 'soon'")


def test_accept_current_and_the_diff_from_the_command_line(run, tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'contracts.db'}")
    now = time.time()

    def user(fields: dict, at: float):  # type: ignore[no-untyped-def]
        data = json.dumps(fields).encode()
        body = CapturedBody(data=data, size=len(data), truncated=False, content_type="application/json")
        return make_record(service="users", realm=None, path="/users/7", response_body=body, captured_at=at)

    try:
        write_records(store, [user({"id": 7, "name": "a", "legacy": 1}, now - 31 * 86400), user({"id": 7, "name": "a"}, now - 3600)])
    finally:
        store.close()
    diff = run("openapi", "diff", "users", "--since", "30d", "--until", "1h")
    assert diff.returncode == 0, diff.stderr
    assert diff.stdout.splitlines() == [
        "1 change(s), 1 breaking",
        "GET /users/{id}",
        "  BREAKING response 200 field $.legacy removed",
    ]
    assert run("openapi", "diff", "users", "--since", "30d", "--fail-on-breaking").returncode == 1
    as_json = json.loads(run("openapi", "diff", "users", "--json").stdout)
    assert as_json["breaking"] == 1 and as_json["changes"][0]["kind"] == "field-removed"
    one_line_error(run("openapi", "diff", "users", "--since", "1d", "--until", "30d"),
                   "since (1d) is after until (30d): the window is empty")  # fmt: skip
    one_line_error(run("openapi", "diff", "ghost"), "unknown service 'ghost': none of its traffic was captured")
    one_line_error(run("openapi", "diff", "users", "--contract"), "'users' has no contract")

    accepted = run("contract", "accept", "users")
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith("contract of users is now the inferred document (inferred ")
    assert run("openapi", "diff", "users", "--contract", "--since", "1d").stdout == "no changes\n"


# --- passageway.toml ---------------------------------------------------------------------------


def config(tmp_path: Path, contract: str) -> Path:
    path = tmp_path / "passageway.toml"
    path.write_text(f'[services.pets]\nurl = "http://127.0.0.1:9"\ncontract = "{contract}"\n')
    return path


@pytest.mark.parametrize("name", ["openapi.yaml", "openapi.json"])
def test_a_contract_file_relative_to_the_config_file_yaml_or_json(tmp_path, name):
    import yaml

    document = yaml.safe_load(PETSTORE.read_text())
    (tmp_path / "specs").mkdir()
    text = json.dumps(document) if name.endswith(".json") else PETSTORE.read_text()
    (tmp_path / "specs" / name).write_text(text)
    settings = load_settings({"config_file": str(config(tmp_path, f"specs/{name}"))}, environ={}, cwd=Path("/"))
    assert settings.services["pets"].contract == tmp_path / "specs" / name
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        sync_contracts(store, settings)
        stored = get_contract(store, service="pets")
        assert (stored.origin, stored.label, stored.document) == ("file", str(tmp_path / "specs" / name), document)
    finally:
        store.close()


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    ("openapi: 3.0.0\ninfo: {title: t}\npaths: {}\n", 'invalid OpenAPI document: "version" is a required property (at info)'),
    ("swagger: '2.0'\n", "not an OpenAPI 3.0 or 3.1 document (openapi: missing)"),
    ("a: b: c\n", "not valid YAML: mapping values are not allowed here at line 1, column 5"),
])  # fmt: skip
def test_a_missing_or_invalid_contract_file_is_one_line_naming_it(tmp_path, content, message):
    if content is not None:
        (tmp_path / "api.yaml").write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_settings({"config_file": str(config(tmp_path, "api.yaml"))}, environ={}, cwd=tmp_path)
    assert str(caught.value) == f"service 'pets': contract {tmp_path / 'api.yaml'}: {message}"


def test_a_contract_that_is_not_a_file_name(tmp_path):
    path = tmp_path / "passageway.toml"
    path.write_text('[services.pets]\nurl = "http://127.0.0.1:9"\ncontract = 3\n')
    with pytest.raises(ConfigError, match="service 'pets': contract must be a file name"):
        load_settings({"config_file": str(path)}, environ={}, cwd=tmp_path)


def test_the_inspector_refuses_to_start_on_a_bad_contract(tmp_path):
    config(tmp_path, "gone.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PASSAGEWAY_DB": f"sqlite:///{tmp_path / 'p.db'}"}
    result = subprocess.run([sys.executable, "-m", "cli", "ui", "--ui", "127.0.0.1:0"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    one_line_error(result, f"service 'pets': contract {tmp_path / 'gone.yaml'}: no such file")


def test_the_demo_has_a_contract_it_keeps_and_breaks_on_purpose():
    from starlette.testclient import TestClient

    from cli.demo import app
    from cli.contracts import read_contract_file
    from storage.pure.contract_check import Exchange, compile_contract

    settings = load_settings({"config_file": str(ROOT / "examples" / "demo.toml")}, environ={})
    contract = compile_contract(read_contract_file(settings.services["demo"].contract))
    with TestClient(app) as demo:

        def check(method: str, path: str, **kwargs) -> list[str]:
            answer = demo.request(method, path, **kwargs)
            body = kwargs.get("content", b"")
            return [v.rule for v in contract.check(Exchange(
                method, path, "", answer.status_code, "application/json", answer.headers.get("content-type"),
                body, answer.content))]  # fmt: skip

        assert check("GET", "/users/42") == check("GET", "/users") == []
        created = demo.post("/users", json={"name": "Ada"}).json()["id"]
        assert check("GET", f"/users/{created}") == ["missing-field"]  # no email given, none kept
        assert check("GET", "/slow?seconds=0") == ["undocumented-endpoint"]
