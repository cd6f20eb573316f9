"""HAR files written by real tools (tests/data/har/real: Chrome, Firefox, Safari, Charles,
Insomnia) imported and exported again and again: counts, times, phases and bodies stay as
they were, and mitmproxy's own reader reads every export as what was imported."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from mitmproxy.io.har import request_to_flow

from storage.exports import har_of, import_records, search_ids
from storage.pure.har import HarSource, export_har, har_text, import_har, url_of
from storage.pure.record import ExchangeRecord
from storage.store import open_store
from tests.storage.test_har import _bodies_of, _detail_of

REAL = Path(__file__).resolve().parents[1] / "data" / "har" / "real"
FILES = ("charles.har", "chrome.har", "firefox.har", "head-content-length.har", "insomnia.har", "postdata.har",
         "safari.har", "with-bom.har")  # fmt: skip
TRIPS = 3
# How mitmproxy names the versions we store (and reads back from what we write).
MITMPROXY_VERSIONS = {"HTTP/2.0": "HTTP/2", "HTTP/3": "HTTP/3", "HTTP/1.1": "HTTP/1.1"}


def test_every_file_in_the_folder_is_tested() -> None:
    """An empty or renamed folder fails here rather than leaving the tests below nothing to do."""
    assert sorted(path.name for path in REAL.glob("*.har")) == sorted(FILES)


def original(name: str) -> dict:
    return json.loads((REAL / name).read_bytes().decode("utf-8-sig"))


def pure_trip(har: dict | bytes) -> tuple[list[ExchangeRecord], dict]:
    """Import, and export what get_exchange would give for each record (no store)."""
    records = import_har(har, proxy_name="x")
    sources = [HarSource(_detail_of(r), *_bodies_of(r)) for r in records]
    return records, json.loads(har_text(export_har(sources, creator_version="x")))


def stored_trip(har: dict | bytes, url: str) -> tuple[list[ExchangeRecord], dict]:
    """Import into a fresh store through the one write path, and export from it (raw)."""
    records = import_har(har if isinstance(har, bytes) else har_text(har).encode(), proxy_name="x")
    store = open_store(url)
    try:
        assert len(import_records(store, records)) == len(records)
        return records, json.loads(har_text(har_of(store, search_ids(store, None), rules=None)))
    finally:
        store.close()


def sha256(body: Any) -> str | None:
    return None if body is None else hashlib.sha256(body.data).hexdigest()


def kept(entry: dict) -> dict:
    """What an entry says beyond requests and bodies that an export must write back as it was."""
    response, content = entry["response"], entry["response"].get("content") or {}
    facts = {"request." + k: entry["request"].get(k) for k in ("headersSize", "bodySize")}
    facts |= {"response." + k: response.get(k) for k in ("headersSize", "bodySize", "_transferSize")}
    facts |= {"content." + k: content.get(k) for k in ("size", "compression", "mimeType")}
    facts |= {k: entry.get(k) for k in ("serverIPAddress", "connection", "pageref")}
    return {k: v for k, v in facts.items() if v is not None}


def check_trips(name: str, exports: list[dict], first: list[ExchangeRecord]) -> None:
    """Every export against the file (whose import gave `first`): counts, time (within 1 ms),
    phases as written, requests, and bodies by SHA-256; exports against each other: time
    and timings exactly."""
    source = original(name)["log"]["entries"]
    for trip, har in enumerate(exports, start=1):
        records = import_har(har_text(har).encode(), proxy_name="x")
        entries = har["log"]["entries"]
        assert len(entries) == len(records) == len(source), (name, trip)
        for n, (was, entry, record, imported) in enumerate(zip(source, entries, records, first, strict=True)):
            where = (name, trip, n)
            if isinstance(was.get("time"), (int, float)):
                assert abs(entry["time"] - was["time"]) <= 1.0, where
            phases = {k: v for k, v in (was.get("timings") or {}).items() if isinstance(v, (int, float))}
            assert {k: entry["timings"][k] for k in phases} == phases, where
            assert entry["time"] == exports[0]["log"]["entries"][n]["time"], where
            assert entry["timings"] == exports[0]["log"]["entries"][n]["timings"], where
            written = kept(entry)
            assert {k: written.get(k) for k in kept(was)} == kept(was), where  # HAR's required ones may be added
            assert [sha256(record.request_body), sha256(record.response_body)] == [
                sha256(imported.request_body), sha256(imported.response_body)], where  # fmt: skip
            assert (record.method, url_of(record), record.status) == (
                imported.method, url_of(imported), imported.status), where  # fmt: skip


def check_mitmproxy_reads(name: str, har: dict, records: list[ExchangeRecord]) -> None:
    """mitmproxy's reader sees in our export the methods, URLs, statuses, versions and bodies we stored."""
    for n, (entry, record) in enumerate(zip(har["log"]["entries"], records, strict=True)):
        flow = request_to_flow(entry)
        request, response = record.request_body, record.response_body
        assert (flow.request.method, flow.request.url, flow.response.status_code) == (
            record.method, url_of(record), record.status or 0), (name, n)  # fmt: skip
        assert flow.request.http_version == MITMPROXY_VERSIONS[record.http_version], (name, n)
        assert flow.request.content == (request.data if request else b""), (name, n)
        assert flow.response.content == (response.data if response else b""), (name, n)


@pytest.mark.parametrize("name", FILES)
def test_pure_round_trips(name: str) -> None:
    har: dict | bytes = (REAL / name).read_bytes()
    imports, exports = [], []
    for _ in range(TRIPS):
        records, har = pure_trip(har)
        imports.append(records)
        exports.append(har)
    check_trips(name, exports, imports[0])
    for har in exports:
        check_mitmproxy_reads(name, har, imports[0])


@pytest.mark.parametrize("name", FILES)
def test_round_trips_through_the_store(name: str, tmp_path: Path) -> None:
    har: dict | bytes = (REAL / name).read_bytes()
    imports, exports = [], []
    for trip in range(TRIPS):
        records, har = stored_trip(har, f"sqlite:///{tmp_path}/{trip}.db")
        imports.append(records)
        exports.append(har)
    check_trips(name, exports, imports[0])
    for har in exports:
        check_mitmproxy_reads(name, har, imports[0])
    # Back into the store it came from: the uuids it carries make that add nothing.
    store = open_store(f"sqlite:///{tmp_path}/0.db")
    try:
        assert import_records(store, import_har(har_text(exports[0]).encode(), proxy_name="x")) == []
    finally:
        store.close()
