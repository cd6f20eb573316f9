"""HAR 1.2 export and import: pure functions between exchanges and HAR logs.

Export starts from the detail dicts of storage.queries.get_exchange (with har=True)
plus the decoded bodies; import gives ExchangeRecords ready for the writer. Nothing
here does I/O; har_text() is the JSON to write.

Choices worth knowing:
- HAR content is decoded. Export writes decoded bodies: text when every HAR reader
  gets the same bytes back from it, else base64; import stores them as
  identity-encoded (CapturedBody.encoding None) but keeps every header as it was, a
  Content-Encoding header included: the header tells what was on the wire, the
  stored bytes are what HAR holds.
- HAR has no binary postData: a request body that is not text under its charset
  is written as mitmproxy does, UTF-8 with each undecodable byte as a surrogate
  escape (U+DC80..U+DCFF), which mitmproxy's reader and ours turn back into bytes.
- What an imported entry said that has no column of its own (its timings as
  written, wire sizes, server address, connection, page) is kept in
  ExchangeRecord.har and written back as it was, so imports and exports can go
  round any number of times without drifting. Captured exchanges get timings
  from their instants.
- Our own facts without a HAR field go under `_passageway` (entry) and
  `_error` (response, as Chrome writes for failed requests). Its uuid makes a
  re-imported export add nothing to the store it came from.
- A failed exchange (no response) is exported as Chrome does: status 0,
  empty headers, bodySize -1, and `response._error`.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import datetime as dt
import hashlib
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from storage.errors import Invalid
from storage.pure.decoding import DecodeError, decode_body
from storage.pure.record import CapturedBody, ExchangeRecord, Headers, Timings
from storage.pure.surrogates import json_text

__all__ = [
    "IMPORTED_ERROR", "HarBody", "HarError", "HarSource", "export_har", "first_label", "har_body", "har_text",
    "import_har", "url_of",
]  # fmt: skip

IMPORTED_ERROR = "imported_error"
"""error_kind of an imported failed request whose cause maps to no ERROR_KINDS entry."""

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_FORM = "application/x-www-form-urlencoded"
_PHASES = ("blocked", "dns", "connect", "ssl", "send", "wait", "receive")
"""HAR timings in the order they happen. HAR 1.2 counts ssl inside connect; Firefox and
mitmproxy write it apart (and count it in `time`)."""
_UTF8_BY_DEFAULT = ("json", "html", "xml", "javascript", "ecmascript", "text/css")
"""Types read as UTF-8 when no charset is given (their specifications say so, and HAR
readers such as mitmproxy's follow them); readers take other types without one as Latin-1."""


class HarError(Invalid):
    """A HAR log that cannot be imported; the message names the entry and field."""


@dataclass(frozen=True, slots=True)
class HarBody:
    """One body as export needs it: decoded bytes plus what the wire carried."""

    data: bytes | None
    """Decoded bytes (the kept prefix when truncated); None when not available."""
    content_type: str | None = None
    size: int = 0
    """Bytes on the wire (still Content-Encoded), the full size even when truncated."""
    truncated: bool = False
    encoding: str | None = None
    """Content-Encoding as sent, None for identity."""
    note: str | None = None
    """Why `data` is missing or partial (e.g. a decode error), written as a HAR comment."""


@dataclass(frozen=True, slots=True)
class HarSource:
    """One exchange to export: its get_exchange(har=True) detail dict and its bodies."""

    exchange: Mapping[str, Any]
    request_body: HarBody | None = None
    response_body: HarBody | None = None


def har_body(
    data: bytes, *, size: int, truncated: bool, encoding: str | None, content_type: str | None, limit: int | None = None
) -> HarBody:
    """A stored body (as received, still encoded) -> HarBody with decoded bytes.

    An undecodable body (or one over `limit` once decoded) gives data None and a note.
    """
    try:
        decoded = decode_body(data, encoding, partial=truncated, limit=limit)
    except DecodeError as exc:
        return HarBody(None, content_type, size, truncated, encoding, note=f"body not exported: {exc}")
    return HarBody(decoded, content_type, size, truncated, encoding)


# --- shared helpers -----------------------------------------------------------------------------

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?(?:[.,](\d+))?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?"
)


def _parse_instant(text: str) -> float:
    """ISO 8601 date-time -> epoch seconds; no offset means UTC. ValueError when malformed."""
    match = _ISO.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an ISO 8601 date-time: {text[:40]!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    tz = dt.UTC
    if offset and offset not in ("Z", "z"):
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) > 2 else 0)
        tz = dt.timezone(sign * dt.timedelta(minutes=minutes))
    base = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=tz)
    return base.timestamp() + (float("0." + fraction) if fraction else 0.0)


def _iso(epoch: float) -> str:
    """ISO 8601 in UTC: milliseconds, as browsers write it, or microseconds when there are
    any (a captured exchange's; its re-import then keeps the same capture time)."""
    value = dt.datetime.fromtimestamp(epoch, dt.UTC)
    timespec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
    return value.isoformat(timespec=timespec).replace("+00:00", "Z")


def _charset(content_type: str | None) -> str | None:
    """The charset parameter's codec name, when Python knows it."""
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip('"')).name
            except LookupError:
                return None
    return None


def _number(value: Any) -> int | float | None:
    """A finite JSON number as it is (not a bool); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def _text_to_bytes(text: str, content_type: str | None) -> bytes:
    """HAR text -> the bytes it stands for: encoded under its charset (else UTF-8). Text that
    will not encode so holds surrogate escapes of undecodable bytes (see the module
    docstring), which become those bytes again; any other lone surrogate is spelled as
    UTF-8 would spell it."""
    try:
        return text.encode(_charset(content_type) or "utf-8")
    except UnicodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeError:
        return text.encode("utf-8", "surrogatepass")


def _str(value: Any) -> str | None:
    """A HAR field that should be a string: the string, or None for anything else."""
    return value if isinstance(value, str) else None


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _header(headers: Iterable[Any], name: str) -> str | None:
    for pair in headers:
        if pair[0].lower() == name:
            return pair[1]
    return None


# --- export -------------------------------------------------------------------------------------


def _decoded(data: bytes, codec: str) -> str | None:
    """`data` as text under `codec` when it encodes back to the same bytes, else None."""
    try:
        text = data.decode(codec)
        if text.encode(codec) == data:
            return text
    except (UnicodeError, LookupError):
        pass
    return None


def _content_text(data: bytes, content_type: str | None) -> str | None:
    """Response content as text when every HAR reader gets the same bytes back from it:
    it decodes under its charset (else UTF-8), and it is ASCII, or its charset is
    declared, or its type is UTF-8 by default. Else None (written as base64)."""
    charset = _charset(content_type)
    text = _decoded(data, charset or "utf-8")
    if text is None:
        return None
    if text.isascii() or charset or any(kind in _mime(content_type) for kind in _UTF8_BY_DEFAULT):
        return text
    return None


def _name_values(pairs: Iterable[tuple[str, str]]) -> list[dict]:
    return [{"name": name, "value": value} for name, value in pairs]


def _query_pairs(query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote(name.replace("+", " ")), unquote(value.replace("+", " "))))
    return pairs


def _request_cookies(headers: Iterable[Any]) -> list[dict]:
    cookies = []
    for name, value in headers:
        if name.lower() != "cookie":
            continue
        for part in value.split(";"):
            if part.strip():
                key, _, val = part.strip().partition("=")
                cookies.append({"name": key.strip(), "value": val.strip()})
    return cookies


def _set_cookie(value: str) -> dict:
    first, *attrs = value.split(";")
    name, _, val = first.strip().partition("=")
    cookie: dict[str, Any] = {"name": name.strip(), "value": val.strip()}
    for attr in attrs:
        key, has_value, arg = attr.strip().partition("=")
        key, arg = key.strip().lower(), arg.strip()
        if key == "path" and has_value:
            cookie["path"] = arg
        elif key == "domain" and has_value:
            cookie["domain"] = arg
        elif key == "expires" and has_value:
            try:
                when = parsedate_to_datetime(arg)
                when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when  # "-0000": UTC
                cookie["expires"] = when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
            except (TypeError, ValueError, IndexError, OverflowError):
                pass  # unparseable dates are left out rather than guessed
        elif key == "max-age" and has_value:
            cookie["_maxAge"] = arg
        elif key == "httponly":
            cookie["httpOnly"] = True
        elif key == "secure":
            cookie["secure"] = True
        elif key == "samesite" and has_value:
            cookie["sameSite"] = arg
    return cookie


def _timings(ex: Mapping[str, Any], failed: bool) -> tuple[float, dict]:
    """A captured exchange's (time, HAR timings): phases from timings_dict, the unexplained
    rest as `blocked`, so they sum to time."""
    t = ex.get("timings") or {}

    def ms(name: str) -> float | None:
        value = t.get(name)
        return None if value is None else max(round(float(value), 3), 0.0)

    def at(name: str) -> float | None:
        value = t.get(name)
        try:
            return _parse_instant(value) if isinstance(value, str) else None
        except ValueError:
            return None

    connect, tls = ms("connect_ms"), ms("tls_ms")
    har = {
        "blocked": 0.0,
        "dns": -1,  # the proxy's connect phase includes name resolution
        "connect": -1 if connect is None else round(connect + (tls or 0.0), 3),
        "send": ms("send_ms") or 0.0,
        "wait": 0.0 if failed else ms("wait_ms") or 0.0,
        "receive": 0.0 if failed else ms("receive_ms") or 0.0,
        "ssl": -1 if tls is None or connect is None else tls,
    }
    known = sum(har[k] for k in ("connect", "send", "wait", "receive") if har[k] != -1)
    start, end = at("request_start"), at("response_end")
    if start is not None and end is not None:
        total = max((end - start) * 1000.0, 0.0)
    elif ex.get("duration_ms") is not None:
        total = max(float(ex["duration_ms"]), 0.0)
    else:
        total = known
    har["blocked"] = round(max(total - known, 0.0), 3)
    return round(known + har["blocked"], 3), har


def _written_timings(ex: Mapping[str, Any], written: Mapping[str, Any]) -> tuple[float, dict]:
    """An imported exchange's (time, HAR timings) as its HAR had them; send, wait and
    receive, which HAR requires, are 0 where it left them out."""
    timings = dict(written)
    for phase in ("send", "wait", "receive"):
        timings.setdefault(phase, 0)
    if ex.get("duration_ms") is not None:
        return ex["duration_ms"], timings
    return sum(v for k, v in timings.items() if k in _PHASES and k != "ssl" and v >= 0), timings


def _post_data(body: HarBody, content_type: str | None, mime_type: str | None) -> tuple[dict, bytes | None]:
    """(postData, the bytes again when its text would not read back as them, else None)."""
    post: dict[str, Any] = {"mimeType": mime_type if mime_type is not None else content_type or ""}
    unreadable = None
    if body.data is not None:
        text = _decoded(body.data, _charset(content_type) or "utf-8")
        if text is None:
            post["text"] = body.data.decode("utf-8", "surrogateescape")
            # Under a multi-byte charset (UTF-16, Shift JIS...) such text may encode without error
            # into other bytes: rare enough to carry the bytes under _passageway too.
            if _text_to_bytes(post["text"], content_type) != body.data:
                unreadable = body.data
        else:
            post["text"] = text
            if _mime(content_type) == _FORM:
                post["params"] = _name_values(parse_qsl(text, keep_blank_values=True))
    comments = [c for c in (_truncated_note(body), body.note) if c]
    if comments:
        post["comment"] = "; ".join(comments)
    return post, unreadable


def _truncated_note(body: HarBody | None) -> str | None:
    if body is None or not body.truncated:
        return None
    kept = 0 if body.data is None else len(body.data)
    return f"truncated by Passageway: {kept} decoded bytes kept of {body.size} bytes on the wire"


def _content(body: HarBody | None, meta: Mapping[str, Any] | None, headers: list, written: Mapping[str, Any]) -> dict:
    content_type = (body.content_type if body else None) or (meta or {}).get("content_type")
    content_type = content_type or _header(headers, "content-type")
    mime_type = _str(written.get("mimeType"))  # the imported HAR's, as it wrote it
    if mime_type is None:
        mime_type = content_type or "x-unknown"
    content: dict[str, Any] = {"size": 0, "mimeType": mime_type}
    if body is None:
        if meta is not None:
            content["size"] = meta.get("decoded_size") or meta.get("size") or 0
            content["comment"] = "body not exported"
    elif body.data is not None and (body.data or not body.truncated):
        content["size"] = len(body.data)
        if body.encoding and not body.truncated and len(body.data) >= body.size:
            content["compression"] = len(body.data) - body.size
        text = _content_text(body.data, content_type)
        if text is None:
            content["text"] = base64.b64encode(body.data).decode("ascii")
            content["encoding"] = "base64"
        else:
            content["text"] = text
    for name in ("size", "compression"):  # an imported HAR's own figures, as it wrote them
        if _number(written.get(name)) is not None:
            content[name] = written[name]
    comments = [c for c in (_truncated_note(body), body.note if body else None) if c]
    if comments or isinstance(written.get("comment"), str):
        content["comment"] = "; ".join(comments) if comments else written["comment"]
    return content


def _http_version(version: str | None) -> str:
    """Our versions ("HTTP/1.1", "HTTP/2.0", "HTTP/3") as browsers write them: HTTP/2, HTTP/3."""
    v = (version or "").strip().upper()
    return {"HTTP/2.0": "HTTP/2", "HTTP/3.0": "HTTP/3"}.get(v, v or "HTTP/1.1")


def _written(facts: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = facts.get(key)
    return value if isinstance(value, dict) else {}


def _size(written: Mapping[str, Any], key: str, default: int) -> int | float:
    value = _number(written.get(key))
    return default if value is None else value


def _entry(source: HarSource) -> tuple[dict, dict | None]:
    """(HAR entry, the page it belongs to or None)."""
    ex = source.exchange
    facts = ex.get("har") if isinstance(ex.get("har"), dict) else {}
    request_headers = [tuple(pair) for pair in ex.get("request_headers") or []]
    error = ex.get("error")
    failed = ex.get("status") is None
    version = _http_version(ex.get("http_version"))
    query = ex.get("query") or ""
    if isinstance(facts.get("timings"), dict):
        time, timings = _written_timings(ex, facts["timings"])
    else:
        time, timings = _timings(ex, failed)
    start = (ex.get("timings") or {}).get("request_start") or ex.get("captured_at")
    if start is None:
        raise ValueError(f"exchange {ex.get('id')}: no start time")

    req_body, resp_body = source.request_body, source.response_body
    written_request, written_response = _written(facts, "request"), _written(facts, "response")
    request: dict[str, Any] = {
        "method": ex["method"],
        "url": ex["url"],
        "httpVersion": version,
        "cookies": _request_cookies(request_headers),
        "headers": _name_values(request_headers),
        "queryString": _name_values(_query_pairs(query)),
        "headersSize": _size(written_request, "headersSize", -1),
        "bodySize": 0,
    }
    unreadable_request_body = None
    has_request_body = req_body is not None and (req_body.size or req_body.data or req_body.note)
    if req_body is not None and has_request_body:
        content_type = req_body.content_type or _header(request_headers, "content-type")
        mime_type = _str(_written(written_request, "postData").get("mimeType"))
        request["postData"], unreadable_request_body = _post_data(req_body, content_type, mime_type)
        request["bodySize"] = req_body.size
    elif ex.get("request_body"):
        request["bodySize"] = ex["request_body"].get("size") or 0
        request["comment"] = "body not exported"
    request["bodySize"] = _size(written_request, "bodySize", request["bodySize"])

    if failed:
        response: dict[str, Any] = {
            "status": 0,
            "statusText": "",
            "httpVersion": "",
            "cookies": [],
            "headers": [],
            "content": _content(None, None, [], _written(written_response, "content")),
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "_error": (error or {}).get("message") or (error or {}).get("kind") or "no response",
        }
    else:
        response_headers = [tuple(pair) for pair in ex.get("response_headers") or []]
        response = {
            "status": ex["status"],
            "statusText": ex.get("reason") or "",
            "httpVersion": version,
            "cookies": [_set_cookie(v) for n, v in response_headers if n.lower() == "set-cookie"],
            "headers": _name_values(response_headers),
            "content": _content(
                resp_body, ex.get("response_body"), response_headers, _written(written_response, "content")
            ),
            "redirectURL": _header(response_headers, "location") or "",
            "headersSize": _size(written_response, "headersSize", -1),
            "bodySize": resp_body.size if resp_body is not None else (ex.get("response_body") or {}).get("size", 0),
        }
        if error:  # a response came but the exchange did not finish (e.g. the client went away)
            response["_error"] = error.get("message") or error.get("kind")
    response["bodySize"] = _size(written_response, "bodySize", response["bodySize"])
    if _number(written_response.get("_transferSize")) is not None:
        response["_transferSize"] = written_response["_transferSize"]

    custom: dict[str, Any] = {
        "id": ex.get("id"),
        "uuid": ex.get("uuid"),
        "proxy": ex.get("proxy"),
        "service": ex.get("service"),
        "realm": ex.get("realm"),
        "request_truncated": bool(req_body and req_body.truncated),
        "response_truncated": bool(resp_body and resp_body.truncated),
        "error": {"kind": error.get("kind"), "message": error.get("message") or ""} if error else None,
        "trace_id": ex.get("trace_id"),
        "tags": list(ex.get("tags") or []),
    }
    if unreadable_request_body is not None:
        custom["request_body_base64"] = base64.b64encode(unreadable_request_body).decode("ascii")
    entry: dict[str, Any] = {
        "startedDateTime": _iso(_parse_instant(start)),
        "time": time,
        "request": request,
        "response": response,
        "cache": {},
        "timings": timings,
    }
    for name in ("serverIPAddress", "connection"):
        if isinstance(facts.get(name), str):
            entry[name] = facts[name]
    entry["_passageway"] = custom
    if custom["request_truncated"] or custom["response_truncated"]:
        entry["comment"] = "body truncated by Passageway: only the first bytes were kept"
    page = facts.get("page")
    if isinstance(page, dict) and isinstance(page.get("id"), str):
        return entry, page
    if isinstance(facts.get("pageref"), str):  # a page the file referred to but did not describe
        entry = {"pageref": facts["pageref"], **entry}
    return entry, None


def _page_id(pages: dict[str, dict], page: dict) -> str:
    """The id `page` has in the export: its own, or a new one when another page (from
    another file) already has that id."""
    wanted = candidate = page["id"]
    n = 1
    while candidate in pages and pages[candidate] != {**page, "id": candidate}:
        n += 1
        candidate = f"{wanted}-{n}"
    pages.setdefault(candidate, {**page, "id": candidate})
    return candidate


def export_har(entries: Iterable[HarSource], *, creator_version: str) -> dict:
    """A HAR 1.2 log (a JSON-ready dict) of the given exchanges, in the order given, with
    the pages imported entries belonged to.

    ValueError for a detail dict with neither timings.request_start nor captured_at.
    """
    pages: dict[str, dict] = {}
    out = []
    for source in entries:
        entry, page = _entry(source)
        if page is not None:
            entry = {"pageref": _page_id(pages, page), **entry}
        out.append(entry)
    log: dict[str, Any] = {"version": "1.2", "creator": {"name": "Passageway", "version": creator_version}}
    if pages:
        log["pages"] = list(pages.values())
    log["entries"] = out
    return {"log": log}


def har_text(log: dict) -> str:
    """A HAR log as the JSON to write: UTF-8-encodable whatever captured text it holds
    (lone surrogates as \\uXXXX escapes, storage.pure.surrogates)."""
    return json_text(log, indent=1)


# --- import -------------------------------------------------------------------------------------


def first_label(host: str) -> str | None:
    """The default service name: the first DNS label of the host; None for IP literals."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return None
    except ValueError:
        pass
    label = host.split(".", 1)[0]
    return label or None


# Chrome's net error names -> our ERROR_KINDS.
_NET_ERRORS = (
    ("TIMED_OUT", "timeout"),
    ("NAME_NOT_RESOLVED", "connect_failed"),
    ("CONNECTION_REFUSED", "connect_failed"),
    ("ADDRESS_UNREACHABLE", "connect_failed"),
    ("INTERNET_DISCONNECTED", "connect_failed"),
    ("CONNECTION_FAILED", "connect_failed"),
    ("CONNECTION_RESET", "upstream_reset"),
    ("CONNECTION_CLOSED", "upstream_reset"),
    ("EMPTY_RESPONSE", "upstream_reset"),
    ("ABORTED", "client_disconnected"),
)


def _error_kind(message: str) -> str:
    upper = message.upper().replace(" ", "_").replace("-", "_")
    for needle, kind in _NET_ERRORS:
        if needle in upper:
            return kind
    return IMPORTED_ERROR


class _Entry:
    """Field access for one HAR entry, with errors that name the entry and the field."""

    def __init__(self, index: int) -> None:
        self.index = index

    def fail(self, message: str) -> HarError:
        return HarError(f"entry {self.index}: {message}")

    def obj(self, value: Any, where: str, *, required: bool = True) -> dict:
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            raise self.fail(f"{where} is missing" if value is None else f"{where} is not an object")
        return value

    def string(self, parent: dict, key: str, where: str) -> str:
        value = parent.get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{where}.{key} is missing" if value in (None, "") else f"{where}.{key} is not a string")
        return value

    def number(self, parent: dict, key: str) -> float | None:
        value = parent.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    return None
            return None
        return float(value)

    def headers(self, parent: dict, where: str) -> Headers:
        value = parent.get("headers")
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(f"{where}.headers is not a list")
        out: Headers = []
        for i, item in enumerate(value):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
                raise self.fail(f"{where}.headers[{i}] has no name")
            name, val = item["name"], item.get("value")
            if name.startswith(":"):
                continue  # HTTP/2 pseudo-headers: already in method, URL and status
            out.append((name, "" if val is None else val if isinstance(val, str) else json.dumps(val)))
        return out


def _split_url(e: _Entry, url: str) -> tuple[str, str, int, str, str]:
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS:
        raise e.fail(f"request.url is not an http(s) or ws(s) URL: {url[:80]!r}")
    rest = rest.split("#", 1)[0]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, target = rest[:cut], rest[cut:]
    netloc = netloc.rpartition("@")[2]
    port_text = ""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise e.fail(f"request.url has a malformed host: {url[:80]!r}")
        host, after = netloc[1:end], netloc[end + 1 :]
        if after:
            if not after.startswith(":"):
                raise e.fail(f"request.url has a malformed host: {url[:80]!r}")
            port_text = after[1:]
    else:
        host, _, port_text = netloc.partition(":")
    if not host:
        raise e.fail(f"request.url has no host: {url[:80]!r}")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise e.fail(f"request.url has a bad port: {url[:80]!r}")
        port = int(port_text)
    else:
        port = _DEFAULT_PORTS[scheme]
    path, _, query = target.partition("?")
    return scheme, host, port, path or "/", query


def _text_bytes(e: _Entry, holder: dict, where: str, content_type: str | None) -> bytes:
    text = holder.get("text")
    if not isinstance(text, str):
        raise e.fail(f"{where}.text is not a string")
    encoding = holder.get("encoding") or holder.get("_encoding")
    if isinstance(encoding, str) and encoding.lower() == "base64":
        try:
            return base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            raise e.fail(f"{where}.text is not valid base64") from None
    return _text_to_bytes(text, content_type)


def _multipart(params: list[dict], boundary: str) -> bytes:
    out = bytearray()
    for param in params:
        disposition = f'form-data; name="{param["name"]}"'
        if param.get("fileName") is not None:
            disposition += f'; filename="{param["fileName"]}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if param.get("contentType"):
            out += f"Content-Type: {param['contentType']}\r\n".encode()
        out += b"\r\n" + str(param.get("value") or "").encode() + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def _request_body(e: _Entry, request: dict, headers: Headers, ours: dict) -> CapturedBody | None:
    post = e.obj(request.get("postData"), "request.postData", required=False)
    if not post:
        return None
    truncated = bool(ours.get("request_truncated"))
    content_type = _str(post.get("mimeType")) or _header(headers, "content-type") or None
    if isinstance(ours.get("request_body_base64"), str):  # our export's bytes its text could not carry
        exact = {"text": ours["request_body_base64"], "encoding": "base64"}
        data = _text_bytes(e, exact, "_passageway.request_body_base64", None)
    elif post.get("text") is not None:
        data = _text_bytes(e, post, "request.postData", content_type)
    elif post.get("params"):
        params = post["params"]
        named = isinstance(params, list) and all(isinstance(p, dict) and isinstance(p.get("name"), str) for p in params)
        if not named:
            raise e.fail("request.postData.params is not a list of {name, value}")
        boundary = re.search(r"boundary=\"?([^\";]+)", content_type or "")
        if _mime(content_type) == "multipart/form-data" and boundary:
            data = _multipart(params, boundary.group(1))
        else:
            data = urlencode([(p["name"], str(p.get("value") or "")) for p in params]).encode()
    else:
        data = b""
    if not data and not truncated:
        return None
    size = len(data)
    if truncated:
        size = max(size, int(e.number(request, "bodySize") or 0))
    return CapturedBody(data=data, size=size, truncated=truncated, encoding=None, content_type=content_type)


def _response_body(e: _Entry, response: dict, headers: Headers, truncated: bool) -> CapturedBody | None:
    content = e.obj(response.get("content"), "response.content", required=False)
    mime = content.get("mimeType") if isinstance(content.get("mimeType"), str) else None
    content_type = (mime if mime and mime != "x-unknown" else None) or _header(headers, "content-type")
    declared = int(e.number(content, "size") or 0)
    if content.get("text") is None:
        if declared > 0:  # the tool left the content out: keep the size, show it as truncated
            return CapturedBody(data=b"", size=declared, truncated=True, encoding=None, content_type=content_type)
        return None
    data = _text_bytes(e, content, "response.content", content_type)
    if not data and not truncated:
        return None
    size = max(len(data), declared) if truncated else len(data)
    return CapturedBody(data=data, size=size, truncated=truncated, encoding=None, content_type=content_type)


def _written_timings_of(har: dict) -> dict:
    """The entry's timings as written: its phases and tools' own (`_blocked_queueing`), numbers only."""
    return {k: v for k, v in har.items() if (k in _PHASES or k.startswith("_")) and _number(v) is not None}


def _import_timings(e: _Entry, entry: dict, start: float, failed: bool) -> tuple[Timings, float | None]:
    """The instants of a HAR entry's phases (in HAR order: connect before send) and its time."""
    har = e.obj(entry.get("timings"), "timings", required=False)

    def phase(name: str) -> float | None:
        value = e.number(har, name)
        return None if value is None or value < 0 else value / 1000.0

    total = e.number(entry, "time")
    duration = total if total is not None and total >= 0 else None
    connect, ssl = phase("connect"), phase("ssl")
    ssl_in_connect = False
    if connect and ssl and ssl <= connect:
        # HAR 1.2 counts ssl inside connect and time without it; Firefox and mitmproxy count
        # it apart, in time too. Whichever sum comes closer to time says which this tool did.
        spent = sum(phase(name) or 0.0 for name in _PHASES if name != "ssl") * 1000.0
        ssl_in_connect = duration is None or abs(duration - spent) <= abs(duration - spent - ssl * 1000.0)

    timings = Timings(request_start=start)
    t = start + (phase("blocked") or 0.0) + (phase("dns") or 0.0)
    if connect:
        timings.connect_start = t
        if ssl and ssl_in_connect:
            timings.connect_end, timings.tls_end = t + connect - ssl, t + connect
        else:
            timings.connect_end = t + connect
            if ssl:
                timings.tls_end = t + connect + ssl
        t = timings.tls_end or timings.connect_end
    send = phase("send")
    if send is not None:
        t += send
        timings.request_end = t
    if not failed:
        wait, receive = phase("wait"), phase("receive")
        if wait is not None:
            t += wait
            timings.response_start = t
            if receive is not None:
                timings.response_end = t + receive
        if duration is not None:
            timings.response_end = start + duration / 1000.0
    if duration is None and har:
        duration = round((t - start) * 1000.0, 3)
    return timings, duration


def _normalize_version(version: Any) -> str | None:
    if not isinstance(version, str) or not version.strip():
        return None
    v = version.strip().upper()
    if v in ("H2", "HTTP/2", "HTTP/2.0"):
        return "HTTP/2.0"
    if v in ("H3", "HTTP/3", "HTTP/3.0") or v.startswith("H3-"):
        return "HTTP/3"
    if v in ("HTTP/1.0", "HTTP/1.1"):
        return v
    if v in ("UNKNOWN", ""):
        return None
    return version.strip()


def _entry_uuid(index: int, entry: dict) -> str:
    """The same for the same entry at the same place in a file, so importing a HAR twice adds
    nothing the second time ((captured_at, uuid) is the store's idempotency key)."""
    canonical = json.dumps(entry, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(f"{index}\0{canonical}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


_UUID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_PAGE_FIELDS = ("startedDateTime", "id", "title", "pageTimings", "comment")


def _numbers(holder: Any, names: Iterable[str]) -> dict[str, Any]:
    if not isinstance(holder, dict):
        return {}
    return {name: holder[name] for name in names if _number(holder.get(name)) is not None}


def _pages(log: dict) -> dict[str, dict]:
    """log.pages by id, each with the fields HAR 1.2 names (JSON-safe: no NaN)."""
    pages = log.get("pages")
    out: dict[str, dict] = {}
    for page in pages if isinstance(pages, list) else []:
        if not isinstance(page, dict) or not isinstance(page.get("id"), str):
            continue
        kept = {k: page[k] for k in _PAGE_FIELDS if isinstance(page.get(k), str)}
        timings = page.get("pageTimings")
        if isinstance(timings, dict):
            kept["pageTimings"] = {
                k: v for k, v in timings.items() if _number(v) is not None or (k == "comment" and isinstance(v, str))
            }
        out.setdefault(page["id"], kept)
    return out


def _facts(entry: dict, request: dict, response: dict, pages: Mapping[str, dict]) -> dict[str, Any]:
    """ExchangeRecord.har: what the entry says that no other field of the record holds."""
    timings = entry.get("timings")
    # Always there, if empty: an imported exchange's export writes its timings and time as they came.
    facts: dict[str, Any] = {"timings": _written_timings_of(timings) if isinstance(timings, dict) else {}}
    for name in ("serverIPAddress", "connection", "pageref"):
        if isinstance(entry.get(name), str):
            facts[name] = entry[name]
    if facts.get("pageref") in pages:
        facts["page"] = pages[facts["pageref"]]
    written_request = _numbers(request, ("headersSize", "bodySize"))
    post = request.get("postData")
    if isinstance(post, dict) and isinstance(post.get("mimeType"), str):
        written_request["postData"] = {"mimeType": post["mimeType"]}
    written_response = _numbers(response, ("headersSize", "bodySize", "_transferSize"))
    content = response.get("content")
    written_content = _numbers(content, ("size", "compression"))
    for name in ("mimeType", "comment"):
        if isinstance(content, dict) and isinstance(content.get(name), str):
            written_content[name] = content[name]
    if written_content:
        written_response["content"] = written_content
    for name, written in (("request", written_request), ("response", written_response)):
        if written:
            facts[name] = written
    return facts


def _capped(body: CapturedBody | None, body_cap: int | None) -> CapturedBody | None:
    """The store's rule for every body, captured or imported: the first body_cap bytes, the size kept."""
    if body is None or body_cap is None or len(body.data) <= body_cap:
        return body
    return CapturedBody(body.data[:body_cap], max(body.size, len(body.data)), True, body.encoding, body.content_type)


def _import_entry(
    e: _Entry, entry: Any, proxy_name: str, service_for_host: Callable[[str], str | None], pages: Mapping[str, dict]
) -> ExchangeRecord:
    entry = e.obj(entry, "the entry")
    request = e.obj(entry.get("request"), "request")
    method = e.string(request, "method", "request")
    url = e.string(request, "url", "request")
    scheme, host, port, path, query = _split_url(e, url)
    started = e.string(entry, "startedDateTime", "entry")
    try:
        start = _parse_instant(started)
    except ValueError as exc:
        raise e.fail(f"startedDateTime: {exc}") from None
    ours = entry.get("_passageway") if isinstance(entry.get("_passageway"), dict) else {}

    response = e.obj(entry.get("response"), "response", required=False)
    status = e.number(response, "status") if response else None
    if (status is None and response.get("status") is not None) or (
        status is not None and (status != int(status) or not 0 <= status < 1000)
    ):
        raise e.fail(f"response.status is not an HTTP status: {response.get('status')!r}")
    failed = not status
    request_headers = e.headers(request, "request")
    uuid = ours.get("uuid")

    record = ExchangeRecord(
        # A Passageway export carries the exchange's uuid: importing it where it came from adds nothing.
        uuid=uuid if isinstance(uuid, str) and _UUID.fullmatch(uuid) else _entry_uuid(e.index, entry),
        captured_at=start,
        proxy=proxy_name,
        scheme=scheme,
        method=method,
        host=host,
        port=port,
        path=path,
        query=query,
        http_version=_normalize_version(request.get("httpVersion"))
        or _normalize_version(response.get("httpVersion"))
        or "HTTP/1.1",
        request_headers=request_headers,
        request_body=_request_body(e, request, request_headers, ours),
        timings=Timings(request_start=start),
        har=_facts(entry, request, response, pages),
    )
    record.timings, record.duration_ms = _import_timings(e, entry, start, failed)
    service = ours.get("service")
    record.service = service if isinstance(service, str) and service else service_for_host(host)
    if isinstance(ours.get("realm"), str):
        record.realm = ours["realm"]
    if isinstance(ours.get("trace_id"), str):
        record.trace_id = ours["trace_id"]
    if isinstance(ours.get("tags"), list):
        record.tags = [str(tag) for tag in ours["tags"]]
    # Chrome and mitmproxy mark WebSocket handshakes; their messages (_webSocketMessages) are not imported.
    record.websocket = scheme in ("ws", "wss") or entry.get("_resourceType") == "websocket"

    our_error = ours.get("error") if isinstance(ours.get("error"), dict) else {}
    message = our_error.get("message") or response.get("_error") or (response.get("statusText") if failed else "")
    message = "" if message is None else message if isinstance(message, str) else json.dumps(message)
    if failed or message or our_error.get("kind"):
        if failed and not response:
            message = message or "the HAR entry has no response"
        kind = our_error.get("kind")
        record.error_kind = kind if isinstance(kind, str) and kind else _error_kind(message)
        record.error_message = message or "request failed (status 0 in the HAR)"
    if failed:
        return record
    response_headers = e.headers(response, "response")
    record.status = int(status)
    reason = response.get("statusText")
    record.reason = reason if isinstance(reason, str) else ""
    record.response_headers = response_headers
    record.response_body = _response_body(e, response, response_headers, bool(ours.get("response_truncated")))
    return record


def import_har(
    data: dict | str | bytes,
    *,
    proxy_name: str,
    service_for_host: Callable[[str], str | None] | None = None,
    skipped: list[str] | None = None,
    body_cap: int | None = None,
) -> list[ExchangeRecord]:
    """HAR log (parsed, or JSON text/bytes) -> one ExchangeRecord per entry, in file order.

    An unusable entry raises HarError naming it; pass a list as `skipped` to
    import the rest instead and collect one message per skipped entry there.
    A log that is not a HAR at all always raises. Bodies longer than `body_cap`
    are cut to it, as captured ones are (size kept, marked truncated).
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise HarError(f"not UTF-8 text: {exc}") from None
    if isinstance(data, str):
        try:
            data = json.loads(data.lstrip("\ufeff"))
        except json.JSONDecodeError as exc:
            raise HarError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("log"), dict):
        raise HarError("not a HAR log: no top-level 'log' object")
    entries = data["log"].get("entries")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise HarError("not a HAR log: log.entries is not a list")
    services = service_for_host or first_label
    pages = _pages(data["log"])
    records = []
    for index, entry in enumerate(entries):
        try:
            record = _import_entry(_Entry(index), entry, proxy_name, services, pages)
        except HarError as exc:
            if skipped is None:
                raise
            skipped.append(str(exc))
            continue
        record.request_body = _capped(record.request_body, body_cap)
        record.response_body = _capped(record.response_body, body_cap)
        records.append(record)
    return records


def url_of(record: ExchangeRecord) -> str:
    """The request URL of a record (storage.queries.exchange_url's format)."""
    host = f"[{record.host}]" if ":" in record.host and not record.host.startswith("[") else record.host
    netloc = host if _DEFAULT_PORTS.get(record.scheme) == record.port else f"{host}:{record.port}"
    return f"{record.scheme}://{netloc}{record.path}" + (f"?{record.query}" if record.query else "")

