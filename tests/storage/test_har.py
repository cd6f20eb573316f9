"""storage.pure.har: export to HAR 1.2, import from browser/tool HARs, and the round trip (hypothesis)."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy.io.har import request_to_flow

from storage.pure.har import (
    IMPORTED_ERROR,
    HarBody,
    HarError,
    HarSource,
    export_har,
    har_body,
    har_text,
    import_har,
    url_of,
)  # fmt: skip
from storage.pure.record import ExchangeRecord
from storage.queries import exchange_url, iso_utc, timings_dict

DATA = Path(__file__).resolve().parents[1] / "data" / "har"
T0 = 1_795_857_302.25  # 2026-11-28T09:15:02.250Z


def detail(**overrides: Any) -> dict:
    """A get_exchange-shaped detail dict."""
    base: dict[str, Any] = {
        "id": 7,
        "uuid": "0" * 32,
        "captured_at": iso_utc(T0),
        "proxy": "p1",
        "service": "users",
        "realm": None,
        "method": "GET",
        "scheme": "https",
        "host": "users.local",
        "port": 443,
        "path": "/users/42",
        "query": "a=1&b=x%20y",
        "http_version": "HTTP/1.1",
        "status": 200,
        "reason": "OK",
        "duration_ms": 50.0,
        "error": None,
        "trace_id": None,
        "tags": [],
        "request_headers": [["Host", "users.local"], ["Accept", "*/*"], ["Cookie", "a=1; b=2"]],
        "response_headers": [["Content-Type", "application/json"], ["Set-Cookie", "s=9; Path=/; HttpOnly; Secure"]],
        "timings": timings_dict(
            {
                "request_start": T0,
                "request_end": T0 + 0.002,
                "connect_start": T0 + 0.002,
                "connect_end": T0 + 0.007,
                "tls_end": T0 + 0.017,
                "response_start": T0 + 0.045,
                "response_end": T0 + 0.050,
            }
        ),
        "request_body": None,
        "response_body": None,
    }
    base.update(overrides)
    base["url"] = exchange_url(base["scheme"], base["host"], base["port"], base["path"], base["query"])
    return base


def only_entry(har: dict) -> dict:
    (entry,) = har["log"]["entries"]
    return entry


def phases_sum(timings: dict) -> float:
    return sum(v for k, v in timings.items() if k != "ssl" and v >= 0)


# --- export ---------------------------------------------------------------------------------


def test_export_log_shape_and_request() -> None:
    har = export_har([HarSource(detail())], creator_version="0.3.0")
    assert har["log"]["version"] == "1.2"
    assert har["log"]["creator"] == {"name": "Passageway", "version": "0.3.0"}
    json.dumps(har)  # JSON-ready
    entry = only_entry(har)
    assert entry["startedDateTime"] == "2026-11-28T09:15:02.250Z"
    request = entry["request"]
    assert request["method"] == "GET"
    assert request["url"] == "https://users.local/users/42?a=1&b=x%20y"
    assert request["httpVersion"] == "HTTP/1.1"
    assert request["headers"][0] == {"name": "Host", "value": "users.local"}
    assert request["cookies"] == [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]
    assert request["queryString"] == [{"name": "a", "value": "1"}, {"name": "b", "value": "x y"}]
    assert request["headersSize"] == -1 and request["bodySize"] == 0
    assert "postData" not in request
    assert entry["cache"] == {}
    cookies = entry["response"]["cookies"]
    assert cookies == [{"name": "s", "value": "9", "path": "/", "httpOnly": True, "secure": True}]
    assert entry["_passageway"]["id"] == 7 and entry["_passageway"]["service"] == "users"


def test_export_timings_sum_to_time_and_connect_includes_ssl() -> None:
    entry = only_entry(export_har([HarSource(detail())], creator_version="x"))
    t = entry["timings"]
    assert t["dns"] == -1
    assert t["ssl"] == pytest.approx(10.0)
    assert t["connect"] == pytest.approx(15.0)  # 5 ms TCP + 10 ms TLS
    assert t["send"] == pytest.approx(2.0)
    assert t["wait"] == pytest.approx(28.0)
    assert t["receive"] == pytest.approx(5.0)
    assert entry["time"] == pytest.approx(50.0)
    assert phases_sum(t) == pytest.approx(entry["time"], abs=0.01)


def test_export_reused_connection_has_no_connect_phase() -> None:
    ex = detail(timings=timings_dict({"request_start": T0, "request_end": T0 + 0.001, "response_start": T0 + 0.011,
                                      "response_end": T0 + 0.012}))  # fmt: skip
    t = only_entry(export_har([HarSource(ex)], creator_version="x"))["timings"]
    assert t["connect"] == -1 and t["ssl"] == -1
    assert phases_sum(t) == pytest.approx(12.0, abs=0.01)


def test_export_response_body_gzip_decoded_with_compression() -> None:
    payload = json.dumps({"users": list(range(50))}).encode()
    wire = gzip.compress(payload)
    body = har_body(wire, size=len(wire), truncated=False, encoding="gzip", content_type="application/json")
    ex = detail(response_headers=[["Content-Type", "application/json"], ["Content-Encoding", "gzip"]])
    response = only_entry(export_har([HarSource(ex, response_body=body)], creator_version="x"))["response"]
    content = response["content"]
    assert content["text"] == payload.decode()
    assert "encoding" not in content
    assert content["size"] == len(payload)
    assert response["bodySize"] == len(wire)
    assert content["compression"] == len(payload) - len(wire)
    assert content["mimeType"] == "application/json"


def test_export_binary_body_is_base64() -> None:
    data = bytes(range(256))
    body = HarBody(data, "application/octet-stream", len(data))
    content = only_entry(export_har([HarSource(detail(), response_body=body)], creator_version="x"))["response"]["content"]
    assert content["encoding"] == "base64"
    assert base64.b64decode(content["text"]) == data


def test_export_text_in_declared_charset() -> None:
    body = HarBody("café".encode("latin-1"), "text/plain; charset=iso-8859-1", 4)
    content = only_entry(export_har([HarSource(detail(), response_body=body)], creator_version="x"))["response"]["content"]
    assert content["text"] == "café"
    (record,) = import_har(export_har([HarSource(detail(), response_body=body)], creator_version="x"), proxy_name="i")
    assert record.response_body is not None and record.response_body.data == "café".encode("latin-1")


def test_export_form_post_has_params() -> None:
    ex = detail(method="POST", request_headers=[["Content-Type", "application/x-www-form-urlencoded"]])
    body = HarBody(b"user=ada&pass=s3cret%26x&empty=", "application/x-www-form-urlencoded", 31)
    request = only_entry(export_har([HarSource(ex, request_body=body)], creator_version="x"))["request"]
    assert request["bodySize"] == 31
    assert request["postData"] == {
        "mimeType": "application/x-www-form-urlencoded",
        "text": "user=ada&pass=s3cret%26x&empty=",
        "params": [
            {"name": "user", "value": "ada"},
            {"name": "pass", "value": "s3cret&x"},
            {"name": "empty", "value": ""},
        ],
    }


def test_export_binary_request_body_as_mitmproxy_writes_it() -> None:
    """HAR has no binary postData: UTF-8 text with each undecodable byte as a surrogate escape,
    which mitmproxy's reader and ours turn back into the same bytes."""
    ex = detail(method="PUT", request_headers=[["Content-Type", "application/octet-stream"]])
    data = b"\xff\x00\xfe caf\xc3\xa9"
    body = HarBody(data, "application/octet-stream", len(data))
    har = json.loads(har_text(export_har([HarSource(ex, request_body=body)], creator_version="x")))
    post = only_entry(har)["request"]["postData"]
    assert set(post) == {"mimeType", "text"} and post["text"] == "\udcff\x00\udcfe café"
    assert "_passageway" not in json.dumps(post) and "request_body_base64" not in only_entry(har)["_passageway"]
    assert request_to_flow(only_entry(har)).request.content == data
    (record,) = import_har(har, proxy_name="x")
    assert record.request_body is not None and record.request_body.data == data


def test_export_request_body_that_no_text_reads_back_carries_its_bytes() -> None:
    """Bytes that are UTF-8 but not UTF-16, declared UTF-16: no text stands for them under that
    charset, so they also go under _passageway for our own import."""
    ex = detail(method="POST")
    body = HarBody(b"abc", "text/plain; charset=utf-16", 3)
    har = export_har([HarSource(ex, request_body=body)], creator_version="x")
    assert only_entry(har)["_passageway"]["request_body_base64"] == "YWJj"
    (record,) = import_har(har, proxy_name="x")
    assert record.request_body is not None and record.request_body.data == b"abc"


def test_an_older_export_with_base64_post_data_still_imports() -> None:
    har = {"log": {"entries": [{"startedDateTime": "2026-11-28T09:15:02Z", "request": {
        "method": "PUT", "url": "http://a/", "postData": {"mimeType": "x/y", "text": "/wD+", "_encoding": "base64"}},
        "response": {"status": 204}}]}}  # fmt: skip
    (record,) = import_har(har, proxy_name="x")
    assert record.request_body is not None and record.request_body.data == b"\xff\x00\xfe"


def test_export_failed_exchange_like_chrome() -> None:
    ex = detail(
        status=None, reason=None, response_headers=None, duration_ms=3000.0,
        error={"kind": "timeout", "message": "upstream did not answer in 3s"},
        timings=timings_dict({"request_start": T0, "request_end": T0 + 0.001}),
    )  # fmt: skip
    entry = only_entry(export_har([HarSource(ex)], creator_version="x"))
    response = entry["response"]
    assert response["status"] == 0 and response["statusText"] == "" and response["headers"] == []
    assert response["bodySize"] == -1 and response["content"] == {"size": 0, "mimeType": "x-unknown"}
    assert response["_error"] == "upstream did not answer in 3s"
    assert entry["_passageway"]["error"] == {"kind": "timeout", "message": "upstream did not answer in 3s"}
    assert entry["time"] == pytest.approx(3000.0)
    assert phases_sum(entry["timings"]) == pytest.approx(entry["time"], abs=0.01)
    (record,) = import_har(json.dumps(export_har([HarSource(ex)], creator_version="x")), proxy_name="i")
    assert record.status is None and record.error_kind == "timeout"
    assert record.error_message == "upstream did not answer in 3s"


def test_export_truncated_body_is_marked() -> None:
    full = b"x" * 1000
    wire = gzip.compress(full)
    kept = wire[: len(wire) // 2]
    body = har_body(kept, size=len(wire), truncated=True, encoding="gzip", content_type="text/plain")
    assert body.data is not None and full.startswith(body.data)
    entry = only_entry(export_har([HarSource(detail(), response_body=body)], creator_version="x"))
    content = entry["response"]["content"]
    assert content["text"] == body.data.decode()
    assert "truncated by Passageway" in content["comment"]
    assert "compression" not in content
    assert entry["_passageway"]["response_truncated"] is True
    assert "truncated" in entry["comment"]
    (record,) = import_har(export_har([HarSource(detail(), response_body=body)], creator_version="x"), proxy_name="i")
    assert record.response_body is not None and record.response_body.truncated


def test_export_undecodable_body_has_a_note() -> None:
    body = har_body(b"not gzip", size=8, truncated=False, encoding="gzip", content_type="text/plain")
    assert body.data is None
    content = only_entry(export_har([HarSource(detail(), response_body=body)], creator_version="x"))["response"]["content"]
    assert "text" not in content and "body not exported" in content["comment"]


@pytest.mark.parametrize(("stored", "written", "mitmproxy"), [
    ("HTTP/2.0", "HTTP/2", "HTTP/2"), ("HTTP/3", "HTTP/3", "HTTP/3"), ("HTTP/1.1", "HTTP/1.1", "HTTP/1.1"),
])  # fmt: skip
def test_export_http_versions_as_browsers_write_them(stored: str, written: str, mitmproxy: str) -> None:
    entry = only_entry(export_har([HarSource(detail(http_version=stored))], creator_version="x"))
    assert entry["request"]["httpVersion"] == entry["response"]["httpVersion"] == written
    flow = request_to_flow(entry)
    assert flow.request.http_version == flow.response.http_version == mitmproxy
    (record,) = import_har({"log": {"entries": [entry]}}, proxy_name="x")
    assert record.http_version == stored


# --- import of real-world shapes ---------------------------------------------------------------


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_import_chrome() -> None:
    records = import_har(load("chrome.har"), proxy_name="imported")
    assert [(r.method, url_of(r), r.status) for r in records] == [
        ("GET", "https://api.example.com/v1/cart?currency=EUR&items=3", 200),
        ("POST", "https://api.example.com/v1/cart/items", 201),
        ("GET", "https://cdn.example.com/pixel.png", 200),
        ("GET", "https://metrics.example.com/collect?e=view", None),
    ]
    cart, post, image, failed = records
    assert len({r.uuid for r in records}) == 4 and all(len(r.uuid) == 32 for r in records)
    assert cart.proxy == "imported" and cart.service == "api"
    assert cart.http_version == "HTTP/2.0"
    assert [name for name, _ in cart.request_headers] == ["accept", "accept-encoding", "cookie"]  # no :authority
    assert cart.captured_at == pytest.approx(1_795_857_302.312)
    # gzip on the wire, decoded in the HAR: stored as identity, the header kept as it was.
    assert ("content-encoding", "gzip") in (cart.response_headers or [])
    assert cart.response_body is not None and cart.response_body.encoding is None
    assert json.loads(cart.response_body.data)["total"] == "€42"
    assert cart.response_body.content_type == "application/json"
    t = cart.timings
    assert t.connect_start == pytest.approx(T0 + 0.062 + 0.002129, abs=1e-6)
    assert (t.tls_end - t.connect_end) * 1000 == pytest.approx(21.5, abs=1e-3)
    assert (t.response_end - t.request_start) * 1000 == pytest.approx(87.614, abs=1e-3)
    assert cart.duration_ms == pytest.approx(87.614)
    assert post.request_body is not None and post.request_body.data == b'{"sku":"B-2","qty":1}   '
    assert [v for n, v in post.request_headers if n == "x-request-id"] == ["r-77", "r-78"]
    assert post.timings.connect_start is None  # reused connection
    assert image.response_body is not None and image.response_body.data.startswith(b"\x89PNG\r\n")
    assert failed.error_kind == "connect_failed" and failed.error_message == "net::ERR_NAME_NOT_RESOLVED"
    assert failed.response_headers is None and failed.response_body is None
    assert failed.timings.response_start is None and failed.duration_ms == pytest.approx(5.2)


def test_import_firefox() -> None:
    login, css = import_har(load("firefox.har"), proxy_name="ff")
    assert url_of(login) == "http://auth.internal:8080/login?next=%2Fhome"
    assert login.port == 8080 and login.path == "/login" and login.query == "next=%2Fhome"
    assert login.captured_at == pytest.approx(1_795_857_601.25)  # +01:00 offset honoured
    assert login.status == 302 and login.reason == "Found"
    assert login.request_body is not None and login.request_body.data == b"user=ada&pass=s3cret%26x"
    assert login.response_body is None  # empty
    assert css.http_version == "HTTP/2.0"
    assert css.response_body is not None and css.response_body.data == b"body { color: red }\n"
    assert css.timings.connect_start is not None and css.timings.tls_end is not None
    assert (css.timings.tls_end - css.timings.connect_start) * 1000 == pytest.approx(25.0, abs=1e-3)  # ssl inside connect
    assert (css.timings.connect_start - css.timings.request_start) * 1000 == pytest.approx(3.0, abs=1e-3)  # dns before


def test_import_mitmproxy_savehar() -> None:
    put, failed = import_har(load("mitmproxy.har"), proxy_name="m", service_for_host=lambda host: host.upper())
    assert put.service == "USERS.SVC.LOCAL"
    assert put.captured_at == pytest.approx(1_795_858_200.123456)
    # mitmproxy writes binary bodies as lossy text; with no charset it is taken as UTF-8.
    assert put.request_body is not None and put.request_body.data == "\x00\x01\x02\xff".encode()
    assert put.status == 204 and put.response_body is None
    assert failed.query == "limit=10&limit=20"
    assert failed.status is None and failed.error_kind == "timeout"
    assert failed.error_message == "Server connection to ('orders.svc.local', 443) timed out"


def test_import_params_only_and_lenient_fields() -> None:
    har = {
        "log": {
            "entries": [
                {
                    "startedDateTime": "2026-11-28T09:15:02",  # no offset, no fraction: UTC
                    "request": {
                        "method": "POST",
                        "url": "http://[::1]:9000/form#frag",
                        "postData": {"mimeType": "application/x-www-form-urlencoded",
                                     "params": [{"name": "a b", "value": "1&2"}, {"name": "c"}]},
                    },
                    "response": {"status": 200, "content": {"size": 12, "mimeType": "text/plain"}},
                    "timings": {"send": -1, "wait": "3", "receive": None},
                }
            ]
        }
    }  # fmt: skip
    (record,) = import_har(har, proxy_name="x")
    assert record.host == "::1" and record.port == 9000 and record.path == "/form" and record.query == ""
    assert url_of(record) == "http://[::1]:9000/form"
    assert record.service is None  # an IP literal has no service name
    assert record.captured_at == pytest.approx(1_795_857_302.0)
    assert record.request_body is not None and record.request_body.data == b"a+b=1%262&c="
    assert record.http_version == "HTTP/1.1" and record.request_headers == []
    # content left out by the tool: size kept, shown as truncated.
    assert record.response_body is not None and record.response_body.truncated and record.response_body.size == 12


def test_import_multipart_params_without_text() -> None:
    har = {"log": {"entries": [{"startedDateTime": "2026-11-28T09:15:02Z", "request": {
        "method": "POST", "url": "https://up.example/", "postData": {
            "mimeType": "multipart/form-data; boundary=XyZ",
            "params": [{"name": "f", "fileName": "a.txt", "contentType": "text/plain", "value": "hi"}]}},
        "response": {"status": 200}}]}}  # fmt: skip
    (record,) = import_har(har, proxy_name="x")
    assert record.request_body is not None
    assert record.request_body.data == (
        b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nhi\r\n--XyZ--\r\n"
    )


@pytest.mark.parametrize(
    ("har", "message"),
    [
        ("{", "not JSON"),
        ([], "not a HAR log"),
        ({"log": {"entries": {}}}, "not a HAR log: log.entries is not a list"),
        ({"log": {"entries": [1]}}, "entry 0: the entry is not an object"),
        ({"log": {"entries": [{"startedDateTime": "2026-11-28T09:15:02Z"}]}}, "entry 0: request is missing"),
        ({"log": {"entries": [{"startedDateTime": "2026-11-28T09:15:02Z", "request": {"method": "GET"}}]}},
         "entry 0: request.url is missing"),
        ({"log": {"entries": [{"startedDateTime": "2026-11-28T09:15:02Z",
                               "request": {"method": "GET", "url": "data:text/plain,hi"}}]}},
         "entry 0: request.url is not an http(s) or ws(s) URL"),
        ({"log": {"entries": [{"startedDateTime": "yesterday", "request": {"method": "GET", "url": "http://a/"}}]}},
         "entry 0: startedDateTime: not an ISO 8601"),
        ({"log": {"entries": [{"startedDateTime": "2026-11-28T09:15:02Z", "request": {"method": "GET", "url": "http://a:99999/"}}]}},
         "entry 0: request.url has a bad port"),
        ({"log": {"entries": [{"startedDateTime": "2026-11-28T09:15:02Z", "request": {"method": "GET", "url": "http://a/",
           "headers": [{"value": "x"}]}}]}}, "entry 0: request.headers[0] has no name"),
        ({"log": {"entries": [{"startedDateTime": "2026-11-28T09:15:02Z", "request": {"method": "GET", "url": "http://a/"},
           "response": {"status": 200, "content": {"text": "%%%", "encoding": "base64"}}}]}},
         "entry 0: response.content.text is not valid base64"),
        ({"log": {"entries": [{"startedDateTime": "2026-11-28T09:15:02Z", "request": {"method": "GET", "url": "http://a/"},
           "response": {"status": 1200}}]}}, "entry 0: response.status is not an HTTP status"),
    ],
)  # fmt: skip
def test_import_rejects_unusable_input(har: Any, message: str) -> None:
    with pytest.raises(HarError, match="^" + re.escape(message)):
        import_har(har if isinstance(har, str) else json.dumps(har), proxy_name="x")


def test_import_can_collect_skipped_entries() -> None:
    good = {"startedDateTime": "2026-11-28T09:15:02Z", "request": {"method": "GET", "url": "http://a.b/"},
            "response": {"status": 204}}  # fmt: skip
    bad = {"startedDateTime": "2026-11-28T09:15:02Z", "request": {"method": "GET", "url": "blob:https://a/1"}}
    skipped: list[str] = []
    records = import_har({"log": {"entries": [bad, good]}}, proxy_name="x", skipped=skipped)
    assert [url_of(r) for r in records] == ["http://a.b/"]
    assert skipped == ["entry 0: request.url is not an http(s) or ws(s) URL: 'blob:https://a/1'"]


def test_import_status_zero_without_message() -> None:
    entry = {"startedDateTime": "2026-11-28T09:15:02Z", "request": {"method": "GET", "url": "http://a.b/"},
             "response": {"status": 0, "content": {}}}  # fmt: skip
    (record,) = import_har({"log": {"entries": [entry]}}, proxy_name="x")
    assert record.error_kind == IMPORTED_ERROR and record.error_message


def test_export_then_import_samples_keep_everything() -> None:
    """Chrome's sample through import, export and import again: same requests."""
    first = import_har(load("chrome.har"), proxy_name="x")
    sources = [HarSource(_detail_of(r), *_bodies_of(r)) for r in first]
    second = import_har(export_har(sources, creator_version="x"), proxy_name="x")
    assert [_essence(r) for r in second] == [_essence(r) for r in first]


# --- round trip property -------------------------------------------------------------------------


def _detail_of(record: Any) -> dict:
    """What get_exchange(har=True) would give for a stored record (as far as export needs)."""
    t = record.timings
    stored = {name: getattr(t, name) for name in ("request_start", "connect_start", "connect_end", "tls_end",
                                                  "request_end", "response_start", "response_end")}  # fmt: skip
    if record.har is not None:
        stored["har"] = record.har
    return detail(
        uuid=record.uuid, har=record.har,
        method=record.method, scheme=record.scheme, host=record.host, port=record.port, path=record.path,
        query=record.query, http_version=record.http_version, status=record.status, reason=record.reason,
        request_headers=[list(h) for h in record.request_headers],
        response_headers=None if record.response_headers is None else [list(h) for h in record.response_headers],
        error={"kind": record.error_kind, "message": record.error_message or ""} if record.error_kind else None,
        timings=timings_dict(stored), duration_ms=record.duration_ms, service=record.service,
    )  # fmt: skip


def _bodies_of(record: Any) -> tuple[HarBody | None, HarBody | None]:
    def one(body: Any) -> HarBody | None:
        if body is None:
            return None
        return HarBody(body.data, body.content_type, body.size, body.truncated, body.encoding)

    return one(record.request_body), one(record.response_body)


def _essence(record: Any) -> tuple:
    def body(b: Any) -> bytes:
        return b"" if b is None else b.data

    return (record.method, url_of(record), record.status, record.request_headers, record.response_headers,
            body(record.request_body), body(record.response_body), record.error_kind)  # fmt: skip


TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-!#$%&'*+.^_`|~", min_size=1,
                max_size=12)  # fmt: skip
HEADERS = st.lists(st.tuples(TOKEN, st.text(max_size=20)), max_size=6)
LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
URL_CHARS = "abcdefghijklmnopqrstuvwxyzABC0123456789-._~!$&'()*+,;=:@%/"
CONTENT_TYPES = st.sampled_from([None, "application/json", "text/plain; charset=iso-8859-1", "application/octet-stream",
                                 "application/x-www-form-urlencoded", "text/html; charset=utf-16", "image/png"])  # fmt: skip


@st.composite
def bodies(draw: Any) -> HarBody | None:
    data = draw(st.one_of(st.none(), st.binary(max_size=40), st.text(max_size=20).map(lambda s: s.encode())))
    if data is None:
        return None
    return HarBody(data, draw(CONTENT_TYPES), len(data))


@st.composite
def exchanges(draw: Any) -> tuple[dict, HarBody | None, HarBody | None]:
    scheme = draw(st.sampled_from(["http", "https"]))
    failed = draw(st.booleans())
    ex = detail(
        method=draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"])),
        scheme=scheme,
        host=".".join(draw(st.lists(LABEL, min_size=1, max_size=3))),
        port=draw(st.sampled_from([80, 443, 8080, 1])),
        path="/" + draw(st.text(alphabet=URL_CHARS, max_size=15)),
        query=draw(st.text(alphabet=URL_CHARS + "?=&", max_size=15)),
        http_version=draw(st.sampled_from(["HTTP/1.1", "HTTP/2.0", "HTTP/1.0"])),
        request_headers=[list(h) for h in draw(HEADERS)],
        status=None if failed else draw(st.integers(100, 599)),
        reason=None if failed else draw(st.text(max_size=10)),
        response_headers=None if failed else [list(h) for h in draw(HEADERS)],
        error={"kind": "connect_failed", "message": draw(st.text(max_size=10))} if failed else None,
    )
    return ex, draw(bodies()), None if failed else draw(bodies())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(exchanges())
def test_round_trip(case: tuple[dict, HarBody | None, HarBody | None]) -> None:
    ex, request_body, response_body = case
    har = export_har([HarSource(ex, request_body, response_body)], creator_version="x")
    (record,) = import_har(json.dumps(har), proxy_name="x")
    assert record.method == ex["method"]
    assert url_of(record) == ex["url"]
    assert record.status == ex["status"]
    assert record.request_headers == [tuple(h) for h in ex["request_headers"]]
    if ex["status"] is None:
        assert record.response_headers is None and record.error_kind == "connect_failed"
    else:
        assert record.response_headers == [tuple(h) for h in ex["response_headers"]]
    for sent, got in ((request_body, record.request_body), (response_body, record.response_body)):
        assert (got.data if got else b"") == (sent.data if sent else b"")
    timings = har["log"]["entries"][0]["timings"]
    assert phases_sum(timings) == pytest.approx(har["log"]["entries"][0]["time"], abs=0.01)


def test_error_with_a_response_round_trips_and_chrome_aborts_import() -> None:
    ex = detail(error={"kind": "client_disconnected", "message": "client went away mid-body"})
    entry = only_entry(export_har([HarSource(ex)], creator_version="x"))
    assert entry["response"]["status"] == 200 and entry["response"]["_error"] == "client went away mid-body"
    (record,) = import_har(export_har([HarSource(ex)], creator_version="x"), proxy_name="i")
    assert (record.status, record.error_kind, record.error_message) == (200, "client_disconnected",
                                                                       "client went away mid-body")  # fmt: skip
    aborted = {"startedDateTime": "2026-11-28T09:15:02Z", "_resourceType": "websocket",
               "request": {"method": "GET", "url": "wss://a.b/socket"},
               "response": {"status": 101, "_error": "net::ERR_ABORTED"}}  # fmt: skip
    (record,) = import_har({"log": {"entries": [aborted]}}, proxy_name="i")
    assert record.status == 101 and record.error_kind == "client_disconnected" and record.websocket


@pytest.mark.parametrize("name", ["chrome.har", "firefox.har", "mitmproxy.har"])
def test_through_the_store_and_back(name: str, sqlite_store: Any) -> None:
    """Import, write with the real writer, export from get_exchange/get_body, import again: same exchanges."""
    from storage import get_body, get_exchange, write_records

    first = import_har(load(name), proxy_name="x")
    ids = write_records(sqlite_store, first)
    sources = []
    for exchange_id in ids:
        ex = get_exchange(sqlite_store, exchange_id=exchange_id)
        assert ex is not None
        bodies = []
        for side in ("request", "response"):
            stored = get_body(sqlite_store, exchange_id=exchange_id, side=side)
            bodies.append(None if stored is None else har_body(
                stored.data, size=stored.size, truncated=stored.truncated, encoding=stored.encoding,
                content_type=stored.content_type))  # fmt: skip
        sources.append(HarSource(ex, *bodies))
    har = json.loads(json.dumps(export_har(sources, creator_version="x")))
    second = import_har(har, proxy_name="x")
    assert [_essence(r) for r in second] == [_essence(r) for r in first]
    for entry in har["log"]["entries"]:
        assert phases_sum(entry["timings"]) == pytest.approx(entry["time"], abs=0.01)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        found += _paths(child, prefix + (key,))
    return found


def _damage(har: Any, rnd: Any, changes: list) -> None:
    """Each change sets a random field of `har` to a value, or deletes it."""
    for value, delete in changes:
        paths = _paths(har)
        if not paths:
            break
        path = rnd.choice(paths)
        parent = har
        for key in path[:-1]:
            parent = parent[key]
        if delete and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["chrome.har", "firefox.har", "mitmproxy.har"]), st.randoms(),
       st.lists(st.tuples(JSON_VALUES, st.booleans()), min_size=1, max_size=3))  # fmt: skip
def test_damaged_samples_import_or_raise_har_error(name: str, rnd: Any, changes: list) -> None:
    har = json.loads(load(name))
    _damage(har, rnd, changes)
    try:
        import_har(har, proxy_name="x")
    except HarError:
        pass


# --- what an import keeps, so exports write it back as it was ---------------------------------


def _entry(**overrides: Any) -> dict:
    entry: dict[str, Any] = {
        "startedDateTime": "2026-11-28T09:15:02.250Z",
        "time": 107,
        "request": {"method": "GET", "url": "https://mitmproxy.org/", "httpVersion": "HTTP/1.1", "headers": [],
                    "headersSize": 68, "bodySize": 0},
        "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
                     "headers": [{"name": "Content-Type", "value": "text/html; charset=utf-8"}],
                     "content": {"size": 11, "mimeType": "text/html", "text": "hello world"},
                     "headersSize": 0, "bodySize": 5},
        "timings": {"dns": 43, "connect": 37, "ssl": 26, "send": 1, "wait": 24, "receive": 2},
    }  # fmt: skip
    entry.update(overrides)
    return entry


def trip(har: dict | bytes, trips: int = 1) -> list[dict]:
    """The HAR through import and export `trips` times: every export, parsed from its text."""
    out = []
    for _ in range(trips):
        records = import_har(har, proxy_name="x")
        har = json.loads(har_text(export_har([HarSource(_detail_of(r), *_bodies_of(r)) for r in records],
                                             creator_version="x")))  # fmt: skip
        out.append(har)
    return out


def test_timings_go_back_as_they_came_however_often() -> None:
    """Charles: no `blocked`, ssl inside connect. It used to gain 37 ms (connect) per trip."""
    original = _entry()
    for har in trip({"log": {"entries": [original]}}, trips=4):
        entry = only_entry(har)
        assert entry["time"] == 107 and entry["timings"] == original["timings"]


def test_imported_phases_in_the_api_and_on_the_timeline() -> None:
    charles, firefox = import_har({"log": {"entries": [
        _entry(),
        _entry(time=247, timings={"blocked": 89, "dns": 0, "connect": 32, "ssl": 66, "send": 0, "wait": 60,
                                  "receive": 0}),
    ]}}, proxy_name="x")  # fmt: skip
    t = _detail_of(charles)["timings"]
    assert (t["blocked_ms"], t["dns_ms"], t["send_ms"], t["receive_ms"]) == (None, 43.0, 1.0, 2.0)
    assert t["connect_ms"] == pytest.approx(11.0) and t["tls_ms"] == pytest.approx(26.0)  # HAR 1.2: connect holds ssl
    assert t["wait_ms"] == pytest.approx(24.0)
    assert (charles.timings.response_end - charles.timings.request_start) * 1000 == pytest.approx(107.0, abs=1e-3)
    t = _detail_of(firefox)["timings"]  # Firefox writes ssl apart, and counts it in time
    assert t["blocked_ms"] == 89.0 and t["connect_ms"] == pytest.approx(32.0) and t["tls_ms"] == pytest.approx(66.0)
    assert t["wait_ms"] == pytest.approx(60.0)
    assert (firefox.timings.response_end - firefox.timings.request_start) * 1000 == pytest.approx(247.0, abs=1e-3)
    (safari,) = import_har({"log": {"entries": [_entry(time=11.5, timings={"blocked": 1, "send": 0.5, "wait": 6,
                                                                           "receive": 3})]}}, proxy_name="x")  # fmt: skip
    t = _detail_of(safari)["timings"]  # Safari's time is 1 ms more than its phases: both kept as written
    assert (t["blocked_ms"], t["send_ms"], t["wait_ms"], t["receive_ms"]) == (1.0, 0.5, 6.0, 3.0)
    assert (safari.timings.response_end - safari.timings.request_start) * 1000 == pytest.approx(11.5, abs=1e-3)


PHASE_VALUES = st.one_of(st.none(), st.just(-1), st.integers(0, 10_000), st.floats(0, 1e5, allow_nan=False))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional={name: PHASE_VALUES for name in
                                           ("blocked", "dns", "connect", "ssl", "send", "wait", "receive",
                                            "_blocked_queueing")}),  # fmt: skip
       st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False)), st.booleans())
def test_any_timings_survive_any_number_of_trips(timings: dict, time: float | None, failed: bool) -> None:
    timings = {name: value for name, value in timings.items() if value is not None}
    entry = _entry(timings=timings, **({"time": time} if time is not None else {}))
    if time is None:
        del entry["time"]
    if failed:
        entry["response"] = {"status": 0, "_error": "net::ERR_FAILED"}
    first, *later = trip({"log": {"entries": [entry]}}, trips=3)
    written = only_entry(first)
    assert written["timings"] == {"send": 0, "wait": 0, "receive": 0, **timings}  # HAR requires these three
    if time is not None:
        assert written["time"] == time
    for har in later:
        assert only_entry(har)["timings"] == written["timings"] and only_entry(har)["time"] == written["time"]


def test_what_has_no_column_goes_back_as_it_came() -> None:
    """Wire sizes, the MIME type of content the tool left out, server address, connection, pages."""
    pages = [{"startedDateTime": "2026-11-28T09:15:02.100Z", "id": "page_1", "title": "https://shop.example/?t=s3",
              "pageTimings": {"onContentLoad": 412.5, "onLoad": 640.2}, "_custom": "dropped"}]  # fmt: skip
    entries = [
        _entry(serverIPAddress="13.35.121.50", connection="443", pageref="page_1",
               response={**_entry()["response"], "_transferSize": 253}),
        _entry(pageref="page_1", response={"status": 200, "headers": [], "bodySize": -1, "headersSize": -1,
               "content": {"mimeType": "image/png", "comment": "Response bodies are not included."}}),
        _entry(pageref="page_9", request={**_entry()["request"], "method": "POST", "bodySize": 7,
               "postData": {"mimeType": "", "text": "a=1&b=2"}}),
    ]  # fmt: skip
    original = {"log": {"version": "1.2", "pages": pages, "entries": entries}}
    for har in trip(original, trips=3):
        log = har["log"]
        assert log["pages"] == [{k: v for k, v in pages[0].items() if k != "_custom"}]
        first, no_body, post = log["entries"]
        assert (first["serverIPAddress"], first["connection"], first["pageref"]) == ("13.35.121.50", "443", "page_1")
        assert (first["request"]["headersSize"], first["request"]["bodySize"]) == (68, 0)
        response = first["response"]
        assert (response["headersSize"], response["bodySize"], response["_transferSize"]) == (0, 5, 253)
        assert response["content"] == {"size": 11, "mimeType": "text/html", "text": "hello world"}
        assert no_body["pageref"] == "page_1" and no_body["response"]["bodySize"] == -1
        assert no_body["response"]["content"] == {"size": 0, "mimeType": "image/png",
                                                  "comment": "Response bodies are not included."}  # fmt: skip
        assert post["pageref"] == "page_9"  # the file named no such page: kept as it was
        assert post["request"]["postData"]["mimeType"] == "" and post["request"]["bodySize"] == 7


def test_pages_of_two_files_keep_apart() -> None:
    def one(title: str) -> list[ExchangeRecord]:
        page = {"startedDateTime": "2026-11-28T09:15:02Z", "id": "page_1", "title": title, "pageTimings": {}}
        return import_har({"log": {"pages": [page], "entries": [_entry(pageref="page_1")] * 2}}, proxy_name="x")

    records = one("first") + one("second")
    log = export_har([HarSource(_detail_of(r), *_bodies_of(r)) for r in records], creator_version="x")["log"]
    assert [(p["id"], p["title"]) for p in log["pages"]] == [("page_1", "first"), ("page_1-2", "second")]
    assert [e["pageref"] for e in log["entries"]] == ["page_1", "page_1", "page_1-2", "page_1-2"]


def test_a_passageway_export_carries_the_uuid_and_the_exact_start() -> None:
    """Re-imported where it came from, an export adds nothing: same uuid, same capture time
    ((captured_at, uuid) is the store's key), to the microsecond."""
    ex = detail(uuid="c0ffee" * 5 + "00", timings=timings_dict({"request_start": T0 + 0.000123}))
    entry = only_entry(export_har([HarSource(ex)], creator_version="x"))
    assert entry["startedDateTime"] == "2026-11-28T09:15:02.250123Z"
    (record,) = import_har({"log": {"entries": [entry]}}, proxy_name="x")
    assert record.uuid == ex["uuid"] and iso_utc(record.captured_at) == "2026-11-28T09:15:02.250123Z"
    entry["_passageway"]["uuid"] = "not a uuid!"
    (record,) = import_har({"log": {"entries": [entry]}}, proxy_name="x")
    assert len(record.uuid) == 32 and record.uuid != ex["uuid"]


@pytest.mark.parametrize(("status", "expected"), [("200", 200), (204.0, 204), (0, None)])
def test_import_status_numbers(status: Any, expected: int | None) -> None:
    (record,) = import_har({"log": {"entries": [_entry(response={"status": status})]}}, proxy_name="x")
    assert record.status == expected


@pytest.mark.parametrize("status", ["OK", True, [200], {"code": 200}])
def test_import_rejects_a_status_that_is_not_a_number(status: Any) -> None:
    """`"status": "OK"` used to become a failed request."""
    with pytest.raises(HarError, match=r"^entry 0: response.status is not an HTTP status"):
        import_har({"log": {"entries": [_entry(response={"status": status})]}}, proxy_name="x")


def test_import_keeps_bodies_up_to_the_body_cap() -> None:
    entry = _entry(request={**_entry()["request"], "method": "POST", "postData": {"mimeType": "text/plain",
                                                                                  "text": "x" * 100}})  # fmt: skip
    (record,) = import_har({"log": {"entries": [entry]}}, proxy_name="x", body_cap=8)
    request, response = record.request_body, record.response_body
    assert request is not None and (request.data, request.size, request.truncated) == (b"x" * 8, 100, True)
    assert response is not None and (response.data, response.size, response.truncated) == (b"hello wo", 11, True)
    (whole,) = import_har({"log": {"entries": [entry]}}, proxy_name="x", body_cap=100)
    assert whole.request_body is not None and not whole.request_body.truncated


SURROGATE = "\ud83d"


def test_lone_surrogates_export_as_escapes_and_come_back() -> None:
    """A HAR may spell a lone surrogate (\\ud83d) anywhere; the export must still encode as UTF-8."""
    entry = _entry(
        request={"method": "POST", "url": f"https://a.example/{SURROGATE}?q={SURROGATE}",
                 "headers": [{"name": f"X-{SURROGATE}", "value": f"v{SURROGATE}"}],
                 "postData": {"mimeType": "text/plain", "text": f"body{SURROGATE}"}},
        response={"status": 200, "statusText": f"OK{SURROGATE}", "headers": [],
                  "content": {"mimeType": "text/plain", "text": f"answer{SURROGATE}"}},
    )  # fmt: skip
    (record,) = import_har(json.dumps({"log": {"entries": [entry]}}), proxy_name="x")
    assert record.path == f"/{SURROGATE}" and record.request_headers == [(f"X-{SURROGATE}", f"v{SURROGATE}")]
    text = har_text(export_har([HarSource(_detail_of(record), *_bodies_of(record))], creator_version="x"))
    assert "\\ud83d" in text and text.encode("utf-8")
    (again,) = import_har(text.encode("utf-8"), proxy_name="x")
    assert _essence(again) == _essence(record) and again.reason == f"OK{SURROGATE}"


BODY_TYPES = st.sampled_from([None, "application/json", "text/plain", "text/plain; charset=iso-8859-1",
                              "text/html; charset=utf-16", "application/octet-stream", "image/png", "text/css",
                              "application/x-www-form-urlencoded", "text/plain; charset=shift_jis"])  # fmt: skip
BODY_BYTES = st.one_of(st.binary(min_size=1, max_size=40), st.text(min_size=1, max_size=20).map(str.encode))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(BODY_BYTES, BODY_TYPES, BODY_BYTES, BODY_TYPES)
def test_mitmproxy_reads_our_bodies_back(request_data: bytes, request_type: str | None, response_data: bytes,
                                         response_type: str | None) -> None:  # fmt: skip
    """mitmproxy's own HAR reader gets our bytes back: every response body, and every request
    body but text it decodes another way than its sender (HAR has no binary postData, and
    mitmproxy takes text of a type it does not know and without a charset for Latin-1).
    Our import gets every body back."""
    def typed(content_type: str | None) -> list[list[str]]:
        return [] if content_type is None else [["Content-Type", content_type]]

    ex = detail(method="POST", request_headers=typed(request_type), response_headers=typed(response_type))
    sources = [HarSource(ex, HarBody(request_data, request_type, len(request_data)),
                         HarBody(response_data, response_type, len(response_data)))]  # fmt: skip
    entry = only_entry(json.loads(har_text(export_har(sources, creator_version="x"))))
    flow = request_to_flow(entry)
    assert flow.response.content == response_data
    text = entry["request"]["postData"]["text"]
    binary = any("\udc80" <= char <= "\udcff" for char in text)  # mitmproxy's own convention
    declared = request_type is not None and any(word in request_type for word in ("charset", "json", "css"))
    if "request_body_base64" not in entry["_passageway"] and (binary or text.isascii() or declared):
        assert flow.request.content == request_data
    (record,) = import_har({"log": {"entries": [entry]}}, proxy_name="x")
    assert record.request_body is not None and record.request_body.data == request_data
    assert record.response_body is not None and record.response_body.data == response_data


def test_the_store_keeps_what_an_import_said(store: Any) -> None:
    """ExchangeRecord.har rides in the timings column: any text (NUL, lone surrogates, the
    store's own escape mark) on SQLite and PostgreSQL; only HAR export asks for it."""
    from storage import get_exchange, write_records
    from storage.record_codec import decode_record, encode_record

    entry = _entry(serverIPAddress="\x00\ud83d\ue000[::1]", connection="7", pageref="p",
                   timings={"blocked": 1.5, "dns": -1, "send": 2, "_queued\udcff": 0.25})  # fmt: skip
    page = {"id": "p", "title": "t\x00\ud83d", "startedDateTime": "2026-11-28T09:15:02Z", "pageTimings": {"onLoad": 1}}
    (record,) = import_har({"log": {"pages": [page], "entries": [entry]}}, proxy_name="x")
    assert decode_record(encode_record(record)) == record
    (exchange_id,) = write_records(store, [record])
    detail = get_exchange(store, exchange_id=exchange_id, har=True)
    assert detail is not None and detail["har"] == record.har
    assert detail["har"]["page"] == page and detail["har"]["serverIPAddress"] == "\x00\ud83d\ue000[::1]"
    timings = detail["timings"]
    assert (timings["blocked_ms"], timings["dns_ms"], timings["send_ms"]) == (1.5, None, 2.0)
    assert "har" not in get_exchange(store, exchange_id=exchange_id)  # not in the API, shares, ...
    entry = only_entry(export_har([HarSource(detail)], creator_version="x"))
    assert entry["serverIPAddress"] == "\x00\ud83d\ue000[::1]" and entry["timings"]["_queued\udcff"] == 0.25


def test_captured_records_spool_as_before() -> None:
    """No `har` slot for captured traffic: an older version can still read the spool."""
    import msgpack

    from storage.record_codec import encode_record
    from tests.support.records import make_record

    assert len(msgpack.unpackb(encode_record(make_record()))) == 1 + 31


def test_a_redacted_export_redacts_page_titles_as_urls(sqlite_store: Any) -> None:
    """Chrome titles a page with its URL, query string and all."""
    from storage.exports import har_of, import_records
    from storage.pure.redaction import rules_from_config

    page = {"id": "p", "title": "https://shop.example/cart?token=s3cr3t-page&x=1",
            "startedDateTime": "2026-11-28T09:15:02Z"}
    records = import_har({"log": {"pages": [page], "entries": [_entry(pageref="p")]}}, proxy_name="x")
    ids = import_records(sqlite_store, records)
    (redacted,) = har_of(sqlite_store, ids, rules=rules_from_config([], []))["log"]["pages"]
    assert "s3cr3t-page" not in redacted["title"] and redacted["title"].startswith("https://shop.example/cart?token=")
    assert har_of(sqlite_store, ids, rules=None)["log"]["pages"] == [page]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    return [s for item in value for s in _strings(item)] if isinstance(value, list) else []


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["real/chrome.har", "real/firefox.har", "real/safari.har", "chrome.har"]), st.randoms(),
       st.lists(st.tuples(JSON_VALUES | st.just("\x00\ud83d"), st.booleans()), min_size=1, max_size=4))  # fmt: skip
def test_what_damaged_real_files_keep_is_storable(name: str, rnd: Any, changes: list) -> None:
    """Whatever an entry holds, ExchangeRecord.har becomes strict JSON (no NaN) both databases
    take: no NUL and no lone surrogate left in its strings."""
    from storage.rows import EXCHANGE_COLUMNS, RowBuilder

    har = json.loads(load(name).decode("utf-8-sig"))
    _damage(har, rnd, changes)
    try:
        records = import_har(har, proxy_name="x")
    except HarError:
        return
    batch = RowBuilder("postgresql").prepare(records)
    for row in batch.exchanges:
        stored = json.loads(row[EXCHANGE_COLUMNS.index("timings")], parse_constant=lambda c: pytest.fail(c))
        assert not [s for s in _strings(stored) if "\x00" in s or any("\ud800" <= c <= "\udfff" for c in s)]
