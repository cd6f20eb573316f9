"""storage.mocks on SQLite and PostgreSQL: simulations stored and replaced, config ones synced,
recordings loaded from the store (bounded, newest, mock answers and faults left out, bodies
decoded) and from a real tool's HAR, and exported as HAR redacted unless asked for raw."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from storage.errors import Invalid
from storage.mocks import (
    SimulationSpec,
    delete_simulation,
    export_recordings,
    get_simulation,
    har_recordings,
    list_simulations,
    load_recordings,
    put_simulation,
    simulation_versions,
    sync_config_simulations,
)
from storage.pure.record import CapturedBody
from storage.pure.redaction import rules_from_config
from storage.sink import write_records
from tests.support.records import make_record

REAL = Path(__file__).resolve().parents[1] / "data" / "har" / "real"


def test_a_simulation_is_stored_replaced_listed_and_removed(store) -> None:  # type: ignore[no-untyped-def]
    first = put_simulation(store, SimulationSpec("users", query="method:GET"), origin="cli")
    again = put_simulation(store, SimulationSpec("users", latency=True, passthrough=True))
    put_simulation(store, SimulationSpec("users", realm="staging"))
    assert again.id == first.id and again.version != first.version
    found = get_simulation(store, service="users")
    assert found is not None and found.spec.latency and found.spec.passthrough and found.origin == "api"
    assert [s.spec.realm for s in list_simulations(store)] == ["", "staging"]
    assert set(simulation_versions(store, realm="staging")) == {"users"}
    assert delete_simulation(store, service="users") and not delete_simulation(store, service="users")
    assert get_simulation(store, service="users") is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (SimulationSpec("users", query="status:>>"), "status"),
        (SimulationSpec("users", har="{}"), "not a HAR log"),
        (SimulationSpec("users", har='{"log": {"entries": []}}'), "no entry"),
        (SimulationSpec("users", query="x", har='{"log": {}}'), "not both"),
        (SimulationSpec("a/b"), "bad service"),
    ],
)
def test_a_bad_simulation_is_refused_in_one_line(store, spec: SimulationSpec, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Invalid, match=message) as caught:
        put_simulation(store, spec)
    assert "\n" not in str(caught.value)


def test_config_simulations_replace_their_realms_own(store) -> None:  # type: ignore[no-untyped-def]
    put_simulation(store, SimulationSpec("users"), origin="api")
    put_simulation(store, SimulationSpec("orders"), origin="api")
    sync_config_simulations(store, [SimulationSpec("users", latency=True), SimulationSpec("cart")], realms=[""])
    assert {(s.spec.service, s.origin) for s in list_simulations(store)} == {
        ("users", "config"), ("cart", "config"), ("orders", "api")
    }
    sync_config_simulations(store, [], realms=[""])
    assert {s.spec.service for s in list_simulations(store)} == {"orders"}


def test_recordings_from_the_store(store) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"id": 7, "name": "ann"}).encode()
    records = [
        make_record(service="users", realm="", path="/users", method="POST", status=201,
                    request_body=CapturedBody(b'{"name": "ann"}', 15, False, content_type="application/json"),
                    response_body=CapturedBody(gzip.compress(body), 30, False, "gzip", "application/json")),
        make_record(service="users", realm="", path="/users/7"),
        make_record(service="users", realm="", path="/users/8", mock="#1"),  # a mock's own answer
        make_record(service="users", realm="", path="/users/9", fault="#2 status 503"),
        make_record(service="users", realm="", path="/users/10", status=None, error_kind="timeout"),
        make_record(service="users", realm="", path="/users/12", status=502, error_kind="connect_failed"),
        make_record(service="users", realm="staging", path="/users/11"),
        make_record(service="orders", realm="", path="/orders/1"),
        make_record(service="users", realm="", path="/big",
                    response_body=CapturedBody(b"x" * 10, 1000, True, content_type="text/plain")),
    ]  # fmt: skip
    ids = write_records(store, records)
    loaded = load_recordings(store, SimulationSpec("users"))
    assert [r.path for r in loaded] == ["/users", "/users/7"]
    create = loaded[0]
    assert create.label == f"#{ids[0]}" and create.exchange_id == ids[0] and create.status == 201
    assert create.response_body == body and create.request_body == b'{"name": "ann"}'
    assert create.request_content_type == "application/json"
    assert [r.path for r in load_recordings(store, SimulationSpec("users", query="method:POST"))] == ["/users"]
    assert [r.path for r in load_recordings(store, SimulationSpec("users"), limit=1)] == ["/users/7"]
    assert [r.path for r in load_recordings(store, SimulationSpec("users", realm="staging"))] == ["/users/11"]


def test_recordings_from_a_real_tools_har() -> None:
    text = (REAL / "postdata.har").read_text()
    [recording] = har_recordings(text)
    entry = json.loads(text)["log"]["entries"][0]
    assert recording.label == "har:entry 0" and recording.method == "POST" and recording.path == "/metrics"
    assert recording.request_body == entry["request"]["postData"]["text"].encode()
    chrome = har_recordings((REAL.parent / "chrome.har").read_text())
    assert [r.label for r in chrome] == ["har:entry 0", "har:entry 1", "har:entry 2"]  # entry 3 failed: no answer


def test_an_export_is_redacted_unless_raw(store) -> None:  # type: ignore[no-untyped-def]
    secret = "Bearer s3cr3t-t0ken-value"
    write_records(store, [make_record(service="users", realm="", request_headers=[("Authorization", secret)],
                                      response_body=CapturedBody(b'{"token": "abcdef123456789"}', 30, False,
                                                                 content_type="application/json"))])  # fmt: skip
    stored = put_simulation(store, SimulationSpec("users"))
    rules = rules_from_config([], [])
    redacted = json.dumps(export_recordings(store, stored, rules=rules))
    assert "s3cr3t-t0ken-value" not in redacted and "abcdef123456789" not in redacted
    raw = json.dumps(export_recordings(store, stored, rules=None))
    assert "s3cr3t-t0ken-value" in raw and "abcdef123456789" in raw

    har = json.loads((REAL / "insomnia.har").read_text())
    har["log"]["entries"][0]["request"]["headers"].append({"name": "Authorization", "value": secret})
    from_file = put_simulation(store, SimulationSpec("mitm", har=json.dumps(har)))
    exported = export_recordings(store, from_file, rules=rules)
    assert secret not in json.dumps(exported)
    assert [r.response_body for r in har_recordings(json.dumps(exported))] == [
        r.response_body for r in har_recordings(json.dumps(har))
    ]
    assert secret in json.dumps(export_recordings(store, from_file, rules=None))


@pytest.mark.parametrize("path", sorted(REAL.glob("*.har")) + sorted(REAL.parent.glob("*.har")), ids=lambda p: p.name)
def test_every_real_tools_har_gives_recordings(path: Path) -> None:
    entries = json.loads(path.read_text(encoding="utf-8-sig"))["log"]["entries"]
    recordings = har_recordings(path.read_text(encoding="utf-8-sig"))
    answered = [i for i, e in enumerate(entries) if (e.get("response") or {}).get("status")]
    assert [r.label for r in recordings] == [f"har:entry {i}" for i in answered]
    assert all(r.method and r.path.startswith("/") and 100 <= r.status < 600 for r in recordings)
