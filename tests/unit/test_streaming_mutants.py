"""send/streaming.py held exactly: the byte caps on a streamed body (wire bytes against
max_response_bytes, cut at the limit +1 byte, never at the limit), the counts the relays report,
which time bound cuts a stream (`extra['bound']`: first_byte, idle, stream; ties and an expired
budget with bytes already buffered), the end of a coded body, what a wire-keeping reader is shown,
the breaker outcome (once), and the provider connection (pooled after release, dropped by close).

Providers are real aiohttp apps on 127.0.0.1 port 0, read through a real aiohttp ClientSession;
time is real, and an injected clock pins the exact ties.
"""

from __future__ import annotations

import asyncio
import gzip
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from egress.config import settings_from_dict
from egress.errors import EgressError, ResponseTooLarge, UnexpectedContentEncoding, UpstreamTimeout, \
    UpstreamUnavailable
from egress.send.streaming import SLICE, UpstreamStream
from egress.stream_respond import settle_unended
from tests.stream_fakes import Script


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Opened:
    stream: UpstreamStream
    session: aiohttp.ClientSession
    url: str
    peers: list[int]  # the provider's view: the client port of each request it served


@pytest.fixture
async def opened(provider):
    """Open one streamed response from `handler` (a Script's, or any) and wrap it as egress does."""
    sessions = []

    async def make(handler, *, clock=time.monotonic, first_byte_in: float = 5.0, **over) -> Opened:
        peers: list[int] = []

        async def serve(request: web.BaseRequest) -> web.StreamResponse:
            peers.append(request.transport.get_extra_info("peername")[1])
            return await handler(request)

        fake = await provider(serve)
        stream = await open_stream(fake.url, sessions, clock=clock, first_byte_in=first_byte_in, **over)
        return Opened(stream, sessions[-1], fake.url + "/s", peers)

    yield make
    for s in sessions:
        await s.close()


async def open_stream(url: str, sessions: list, *, clock, first_byte_in: float, **over) -> UpstreamStream:
    """GET url/s on a new session (appended to `sessions`, closed by the caller), wrapped as egress does."""
    doc = {"name": "ai", "url": url, "allow_private_addresses": True, **over}
    up = settings_from_dict({"upstreams": [doc]}, base_dir=Path("."), environ={}).upstreams[0]
    session = aiohttp.ClientSession(auto_decompress=False)
    sessions.append(session)
    resp = await session.get(url + "/s")
    return UpstreamStream(resp, up, first_byte_by=clock() + first_byte_in, clock=clock)


async def drain(stream: UpstreamStream, on_piece=None) -> tuple[list[bytes], BaseException | None]:
    """Every piece the stream yields, and the error that ended it (None: it completed)."""
    pieces: list[bytes] = []
    try:
        async with asyncio.timeout(5):  # a broken bound fails here, not by hanging the suite
            async for piece in stream.chunks():
                pieces.append(piece)
                if on_piece:
                    await on_piece(piece)
    except (EgressError, TimeoutError) as exc:
        return pieces, exc
    return pieces, None


def gzip_with_comment(data: bytes, comment: int) -> bytes:
    """A gzip member whose header carries a `comment`-byte FCOMMENT field (decodes to nothing)."""
    head = b"\x1f\x8b\x08\x10\x00\x00\x00\x00\x00\xff" + b"c" * comment + b"\x00"
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return head + packer.compress(data) + packer.flush() + struct.pack("<II", zlib.crc32(data), len(data))


TEXT = bytes(range(256)) * 80  # 20480 bytes, compressible but not trivially
GZ = gzip.compress(TEXT)


# ------------------------------------------------------------------ max_response_bytes, and the counts

# id, wire steps, Content-Encoding, max_response_bytes, cut?, decoded bytes expected
CAPS = [
    ("identity-exactly-at-the-cap-completes", [b"a" * 100, b"b" * 100, b"c" * 50], None, 250, False, 250),
    ("identity-one-byte-over-the-cap-is-cut", [b"a" * 100, b"b" * 100, b"c" * 50], None, 249, True, 200),
    ("gzip-counts-wire-bytes-not-decoded-ones", [GZ[:300], GZ[300:600], GZ[600:]], "gzip", len(GZ), False,
     len(TEXT)),
    ("gzip-one-wire-byte-over-is-cut", [GZ[:300], GZ[300:600], GZ[600:]], "gzip", len(GZ) - 1, True, None),
]


@pytest.mark.parametrize("steps,coding,cap,cut,decoded", [c[1:] for c in CAPS], ids=[c[0] for c in CAPS])
async def test_wire_bytes_are_capped_over_the_whole_stream(steps, coding, cap, cut, decoded, opened):
    script = Script([(0.05, s) for s in steps], content_type="application/octet-stream",
                    headers={"Content-Encoding": coding} if coding else {})
    o = await opened(script.handler, limits={"max_response_bytes": cap})
    pieces, exc = await drain(o.stream)
    wire = b"".join(steps)
    assert o.stream.wire_bytes == len(wire)  # every wire byte counted, across chunks
    if cut:
        assert isinstance(exc, ResponseTooLarge) and exc.reason == "response_too_large"
        assert len(b"".join(pieces)) < len(TEXT if coding else wire)  # the last chunk never went out
        if decoded is not None:
            assert o.stream.decoded_bytes == decoded == len(b"".join(pieces))
    else:
        assert exc is None
        assert b"".join(pieces) == (TEXT if coding else wire)
        assert o.stream.decoded_bytes == decoded  # what the relays report as response_bytes


# ------------------------------------------------------------------ which time bound cuts the stream

SILENT = [(5.0, b"never")]
ONE_THEN_SILENT = [(0.0, b"first"), (5.0, b"never")]

# id, script steps, forever, timeout settings, first_byte_in, expected bound, seconds (at least, below)
BOUNDS = [
    ("silent-idle-shorter-than-the-first-byte-deadline", SILENT, False, {"idle": 0.2}, 5.0, "idle", (0.15, 2)),
    ("silent-first-byte-deadline-shorter-than-idle", SILENT, False, {"idle": 5}, 0.2, "first_byte", (0.15, 2)),
    ("gap-after-the-first-byte-is-idle", ONE_THEN_SILENT, False, {"idle": 0.3}, 0.2, "idle", (0.25, 2)),
    ("trickle-past-timeout.stream", [(0.05, b":")], True, {"idle": 1, "stream": 0.5}, 5.0, "stream", (0.45, 2)),
]


@pytest.mark.parametrize("steps,forever,timeout,first_byte_in,bound,within", [c[1:] for c in BOUNDS],
                         ids=[c[0] for c in BOUNDS])
async def test_the_bound_that_fires_is_named(steps, forever, timeout, first_byte_in, bound, within, opened):
    o = await opened(Script(steps, forever=forever).handler, first_byte_in=first_byte_in,
                     timeout={"total": 10, **timeout})
    started = time.monotonic()
    pieces, exc = await drain(o.stream)
    took = time.monotonic() - started
    assert isinstance(exc, UpstreamTimeout) and exc.reason == "upstream_timeout"
    assert exc.extra == {"bound": bound}
    assert within[0] <= took < within[1]


async def test_after_the_first_byte_only_idle_and_stream_bound_it(opened):
    """The first-byte deadline (timeout.total) ends at the first byte: a stream of short gaps outlives it."""
    script = Script([(0.0, b"a")] + [(0.1, b"b")] * 8)
    o = await opened(script.handler, first_byte_in=0.3, timeout={"idle": 1})
    arrived = []

    async def note(piece):
        arrived.append(time.monotonic())

    before = time.monotonic()
    pieces, exc = await drain(o.stream, note)
    assert exc is None and b"".join(pieces) == b"a" + b"b" * 8
    assert before <= o.stream.first_byte_at <= arrived[0]  # when the first byte came, kept after it


async def test_timeout_stream_counts_from_the_response_headers(opened):
    clock = Clock()
    o = await opened(Script(ONE_THEN_SILENT).handler, clock=clock, timeout={"idle": 5, "stream": 10})
    assert o.stream.started == 1000.0

    async def late(piece):
        clock.t = 1009.875  # 0.125 s of timeout.stream left, measured from the headers

    pieces, exc = await drain(o.stream, late)
    assert pieces == [b"first"] and exc.extra == {"bound": "stream"}


# Exact ties, with an injected clock: a bound equal to timeout.idle is reported as idle; an expired
# budget (0 s left) cuts at once, even with the next bytes already buffered.
async def test_a_first_byte_deadline_equal_to_idle_is_named_idle(opened):
    o = await opened(Script(SILENT).handler, clock=Clock(), first_byte_in=0.25, timeout={"idle": 0.25})
    pieces, exc = await drain(o.stream)
    assert pieces == [] and isinstance(exc, UpstreamTimeout) and exc.extra == {"bound": "idle"}


async def test_a_stream_budget_equal_to_idle_is_named_idle(opened):
    clock = Clock()
    o = await opened(Script(ONE_THEN_SILENT).handler, clock=clock, timeout={"idle": 0.25, "stream": 10})

    async def late(piece):
        clock.t = 1009.75  # exactly timeout.idle of timeout.stream left

    pieces, exc = await drain(o.stream, late)
    assert pieces == [b"first"] and isinstance(exc, UpstreamTimeout) and exc.extra == {"bound": "idle"}


async def test_an_expired_first_byte_deadline_cuts_with_bytes_buffered(opened):
    o = await opened(Script([(0.0, b"early")]).handler, clock=Clock(), first_byte_in=0.0)
    await asyncio.sleep(0.2)  # the body (and its end) is in the client's buffer by now
    pieces, exc = await drain(o.stream)
    assert pieces == [] and isinstance(exc, UpstreamTimeout) and exc.extra == {"bound": "first_byte"}


async def test_an_expired_stream_budget_cuts_with_bytes_buffered(opened):
    clock = Clock()
    o = await opened(Script([(0.0, b"first"), (0.05, b"late")]).handler, clock=clock,
                     timeout={"idle": 5, "stream": 10})

    async def expire(piece):
        clock.t = 1010.0  # no time left of timeout.stream
        await asyncio.sleep(0.2)  # "late" and the end of the body are buffered

    pieces, exc = await drain(o.stream, expire)
    assert pieces == [b"first"] and isinstance(exc, UpstreamTimeout) and exc.extra == {"bound": "stream"}


# ------------------------------------------------------------------ the end of the body, and a drop

async def truncated_gzip(request):
    resp = web.StreamResponse(headers={"Content-Encoding": "gzip"})
    await resp.prepare(request)
    await resp.write(GZ[:-8])  # without its trailer (CRC32, ISIZE)
    await resp.write_eof()
    return resp


async def empty_br(request):
    return web.Response(body=b"", headers={"Content-Encoding": "br"})


async def dropped(request):
    resp = web.StreamResponse()
    await resp.prepare(request)
    await resp.write(b"part")
    await asyncio.sleep(0.05)
    request.transport.close()  # mid-body, chunked encoding unfinished
    return resp


# id, handler, error, reason, decoded before it
ENDINGS = [
    ("gzip-cut-before-its-trailer", truncated_gzip, UnexpectedContentEncoding, "unexpected_content_encoding", TEXT),
    ("empty-body-in-an-unsupported-coding", empty_br, UnexpectedContentEncoding, "unexpected_content_encoding", b""),
    ("provider-drops-the-connection-mid-body", dropped, UpstreamUnavailable, "upstream_unavailable", b"part"),
]


@pytest.mark.parametrize("handler,error,reason,before", [c[1:] for c in ENDINGS], ids=[c[0] for c in ENDINGS])
async def test_the_end_of_the_body_is_checked(handler, error, reason, before, opened):
    o = await opened(handler)
    pieces, exc = await drain(o.stream)
    assert type(exc) is error and exc.reason == reason
    assert b"".join(pieces) == before


# ------------------------------------------------------------------ what a wire-keeping reader sees

@pytest.mark.parametrize("keep", [True, False], ids=["keeping-wire-every-slice-is-yielded",
                                                     "not-keeping-no-empty-piece-is-yielded"])
async def test_a_wire_keeper_sees_every_slice_others_only_output(keep, opened):
    """A header that decodes to nothing still reaches a reader keeping wire bytes (the pass-through
    relay counts wire_bytes per piece to decide when its window is full); others get output only."""
    wire = gzip_with_comment(TEXT, 3 * SLICE)
    script = Script([(0.0, wire)], content_type="application/octet-stream", headers={"Content-Encoding": "gzip"})
    o = await opened(script.handler)
    if keep:
        o.stream.keep_wire = []
    pieces, exc = await drain(o.stream)
    assert exc is None and b"".join(pieces) == TEXT
    assert (b"" in pieces) is keep
    assert o.stream.keep_wire is None or b"".join(o.stream.keep_wire) == wire


# ------------------------------------------------------------------ the breaker outcome, the connection

async def test_the_outcome_is_told_once_and_only_to_whoever_asked(opened):
    o = await opened(Script([(0.0, b"x")]).handler)
    o.stream.settle(None)  # nobody counts this stream yet: nothing happens
    told = []
    o.stream.on_settle(told.append)
    cut = UpstreamTimeout("cut", extra={"bound": "idle"})
    o.stream.settle(cut)
    o.stream.settle(None)
    assert told == [cut]


async def test_release_returns_the_connection_and_the_outcome_stays_the_readers(opened):
    o = await opened(Script([(0.0, b"whole")]).handler)
    told = []
    o.stream.on_settle(told.append)
    pieces, exc = await drain(o.stream)
    assert exc is None and pieces == [b"whole"]
    o.stream.release()
    assert o.stream.closed
    settle_unended(o.stream)  # released: not an unended stream, no failure is counted for it
    assert told == []
    async with o.session.get(o.url) as again:
        await again.read()
    assert o.peers[0] == o.peers[1]  # the same connection served the next request


async def test_close_drops_the_connection_mid_stream_and_for_good(opened):
    script = Script([(0.0, b"x"), (0.02, b"y")], forever=True)
    o = await opened(script.handler)
    told = []
    o.stream.on_settle(told.append)
    stream_gen = o.stream.chunks()
    assert await stream_gen.__anext__() == b"x"
    o.stream.close()
    assert o.stream.closed
    settle_unended(o.stream)  # closed by its reader, who settles it: nothing counted here
    assert told == []
    o.stream.release()  # after close: nothing goes back to the pool
    await stream_gen.aclose()
    for _ in range(50):
        if script.closed_at is not None:
            break
        await asyncio.sleep(0.02)
    assert script.closed_at is not None  # the provider saw its connection go
    async with o.session.get(o.url) as again:
        assert again.status == 200
        again.close()
    assert o.peers[0] != o.peers[1]  # a new connection for the next request
