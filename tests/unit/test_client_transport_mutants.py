"""How send/client.py talks to an upstream, held exactly: the session's settings as a provider
sees them (no User-Agent, no cookies kept, no environment proxy, bodies left encoded), the
answer limits (status range, declared and read size, header lines and count), and how every
transport failure is translated into egress's reasons (timeout, refused, TLS, malformed).

Providers are real: aiohttp apps, or a raw asyncio server writing exact bytes, on 127.0.0.1
port 0; TLS is real (trustme).
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from multidict import CIMultiDict

from egress.config import settings_from_dict
from egress.errors import AddressBlocked, ResponseTooLarge, UpstreamTimeout, UpstreamUnavailable
from egress.send.client import UpstreamClient
from tests.fakes import FakeProvider, RawProvider, each_closed, send_bytes


@pytest.fixture
async def client():
    async def make(url: str, tmp_path: Path = Path("."), **over) -> UpstreamClient:
        doc = {"name": "pay", "url": url, "allow_private_addresses": ["127.0.0.1/32"], **over}
        up = settings_from_dict({"upstreams": [doc]}, base_dir=tmp_path, environ={}).upstreams[0]
        c = UpstreamClient(up)
        await c.start()
        return c

    async with each_closed(make, close="close") as made:
        yield made


@pytest.fixture
async def raw():
    """url(answer, close=) of a server that answers every request with the given bytes (then
    closes, or with close=False holds the connection open for 5 s)."""
    async with each_closed(lambda script: RawProvider(script).start()) as make:
        async def url(answer: bytes, *, close: bool = True) -> str:
            return (await make(send_bytes(answer, linger=0.0 if close else 5.0))).url

        yield url


async def get(c: UpstreamClient, target="/x", timeout=5.0, **kw):
    return await c.send("GET", target, CIMultiDict(), b"", timeout=timeout, **kw)


# ------------------------------------------------------------------ what the provider sees

async def set_cookie(request: web.BaseRequest) -> web.Response:
    """A provider that sets a cookie on every answer."""
    resp = web.json_response({"ok": True})
    resp.set_cookie("session", "abc")
    return resp


async def test_the_provider_sees_no_user_agent_and_no_cookie_back(provider, client):
    fake = await provider(set_cookie)
    c = await client(fake.url)
    await get(c)
    await get(c)
    assert "User-Agent" not in fake.requests[0].headers
    assert "Cookie" not in fake.requests[1].headers, "no cookie jar: a provider's cookie is not replayed"


async def test_a_compressed_body_is_handed_on_still_encoded(provider, client):
    packed = gzip.compress(b'{"ok": true}')

    async def gzipped(request):
        return web.Response(body=packed, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    c = await client((await provider(gzipped)).url)
    resp = await get(c)
    assert resp.body == packed and resp.headers["Content-Encoding"] == "gzip"


async def test_environment_proxies_are_ignored(provider, client, monkeypatch, raw):
    trap = await raw(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ntrap")
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, trap)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    fake = await provider()
    resp = await get(await client(fake.url))
    assert resp.body == b'{"ok": true}' and fake.hits == 1


async def test_many_requests_to_one_upstream_run_at_once(provider, client):
    gate, arrived = asyncio.Event(), []

    async def hold(request):
        arrived.append(1)
        await gate.wait()
        return web.json_response({"ok": True})

    c = await client((await provider(hold)).url)
    calls = [asyncio.create_task(get(c)) for _ in range(257)]
    for _ in range(300):
        await asyncio.sleep(0.02)
        if len(arrived) >= 256:
            break
    await asyncio.sleep(0.2)
    assert len(arrived) == 256, "256 connections per upstream at once, no fewer, no more"
    gate.set()
    assert {r.status for r in await asyncio.gather(*calls)} == {200}
    assert len(arrived) == 257


# ------------------------------------------------------------------ answer limits

STATUSES = [  # id, status line, outcome (a status, or the error's reason)
    ("200", b"HTTP/1.1 200 OK", 200),
    ("599", b"HTTP/1.1 599 Odd", 599),
    ("600", b"HTTP/1.1 600 Odd", "upstream_unavailable"),
    ("999", b"HTTP/1.1 999 Odd", "upstream_unavailable"),
]


@pytest.mark.parametrize("line, outcome", [c[1:] for c in STATUSES], ids=[c[0] for c in STATUSES])
async def test_only_final_http_statuses_are_answers(raw, client, line, outcome):
    c = await client(await raw(line + b"\r\nContent-Length: 2\r\n\r\nok"))
    if isinstance(outcome, int):
        resp = await get(c)
        assert (resp.status, resp.body) == (outcome, b"ok")
    else:
        with pytest.raises(UpstreamUnavailable) as err:
            await get(c)
        assert err.value.reason == outcome and not err.value.connect_failed


SIZES = [  # id, body, chunked?, cap, too large?
    ("declared-at-the-cap", b"x" * 100, False, 100, False),
    ("declared-over-the-cap", b"x" * 101, False, 100, True),
    ("read-at-the-cap", b"x" * 100, True, 100, False),
    ("read-over-the-cap", b"x" * 101, True, 100, True),
]


@pytest.mark.parametrize("body, chunked, cap, too_large", [c[1:] for c in SIZES], ids=[c[0] for c in SIZES])
async def test_the_response_size_cap(provider, client, body, chunked, cap, too_large):
    async def answer(request):
        resp = web.StreamResponse()
        if chunked:
            resp.enable_chunked_encoding()
        else:
            resp.content_length = len(body)
        await resp.prepare(request)
        for i in range(0, len(body), 30):
            await resp.write(body[i:i + 30])
            await asyncio.sleep(0.02)   # separate reads: the cap counts them all
        await resp.write_eof()
        return resp

    c = await client((await provider(answer)).url, limits={"max_response_bytes": cap})
    if too_large:
        with pytest.raises(ResponseTooLarge) as err:
            await get(c)
        assert err.value.reason == "response_too_large"
    else:
        assert (await get(c)).body == body


def header_answer(name_len: int = 1, value_len: int = 1, count: int = 1) -> bytes:
    lines = b"".join(b"X-" + b"n" * name_len + b"%d: " % i + b"v" * value_len + b"\r\n" for i in range(count))
    return b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 2\r\n\r\nok"


def reason_answer(length: int) -> bytes:
    return b"HTTP/1.1 200 " + b"R" * length + b"\r\nContent-Length: 2\r\n\r\nok"


HEADERS = [  # id, answer, over the limit?  (a field is name + value <= 8190; 128 fields)
    ("field-of-8190", header_answer(value_len=8186), False),
    ("field-of-8191", header_answer(value_len=8187), True),
    ("a header name over 8190", header_answer(name_len=8200), True),
    ("status-line-reason-of-8190", reason_answer(8190), False),
    ("status-line-reason-of-8191", reason_answer(8191), True),
    ("128-headers", header_answer(count=127), False),   # and Content-Length
    ("129-headers", header_answer(count=128), True),
]


@pytest.mark.parametrize("answer, over", [c[1:] for c in HEADERS], ids=[c[0] for c in HEADERS])
async def test_answer_header_limits(raw, client, answer, over):
    c = await client(await raw(answer))
    if over:
        with pytest.raises(ResponseTooLarge) as err:
            await get(c)
        assert err.value.reason == "response_too_large"
    else:
        assert (await get(c)).body == b"ok"


# ------------------------------------------------------------------ failures translated

async def test_a_slow_provider_is_upstream_timeout(provider, client):
    async def slow(request):
        await asyncio.sleep(2)
        return web.json_response({})

    c = await client((await provider(slow)).url)
    for timeout in (0.2, 0.0, -1.0):               # none or a negative budget still means "try, briefly"
        with pytest.raises(UpstreamTimeout) as err:
            await get(c, timeout=timeout)
        assert err.value.reason == "upstream_timeout"


async def test_a_refused_connection_is_unavailable_and_counts_as_a_connect_failure(client):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = await client(f"http://127.0.0.1:{port}")
    with pytest.raises(UpstreamUnavailable) as err:
        await get(c)
    assert err.value.reason == "upstream_unavailable" and err.value.connect_failed is True


async def test_a_blocked_address_is_address_blocked(client, provider):
    fake = await provider()
    c = await client(fake.url, allow_private_addresses=["10.0.0.0/8"])
    with pytest.raises(AddressBlocked) as err:
        await get(c)
    assert err.value.reason == "address_blocked" and fake.hits == 0


@pytest.mark.parametrize("answer, close", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", True),
    (b"NOT HTTP AT ALL\r\n\r\n", True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nok", True),
], ids=["cut-mid-body", "not-http", "bad-content-length"])
async def test_a_broken_answer_is_upstream_unavailable(raw, client, answer, close):
    c = await client(await raw(answer, close=close))
    with pytest.raises(UpstreamUnavailable) as err:
        await get(c)
    assert err.value.reason == "upstream_unavailable" and not err.value.connect_failed


@pytest.fixture
def tls(tmp_path):
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client_cert = ca.issue_cert("egress-client")
    client_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client_cert.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(ctx)
    return ca, ctx


async def test_https_is_verified_against_the_configured_ca(client, tls, tmp_path):
    ca, ctx = tls
    fake = await FakeProvider(ssl_context=ctx).start()
    try:
        url = f"https://localhost:{fake.port}"
        ok = await client(url, tmp_path, tls={"ca_file": "ca.pem"}, allow_private_addresses=True)
        assert (await get(ok)).status == 200
        trustme.CA().cert_pem.write_to_path(str(tmp_path / "other.pem"))
        other = await client(url, tmp_path, tls={"ca_file": "other.pem"}, allow_private_addresses=True)
        with pytest.raises(UpstreamUnavailable) as err:
            await get(other)
        assert err.value.connect_failed is True and "certificate" in str(err.value)
        assert fake.hits == 1
    finally:
        await fake.stop()


async def test_a_client_certificate_is_presented_when_configured(client, tls, tmp_path):
    ca, ctx = tls
    ctx.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(ctx)
    fake = await FakeProvider(ssl_context=ctx).start()
    try:
        url = f"https://localhost:{fake.port}"
        mtls = await client(url, tmp_path, allow_private_addresses=True,
                            tls={"ca_file": "ca.pem", "client_cert": "client.pem", "client_key": "client.key"})
        assert (await get(mtls)).status == 200
        without = await client(url, tmp_path, allow_private_addresses=True, tls={"ca_file": "ca.pem"})
        with pytest.raises(UpstreamUnavailable):
            await get(without)
        assert fake.hits == 1
    finally:
        await fake.stop()




async def test_the_connect_timeout_bounds_the_connection_attempt(client, unanswered_port):
    c = await client(f"http://127.0.0.1:{unanswered_port}", timeout={"connect": 0.2, "total": 10})
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamTimeout) as err:
        await get(c, timeout=10)
    assert err.value.reason == "upstream_timeout"
    assert loop.time() - started < 3, "timeout.connect, not the whole budget"


# ------------------------------------------------------------------ streamed answers

def events_stream(delay: float = 0.0):
    async def answer(request):
        resp = web.StreamResponse(headers={"Content-Type": request.query.get("type", "text/event-stream")})
        await resp.prepare(request)
        await asyncio.sleep(delay)
        for i in range(3):
            await resp.write(b"data: %d\n\n" % i)
        await resp.write_eof()
        return resp
    return answer


def sse_only(status, headers) -> bool:
    return status == 200 and headers.get("Content-Type", "").startswith("text/event-stream")


async def read_all(resp) -> bytes:
    return b"".join([chunk async for chunk in resp.stream.chunks()])


async def test_a_streamed_answer_is_handed_on_open(provider, client):
    c = await client((await provider(events_stream())).url)
    resp = await get(c, stream_if=sse_only)
    assert (resp.status, resp.body) == (200, b"") and resp.stream is not None
    assert resp.headers["Content-Type"] == "text/event-stream" and str(resp.url) == c.upstream.origin + "/x"
    settled = []
    assert resp.settle_later(settled.append) is True
    assert await read_all(resp) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    resp.stream.settle(None)
    assert settled == [None]
    await resp.release()
    assert resp.stream.closed is True


async def test_an_answer_the_predicate_refuses_is_read_whole(provider, client):
    c = await client((await provider(events_stream())).url)
    resp = await get(c, "/x?type=application/json", stream_if=sse_only)
    assert resp.stream is None and resp.body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert resp.settle_later(lambda exc: None) is False
    await resp.release()


@pytest.mark.parametrize("timeout, outcome", [(0.2, "upstream_timeout"), (2.0, "complete")],
                         ids=["first-byte-later-than-the-timeout", "first-byte-within-the-timeout"])
async def test_the_timeout_bounds_a_streams_first_byte(provider, client, timeout, outcome):
    c = await client((await provider(events_stream(delay=0.5))).url, timeout={"idle": 30})
    resp = await get(c, timeout=timeout, stream_if=sse_only)
    try:
        if outcome == "complete":
            assert (await read_all(resp)).count(b"data:") == 3
        else:
            with pytest.raises(UpstreamTimeout) as err:
                await read_all(resp)
            assert err.value.reason == outcome and err.value.extra == {"bound": "first_byte"}
    finally:
        await resp.release()


async def test_closing_is_harmless_before_start_and_twice_and_stops_sending(provider):
    fake = await provider()
    up = settings_from_dict({"upstreams": [{"name": "pay", "url": fake.url, "allow_private_addresses": True}]},
                            base_dir=Path("."), environ={}).upstreams[0]
    c = UpstreamClient(up)
    await c.close()
    await c.start()
    assert (await get(c)).status == 200
    await c.close()
    await c.close()
    with pytest.raises(AssertionError):
        await get(c)
    assert fake.hits == 1


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nBad Name got more than 8190 bytes: x\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 2x0 too many headers received\r\nContent-Length: 2\r\n\r\nok",
], ids=["bad-header-quoting-the-words", "bad-status-quoting-the-words"])
async def test_a_provider_cannot_word_a_malformed_answer_into_too_large(raw, client, answer):
    c = await client(await raw(answer))
    with pytest.raises(UpstreamUnavailable) as err:
        await get(c)
    assert err.value.reason == "upstream_unavailable"


async def test_an_empty_body_is_sent_without_content_length(provider, client):
    fake = await provider()
    c = await client(fake.url)
    await c.send("GET", "/x", CIMultiDict(), b"", timeout=5)
    await c.send("POST", "/x", CIMultiDict(), b"{}", timeout=5)
    assert "Content-Length" not in fake.requests[0].headers and fake.requests[0].body == b""
    assert fake.requests[1].headers["Content-Length"] == "2" and fake.requests[1].body == b"{}"


async def test_a_declared_length_over_the_cap_is_refused_before_the_body_arrives(raw, client):
    c = await client(await raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789", close=False),
                     limits={"max_response_bytes": 100})
    with pytest.raises(ResponseTooLarge) as err:
        await get(c, timeout=2.0)       # the rest never comes: only the declaration can refuse it
    assert err.value.reason == "response_too_large"


async def test_the_target_is_requested_exactly_as_given(provider, client):
    c = await client((await provider()).url)
    resp = await get(c, "/x%7e/y?a=%zz&b=%2F")
    assert resp.url.raw_path_qs == "/x%7e/y?a=%zz&b=%2F", "no re-encoding of what sanitize passed"


async def test_no_cookie_jar_even_for_a_named_host(provider, client):
    fake = await provider(set_cookie)
    c = await client(f"http://localhost:{fake.port}", allow_private_addresses=True)
    await get(c)
    await get(c)
    assert "Cookie" not in fake.requests[1].headers, "a provider's cookie is never replayed"


async def test_an_answer_refused_for_its_declared_length_drops_the_connection(client):
    dropped = asyncio.Event()

    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
        await writer.drain()
        while await reader.read(1024):
            pass
        dropped.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        c = await client(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", limits={"max_response_bytes": 100})
        with pytest.raises(ResponseTooLarge) as err:
            await get(c, timeout=2.0)
        await asyncio.wait_for(dropped.wait(), 2.0)   # not left open (nor pooled) with a body unread
        assert err.value.reason == "response_too_large"
    finally:
        server.close()
        await server.wait_closed()
