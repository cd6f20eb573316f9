"""One exchange checked against a service's OpenAPI 3.0/3.1 contract: pure, no I/O.

compile_contract(document) builds a Contract once (path templates as regular expressions, the
3.0 schemas turned into JSON Schema 2020-12, a referencing registry for the `$ref`s); its
`check(exchange)` is then called for every exchange of the service and creates each schema's
validator the first time it is needed, keeping it for the next exchanges.

Rules (Violation.rule):
- undocumented-endpoint: no path template of the contract (under one of its `servers`' base
  paths) matches, or it does with another method.
- unexpected-status: the status is not among the operation's responses, no `2XX`-style range
  covers it and there is no `default`.
- unexpected-content-type: a body whose media type the operation does not declare.
- missing-parameter / invalid-parameter: a required query or path parameter absent, or one whose
  value does not fit its schema.
- missing-field, wrong-type, unknown-enum, unknown-field (additionalProperties false),
  invalid-value (any other schema keyword: minimum, pattern, ...), invalid-json: a JSON body
  against its schema.

Messages never quote captured values (a violation is shown and listed where the exchange's
redaction does not apply): they name the field and what the contract expected.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from storage.pure.endpoints import template_path
from storage.pure.shapes import json_type

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_VIOLATIONS",
    "RULES",
    "Contract",
    "ContractError",
    "Exchange",
    "Violation",
    "compile_contract",
    "json_path",
]

MAX_VIOLATIONS = 20
"""Violations kept per exchange: a body that breaks everything says so in 20 lines."""
MAX_BODY_BYTES = 1024 * 1024
"""Larger bodies are not parsed nor checked (their statuses and parameters still are)."""
_MAX_PATH_CHARS = 200
_MAX_NAME_CHARS = 60
_DOCUMENT_URI = "urn:passageway:contract"
_INLINE_BUDGET = 5000
"""Schema nodes copied in per validator (a document whose references fan out keeps the rest as references)."""
RULES = (
    "undocumented-endpoint", "unexpected-status", "unexpected-content-type", "missing-parameter",
    "invalid-parameter", "missing-field", "wrong-type", "unknown-enum", "unknown-field", "invalid-value",
    "invalid-json",
)  # fmt: skip
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class ContractError(ValueError):
    """The document is not an OpenAPI 3.0 or 3.1 document this module can check against."""


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    side: str
    """"request" or "response"."""
    json_path: str | None
    """Where in the body (`$.items[2].price`), or the parameter (`$query.limit`); None: the whole."""
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "side": self.side, "json_path": self.json_path, "message": self.message}


@dataclass(frozen=True, slots=True)
class Exchange:
    """What is checked of one exchange. Bodies are decoded (no Content-Encoding) bytes; None when
    absent or not checked (truncated at capture, say)."""

    method: str
    path: str
    query: str = ""
    status: int | None = None
    """None: no response (an error), so nothing of the response is checked."""
    request_content_type: str | None = None
    response_content_type: str | None = None
    request_body: bytes | None = None
    response_body: bytes | None = None


@dataclass(frozen=True, slots=True)
class _Route:
    template: str
    pattern: re.Pattern[str]
    names: tuple[str, ...]
    pointer: str
    """JSON pointer of the path item in the (converted) document."""
    item: Mapping[str, Any]
    literal_chars: int


@dataclass(slots=True)
class _Found:
    route: _Route
    method: str
    operation: Mapping[str, Any]
    pointer: str
    path_values: dict[str, str]


class Contract:
    """A compiled contract: build with compile_contract, then `check` every exchange."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        version = str(document.get("openapi", ""))
        if not re.fullmatch(r"3\.[01]\.\d+(-.*)?", version):
            raise ContractError(f"not an OpenAPI 3.0 or 3.1 document (openapi: {version or 'missing'!s})")
        paths = document.get("paths", {})
        if not isinstance(paths, Mapping):
            raise ContractError("paths is not an object")
        self.version = version
        self.document = _to_2020_12(document) if version.startswith("3.0") else document
        self._registry: Registry = Registry().with_resource(
            _DOCUMENT_URI, Resource(contents=self.document, specification=DRAFT202012)
        )
        self._resolver = self._registry.resolver(base_uri=_DOCUMENT_URI)
        self._validators: dict[str, Draft202012Validator] = {}
        self.base_paths = _base_paths(document.get("servers"))
        routes = []
        for template, item in (self.document.get("paths") or {}).items():
            pointer = "/paths/" + _escape_pointer(template)
            if isinstance(item, Mapping) and "$ref" in item:
                pointer, item = self.deref(item)
            if not isinstance(item, Mapping) or not isinstance(template, str):
                continue
            pattern, names, literal = _template_pattern(template)
            routes.append(_Route(template, pattern, names, pointer, item, literal))
        # Concrete paths before templated ones (OpenAPI: /pets/mine before /pets/{id}).
        self.routes = sorted(routes, key=lambda route: (len(route.names), -route.literal_chars))

    # -- public -------------------------------------------------------------------------------

    def operations(self) -> Iterator[tuple[str, str]]:
        """(METHOD, template) of every documented operation."""
        for route in self.routes:
            for method in METHODS:
                if isinstance(route.item.get(method), Mapping):
                    yield method.upper(), route.template

    def template_for(self, method: str, path: str) -> str | None:
        """The path template the exchange falls under (whatever its method), or None."""
        found = self._find(method, path)
        return found.route.template if isinstance(found, _Found) else found

    def check(self, exchange: Exchange) -> list[Violation]:
        """Every way the exchange breaks the contract, at most MAX_VIOLATIONS."""
        out: list[Violation] = []
        found = self._find(exchange.method, exchange.path)
        if not isinstance(found, _Found):
            if found and exchange.method.upper() == "OPTIONS":
                return []  # a CORS preflight (or capabilities) of a documented path: HTTP's, not the API's
            methods = self._methods_of(found) if found else ""
            # A template, never the captured path (it may hold ids and tokens).
            where = f"{exchange.method.upper()} {found or _cut(template_path(exchange.path))}"
            message = f"{where} is not in the contract" + (f" (documented: {methods})" if methods else "")
            return [Violation("undocumented-endpoint", "request", None, message)]
        try:
            self._check_parameters(found, exchange, out)
            self._check_request(found, exchange, out)
            if exchange.status is not None:
                self._check_response(found, exchange, out)
        except _Full:
            pass
        return out[:MAX_VIOLATIONS]

    # -- matching -----------------------------------------------------------------------------

    def _find(self, method: str, path: str) -> _Found | str | None:
        """The operation; or the template alone (a str) when only the method is not documented."""
        method = method.lower()
        path = urlsplit(path).path if "?" in path else path
        template_only: str | None = None
        for candidate in self._candidate_paths(path):
            for route in self.routes:
                match = route.pattern.fullmatch(candidate)
                if match is None:
                    continue
                chosen = method if isinstance(route.item.get(method), Mapping) else None
                if chosen is None and method == "head" and isinstance(route.item.get("get"), Mapping):
                    chosen = "get"  # a HEAD is a GET without the body
                if chosen is None:
                    template_only = template_only or route.template
                    continue
                values = {name: unquote(value) for name, value in zip(route.names, match.groups(), strict=True)}
                return _Found(route, chosen, route.item[chosen], f"{route.pointer}/{chosen}", values)
        return template_only

    def _candidate_paths(self, path: str) -> Iterator[str]:
        tried = set()
        for base in self.base_paths:
            if base and not (path == base or path.startswith(base + "/")):
                continue
            rest = path[len(base) :] or "/"
            for candidate in (rest, rest.rstrip("/") or "/"):
                if candidate not in tried:
                    tried.add(candidate)
                    yield candidate

    def _methods_of(self, template: str) -> str:
        for route in self.routes:
            if route.template == template:
                return ", ".join(m.upper() for m in METHODS if isinstance(route.item.get(m), Mapping))
        return ""

    # -- parameters ---------------------------------------------------------------------------

    def _parameters(self, found: _Found) -> list[tuple[str, Mapping[str, Any]]]:
        """(pointer, parameter) of the operation, path-level ones it does not override included."""
        chosen: dict[tuple[str, str], tuple[str, Mapping[str, Any]]] = {}
        for owner, pointer in ((found.route.item, found.route.pointer), (found.operation, found.pointer)):
            for index, parameter in enumerate(owner.get("parameters") or ()):
                where = f"{pointer}/parameters/{index}"
                if isinstance(parameter, Mapping) and "$ref" in parameter:
                    where, parameter = self.deref(parameter)
                if isinstance(parameter, Mapping) and isinstance(parameter.get("name"), str):
                    chosen[(parameter["name"], str(parameter.get("in")))] = (where, parameter)
        return list(chosen.values())

    def _check_parameters(self, found: _Found, exchange: Exchange, out: list[Violation]) -> None:
        query: dict[str, list[str]] = {}
        for name, value in parse_qsl(exchange.query, keep_blank_values=True):
            query.setdefault(name, []).append(value)
        for pointer, parameter in self._parameters(found):
            name, location = parameter["name"], parameter.get("in")
            if location == "path":
                values = [found.path_values[name]] if name in found.path_values else []
            elif location == "query":
                values = query.get(name, [])
            else:
                continue  # headers and cookies are not part of what is checked
            where = f"${location}.{_cut(name, _MAX_NAME_CHARS)}"
            if not values:
                if parameter.get("required") or location == "path":
                    _add(out, Violation("missing-parameter", "request", where, f"required {location} parameter is missing"))
                continue
            if "schema" not in parameter:
                continue  # `content` parameters (JSON in a query string) are left alone
            schema = self._resolve_schema(parameter["schema"])
            if _schema_type(schema) == "array":
                if parameter.get("explode", True) is False or parameter.get("style") in ("spaceDelimited", "pipeDelimited"):
                    sep = {"spaceDelimited": " ", "pipeDelimited": "|"}.get(parameter.get("style"), ",")
                    values = [part for value in values for part in value.split(sep)]
                items = self._resolve_schema(schema.get("items", {})) if isinstance(schema.get("items"), Mapping) else {}
                instance: Any = [self._coerce(value, items, f"{pointer}/schema/items") for value in values]
            else:
                instance = self._coerce(values[-1], schema, f"{pointer}/schema")
            error = best_match(self._validator(f"{pointer}/schema").iter_errors(instance))
            if error is not None:
                expected = _describe(error.schema) if isinstance(error.schema, Mapping) else "its schema"
                _add(out, Violation("invalid-parameter", "request", where, f"{location} parameter does not fit {expected}"))

    def _coerce(self, text: str, schema: Mapping[str, Any], pointer: str) -> Any:
        """The first reading of a parameter's text (as itself, a number, a boolean) its schema takes."""
        candidates: list[Any] = [text]
        if re.fullmatch(r"-?\d+", text):
            candidates.append(int(text))
        if re.fullmatch(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
            candidates.append(float(text))
        if text in ("true", "false"):
            candidates.append(text == "true")
        if len(candidates) == 1:
            return text
        validator = self._validator(pointer)
        for candidate in candidates:
            if validator.is_valid(candidate):
                return candidate
        return candidates[-1] if _schema_type(schema) in ("integer", "number", "boolean") else text

    # -- bodies -------------------------------------------------------------------------------

    def _check_request(self, found: _Found, exchange: Exchange, out: list[Violation]) -> None:
        body = found.operation.get("requestBody")
        pointer = f"{found.pointer}/requestBody"
        if isinstance(body, Mapping) and "$ref" in body:
            pointer, body = self.deref(body)
        if not isinstance(body, Mapping):
            return
        present = exchange.request_body is not None and len(exchange.request_body) > 0
        if not present:
            if body.get("required") and exchange.request_body is not None:
                _add(out, Violation("missing-field", "request", "$", "the request body is required"))
            return
        self._check_content(body.get("content"), f"{pointer}/content", exchange.request_content_type,
                            exchange.request_body, "request", out)  # fmt: skip

    def _check_response(self, found: _Found, exchange: Exchange, out: list[Violation]) -> None:
        responses = found.operation.get("responses") or {}
        status = exchange.status
        assert status is not None
        keys = {str(key).upper(): key for key in responses}
        key = next((keys[k] for k in (str(status), f"{status // 100}XX", "DEFAULT") if k in keys), None)
        if key is None:
            listed = ", ".join(str(k) for k in responses) or "none"
            _add(out, Violation("unexpected-status", "response", None, f"status {status} is not documented (documented: {listed})"))
            return
        pointer = f"{found.pointer}/responses/{_escape_pointer(str(key))}"
        response = responses[key]
        if isinstance(response, Mapping) and "$ref" in response:
            pointer, response = self.deref(response)
        if not isinstance(response, Mapping) or not exchange.response_body:
            return
        self._check_content(response.get("content"), f"{pointer}/content", exchange.response_content_type,
                            exchange.response_body, "response", out)  # fmt: skip

    def _check_content(
        self, content: Any, pointer: str, content_type: str | None, body: bytes, side: str, out: list[Violation]
    ) -> None:
        if not isinstance(content, Mapping) or not content:
            return  # nothing declared: any body goes
        media = _media_type(content_type)
        key = _match_media(media, content)
        if key is None:
            listed = ", ".join(str(k) for k in content)
            _add(out, Violation("unexpected-content-type", side, None,
                                f"content type {_cut(media or 'none', _MAX_NAME_CHARS)} is not documented ({listed})"))  # fmt: skip
            return
        declared = content[key]
        if not _is_json(media) or not isinstance(declared, Mapping) or "schema" not in declared:
            return
        if len(body) > MAX_BODY_BYTES:
            return
        try:
            instance = json.loads(body)
        except (ValueError, RecursionError):
            _add(out, Violation("invalid-json", side, "$", f"the {side} body is not valid JSON"))
            return
        validator = self._validator(f"{pointer}/{_escape_pointer(key)}/schema")
        try:
            for error in validator.iter_errors(instance):
                for violation in _violations(error, side):
                    _add(out, violation)
        except RecursionError:
            _add(out, Violation("invalid-value", side, "$", f"the {side} body is nested too deeply to check"))

    # -- schemas ------------------------------------------------------------------------------

    def _validator(self, pointer: str) -> Draft202012Validator:
        validator = self._validators.get(pointer)
        if validator is None:
            try:
                schema = self._inline(self._resolver.lookup(f"#{pointer}").contents, (), [_INLINE_BUDGET])
            except Exception:  # noqa: BLE001 - a broken reference: let the validator say so on use
                schema = {"$ref": f"{_DOCUMENT_URI}#{pointer}"}
            validator = self._validators[pointer] = Draft202012Validator(schema, registry=self._registry)
        return validator

    def _inline(self, node: Any, seen: tuple[str, ...], budget: list[int]) -> Any:
        """The schema with its references to the document copied in (validating follows no
        reference then: about twice as fast); a recursive one, or any once the budget of copied
        nodes is spent, stays a reference, made absolute so the registry resolves it."""
        if isinstance(node, list):
            return [self._inline(item, seen, budget) for item in node]
        if not isinstance(node, Mapping):
            return node
        budget[0] -= 1
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            if ref in seen or budget[0] <= 0:
                return {**{k: self._inline(v, seen, budget) for k, v in node.items() if k != "$ref"},
                        "$ref": _DOCUMENT_URI + ref}  # fmt: skip
            target = self._inline(self._resolver.lookup(ref).contents, (*seen, ref), budget)
            rest = {k: self._inline(v, seen, budget) for k, v in node.items() if k != "$ref"}
            if not rest:
                return target
            return {**rest, "allOf": [*rest.get("allOf", ()), target]}  # siblings of $ref apply too (2020-12)
        return {k: self._inline(v, seen, budget) if k not in ("enum", "const", "example", "examples", "default") else v
                for k, v in node.items()}  # fmt: skip

    def deref(self, node: Mapping[str, Any]) -> tuple[str, Any]:
        """A `$ref` object's target and its pointer (refs to refs followed, a few levels)."""
        pointer = ""
        for _ in range(8):
            ref = node.get("$ref") if isinstance(node, Mapping) else None
            if not isinstance(ref, str):
                break
            if not ref.startswith("#"):
                raise ContractError(f"only references within the document are supported: {_cut(ref)}")
            try:
                node = self._resolver.lookup(ref).contents
            except Exception as e:  # noqa: BLE001 - referencing's errors have no common base worth naming
                raise ContractError(f"unresolvable reference {_cut(ref)}") from e
            pointer = ref[1:]
        return pointer, node

    def _resolve_schema(self, schema: Any) -> Mapping[str, Any]:
        if isinstance(schema, Mapping) and "$ref" in schema:
            _, schema = self.deref(schema)
        return schema if isinstance(schema, Mapping) else {}


def compile_contract(document: Mapping[str, Any]) -> Contract:
    """ContractError when it is not an OpenAPI 3.0/3.1 document."""
    if not isinstance(document, Mapping):
        raise ContractError("the document is not a JSON object")
    return Contract(document)


# --- helpers -------------------------------------------------------------------------------------


class _Full(Exception):
    """MAX_VIOLATIONS reached: stop looking."""


def _add(out: list[Violation], violation: Violation) -> None:
    if violation not in out:
        out.append(violation)
    if len(out) >= MAX_VIOLATIONS:
        raise _Full


def _violations(error: ValidationError, side: str) -> Iterator[Violation]:
    """jsonschema's error as this module's rules."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        # The branches of the value's own type say what is wrong with it (not "expected string").
        wrong_type = {e.schema_path[0] for e in error.context if e.validator == "type" and not e.relative_path}
        inner = best_match([e for e in error.context if e.schema_path[0] not in wrong_type] or error.context)
        if inner is not None:
            yield from _violations(inner, side)
            return
    parts = list(error.absolute_path)
    kind, schema, instance = error.validator, error.schema, error.instance
    if kind == "required" and isinstance(instance, Mapping):
        for name in error.validator_value or ():
            if name not in instance:
                yield Violation("missing-field", side, json_path([*parts, name]), f"required field {_quote(name)} is missing")
        return
    if kind in ("additionalProperties", "unevaluatedProperties") and isinstance(instance, Mapping) and error.validator_value is False:
        known = set(schema.get("properties") or ()) if isinstance(schema, Mapping) else set()
        patterns = list((schema.get("patternProperties") or {}) if isinstance(schema, Mapping) else ())
        for name in instance:
            if name not in known and not any(re.search(p, name) for p in patterns):
                yield Violation("unknown-field", side, json_path([*parts, name]), f"field {_quote(name)} is not in the schema")
        return
    where = json_path(parts)
    if kind == "type":
        yield Violation("wrong-type", side, where, f"expected {_types(error.validator_value)}, got {json_type(instance)}")
    elif kind in ("enum", "const"):
        allowed = error.validator_value if kind == "enum" else [error.validator_value]
        shown = ", ".join(_cut(json.dumps(v), 30) for v in list(allowed)[:8]) + (", ..." if len(allowed) > 8 else "")
        yield Violation("unknown-enum", side, where, f"value is not one of the documented values ({shown})")
    elif kind == "false":
        yield Violation("unknown-field", side, where, "no value is allowed here")
    else:
        yield Violation("invalid-value", side, where, f"value breaks {kind} {_cut(json.dumps(error.validator_value, default=str), 60)}")


def json_path(parts: list[Any]) -> str:
    """`$.items[2].price`; names that are not identifiers quoted (`$["a b"]`); cut to 200 chars."""
    text = "$"
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$-]*", part):
            text += "." + part
        else:
            text += "[" + _without_surrogates(json.dumps(str(part), ensure_ascii=False)) + "]"
        if len(text) > _MAX_PATH_CHARS:
            return text[: _MAX_PATH_CHARS - 1] + "…"
    return text


def _quote(name: Any) -> str:
    return "'" + _cut(str(name), _MAX_NAME_CHARS) + "'"


def _cut(text: str, size: int = 120) -> str:
    text = " ".join(_without_surrogates(text).split())
    return text if len(text) <= size else text[: size - 1] + "…"


def _without_surrogates(text: str) -> str:
    """A lone surrogate (JSON allows "\\ud800" in a name) as its escape: the text can be encoded."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _types(value: Any) -> str:
    return " or ".join(value) if isinstance(value, list) else str(value)


def _schema_type(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return kinds[0] if len(kinds) == 1 else None
    return kind if isinstance(kind, str) else None


def _describe(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return "the documented values"
    kind = schema.get("type")
    return _types(kind) if kind else "its schema"


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _match_media(media: str, content: Mapping[str, Any]) -> str | None:
    """The declared media range that covers `media`: exact first, then type/*, then */*."""
    declared = {_media_type(str(key)): key for key in content}
    if media in declared:
        return declared[media]
    kind = media.split("/", 1)[0]
    for candidate in (f"{kind}/*", "*/*"):
        if candidate in declared:
            return declared[candidate]
    return None


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json") or media == "text/json"


def _template_pattern(template: str) -> tuple[re.Pattern[str], tuple[str, ...], int]:
    pattern, names, literal, last = "", [], 0, 0
    for match in re.finditer(r"\{([^{}/]+)\}", template):
        text = template[last : match.start()]
        pattern += re.escape(text)
        literal += len(text)
        pattern += "([^/]+)"
        names.append(match.group(1))
        last = match.end()
    pattern += re.escape(template[last:])
    literal += len(template) - last
    if len(pattern) > 1 and pattern.endswith("/"):
        pattern = pattern[:-1]  # a documented trailing slash matches without it too
    return re.compile(pattern + "/?" if template != "/" else "/"), tuple(names), literal


def _base_paths(servers: Any) -> list[str]:
    """The path part of each server URL (variables at their defaults), longest first, and ""."""
    bases = {""}
    for server in servers if isinstance(servers, list) else ():
        if not isinstance(server, Mapping) or not isinstance(server.get("url"), str):
            continue
        url = server["url"]
        for name, variable in (server.get("variables") or {}).items():
            if isinstance(variable, Mapping):
                url = url.replace("{" + name + "}", str(variable.get("default", "")))
        path = urlsplit(url).path if "://" in url or url.startswith("//") else url
        bases.add(path.rstrip("/"))
    return sorted(bases, key=len, reverse=True)


def _escape_pointer(text: str) -> str:
    return text.replace("~", "~0").replace("/", "~1")


def _to_2020_12(node: Any) -> Any:
    """OpenAPI 3.0's schema dialect as JSON Schema 2020-12: `nullable: true` adds null to the
    type (and to an enum), boolean exclusiveMinimum/Maximum become numbers."""
    if isinstance(node, list):
        return [_to_2020_12(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    out = {key: _to_2020_12(value) for key, value in node.items()}
    if out.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        elif kind is None and any(k in out for k in ("$ref", "allOf", "anyOf", "oneOf")):
            rest = {k: v for k, v in out.items() if k != "nullable"}
            out = {"anyOf": [rest, {"type": "null"}]}
    for bound, name in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if out.get(name) is True and bound in out:
            out[name] = out.pop(bound)
        elif out.get(name) is False:
            del out[name]
    return out
