"""An answer without content by rule (a HEAD's, a 304's) carries the Content-Length a GET would,
the provider's, or none; never the 0 of the empty body egress holds (RFC 9110 §8.6: a server MUST
NOT send one unless it equals the GET's; §15.4.5 for 304).  Real sockets: an aiohttp provider,
aiohttp, requests and httpx callers."""

import asyncio

import httpx
import pytest
import requests
from aiohttp import web

from tests.integration.test_passthrough import OCTET, start


def _head_provider(length: str | None, coding: str | None = None, status: int = 200):
    async def handler(request):
        headers = {"Content-Type": OCTET, "ETag": '"v1"'}
        if coding:
            headers["Content-Encoding"] = coding
        if request.method != "HEAD":
            return web.Response(status=500)
        if length is None:  # no length at all (a GET that would be chunked)
            resp = web.StreamResponse(status=status, headers=headers)
            await resp.prepare(request)
            return resp
        return web.Response(status=status, headers={**headers, "Content-Length": length})
    return handler


@pytest.mark.parametrize("length, coding, accept, want_length, want_coding", [
    ("1234", None, None, "1234", None),
    ("52428800", None, None, "52428800", None),          # over max_response_bytes: a body not carried
    ("0", None, None, "0", None),                        # an empty GET's length is 0, and says so
    (None, None, None, None, None),                      # the provider names none: neither does egress
    ("1234", "gzip", "gzip", "1234", "gzip"),            # the caller takes the coding: the same answer
    ("1234", "gzip", "identity", None, None),            # it does not: a decoded GET, of a length unknown here
    ("1234", "deflate, gzip", "gzip", None, None),       # it takes only one of the codings
], ids=["plain", "over-the-cap", "zero", "none", "coded-accepted", "coded-refused", "coded-half-accepted"])
async def test_a_head_answer_carries_the_length_a_get_would(tmp_path, provider, proxy, length, coding, accept,
                                                            want_length, want_coding):
    fake, p = await start(tmp_path, provider, proxy, _head_provider(length, coding), mode="off")
    headers = {"Accept-Encoding": accept} if accept else {"Accept-Encoding": "identity"}
    async with p.request("HEAD", "/files/download", headers=headers) as resp:
        assert resp.status == 200 and resp.headers.get("X-Egress-Error") is None
        assert resp.headers.get("Content-Length") == want_length
        assert resp.headers.get("Content-Encoding") == want_coding
        assert "Transfer-Encoding" not in resp.headers
        assert await resp.read() == b""
    assert p.state.inflight.in_use == 0


async def test_a_head_of_an_error_status_keeps_its_length_too(tmp_path, provider, proxy):
    fake, p = await start(tmp_path, provider, proxy, _head_provider("321", status=404), mode="off")
    async with p.request("HEAD", "/files/missing", headers={"Accept-Encoding": "identity"}) as resp:
        assert (resp.status, resp.headers.get("Content-Length")) == (404, "321")


async def test_a_304_carries_no_length_of_its_own(tmp_path, provider, proxy):
    async def handler(request):
        return web.Response(status=304, headers={"ETag": '"v1"'})
    fake, p = await start(tmp_path, provider, proxy, handler, mode="off")
    async with p.request("GET", "/files/download", headers={"If-None-Match": '"v1"'}) as resp:
        assert (resp.status, resp.headers["ETag"]) == (304, '"v1"')
        assert resp.headers.get("Content-Length") is None  # never "0": the 200 would not be empty
        assert await resp.read() == b""


async def test_real_clients_read_the_head_length_and_the_connection_goes_on(tmp_path, provider, proxy):
    """requests and httpx see the provider's length, no body, and reuse the connection for a GET."""
    calls = []

    async def handler(request):
        calls.append(request.method)
        if request.method == "HEAD":
            return web.Response(headers={"Content-Type": OCTET, "Content-Length": "4096"})
        return web.Response(body=b"x" * 4096, content_type=OCTET)
    fake, p = await start(tmp_path, provider, proxy, handler, mode="off")
    url = p.url + "/files/download"
    headers = {"X-Egress-Caller": "checkout", "Accept-Encoding": "identity"}

    def with_requests():
        with requests.Session() as s:
            head = s.head(url, headers=headers, timeout=10)
            get = s.get(url, headers=headers, timeout=10)
            return head.headers.get("Content-Length"), head.content, get.headers["Content-Length"], len(get.content)

    def with_httpx():
        with httpx.Client(timeout=10) as c:
            head = c.head(url, headers=headers)
            get = c.get(url, headers=headers)
            return head.headers.get("Content-Length"), head.content, get.headers["Content-Length"], len(get.content)

    for client in (with_requests, with_httpx):
        assert await asyncio.to_thread(client) == ("4096", b"", "4096", 4096), client.__name__
    assert calls == ["HEAD", "GET", "HEAD", "GET"]
