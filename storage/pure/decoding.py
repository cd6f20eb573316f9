"""Undo Content-Encoding: pure functions, no I/O.

Bodies are stored as received (still encoded); the writer decodes them once to
record their decoded size, and the inspector decodes them for display. Both
paths stream through bounded chunks, so a decompression bomb costs at most
`limit` bytes of memory instead of all of it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

import brotli
import zstandard

from storage.errors import Invalid

__all__ = ["DEFAULT_DECODE_LIMIT", "DecodeError", "decode_body", "decode_prefix", "decoded_size", "parse_encodings"]

DEFAULT_DECODE_LIMIT = 64 * 1024 * 1024
"""The default of the max_decoded_body setting: the most a body is inflated to for reading,
redacting or exporting (a decompression bomb stops there)."""
_CHUNK = 64 * 1024
"""Output produced per step by each decoder; bounds memory between layers."""


class DecodeError(Invalid):
    """The body cannot be decoded (unknown, malformed or truncated encoding)."""


_ALIASES = {
    "identity": "identity",
    "gzip": "gzip",
    "x-gzip": "gzip",
    "deflate": "deflate",
    "br": "br",
    "zstd": "zstd",
}


def parse_encodings(encoding: str | None) -> list[str]:
    """Content-Encoding header value -> codings in the order they were applied.

    Identity entries are dropped. Raises DecodeError for an unknown coding.
    """
    if not encoding:
        return []
    codings = []
    for token in encoding.split(","):
        name = token.strip().lower()
        if not name:
            continue
        canonical = _ALIASES.get(name)
        if canonical is None:
            raise DecodeError(f"unknown content-encoding {name!r}")
        if canonical != "identity":
            codings.append(canonical)
    return codings


def _split(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), _CHUNK):
        yield bytes(view[start : start + _CHUNK])


def _zlib_stream(chunks: Iterable[bytes], wbits: int | None, partial: bool, name: str) -> Iterator[bytes]:
    """gzip (wbits 31, several members allowed) or deflate (zlib or raw, sniffed)."""
    decomp = None
    pending = b""
    started = False
    for chunk in chunks:
        data = pending + chunk
        pending = b""
        while data:
            if decomp is None:
                if wbits is None:  # deflate: zlib-wrapped per RFC, but raw deflate is common
                    if started:
                        if data.strip(b"\x00") and not partial:
                            raise DecodeError(f"trailing garbage after {name} data")
                        return
                    if len(data) < 2:
                        pending = data
                        break
                    cmf, flg = data[0], data[1]
                    is_zlib = cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0
                    decomp = zlib.decompressobj(15 if is_zlib else -15)
                else:
                    if started:  # after a gzip member: another member, or zero padding
                        if not data.strip(b"\x00"):
                            break
                        if len(data) < 2:
                            pending = data
                            break
                        if data[:2] != b"\x1f\x8b":
                            if partial:
                                return
                            raise DecodeError(f"trailing garbage after {name} data")
                    decomp = zlib.decompressobj(wbits)
                started = True
            try:
                out = decomp.decompress(data, _CHUNK)
                while True:
                    if out:
                        yield out
                    if decomp.eof or not decomp.unconsumed_tail:
                        break
                    out = decomp.decompress(decomp.unconsumed_tail, _CHUNK)
            except zlib.error as exc:
                if partial:
                    return
                raise DecodeError(f"malformed {name} data: {exc}") from None
            if decomp.eof:
                data = decomp.unused_data
                decomp = None
            else:
                data = b""
    if decomp is not None:
        try:
            out = decomp.flush()
        except zlib.error:  # pragma: no cover - flush rarely raises
            out = b""
        if out:
            yield out
        if not decomp.eof and not partial:
            raise DecodeError(f"truncated {name} data")
    elif (pending or not started) and not partial:
        raise DecodeError(f"truncated {name} data")


def _brotli_stream(chunks: Iterable[bytes], partial: bool) -> Iterator[bytes]:
    decomp = brotli.Decompressor()
    try:
        for chunk in chunks:
            out = decomp.process(chunk, output_buffer_limit=_CHUNK)
            if out:
                yield out
            while not decomp.can_accept_more_data():
                out = decomp.process(b"", output_buffer_limit=_CHUNK)
                if not out:
                    break
                yield out
            if decomp.is_finished():
                break
        while not decomp.is_finished():  # output held back by the limit
            out = decomp.process(b"", output_buffer_limit=_CHUNK)
            if not out:
                break
            yield out
    except brotli.error as exc:
        if partial:
            return
        raise DecodeError(f"malformed br data: {exc}") from None
    if not decomp.is_finished() and not partial:
        raise DecodeError("truncated br data")


_ZSTD_FEED = 512
"""Input fed to zstd per call: its decompressobj has no output limit, and 512
input bytes expand to at most about 16 MiB (run-length blocks of 128 KiB)."""


def _zstd_stream(chunks: Iterable[bytes], partial: bool) -> Iterator[bytes]:
    decomp = None
    for chunk in chunks:
        view = memoryview(chunk)
        pos = 0
        while pos < len(chunk):
            if decomp is None:
                decomp = zstandard.ZstdDecompressor().decompressobj()
            piece = view[pos : pos + _ZSTD_FEED]
            pos += len(piece)
            try:
                out = decomp.decompress(piece)
            except zstandard.ZstdError as exc:
                if partial:
                    return
                raise DecodeError(f"malformed zstd data: {exc}") from None
            if out:
                yield out
            if decomp.eof:  # a frame ended: what follows is another frame (or padding)
                rest = decomp.unused_data
                decomp = None
                if rest:
                    pos -= len(rest)
                if not bytes(view[pos:]).strip(b"\x00"):
                    pos = len(chunk)
    if decomp is not None and not partial:
        raise DecodeError("truncated zstd data")


def _layer(coding: str, chunks: Iterable[bytes], partial: bool) -> Iterator[bytes]:
    if coding == "gzip":
        return _zlib_stream(chunks, 31, partial, "gzip")
    if coding == "deflate":
        return _zlib_stream(chunks, None, partial, "deflate")
    if coding == "br":
        return _brotli_stream(chunks, partial)
    return _zstd_stream(chunks, partial)


def iter_decoded(data: bytes, encoding: str | None, *, partial: bool = False) -> Iterator[bytes]:
    """Decoded body as a stream of chunks of at most 64 KiB (see decode_body)."""
    codings = parse_encodings(encoding)
    if not codings:
        if data:
            yield data
        return
    stream: Iterable[bytes] = _split(data)
    # "gzip, br" means gzip was applied first: undo the last coding first.
    for coding in reversed(codings):
        stream = _layer(coding, stream, partial)
    yield from stream


def decode_body(data: bytes, encoding: str | None, *, partial: bool = False, limit: int | None = None) -> bytes:
    """Undo `encoding` (a Content-Encoding value) on `data`.

    partial=True is for truncated bodies: return whatever the prefix decodes
    to instead of raising. `limit` caps the decoded size: DecodeError when
    exceeded (a decompression bomb). Unknown encoding -> DecodeError.
    """
    out = bytearray()
    for chunk in iter_decoded(data, encoding, partial=partial):
        out += chunk
        if limit is not None and len(out) > limit:
            raise DecodeError(f"decoded body exceeds {limit} bytes")
    return bytes(out)


def decode_prefix(data: bytes, encoding: str | None, size: int) -> bytes:
    """The first `size` bytes `data` decodes to, or a chunk more, decoding no further; what a
    cut-off or damaged stream decodes to when it ends first. DecodeError for an unknown coding."""
    out = bytearray()
    for chunk in iter_decoded(data, encoding, partial=True):
        out += chunk
        if len(out) >= size:
            break
    return bytes(out)


def decoded_size(data: bytes, encoding: str | None, *, partial: bool = False, limit: int | None = None) -> int | None:
    """Length of decode_body(...) without holding it; None when undecodable or over `limit`."""
    if not encoding:
        return len(data)
    total = 0
    try:
        for chunk in iter_decoded(data, encoding, partial=partial):
            total += len(chunk)
            if limit is not None and total > limit:
                return None
    except DecodeError:
        return None
    if partial and total == 0 and data:
        return None  # not even the prefix decodes: undecodable, not empty
    return total
