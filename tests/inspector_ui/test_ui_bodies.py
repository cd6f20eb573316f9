"""Body downloads: bytes as stored, decoded on request, always an inert attachment."""

from __future__ import annotations

import gzip

import pytest

from storage.pure.record import CapturedBody
from storage.sink import write_records
from tests.support.records import make_record

PLAIN = b'{"users": [' + b",".join(b'{"id": %d, "name": "user %d"}' % (i, i) for i in range(2000)) + b"]}"
GZIPPED = gzip.compress(PLAIN, mtime=0)


def _exchange_with(store, *, request_body=None, response_body=None):
    (exchange_id,) = write_records(store, [make_record(request_body=request_body, response_body=response_body)])
    return exchange_id


def test_raw_body_is_served_still_encoded_as_an_attachment(store, client):
    exchange_id = _exchange_with(
        store,
        response_body=CapturedBody(GZIPPED, len(GZIPPED), False, encoding="gzip", content_type="application/json"),
    )
    response = client.get(f"/api/exchanges/{exchange_id}/response/body")
    assert response.status_code == 200
    assert response.content == GZIPPED
    headers = response.headers
    assert headers["content-type"] == "application/octet-stream"
    assert "content-encoding" not in headers  # the client must not undo it: these are the stored bytes
    assert headers["content-disposition"] == f'attachment; filename="exchange-{exchange_id}-response.json.gz"'
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert headers["x-passageway-truncated"] == "false"
    assert headers["x-passageway-decoded"] == "false"
    assert headers["x-passageway-content-encoding"] == "gzip"
    assert headers["x-passageway-content-type"] == "application/json"
    assert headers["x-passageway-body-size"] == str(len(GZIPPED))
    assert len(headers["x-passageway-sha256"]) == 64


def test_decoded_body_undoes_gzip(store, client):
    exchange_id = _exchange_with(
        store,
        response_body=CapturedBody(GZIPPED, len(GZIPPED), False, encoding="gzip", content_type="application/json"),
    )
    response = client.get(f"/api/exchanges/{exchange_id}/response/body", params={"decoded": "true"})
    assert response.status_code == 200
    assert response.content == PLAIN
    assert response.headers["x-passageway-decoded"] == "true"
    assert response.headers["content-disposition"].endswith('response.json"')


def test_truncated_body_is_flagged_and_decodes_partially(store, client):
    prefix = GZIPPED[: len(GZIPPED) // 2]
    exchange_id = _exchange_with(store, response_body=CapturedBody(prefix, len(GZIPPED), True, encoding="gzip"))
    raw = client.get(f"/api/exchanges/{exchange_id}/response/body")
    assert raw.content == prefix
    assert raw.headers["x-passageway-truncated"] == "true"
    assert raw.headers["x-passageway-body-size"] == str(len(GZIPPED))
    decoded = client.get(f"/api/exchanges/{exchange_id}/response/body?decoded=true")
    assert decoded.status_code == 200
    assert decoded.headers["x-passageway-truncated"] == "true"
    assert 0 < len(decoded.content) < len(PLAIN)
    assert PLAIN.startswith(decoded.content)


@pytest.mark.parametrize(("data", "encoding"), [(b"not gzip at all", "gzip"), (b"abc", "x-unknown-coding")])
def test_undecodable_body_is_422_but_raw_still_works(store, client, data, encoding):
    exchange_id = _exchange_with(store, request_body=CapturedBody(data, len(data), False, encoding=encoding))
    response = client.get(f"/api/exchanges/{exchange_id}/request/body?decoded=true")
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"cannot decode the request body ({encoding}): ")
    assert client.get(f"/api/exchanges/{exchange_id}/request/body").content == data


def test_identity_body_decoded_is_unchanged(store, client):
    exchange_id = _exchange_with(store, request_body=CapturedBody(b"a=1&b=2", 7, False, content_type="application/x-www-form-urlencoded"))
    for query in ("", "?decoded=true"):
        response = client.get(f"/api/exchanges/{exchange_id}/request/body{query}")
        assert response.content == b"a=1&b=2"
        assert "x-passageway-content-encoding" not in response.headers


def test_hostile_content_is_never_served_as_itself(store, client):
    html = b"<script>alert(document.cookie)</script>"
    exchange_id = _exchange_with(
        store, response_body=CapturedBody(html, len(html), False, content_type="text/html\r\nX-Injected: 1")
    )
    response = client.get(f"/api/exchanges/{exchange_id}/response/body")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert "x-injected" not in response.headers
    assert "\n" not in response.headers["x-passageway-content-type"]


def test_missing_bodies_are_404(store, client):
    exchange_id = _exchange_with(store)  # response body only
    response = client.get(f"/api/exchanges/{exchange_id}/request/body")
    assert response.status_code == 404
    assert response.json() == {"detail": f"exchange {exchange_id} has no request body"}
    response = client.get("/api/exchanges/987654/response/body")
    assert response.status_code == 404
    assert response.json() == {"detail": "exchange 987654 not found"}
    assert client.get(f"/api/exchanges/{exchange_id}/sideways/body").status_code == 422


def test_decompression_bomb_is_refused(store, make_client):
    bomb = gzip.compress(b"\0" * 5_000_000)
    exchange_id = _exchange_with(store, response_body=CapturedBody(bomb, len(bomb), False, encoding="gzip"))
    client = make_client(max_decoded_body=1_000_000)
    response = client.get(f"/api/exchanges/{exchange_id}/response/body?decoded=true")
    assert response.status_code == 422
    assert "exceeds" in response.json()["detail"]
