"""Body decoding and request-body limits, the cases that hold what scripts/mutants found unheld.

Each names the breakage it catches: a body of exactly the cap refused, a second deflate stream
accepted after the first, raw deflate taken for zlib-wrapped (or the reverse), a zlib stream
accepted under a `gzip` label, a bomb inflated whole before the cap is looked at, decoded bytes
held back from a stream until the next chunk, a request body cut, joined wrong or let past its cap.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tracemalloc
import zlib

import pytest
from aiohttp import web

from egress.errors import RequestTooLarge, ResponseTooLarge, UnexpectedContentEncoding
from egress.send.bodies import CHUNK, StreamDecoder, decode, read_request_body


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def stored(first: int, data: bytes) -> bytes:
    """Raw deflate: one non-final stored block whose header byte is `first` (bits 3-7 are padding
    an inflater skips), then an empty final stored block."""
    n = len(data)
    return bytes([first]) + n.to_bytes(2, "little") + (n ^ 0xFFFF).to_bytes(2, "little") + data \
        + b"\x01\x00\x00\xff\xff"


# a raw stream whose first byte says "method 8" like a zlib header, but whose first two bytes
# fail the zlib header check (0x0805 % 31 != 0): raw, and decoded as raw
RAW_LIKE_METHOD_8 = stored(0x08, b"hello")
# a raw stream whose first two bytes pass the header check (0x001f % 31 == 0) but not method 8
RAW_LIKE_CHECKSUM = stored(0x00, b"x" * 31)

DECODE = [
    # id, fields, wire bytes, cap, decoded or the error raised (with its reason)
    ("gzip-exactly-the-cap", ["gzip"], gz(bytes(100)), 100, bytes(100)),
    ("gzip-one-over-the-cap", ["gzip"], gz(bytes(101)), 100, ResponseTooLarge),
    ("deflate-exactly-the-cap", ["deflate"], zlib.compress(bytes(100)), 100, bytes(100)),
    ("deflate-two-byte-empty-raw-stream", ["deflate"], zlib.compress(b"")[2:-4], 100, b""),
    ("deflate-second-stream-after-the-first", ["deflate"], zlib.compress(b"a") + zlib.compress(b"b"), 100,
     UnexpectedContentEncoding),
    ("deflate-garbage-after-the-stream", ["deflate"], zlib.compress(b"a") + b"\x00", 100, UnexpectedContentEncoding),
    ("raw-deflate-whose-first-byte-says-method-8", ["deflate"], RAW_LIKE_METHOD_8, 100, b"hello"),
    ("raw-deflate-whose-header-checksum-passes", ["deflate"], RAW_LIKE_CHECKSUM, 100, b"x" * 31),
    ("zlib-stream-labelled-gzip", ["gzip"], zlib.compress(b"z"), 100, UnexpectedContentEncoding),
    ("gzip-then-non-gzip-bytes", ["gzip"], gz(b"a") + b"\x00\x00\x00", 100, UnexpectedContentEncoding),
    ("unsupported-coding-empty-body", ["br"], b"", 100, UnexpectedContentEncoding),
    ("unsupported-coding-outside-a-real-gzip", ["gzip", "br"], gz(b"a"), 100, UnexpectedContentEncoding),
]
REASONS = {ResponseTooLarge: "response_too_large", UnexpectedContentEncoding: "unexpected_content_encoding"}


@pytest.mark.parametrize("step", [1, 7, CHUNK], ids=["byte-by-byte", "7-bytes", "whole"])
@pytest.mark.parametrize("case", DECODE, ids=[c[0] for c in DECODE])
def test_decoding(case, step):
    _, fields, wire, cap, expected = case
    decoder = StreamDecoder(fields, cap)

    def run() -> bytes:
        return b"".join(decoder.feed(wire[i:i + step]) for i in range(0, len(wire), step)) + decoder.finish()

    if isinstance(expected, bytes):
        assert run() == expected
        assert decode(wire, fields, cap) == expected
    else:
        with pytest.raises(expected) as info:
            run()
        assert info.value.reason == REASONS[expected]
        with pytest.raises(expected):
            decode(wire, fields, cap)


STREAMS = [
    ("gzip-zeros", ["gzip"], gz(bytes(2 * CHUNK)), 64),  # a feed ends with exactly CHUNK out and more pending
    ("gzip-text", ["gzip"], gz(b"".join(b"event %d\n" % i for i in range(20000))), 333),
    ("deflate-zeros", ["deflate"], zlib.compress(bytes(3 * CHUNK)), 64),
]


@pytest.mark.parametrize("case", STREAMS, ids=[c[0] for c in STREAMS])
def test_each_feed_gives_everything_its_input_completes(case):
    """A stream's decoded bytes are never held back waiting for the next chunk (an SSE event
    completed by chunk k is forwarded after chunk k), and finish() has nothing left to give."""
    _, fields, wire, step = case
    wbits = 31 if fields == ["gzip"] else 15
    decoder = StreamDecoder(fields, 1 << 30)
    got = b""
    for end in range(step, len(wire) + step, step):
        got += decoder.feed(wire[end - step:end])
        assert got == zlib.decompressobj(wbits).decompress(wire[:end]), end
    assert decoder.finish() == b""


def test_a_bomb_is_never_inflated_past_the_cap_in_memory():
    """64 MiB of zeros in one 64 KiB chunk, cap 1 MiB: refused with at most a few MiB allocated."""
    bomb = gz(bytes(64 << 20))[:CHUNK]
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge) as info:
            StreamDecoder(["gzip"], 1 << 20).feed(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.reason == "response_too_large"
    assert peak < 8 << 20, peak


# --- read_request_body over a real socket -------------------------------------------------------

async def _echo_size(request: web.Request) -> web.Response:
    cap = int(request.query["cap"])
    try:
        body = await read_request_body(request.content, request.content_length, cap)
    except RequestTooLarge as exc:
        return web.json_response({"reason": exc.reason}, status=exc.status)
    return web.json_response({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})


async def _chunked(blob: bytes, size: int):
    for i in range(0, len(blob), size):
        yield blob[i:i + size]


BLOB = os.urandom(200_000)
REQUESTS = [
    # id, body length, cap, chunked (no Content-Length), expected status, reason or None
    ("empty", 0, 10, False, 200, None),
    ("declared-exactly-the-cap", 1000, 1000, False, 200, None),
    ("declared-one-over-the-cap", 1001, 1000, False, 413, "request_too_large"),
    ("chunked-exactly-the-cap", 1000, 1000, True, 200, None),
    ("chunked-one-over-the-cap", 1001, 1000, True, 413, "request_too_large"),
    ("many-reads-intact", 200_000, 1 << 20, True, 200, None),
    ("many-reads-each-under-the-cap-together-over", 130_000, 100_000, True, 413, "request_too_large"),
]


@pytest.mark.parametrize("case", REQUESTS, ids=[c[0] for c in REQUESTS])
async def test_read_request_body(aiohttp_client, case):
    _, length, cap, chunked, status, reason = case
    app = web.Application()
    app.router.add_post("/", _echo_size)
    client = await aiohttp_client(app)
    blob = BLOB[:length]
    data = _chunked(blob, 4096) if chunked else blob
    async with client.post("/", params={"cap": str(cap)}, data=data) as resp:
        answer = await resp.json()
    assert resp.status == status
    if reason is None:
        assert answer == {"size": length, "sha256": hashlib.sha256(blob).hexdigest()}
    else:
        assert answer == {"reason": reason}
