"""Every error answer the inspector gives, built here: a refusal is {"detail": "one line"}; a bad
search adds `message` and `position`; parameters that do not validate list each problem in
`detail` and say them in one line in `message`. app.py maps the errors (inspector_ui.errors,
storage.errors) to these, and document_invalid_requests says so in /api/openapi.json."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI

from storage.pure.search import QueryError

from .models import Invalid
from .responses import SafeJSONResponse


def problem(status: int, detail: str, *, headers: Mapping[str, str] | None = None) -> SafeJSONResponse:
    """A refusal: {"detail": "..."} with `status`."""
    return SafeJSONResponse({"detail": detail}, status_code=status, headers=headers)


def search_problem(exc: QueryError) -> SafeJSONResponse:
    """400 for a bad `q`: the message and where, so the UI can point at the term."""
    return SafeJSONResponse({"detail": exc.message, "message": exc.message, "position": exc.position}, status_code=400)


def invalid_request(errors: Sequence[Mapping[str, Any]]) -> SafeJSONResponse:
    """422 for parameters or a body that do not validate: one readable sentence in `message`;
    FastAPI's usual list stays in `detail` for tools."""
    parts = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("query", "path", "body")]
        parts.append(f"{'.'.join(loc) or 'request'}: {error.get('msg', 'invalid')}")
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
    return SafeJSONResponse({"detail": detail, "message": "; ".join(parts)}, status_code=422)


def document_invalid_requests(app: FastAPI) -> None:
    """Every 422 in /api/openapi.json is documented as Invalid, the shape the answers above give
    it: FastAPI's default (a list in `detail`) misses the routes' own refusals (a string), and a
    route's own 422 model misses the validation errors; a plain-text route's, the JSON type."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = FastAPI.openapi(app)
            invalid = Invalid.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = document["components"]["schemas"]
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            schemas.update(invalid.pop("$defs"), Invalid=invalid)
            for operations in document["paths"].values():
                for operation in operations.values():
                    if "422" in operation["responses"]:
                        content = {"application/json": {"schema": {"$ref": "#/components/schemas/Invalid"}}}
                        operation["responses"]["422"]["content"] = content
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
