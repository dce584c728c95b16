"""The two hot-path cuts in send/ keep every behaviour (issue 18).

streaming.py takes bytes already buffered by aiohttp without arming a timer (`read_nowait`), and
waits under the time bound only when nothing is buffered and the body has not ended.  Held here:
a stream with no time left is cut even with bytes (and its end, or a reset) buffered, naming the
bound; a provider that resets or closes after its bytes are buffered is a dropped stream; a body
whose bytes all arrive in one segment with the FIN completes whole, its decoder finished (a cut
gzip body still refused).

client.py builds the connect timeout once per client: a config reload (new Upstream objects, new
clients) gives the changed timeout.* to the very next attempt, in both directions.

Providers are real servers on 127.0.0.1 port 0 (raw sockets where the exact bytes and their timing
matter), read through a real aiohttp ClientSession or the real egress app.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
import time

import aiohttp
import pytest
import yaml
from aiohttp import web

from egress.errors import UnexpectedContentEncoding, UpstreamTimeout, UpstreamUnavailable
from tests.conftest import base_config
from tests.fakes import RawProvider, each_closed
from tests.unit.test_streaming_mutants import drain, open_stream

TEXT = bytes(range(256)) * 80  # 20480 bytes
GZ = gzip.compress(TEXT)


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def head(*fields: str, status: str = "200 OK") -> bytes:
    return (f"HTTP/1.1 {status}\r\n" + "".join(f"{f}\r\n" for f in fields) + "\r\n").encode()


def chunked(*parts: bytes, last: bool = True) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    return out + (b"0\r\n\r\n" if last else b"")


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the peer gets a TCP RST, not a FIN."""
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@pytest.fixture
async def opened():
    """stream(script, ...): a RawProvider running `script(reader, writer, go)` (go: an Event the
    reader sets from its on_piece), the response opened and wrapped as egress does."""
    sessions: list[aiohttp.ClientSession] = []
    async with each_closed(lambda script: RawProvider(script).start()) as make:
        async def stream(script, *, clock=time.monotonic, first_byte_in: float = 5.0, **over):
            go = asyncio.Event()

            async def run(reader, writer):
                await script(reader, writer, go)

            fake = await make(run)
            return await open_stream(fake.url, sessions, clock=clock, first_byte_in=first_byte_in, **over), go

        yield stream
        for s in sessions:
            await s.close()




def whole(answer: bytes):
    """All of `answer` in one write, then the FIN."""
    async def script(reader, writer, go):
        writer.write(answer)
        await writer.drain()
    return script


def then(first: bytes, rest: bytes, *, how: str):
    """`first`; once the reader has its first piece (go), `rest`, then a FIN ("close") or RST ("reset")."""
    async def script(reader, writer, go):
        writer.write(first)
        await writer.drain()
        if rest is None:
            await asyncio.sleep(0.05)
        else:
            await go.wait()
            writer.write(rest)
            await writer.drain()
            await asyncio.sleep(0.05)  # rest reaches the peer before the connection goes
        if how == "reset":
            reset(writer)
        else:
            writer.close()
    return script


async def buffered() -> None:
    await asyncio.sleep(0.2)  # what the provider sent (and its end) is in the client's buffer


# ------------------------------------------------------------------ no time left, bytes buffered

CHUNKED = "Transfer-Encoding: chunked"

# id, script, timeout settings, first_byte_in, expire the stream after the first piece?, bound, pieces
NO_TIME = [
    ("first-byte-deadline-over-whole-body-and-fin-buffered",
     whole(head("Content-Length: 5") + b"early"), {}, 0.0, False, "first_byte", []),
    ("first-byte-deadline-negative-whole-body-buffered",
     whole(head(CHUNKED) + chunked(b"early")), {}, -1.0, False, "first_byte", []),
    ("first-byte-deadline-over-with-a-reset-buffered",
     then(head(CHUNKED) + chunked(b"part", last=False), None, how="reset"), {}, 0.0, False, "first_byte", []),
    ("stream-budget-over-next-chunk-and-end-buffered",
     then(head(CHUNKED) + chunked(b"first", last=False), chunked(b"late"), how="close"),
     {"idle": 5, "stream": 10}, 5.0, True, "stream", [b"first"]),
    ("stream-budget-over-with-a-reset-buffered",
     then(head(CHUNKED) + chunked(b"first", last=False), chunked(b"late", last=False), how="reset"),
     {"idle": 5, "stream": 10}, 5.0, True, "stream", [b"first"]),
]


@pytest.mark.parametrize("script,timeout,first_byte_in,expire,bound,expected", [c[1:] for c in NO_TIME],
                         ids=[c[0] for c in NO_TIME])
async def test_no_time_left_cuts_even_with_bytes_buffered(script, timeout, first_byte_in, expire, bound,
                                                          expected, opened):
    clock = Clock()
    stream, go = await opened(script, clock=clock, first_byte_in=first_byte_in,
                              timeout={"total": 10, **timeout})
    await buffered()

    async def on_piece(piece):
        if expire:
            clock.t = 1010.0  # no time left of timeout.stream (10 s from the headers at 1000)
        go.set()
        await buffered()

    pieces, exc = await drain(stream, on_piece)
    assert isinstance(exc, UpstreamTimeout) and exc.reason == "upstream_timeout"
    assert exc.extra == {"bound": bound}
    assert pieces == expected


# ------------------------------------------------------------------ the provider drops a buffered stream

# id, script, pieces yielded before the drop is reported
DROPS = [
    ("reset-after-a-chunk-buffered-before-the-first-read",
     then(head(CHUNKED) + chunked(b"part", last=False), None, how="reset"), []),
    ("reset-after-the-next-chunk-is-buffered",
     then(head(CHUNKED) + chunked(b"first", last=False), chunked(b"second", last=False), how="reset"),
     [b"first"]),
    ("fin-mid-chunked-body-next-chunk-buffered",
     then(head(CHUNKED) + chunked(b"first", last=False), chunked(b"second", last=False), how="close"),
     [b"first"]),
    ("fin-short-of-the-content-length",
     then(head("Content-Length: 100") + b"first", b"second", how="close"), [b"first"]),
]


@pytest.mark.parametrize("script,expected", [c[1:] for c in DROPS], ids=[c[0] for c in DROPS])
async def test_a_drop_after_buffered_bytes_is_a_dropped_stream(script, expected, opened):
    stream, go = await opened(script)
    await buffered()

    async def on_piece(piece):
        go.set()
        await buffered()  # the next bytes and the drop are both in by now

    pieces, exc = await drain(stream, on_piece)
    assert type(exc) is UpstreamUnavailable and exc.reason == "upstream_unavailable"
    assert isinstance(exc.__cause__, aiohttp.ClientError)  # aiohttp's error, translated
    assert pieces == expected


# ------------------------------------------------------------------ every byte in one segment with the FIN

CUT_GZ = GZ[:-8]  # without its trailer (CRC32, ISIZE)

# id, the whole answer, keep wire?, error (None: completes), decoded bytes expected, wire body bytes
ONE_SEGMENT = [
    ("identity-content-length", head("Content-Length: 5") + b"whole", False, None, b"whole", b"whole"),
    ("identity-close-delimited", head("Connection: close") + b"whole", False, None, b"whole", b"whole"),
    ("identity-chunked", head(CHUNKED) + chunked(b"who", b"le"), False, None, b"whole", b"whole"),
    ("gzip-content-length", head("Content-Encoding: gzip", f"Content-Length: {len(GZ)}") + GZ, False, None,
     TEXT, GZ),
    ("gzip-chunked-kept-wire", head("Content-Encoding: gzip", CHUNKED) + chunked(GZ[:99], GZ[99:]), True, None,
     TEXT, GZ),
    ("gzip-cut-before-its-trailer-refused",
     head("Content-Encoding: gzip", f"Content-Length: {len(CUT_GZ)}") + CUT_GZ, False, UnexpectedContentEncoding,
     TEXT, CUT_GZ),
    ("gzip-cut-close-delimited-refused", head("Content-Encoding: gzip", "Connection: close") + CUT_GZ, True,
     UnexpectedContentEncoding, TEXT, CUT_GZ),
    ("empty-body-in-an-unsupported-coding-refused", head("Content-Encoding: br", "Content-Length: 0"), False,
     UnexpectedContentEncoding, b"", b""),
]


@pytest.mark.parametrize("answer,keep,error,decoded,wire", [c[1:] for c in ONE_SEGMENT],
                         ids=[c[0] for c in ONE_SEGMENT])
async def test_a_body_buffered_whole_with_its_end(answer, keep, error, decoded, wire, opened):
    stream, _ = await opened(whole(answer), timeout={"idle": 0.5})
    await buffered()
    if keep:
        stream.keep_wire = []
    pieces, exc = await drain(stream)
    if error is None:
        assert exc is None
    else:  # the decoder was finished at the end: a cut or unsupported coding is refused there
        assert type(exc) is error and exc.reason == "unexpected_content_encoding"
    assert b"".join(pieces) == decoded and stream.decoded_bytes == len(decoded)
    assert stream.wire_bytes == len(wire)
    if keep:
        assert b"".join(stream.keep_wire) == wire


# ------------------------------------------------------------------ a reload's timeouts, the next attempt



def pay(url: str, timeout: dict) -> dict:
    return base_config([{"name": "pay", "url": url, "allow_private_addresses": True, "retry": {"attempts": 1},
                         "timeout": timeout}])


async def timed(handle) -> tuple[int, str | None, float]:
    started = time.monotonic()
    async with handle.request("GET", "/pay/x") as resp:
        await resp.read()
        return resp.status, resp.headers.get("X-Egress-Error"), time.monotonic() - started


async def slow(request: web.BaseRequest) -> web.Response:
    await asyncio.sleep(0.8)
    return web.json_response({"ok": True})


# id, timeout before, timeout after, (status, reason, seconds at least, below) before, and after
RELOADS = [
    ("connect-longer-after-reload", {"connect": 0.2, "total": 10}, {"connect": 1.2, "total": 10},
     (504, "upstream_timeout", 0.15, 1.0), (504, "upstream_timeout", 1.1, 4)),
    ("connect-shorter-after-reload", {"connect": 1.2, "total": 10}, {"connect": 0.2, "total": 10},
     (504, "upstream_timeout", 1.1, 4), (504, "upstream_timeout", 0.15, 1.0)),
    ("total-longer-after-reload", {"connect": 0.2, "total": 0.3}, {"connect": 0.2, "total": 3},
     (504, "upstream_timeout", 0.25, 0.75), (200, None, 0.75, 3)),
    ("total-shorter-after-reload", {"connect": 0.2, "total": 3}, {"connect": 0.2, "total": 0.3},
     (200, None, 0.75, 3), (504, "upstream_timeout", 0.25, 0.75)),
]


@pytest.mark.parametrize("before,after,seen_before,seen_after", [c[1:] for c in RELOADS], ids=[c[0] for c in RELOADS])
async def test_a_reload_gives_its_timeouts_to_the_next_attempt(before, after, seen_before, seen_after, proxy,
                                                               provider, unanswered_port, tmp_path):
    if before["connect"] != after["connect"]:  # a connection attempt that hangs: timeout.connect ends it
        url = f"http://127.0.0.1:{unanswered_port}"
    else:  # a provider that answers after 0.8 s: timeout.total decides
        url = (await provider(slow)).url
    handle = await proxy(pay(url, before))
    for seen, doc in ((seen_before, None), (seen_after, pay(url, after))):
        if doc is not None:
            config = tmp_path / "egress.yaml"
            config.write_text(yaml.safe_dump(doc))
            assert await handle.state.reload(config) == []
        status, reason, took = await timed(handle)
        assert (status, reason) == seen[:2]
        assert seen[2] <= took < seen[3], f"took {took:.2f} s"
