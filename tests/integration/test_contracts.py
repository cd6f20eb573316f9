"""Contract drift as a team meets it (issue 18 §2), on SQLite and PostgreSQL: `passageway up` with
`[services.users] contract = "openapi.yaml"` in front of a real upstream that breaks its contract
on purpose (a missing required field, a wrong type, an unknown enum value, an undocumented
endpoint, an unexpected status). The inspector's maintenance role finds each violation once;
they are searchable (`is:violation`, `violation:missing-field`), listed per exchange and per
service by the API, and counted in /api/metrics."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from tests.support import free_port, start_process, wait_for
from tests.support.upstream import _listening_socket, _uvicorn_server

PASSAGEWAY = [sys.executable, "-m", "cli"]

CONTRACT = """\
openapi: 3.0.3
info: {title: users, version: "1"}
paths:
  /users/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
        - {name: verbose, in: query, schema: {type: boolean}}
      responses:
        "200":
          description: a user
          content:
            application/json:
              schema: {$ref: "#/components/schemas/User"}
        "404":
          description: no such user
components:
  schemas:
    User:
      type: object
      required: [id, name, role]
      properties:
        id: {type: integer}
        name: {type: string}
        role: {type: string, enum: [admin, member]}
        email: {type: string, nullable: true}
"""

USERS = {
    1: {"id": 1, "name": "Ada", "role": "admin", "email": None},  # as promised
    2: {"id": 2, "role": "member"},  # name missing
    3: {"id": "3", "name": "Cy", "role": "member"},  # id is a string
    4: {"id": 4, "name": "Di", "role": "owner"},  # owner is no role
}


def users_app() -> FastAPI:
    app = FastAPI()

    @app.get("/users/{user_id}")
    def user(user_id: int) -> JSONResponse:
        if user_id == 5:
            return JSONResponse({"error": "boom"}, status_code=500)  # 500 is not documented
        if user_id not in USERS:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(USERS[user_id])

    @app.get("/admin/stats")
    def stats() -> dict:  # not in the contract at all
        return {"users": len(USERS)}

    return app


@dataclass
class Running:
    gateway: str
    ui: str


@pytest.fixture(scope="module")
def up(db_url, tmp_path_factory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("contracts")
    (tmp / "openapi.yaml").write_text(CONTRACT)
    gateway, ui = free_port(), free_port()
    with _uvicorn_server(users_app(), sock := _listening_socket(), None):
        port = sock.getsockname()[1]
        (tmp / "passageway.toml").write_text(
            f'db = "{db_url}"\nlisten = "127.0.0.1:{gateway}"\nui = "127.0.0.1:{ui}"\n'
            f'[services.users]\nurl = "http://127.0.0.1:{port}"\ncontract = "openapi.yaml"\n'
        )
        args = [*PASSAGEWAY, "up", "--config", str(tmp / "passageway.toml"), "--certs-dir", str(tmp / "certs"),
                "--spool-dir", str(tmp / "spool")]  # fmt: skip
        with start_process(args, port=gateway, name="passageway up", timeout=30, cwd=tmp) as process:
            process.wait_for_port(ui)
            yield Running(f"http://127.0.0.1:{gateway}", f"http://127.0.0.1:{ui}")


def test_violations_are_found_searchable_listed_and_counted(up):
    api = httpx.Client(base_url=up.ui, timeout=10)
    contract = wait_for(lambda: api.get("/api/services/users/contract").json() if
                        api.get("/api/services/users/contract").status_code == 200 else None, timeout=10)  # fmt: skip
    assert contract["origin"] == "file" and contract["label"].endswith("openapi.yaml") and contract["operations"] == 1

    with httpx.Client(base_url=up.gateway, timeout=10) as http:
        for path in ("/users/users/1?verbose=true", "/users/users/2", "/users/users/3", "/users/users/4",
                     "/users/users/5", "/users/users/9", "/users/admin/stats", "/users/users/1?verbose=maybe"):
            http.get(path)

    def search(q: str) -> list[dict]:
        return api.get("/api/exchanges", params={"q": q, "limit": 100}).json()["data"]

    violating = wait_for(lambda: found if len(found := search("is:violation")) >= 6 else None, timeout=30)
    by_path = {(e["path"], e["query"]): e for e in violating}
    assert set(by_path) == {("/users/2", ""), ("/users/3", ""), ("/users/4", ""), ("/users/5", ""),
                            ("/admin/stats", ""), ("/users/1", "verbose=maybe")}  # fmt: skip
    assert [e["path"] for e in search("violation:missing-field")] == ["/users/2"]
    assert [e["path"] for e in search("violation:wrong-type")] == ["/users/3"]
    assert [e["path"] for e in search("violation:unknown-enum")] == ["/users/4"]
    assert [e["path"] for e in search("violation:unexpected-status")] == ["/users/5"]
    assert [e["path"] for e in search("violation:undocumented-endpoint")] == ["/admin/stats"]
    assert [e["path"] for e in search("violation:invalid-parameter")] == ["/users/1"]
    assert len(search("-is:violation service:users")) == 2  # /users/1 as promised, /users/9 a documented 404

    def violations(path: str, query: str = "") -> list[tuple]:
        answer = api.get(f"/api/exchanges/{by_path[(path, query)]['id']}/violations").json()["violations"]
        return [(v["rule"], v["side"], v["json_path"], v["message"]) for v in answer]

    assert violations("/users/2") == [("missing-field", "response", "$.name", "required field 'name' is missing")]
    assert violations("/users/3") == [("wrong-type", "response", "$.id", "expected integer, got string")]
    assert violations("/users/4") == [
        ("unknown-enum", "response", "$.role", 'value is not one of the documented values ("admin", "member")')]
    assert violations("/users/5") == [
        ("unexpected-status", "response", None, "status 500 is not documented (documented: 200, 404)")]
    assert violations("/admin/stats") == [
        ("undocumented-endpoint", "request", None, "GET /admin/stats is not in the contract")]
    assert violations("/users/1", "verbose=maybe") == [
        ("invalid-parameter", "request", "$query.verbose", "query parameter does not fit boolean")]

    service = api.get("/api/services/users/violations", params={"since": "1h"}).json()
    counts = {(c["method"], c["template"], c["rule"]): c["count"] for c in service["counts"]}
    assert counts == {
        ("GET", "/users/{id}", "missing-field"): 1, ("GET", "/users/{id}", "wrong-type"): 1,
        ("GET", "/users/{id}", "unknown-enum"): 1, ("GET", "/users/{id}", "unexpected-status"): 1,
        ("GET", "/users/{id}", "invalid-parameter"): 1, ("GET", "/admin/stats", "undocumented-endpoint"): 1,
    }  # fmt: skip
    assert len(service["newest"]) == 6

    metrics = api.get("/api/metrics").text
    for rule in ("missing-field", "wrong-type", "unknown-enum", "unexpected-status", "undocumented-endpoint"):
        assert f'passageway_contract_violations{{service="users",realm="",rule="{rule}"}} 1\n' in metrics
    assert 'passageway_maintenance_failures_total{job="contracts"} 0\n' in metrics
    assert "passageway_contract_checks_total 8\n" in metrics  # every exchange of users, each once
    api.close()
