"""decode_body: every coding, chains, partial prefixes, limits."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.pure.decoding import DecodeError, decode_body, decode_prefix, decoded_size


def _deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(data) + c.flush()


ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
}


def encode(data: bytes, codings: list[str]) -> bytes:
    for coding in codings:  # applied in header order
        data = ENCODERS[coding](data)
    return data


payloads = st.one_of(st.binary(max_size=4000), st.binary(max_size=50).map(lambda b: b * 300))


@settings(max_examples=60, deadline=None)
@given(data=payloads, codings=st.lists(st.sampled_from(sorted(ENCODERS)), min_size=0, max_size=3))
def test_round_trip_any_chain(data: bytes, codings: list[str]) -> None:
    encoded = encode(data, codings)
    header = ", ".join(codings) or None
    assert decode_body(encoded, header) == data
    assert decoded_size(encoded, header) == len(data)


@settings(max_examples=60, deadline=None)
@given(data=payloads, coding=st.sampled_from(sorted(ENCODERS)), cut=st.floats(0, 1))
def test_partial_prefix_decodes_to_a_prefix(data: bytes, coding: str, cut: float) -> None:
    encoded = encode(data, [coding])
    prefix = encoded[: int(len(encoded) * cut)]
    out = decode_body(prefix, coding, partial=True)
    assert data.startswith(out)


def test_raw_deflate_and_identity() -> None:
    data = b"hello " * 1000
    assert decode_body(_deflate_raw(data), "deflate") == data
    assert decode_body(data, None) == data
    assert decode_body(data, "identity") == data
    assert decode_body(gzip.compress(data), "GZIP , identity") == data


def test_gzip_members_concatenated() -> None:
    assert decode_body(gzip.compress(b"a" * 10) + gzip.compress(b"b" * 10), "gzip") == b"a" * 10 + b"b" * 10


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_truncated_raises_unless_partial(coding: str) -> None:
    encoded = encode(bytes(range(256)) * 200, [coding])
    with pytest.raises(DecodeError):
        decode_body(encoded[: len(encoded) // 2], coding)


def test_unknown_and_garbage() -> None:
    with pytest.raises(DecodeError, match="unknown content-encoding"):
        decode_body(b"x", "compress")
    with pytest.raises(DecodeError):
        decode_body(b"not gzip at all", "gzip")
    assert decoded_size(b"not gzip", "gzip") is None


def test_bomb_is_bounded() -> None:
    bomb = gzip.compress(bytes(50_000_000))
    with pytest.raises(DecodeError, match="exceeds"):
        decode_body(bomb, "gzip", limit=1_000_000)
    assert decoded_size(bomb, "gzip", limit=1_000_000) is None


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_a_prefix_inflates_no_further_than_asked(coding: str) -> None:
    # 1 GiB of zeros compresses to about a megabyte or less: decoding it whole would take the
    # memory a bomb is made to take. The prefix stops within a chunk of what was asked (zstd's
    # chunks are the largest: 512 input bytes of run-length blocks make up to 16 MiB).
    bomb = {"gzip": lambda d: gzip.compress(d, 1), "br": lambda d: brotli.compress(d, quality=1),
            "zstd": lambda d: zstandard.ZstdCompressor(level=1).compress(d)}[coding](bytes(1 << 30))  # fmt: skip
    prefix = decode_prefix(bomb, coding, 1000)
    assert 1000 <= len(prefix) <= 1000 + 16 * 1024 * 1024 and not any(prefix)
    assert decode_prefix(gzip.compress(b"short")[:-8], "gzip", 1000) == b"short"  # a cut stream: what it holds
    with pytest.raises(DecodeError):
        decode_prefix(b"", "compress", 10)  # a coding nobody can undo
