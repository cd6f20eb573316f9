"""storage.record_codec: every record survives the spool's encoding exactly."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.pure.record import CapturedBody, ExchangeRecord, Timings, WebSocketMessageRecord
from storage.record_codec import RecordDecodeError, decode_record, encode_record
from tests.support.records import make_record, websocket_message

# Any str, surrogates included (mitmproxy decodes odd bytes in paths with surrogateescape).
texts = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF))
maybe_text = st.none() | texts
floats = st.floats(allow_nan=False)
headers = st.lists(st.tuples(texts, texts), max_size=5)
bodies = st.none() | st.builds(CapturedBody, data=st.binary(max_size=300), size=st.integers(0, 2**53),
                               truncated=st.booleans(), encoding=maybe_text, content_type=maybe_text)  # fmt: skip
timings = st.builds(Timings, request_start=floats, connect_start=st.none() | floats, connect_end=st.none() | floats,
                    tls_end=st.none() | floats, request_end=st.none() | floats, response_start=st.none() | floats,
                    response_end=st.none() | floats)  # fmt: skip
exchanges = st.builds(
    ExchangeRecord, uuid=texts, captured_at=floats, proxy=texts, scheme=texts, method=texts, host=texts,
    port=st.integers(0, 65535), path=texts, query=texts, http_version=texts, request_headers=headers,
    request_body=bodies, timings=timings, service=maybe_text, realm=maybe_text, client_addr=maybe_text,
    status=st.none() | st.integers(0, 999), reason=maybe_text, response_headers=st.none() | headers,
    response_body=bodies, duration_ms=st.none() | floats, error_kind=maybe_text, error_message=maybe_text,
    trace_id=maybe_text, span_id=maybe_text, request_id=maybe_text, replay_of=st.none() | st.integers(1, 2**62),
    tags=st.lists(texts, max_size=3), websocket=st.booleans(), parent_span_id=maybe_text, caller=maybe_text,
    test_name=maybe_text,
)  # fmt: skip
messages = st.builds(
    WebSocketMessageRecord, exchange_uuid=texts, seq=st.integers(0, 2**40), timestamp=floats,
    from_client=st.booleans(), kind=st.sampled_from(["text", "binary", "close"]), data=st.binary(max_size=200),
    size=st.integers(0, 2**40), truncated=st.booleans(), close_code=st.none() | st.integers(1000, 4999),
)  # fmt: skip


@given(exchanges | messages)
def test_every_record_round_trips(record) -> None:  # type: ignore[no-untyped-def]
    assert decode_record(encode_record(record)) == record


def test_typical_records_round_trip() -> None:
    record = make_record(path="/caf\udce9", request_body=CapturedBody(b"\x00\xff" * 100, 200, False, "gzip"))
    assert decode_record(encode_record(record)) == record
    message = websocket_message(record.uuid, 3, data=b"\x00binary")
    assert decode_record(encode_record(message)) == message


def test_a_record_spooled_before_trace_links_still_reads() -> None:
    """A proxy upgraded with records in its spool: the older array lacks parent_span_id and caller."""
    record = make_record(path="/old")
    older = msgpack.unpackb(encode_record(record))[:-2]
    assert decode_record(msgpack.packb(older, use_bin_type=True)) == record


def test_a_test_step_keeps_its_test_name_with_or_without_har() -> None:
    step = make_record(test_name="checkout")
    assert decode_record(encode_record(step)) == step
    imported = make_record(test_name="checkout", har={"pageref": "page_1"})
    assert decode_record(encode_record(imported)) == imported


def test_a_record_spooled_before_test_names_still_reads() -> None:
    """An import spooled by the previous version: har is its last field, no test_name after it."""
    record = make_record(har={"pageref": "page_1"})
    spooled = msgpack.unpackb(encode_record(record))
    assert spooled[-1] == {"pageref": "page_1"}
    assert decode_record(msgpack.packb(spooled, use_bin_type=True)).test_name is None


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", msgpack.packb([99, "x"]), msgpack.packb([1, "too", "short"]), msgpack.packb({"a": 1}),
     msgpack.packb([2, "uuid", "not-a-seq"])[:-3]],  # fmt: skip
)
def test_anything_else_is_one_kind_of_error(data: bytes) -> None:
    with pytest.raises(RecordDecodeError):
        decode_record(data)


def test_a_record_that_cannot_be_encoded_says_so() -> None:
    with pytest.raises(TypeError):
        encode_record(object())  # type: ignore[arg-type]
