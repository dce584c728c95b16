"""Hostile providers at the HTTP layer (OWASP API10:2023): bombs, endless or broken bodies,
trickled, oversized or malformed heads, upgrades, odd statuses, header injection.

Each named case runs the real proxy against a real socket on 127.0.0.1 and asserts the
status, the reason, that the provider was reached, that a following normal request through
the same egress works, and that this process's memory stayed bounded.
"""

from __future__ import annotations

import asyncio
import time
import zlib

import aiohttp
import pytest
import yaml
from aiohttp import web

from tests.conftest import base_config
from tests.fakes import FakeProvider, tls_server
from tests.hostile.conftest import (
    MiB,
    assert_still_serves,
    good_upstream,
    hostile_upstream,
    RssWatch,
    read_problem,
    rss_bytes,
    send_bytes,
)

BOMB_BYTES = 512 * MiB  # inflated size; ~500 KiB on the wire (1,000:1)
_bombs: dict[int, bytes] = {}


def bomb(wbits: int) -> bytes:
    """512 MiB of zeros compressed ~1,030:1 (Z_RLE is fast on zeros); built once per session."""
    if wbits not in _bombs:
        c = zlib.compressobj(6, zlib.DEFLATED, wbits, 9, zlib.Z_RLE)
        zeros = bytes(MiB)
        _bombs[wbits] = b"".join([c.compress(zeros) for _ in range(BOMB_BYTES // MiB)] + [c.flush()])
    return _bombs[wbits]


def bomb_handler(encoding: str, wbits: int):
    async def handler(request):
        return web.Response(body=bomb(wbits), headers={"Content-Encoding": encoding,
                                                       "Content-Type": "application/json"})
    return handler


# ------------------------------------------------------------------ raw scripts


def head(status_line: bytes, *headers: bytes) -> bytes:
    return status_line + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


async def trickle_head(reader, writer):
    """A valid status line and headers, one byte every 50 ms: never completes in time."""
    for byte in head(b"HTTP/1.1 200 OK", b"Content-Type: application/json", b"Content-Length: 2") * 50:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.05)


async def half_body(reader, writer):
    writer.write(head(b"HTTP/1.1 200 OK", b"Content-Type: application/json", b"Content-Length: 100000"))
    writer.write(b'{"id": "' + b"a" * 40000)
    await writer.drain()
    await asyncio.sleep(0.1)  # then the connection closes mid-body


ENDLESS_WRITTEN: list[int] = []


async def endless_chunked(reader, writer):
    """Chunks of 64 KiB forever; stops only when egress hangs up."""
    writer.write(head(b"HTTP/1.1 200 OK", b"Content-Type: application/json", b"Transfer-Encoding: chunked"))
    chunk = b"10000\r\n" + b"7" * 0x10000 + b"\r\n"
    written = 0
    try:
        while written < 4096 * MiB:  # a bound so a broken egress cannot hang the suite forever
            writer.write(chunk)
            await writer.drain()
            written += len(chunk)
    finally:
        ENDLESS_WRITTEN.append(written)


async def idle_forever(reader, writer):
    await asyncio.sleep(30)


RAW = [
    # id, script, upstream overrides, status, reason, max seconds
    ("upgrade-101-answer",
     send_bytes(head(b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket", b"Connection: Upgrade")
                + b"raw-bytes-after-upgrade", linger=0.3), {}, 502, "upstream_unavailable", 2),
    ("status-999",
     send_bytes(head(b"HTTP/1.1 999 Weird", b"Content-Length: 2") + b"ok"), {}, 502, "upstream_unavailable", 2),
    ("headers-trickled-byte-by-byte", trickle_head, {"timeout": {"connect": 1, "total": 1}}, 504,
     "upstream_timeout", 3),
    ("no-answer-at-all", idle_forever, {"timeout": {"connect": 1, "total": 1}}, 504, "upstream_timeout", 3),
    ("body-stops-halfway", half_body, {}, 502, "upstream_unavailable", 2),
    ("header-line-too-long",
     send_bytes(head(b"HTTP/1.1 200 OK", b"Content-Length: 2", b"X-Big: " + b"a" * 20000) + b"ok"), {}, 502,
     "response_too_large", 2),
    ("too-many-headers",
     send_bytes(head(b"HTTP/1.1 200 OK", b"Content-Length: 2", *[b"X-H%d: v" % i for i in range(300)]) + b"ok"),
     {}, 502, "response_too_large", 2),
    ("bare-cr-inside-header-value",
     send_bytes(head(b"HTTP/1.1 200 OK", b"Content-Length: 2", b"X-A: a\rSet-Cookie: sid=evil") + b"ok"), {}, 502,
     "upstream_unavailable", 2),
    ("nul-inside-header-value",
     send_bytes(head(b"HTTP/1.1 200 OK", b"Content-Length: 2", b"X-A: a\x00b") + b"ok"), {}, 502,
     "upstream_unavailable", 2),
    ("response-smuggling-cl-and-te",
     send_bytes(head(b"HTTP/1.1 200 OK", b"Content-Length: 5", b"Transfer-Encoding: chunked")
                + b"2\r\nok\r\n0\r\n\r\n"), {}, 502, "upstream_unavailable", 2),
    ("response-smuggling-two-content-lengths",
     send_bytes(head(b"HTTP/1.1 200 OK", b"Content-Length: 2", b"Content-Length: 30") + b"ok"), {}, 502,
     "upstream_unavailable", 2),
    ("not-http-at-all", send_bytes(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"), {}, 502, "upstream_unavailable", 2),
    ("declared-length-over-cap",
     send_bytes(head(b"HTTP/1.1 200 OK", b"Content-Length: 999999999999")), {}, 502, "response_too_large", 2),
]


@pytest.mark.parametrize("case", RAW, ids=[c[0] for c in RAW])
async def test_hostile_wire(case, raw_provider, good, proxy):
    name, script, over, status, reason, max_seconds = case
    bad = await raw_provider(script)
    p = await proxy(base_config([hostile_upstream(bad.url, **over), good_upstream(good.url)]))
    rss_before, watch = rss_bytes(), RssWatch()
    started = time.monotonic()
    async with p.request("GET", "/bad/charges/ch_1") as resp:
        problem = await read_problem(resp)
        assert resp.status == status, problem
        assert problem["reason"] == reason and problem["upstream"] == "bad"
        assert "Set-Cookie" not in resp.headers
    assert time.monotonic() - started < max_seconds
    assert bad.hits == 1
    await assert_still_serves(p)
    assert rss_bytes() - rss_before < 64 * MiB
    assert watch.growth() < 64 * MiB


def validated(tmp_path) -> dict:
    """Upstream overrides for a route whose 200 is validated as one JSON document (read whole)."""
    ops = {f"GET {path}": {"responses": {"200": {"content_type": "application/json", "schema": {"type": "object"}}}}
           for path in ("/x", "/charges/{id}")}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"operations": ops}))
    return {"contract": "bad.yaml"}


# a validated route refuses whole (502 problem+json); an unvalidated one streams (passthrough.py): its
# answer started (200, chunked), so a cap CUTS the connection (no last chunk) and the reason is recorded
ROUTES = ["validated", "unvalidated"]


async def assert_cut(resp, seen, reason: str, limit: str) -> None:
    """The answer started and was cut: the caller's client sees an incomplete body; egress recorded why."""
    assert resp.status == 200 and "Content-Length" not in resp.headers
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    await asyncio.sleep(0.05)
    ex = seen[-1]
    assert (ex.status, ex.reason, ex.stream.kind, ex.stream.end) == (200, reason, "passthrough", reason)
    assert [e.attrs["limit"] for e in ex.events if e.name == "egress.limit_exceeded"] == [limit]


@pytest.mark.parametrize("route", ROUTES)
async def test_endless_chunked_body(route, raw_provider, good, proxy, tmp_path):
    bad = await raw_provider(endless_chunked)
    over = validated(tmp_path) if route == "validated" else {}
    seen = []
    p = await proxy(base_config([hostile_upstream(bad.url, **over), good_upstream(good.url)],
                                contracts_dir=str(tmp_path)), base_dir=tmp_path, observers=[seen.append])
    rss_before, watch = rss_bytes(), RssWatch()
    started = time.monotonic()
    async with p.request("GET", "/bad/charges/ch_1") as resp:
        if route == "validated":
            problem = await read_problem(resp)
            assert resp.status == 502 and problem["reason"] == "response_too_large", problem
        else:
            await assert_cut(resp, seen, "response_too_large", "max_response_bytes")
    assert time.monotonic() - started < 5
    assert bad.hits == 1
    await assert_still_serves(p)
    assert rss_bytes() - rss_before < 64 * MiB
    assert watch.growth() < 64 * MiB
    await asyncio.sleep(0.2)
    # egress hung up at the 1 MiB cap: the provider got to write the cap plus socket buffers
    assert ENDLESS_WRITTEN and ENDLESS_WRITTEN[-1] < 64 * MiB


BOMBS = [
    ("gzip-bomb-1000-to-1", "gzip", 31),
    ("deflate-bomb-1000-to-1", "deflate", 15),
    ("raw-deflate-bomb-1000-to-1", "deflate", -15),
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", BOMBS, ids=[c[0] for c in BOMBS])
async def test_decompression_bomb(case, route, provider, good, proxy, tmp_path):
    """512 MiB behind ~500 KiB: refused (validated) or cut (streamed) at max_decompressed_bytes (8 MiB),
    peak memory barely moves.  Without the bounded inflate (bodies.py), this process would hold > 512 MiB."""
    name, encoding, wbits = case
    body = bomb(wbits)
    assert len(body) * 1000 < BOMB_BYTES * 1.1  # it really is ~1,000:1
    bad = await provider(bomb_handler(encoding, wbits))
    over = validated(tmp_path) if route == "validated" else {}
    seen = []
    p = await proxy(base_config([hostile_upstream(bad.url, **over), good_upstream(good.url)],
                                contracts_dir=str(tmp_path)), base_dir=tmp_path, observers=[seen.append])
    rss_before, watch = rss_bytes(), RssWatch()
    for accept in ("identity", "gzip, deflate"):  # egress decodes to check size even when it could pass it on
        async with p.request("GET", "/bad/x", headers={"Accept-Encoding": accept}) as resp:
            if route == "validated":
                problem = await read_problem(resp)
                assert resp.status == 502 and problem["reason"] == "response_too_large", problem
            else:
                await assert_cut(resp, seen, "response_too_large", "max_decompressed_bytes")
    assert bad.hits == 2
    await assert_still_serves(p)
    assert rss_bytes() - rss_before < 64 * MiB
    assert watch.growth() < 96 * MiB


async def cookie_and_injection(reader, writer):
    writer.write(head(
        b"HTTP/1.1 200 OK", b"Content-Type: application/json", b"Content-Length: 2",
        b"Set-Cookie: sid=provider-chosen; Domain=.internal.example",
        b"set-cookie2: legacy=1",
        b"X-Egress-Error: none",  # a provider must not speak in egress's name
        b"X-Egress-Contract: valid",
        b"Connection: keep-alive, X-Hop-Secret",
        b"X-Hop-Secret: named-in-connection",
        b"X-Folded: first",
        b"  second-line-of-an-obs-fold",
    ) + b"{}")
    await writer.drain()


async def cookie_bare_lf(reader, writer):
    writer.write(b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: a\nSet-Cookie: sid=evil\n\n{}")
    await writer.drain()


@pytest.mark.parametrize("script", [cookie_and_injection, cookie_bare_lf], ids=["crlf-framed", "bare-lf-framed"])
async def test_set_cookie_and_injected_headers_never_reach_the_caller(script, raw_provider, good, proxy):
    bad = await raw_provider(script)
    p = await proxy(base_config([hostile_upstream(bad.url), good_upstream(good.url)]))
    async with p.request("GET", "/bad/x") as resp:
        assert resp.status == 200
        assert await resp.read() == b"{}"
        names = {k.lower() for k in resp.headers}
        assert not names & {"set-cookie", "set-cookie2", "x-egress-error", "x-hop-secret"}
        assert resp.headers.getall("X-Egress-Contract") == ["unchecked"]
        for value in resp.headers.values():
            assert "\r" not in value and "\n" not in value
        if "X-Folded" in resp.headers:  # obs-fold is unfolded into one line, never passed as CRLF
            folded = resp.headers["X-Folded"]
            assert folded.startswith("first ") and folded.endswith(" second-line-of-an-obs-fold")
    await assert_still_serves(p)


async def test_bomb_with_a_tls_provider_is_still_bounded(good, proxy, tmp_path):
    """The same bound holds when egress originates TLS (decoding happens after the TLS layer)."""
    ctx, ca_file = tls_server(tmp_path, "localhost")
    fake = await FakeProvider(bomb_handler("gzip", 31), ssl_context=ctx).start()
    try:
        seen = []
        up = hostile_upstream(f"https://localhost:{fake.port}", tls={"ca_file": str(ca_file)}, **validated(tmp_path))
        p = await proxy(base_config([up, good_upstream(good.url)], contracts_dir=str(tmp_path)), base_dir=tmp_path,
                        observers=[seen.append])
        watch = RssWatch()
        async with p.request("GET", "/bad/x") as resp:  # validated route: refused whole
            assert resp.status == 502 and (await read_problem(resp))["reason"] == "response_too_large"
        async with p.request("GET", "/bad/y") as resp:  # no operation (unmatched allow): streamed, then cut
            await assert_cut(resp, seen, "response_too_large", "max_decompressed_bytes")
        assert watch.growth() < 96 * MiB
        await assert_still_serves(p)
    finally:
        await fake.stop()
