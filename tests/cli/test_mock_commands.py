"""`passageway mock NAME [--from QUERY] [--latency] [--passthrough]`, `--har FILE`, `--export FILE
[--raw]`, `--off` and `passageway mock list` as a user runs them (the command's entry point, a
real SQLite store). Mistakes are one line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cli.main import main
from storage.mocks import get_simulation, har_recordings
from storage.pure.record import CapturedBody
from storage.sink import write_records
from storage.store import open_store
from tests.support.records import make_record

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "tests" / "data" / "har" / "real"


@pytest.fixture
def db(tmp_path) -> str:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'mocks.db'}"
    store = open_store(url)
    write_records(store, [
        make_record(service="orders", realm="staging", path="/orders/1", request_headers=[("Authorization", "Bearer t0ps3cr3t-value")],
                    response_body=CapturedBody(b'{"id": 1}', 9, False, content_type="application/json")),
        make_record(service="orders", realm="staging", method="POST", path="/orders", status=201),
    ])  # fmt: skip
    store.close()
    return url


@pytest.fixture
def run(tmp_path, db, monkeypatch, capsys):  # type: ignore[no-untyped-def]
    """The command's own entry point, in this process (its start-up is most of a subprocess's cost)."""
    monkeypatch.setenv("PASSAGEWAY_DB", db)
    monkeypatch.setenv("PASSAGEWAY_REALM", "staging")
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess:
        try:
            code = main(["mock", *args])
        except SystemExit as exit_:  # argparse's own mistakes
            code = exit_.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def test_simulate_list_export_stop(run, db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    made = run("orders", "--from", "method:GET", "--latency")
    assert made.returncode == 0, made.stderr
    assert made.stdout == "simulating orders (realm staging): from its exchanges matching 'method:GET', latency [cli]: 1 recording(s)\n"
    assert run("mitm", "--har", str(REAL / "insomnia.har"), "--passthrough").returncode == 0
    assert run("list").stdout.splitlines() == [
        "mitm (realm staging): from 1 HAR entry, passthrough [cli]",
        "orders (realm staging): from its exchanges matching 'method:GET', latency [cli]",
    ]
    exported = run("orders", "--export", "orders.har")
    assert exported.returncode == 0 and exported.stdout == "wrote 1 recording(s) of orders to orders.har (redacted)\n"
    text = (tmp_path / "orders.har").read_text()
    assert "t0ps3cr3t-value" not in text and [r.response_body for r in har_recordings(text)] == [b'{"id": 1}']
    raw = run("orders", "--export", "-", "--raw")
    assert "t0ps3cr3t-value" in raw.stdout and json.loads(raw.stdout)["log"]["entries"]
    assert run("orders", "--off").stdout == "stopped simulating orders: the proxies forward its requests again\n"
    store = open_store(db)
    try:
        assert get_simulation(store, service="orders", realm="staging") is None
        assert get_simulation(store, service="mitm", realm="staging").spec.passthrough
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("orders", "--off"), "'orders' is not simulated in realm 'staging'"),
        (("orders", "--export", "x.har"), "is not simulated"),
        (("orders", "--from", "status:>>"), "--from: status"),
        (("orders", "--har", "missing.har"), "--har: cannot read missing.har"),
        (("orders", "--raw"), "--raw goes with --export"),
        (("list", "--latency"), "takes no other option"),
        (("orders", "--off", "--har", "x.har"), "not allowed with argument"),
    ],
)
def test_mistakes_are_one_line(run, args: tuple[str, ...], says: str) -> None:  # type: ignore[no-untyped-def]
    done = run(*args)
    assert done.returncode != 0 and says in done.stderr, done
    assert "Traceback" not in done.stderr and says in done.stderr.strip().splitlines()[-1]
