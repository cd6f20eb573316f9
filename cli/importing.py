"""`passageway import FILE`: exchanges from a HAR file or a mitmproxy flow file into the store.

A HAR (from browser devtools, Charles, HTTP Toolkit, mitmproxy's HAR export, or Passageway)
goes through storage.pure.har; a mitmproxy flow file (`mitmdump -w`, mitmweb's save) through the
same flow -> record conversion the proxy uses, so its bodies, timings and errors come out
as if Passageway had captured them. Flow ids become exchange uuids, so importing the same
flow file twice adds nothing the second time. Either way bodies are kept up to `body_cap`,
as the proxy keeps them.
"""

from __future__ import annotations

import io
from pathlib import Path

from mitmproxy import http
from mitmproxy import io as mitmproxy_io
from mitmproxy.exceptions import FlowReadException

from proxy.flow_record import flow_to_record
from storage.pure.har import HarError, first_label, import_har
from storage.pure.record import ExchangeRecord

__all__ = ["UnreadableFile", "read_records"]


class UnreadableFile(ValueError):
    """The file cannot be imported; the message names why, on one line."""


def read_records(path: Path, *, proxy_name: str, body_cap: int) -> tuple[list[ExchangeRecord], list[str]]:
    """(records, one message per skipped entry) from a HAR or mitmproxy flow file; at least
    one record or one skipped entry, else UnreadableFile."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableFile(f"{path}: {exc.strerror or exc}") from None
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if not start:
        raise UnreadableFile(f"{path}: the file is empty")
    if start == b"{":
        skipped: list[str] = []
        try:
            records = import_har(data, proxy_name=proxy_name, skipped=skipped, body_cap=body_cap)
        except HarError as exc:
            raise UnreadableFile(f"{path}: {exc}") from None
        if not records and not skipped:
            raise UnreadableFile(f"{path}: the HAR has no entries")
        return records, skipped
    return _flow_records(path, data, proxy_name=proxy_name, body_cap=body_cap), []


def _flow_records(path: Path, data: bytes, *, proxy_name: str, body_cap: int) -> list[ExchangeRecord]:
    records = []
    try:
        for flow in mitmproxy_io.FlowReader(io.BytesIO(data)).stream():
            if not isinstance(flow, http.HTTPFlow):
                continue  # TCP/UDP/DNS flows carry no HTTP exchange
            record = flow_to_record(flow, proxy=proxy_name, body_cap=body_cap)
            if record.service is None:
                record.service = first_label(record.host)
            records.append(record)
    except FlowReadException as exc:
        raise UnreadableFile(f"{path}: neither a HAR nor a mitmproxy flow file ({exc})") from None
    if not records:
        raise UnreadableFile(f"{path}: no HTTP flows in it")
    return records
