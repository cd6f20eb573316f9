"""GET /api/exchanges/{id}/snippet targets the proxy's gateway by default (issue 16, point 8)."""

from __future__ import annotations

import pytest

from storage.sink import write_records
from tests.support.records import make_record


@pytest.mark.parametrize("fmt", ["curl", "httpie", "python", "fetch"])
def test_snippets_go_through_the_gateway_unless_asked(store, make_client, fmt):
    client = make_client(
        replay_gateway="http://passageway:8080",
        replay_services={"users": "http://users.internal:8000"},
    )
    (exchange_id,) = write_records(store, [make_record()])
    gateway = client.get(f"/api/exchanges/{exchange_id}/snippet", params={"format": fmt})
    assert gateway.status_code == 200
    assert "http://passageway:8080/users/users/42?verbose=1" in gateway.text
    assert "users.internal" not in gateway.text
    assert gateway.headers["x-passageway-snippet-target"] == "gateway"
    assert "x-passageway-snippet-note" not in gateway.headers
    redacted = client.get(
        f"/api/exchanges/{exchange_id}/snippet",
        params={"format": fmt, "redact": "true"},
    )
    assert "http://passageway:8080/users/users/42" in redacted.text
    upstream = client.get(
        f"/api/exchanges/{exchange_id}/snippet",
        params={"format": fmt, "target": "upstream"},
    )
    assert "http://users.internal:8000/users/42?verbose=1" in upstream.text and "passageway:8080" not in upstream.text
    assert upstream.headers["x-passageway-snippet-target"] == "upstream"
    assert "Not through the gateway" not in upstream.text  # asked for: no excuse needed
    assert client.get(f"/api/exchanges/{exchange_id}/snippet", params={"target": "moon"}).status_code == 422


def test_without_a_known_gateway_the_snippet_says_so(store, make_client):
    client = make_client(replay_gateway=None)
    (exchange_id,) = write_records(store, [make_record()])
    answer = client.get(f"/api/exchanges/{exchange_id}/snippet")
    assert answer.headers["x-passageway-snippet-target"] == "upstream"
    assert "not known" in answer.headers["x-passageway-snippet-note"]
    assert answer.text.startswith("# Not through the gateway: the proxy's gateway address is not known")
    assert "http://users.internal:8000/users/42?verbose=1" in answer.text
