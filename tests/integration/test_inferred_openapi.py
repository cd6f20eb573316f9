"""Inferred OpenAPI (issue 18 §1) against a service whose OpenAPI is known: a real FastAPI upstream
(tests/support/catalog.py, uvicorn) behind the real proxy, on SQLite and PostgreSQL. Varied traffic
goes through the gateway, the summary job runs, and the inferred document must validate and agree
with the upstream's own /openapi.json on paths, methods, parameters, request bodies and response
schemas (types, nullable, required, formats, enums, items). Then the API route and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from inspector_ui.app import create_app
from inspector_ui.settings import InspectorSettings
from storage.api_shapes import inferred_openapi, summarise_new
from storage.queries import list_exchanges
from storage.store import Store, open_store
from tests.support import free_port, start_process, wait_for

PASSAGEWAY = [sys.executable, "-m", "cli"]
OUR_FORMATS = {"uuid", "date-time", "date", "email", "uri"}


@dataclass
class Setup:
    store: Store
    db_url: str
    upstream_doc: dict
    inferred: dict
    sent: int


def send_traffic(client: httpx.Client) -> int:
    """Every route, every status the catalog documents but 422 on parameters, each field's
    variants (absent, null, each enum value) often enough for the inference to see them."""
    sent = 0

    def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
        nonlocal sent
        sent += 1
        return client.request(method, "/catalog" + path, **kwargs)

    items = call("GET", "/items", params={"limit": 50}).json()
    categories = ["books", "music", "games"]
    for n in range(15):
        call("GET", "/items", params={"limit": 3 + n, "category": categories[n % 3]})
        call("GET", "/items")
    for item in items:
        call("GET", f"/items/{item['id']}")
    for _ in range(3):
        call("GET", f"/items/{uuid.uuid4()}")  # 404
    created = []
    for n in range(16):
        body: dict[str, Any] = {"name": f"new item {n}", "price": n + 0.25, "category": categories[n % 3]}
        if n % 2:
            body["stock"] = n
        if n % 3:
            body["tags"] = [f"label{n}", f"label{n + 1}"]
        if n % 4 == 1:
            body["description"] = None
        elif n % 4 == 2:
            body["description"] = f"made by test {n}"
        response = call("POST", "/items", json=body)
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
    for n in range(3):
        assert call("POST", "/items", json={"price": n}).status_code == 422
    bad_tag = {"name": "x", "price": 1, "category": "books", "tags": ["ok", {"not": "a string"}]}
    assert call("POST", "/items", json=bad_tag).status_code == 422  # an error's loc holds an index: [body, tags, 1]
    for item_id in created[:4]:
        assert call("DELETE", f"/items/{item_id}").status_code == 204
    assert call("DELETE", f"/items/{uuid.uuid4()}").status_code == 404
    statuses = ["placed", "shipped", "delivered"]
    for n in range(18):
        params = {"status": statuses[n % 3]} if n % 4 else {}
        call("GET", f"/users/{n + 1}/orders", params=params)
    return sent


@pytest.fixture(scope="module")
def setup(db_url: str, tmp_path_factory) -> Iterator[Setup]:  # type: ignore[no-untyped-def]
    upstream_port, port = free_port(), free_port()
    upstream_args = [sys.executable, "-m", "uvicorn", "tests.support.catalog:app", "--port", str(upstream_port),
                     "--host", "127.0.0.1", "--log-level", "warning"]  # fmt: skip
    proxy_args = [*PASSAGEWAY, "proxy", "--db", db_url, "--listen", f"127.0.0.1:{port}",
                  "--route", f"catalog=http://127.0.0.1:{upstream_port}",
                  "--certs-dir", str(tmp_path_factory.mktemp("certs")), "--proxy-name", "openapi-test"]  # fmt: skip
    with (
        start_process(upstream_args, port=upstream_port, name="catalog upstream", timeout=30),
        start_process(proxy_args, port=port, name="passageway proxy", timeout=30) as proxy,
    ):
        upstream_doc = httpx.get(f"http://127.0.0.1:{upstream_port}/openapi.json", timeout=10).json()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            sent = send_traffic(client)
        store = open_store(db_url, migrate=False)
        try:
            wait_for(lambda: len(list_exchanges(store, limit=1000, service="catalog").data) >= sent, timeout=20,
                     message=proxy.describe)  # fmt: skip
            summarise_new(store)
            yield Setup(store, db_url, upstream_doc, inferred_openapi(store, "catalog"), sent)
        finally:
            store.close()


# --- comparing schemas ---------------------------------------------------------------------


def resolve(schema: dict, doc: dict) -> dict:
    while "$ref" in schema:
        target: Any = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def canonical(schema: dict, doc: dict) -> dict:
    """One shape for both spellings: `anyOf: [X, null]` (pydantic) and `type: [x, "null"]` (ours)."""
    schema = resolve(schema, doc)
    out: dict[str, Any] = {"types": set(), "format": None, "enum": None, "properties": None, "required": set(), "items": None}
    branches = schema.get("anyOf", [schema])
    for branch in branches:
        branch = resolve(branch, doc)
        kind = branch.get("type")
        if kind is not None:
            out["types"] |= set(kind if isinstance(kind, list) else [kind])
        out["format"] = branch.get("format", out["format"])
        if "enum" in branch:
            out["enum"] = {value for value in branch["enum"] if value is not None}
            out["types"] |= {"string"} if kind is None else set()
        if "properties" in branch:
            out["properties"] = {key: canonical(value, doc) for key, value in branch["properties"].items()}
            out["required"] = set(branch.get("required", []))
        if "items" in branch:
            out["items"] = canonical(branch["items"], doc)
    return out


def agree(upstream: dict, ours: dict, where: str, *, exact_properties: bool = True) -> None:
    if not upstream["types"]:
        return  # the upstream leaves it open (`input: {}`): anything agrees
    assert ours["types"] == upstream["types"], (where, ours["types"], upstream["types"])
    if upstream["format"] in OUR_FORMATS:
        assert ours["format"] == upstream["format"], where
    else:
        assert ours["format"] in (None, "int32", "int64"), (where, ours["format"])
    assert ours["enum"] == upstream["enum"], (where, ours["enum"], upstream["enum"])
    if upstream["properties"] is not None and ours["properties"] is not None:
        if exact_properties:
            assert set(ours["properties"]) == set(upstream["properties"]), (where, set(ours["properties"]), set(upstream["properties"]))
            assert ours["required"] == upstream["required"], (where, ours["required"], upstream["required"])
        else:  # a member FastAPI calls optional but always sends is required in what was seen
            assert ours["required"] >= upstream["required"] & set(ours["properties"]), (where, ours["required"], upstream["required"])
        for key in set(ours["properties"]) & set(upstream["properties"]):
            agree(upstream["properties"][key], ours["properties"][key], f"{where}.{key}", exact_properties=exact_properties)
    if upstream["items"] is not None and ours["items"] is not None:
        agree(upstream["items"], ours["items"], f"{where}[]", exact_properties=exact_properties)


def shape(path: str) -> str:
    return "/".join("{}" if part.startswith("{") else part for part in path.split("/"))


def by_shape(doc: dict) -> dict[str, tuple[str, dict]]:
    return {shape(path): (path, item) for path, item in doc["paths"].items()}


# --- the tests -----------------------------------------------------------------------------


def test_the_inferred_document_validates_and_counts_the_traffic(setup: Setup) -> None:
    validate(setup.inferred)
    exchanges = sum(op["x-passageway-exchanges"] for item in setup.inferred["paths"].values() for op in item.values())
    assert exchanges == setup.sent == setup.inferred["x-passageway"]["exchanges"]


def test_paths_methods_and_parameters_agree_with_the_upstreams(setup: Setup) -> None:
    upstream, ours = by_shape(setup.upstream_doc), by_shape(setup.inferred)
    assert set(ours) == set(upstream)
    for key, (_, up_item) in upstream.items():
        our_path, our_item = ours[key]
        assert set(our_item) == set(up_item), our_path
        for method, up_op in up_item.items():
            our_op = our_item[method]
            up_params = {(p["in"], p["name"]): p for p in up_op.get("parameters", [])}
            our_params = {(p["in"], p["name"]): p for p in our_op.get("parameters", [])}
            assert {k for k in our_params if k[0] == "query"} == {k for k in up_params if k[0] == "query"}, our_path
            up_path_params = [p for p in up_op.get("parameters", []) if p["in"] == "path"]
            our_path_params = [p for p in our_op.get("parameters", []) if p["in"] == "path"]
            assert len(our_path_params) == len(up_path_params)
            pairs = [*zip(up_path_params, our_path_params, strict=True)]
            pairs += [(up_params[k], our_params[k]) for k in our_params if k[0] == "query"]
            for up_param, our_param in pairs:
                where = f"{method} {our_path} {our_param['name']}"
                assert our_param["required"] == up_param.get("required", False), where
                expected = canonical(up_param["schema"], setup.upstream_doc)
                expected["types"] -= {"null"}  # a URL cannot carry JSON null: pydantic's `X | None` is "may be absent"
                agree(expected, canonical(our_param["schema"], setup.inferred), where)


def test_request_bodies_and_responses_agree_with_the_upstreams(setup: Setup) -> None:
    upstream, ours = by_shape(setup.upstream_doc), by_shape(setup.inferred)
    compared = 0
    for key, (_, up_item) in upstream.items():
        our_path, our_item = ours[key]
        for method, up_op in up_item.items():
            our_op = our_item[method]
            if "requestBody" in up_op:
                up_body = up_op["requestBody"]["content"]["application/json"]["schema"]
                our_body = our_op["requestBody"]["content"]["application/json"]["schema"]
                assert our_op["requestBody"]["required"] is up_op["requestBody"].get("required", False)
                agree(canonical(up_body, setup.upstream_doc), canonical(our_body, setup.inferred), f"{method} {our_path} body")
                compared += 1
            assert set(our_op["responses"]) <= set(up_op["responses"]), (method, our_path)
            for status, our_response in our_op["responses"].items():
                up_response = up_op["responses"][status]
                assert set(our_response.get("content", {})) == set(up_response.get("content", {})), (method, our_path, status)
                if "content" not in up_response:
                    continue
                where = f"{method} {our_path} {status}"
                agree(
                    canonical(up_response["content"]["application/json"]["schema"], setup.upstream_doc),
                    canonical(our_response["content"]["application/json"]["schema"], setup.inferred),
                    where,
                    exact_properties=status != "422",  # FastAPI's hand-written validation error schema is loose
                )
                compared += 1
    seen = {(m, shape(p), s) for p, item in setup.inferred["paths"].items() for m, op in item.items() for s in op["responses"]}
    assert seen == {
        ("get", "/items", "200"), ("post", "/items", "201"), ("post", "/items", "422"),
        ("get", "/items/{}", "200"), ("get", "/items/{}", "404"),
        ("delete", "/items/{}", "204"), ("delete", "/items/{}", "404"), ("get", "/users/{}/orders", "200"),
    }  # fmt: skip
    assert compared == 8


def test_examples_come_from_the_traffic(setup: Setup) -> None:
    post = setup.inferred["paths"]["/items"]["post"]
    example = post["requestBody"]["content"]["application/json"].get("example")
    assert example is None or "price" in example
    get = next(item for path, item in setup.inferred["paths"].items() if shape(path) == "/items/{}")["get"]
    for response in get["responses"].values():
        for content in response.get("content", {}).values():
            if "example" in content:
                assert "id" in content["example"] or "detail" in content["example"]


def test_the_api_serves_the_document_and_refuses_unknown_services_and_bad_windows(setup: Setup) -> None:
    settings = InspectorSettings(db_url=setup.db_url)
    with TestClient(create_app(settings, store=setup.store), base_url="http://127.0.0.1") as client:
        answer = client.get("/api/services/catalog/openapi.json", params={"since": "7d"})
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        assert answer.json()["paths"] == setup.inferred["paths"]
        missing = client.get("/api/services/nowhere/openapi.json")
        assert missing.status_code == 404 and "unknown service 'nowhere'" in missing.json()["detail"]
        bad = client.get("/api/services/catalog/openapi.json", params={"since": "lately"})
        assert bad.status_code == 422 and "since" in bad.json()["detail"]
        old = client.get("/api/services/catalog/openapi.json", params={"until": "2020-01-01T00:00:00Z"})
        assert old.status_code == 200 and old.json()["paths"] == {}


def test_the_cli_writes_the_document_and_errs_in_one_line(setup: Setup, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "catalog.json"
    done = subprocess.run([*PASSAGEWAY, "openapi", "catalog", "--since", "7d", "-o", str(out), "--db", setup.db_url],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "wrote the inferred OpenAPI of catalog" in done.stdout
    assert json.loads(out.read_text())["paths"] == setup.inferred["paths"]
    unknown = subprocess.run([*PASSAGEWAY, "openapi", "nowhere", "--db", setup.db_url], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and unknown.stderr.strip().count("\n") == 0
    assert "passageway: error: unknown service 'nowhere'" in unknown.stderr
