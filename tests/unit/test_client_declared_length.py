"""A declared Content-Length over max_response_bytes is refused up front, except where it
describes a body the answer does not carry: a HEAD's, or a 304's (RFC 9110 §8.6). Exact bytes
from a raw provider on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from multidict import CIMultiDict

from egress.config import settings_from_dict
from egress.errors import ResponseTooLarge
from egress.send.client import UpstreamClient
from tests.fakes import RawProvider, each_closed, send_bytes

CASES = [
    # id, method, status line, declared length, body sent, refused
    ("get-200-over-the-cap", "GET", "200 OK", 1000, b"", True),
    ("head-200-over-the-cap", "HEAD", "200 OK", 1000, b"", False),
    ("get-304-over-the-cap", "GET", "304 Not Modified", 1000, b"", False),
    ("get-305-over-the-cap", "GET", "305 Use Proxy", 1000, b"", True),
    ("get-200-at-the-cap", "GET", "200 OK", 100, b"x" * 100, False),
]


@pytest.fixture
async def raw_url():
    async with each_closed(lambda script: RawProvider(script).start()) as make:
        async def url(answer: bytes) -> str:
            return (await make(send_bytes(answer, linger=0.5))).url
        yield url


@pytest.mark.parametrize(("method", "status", "declared", "body", "refused"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
async def test_declared_length_against_the_cap(raw_url, method, status, declared, body, refused):
    url = await raw_url(f"HTTP/1.1 {status}\r\nContent-Length: {declared}\r\n\r\n".encode() + body)
    doc = {"name": "pay", "url": url, "allow_private_addresses": ["127.0.0.1/32"],
           "limits": {"max_response_bytes": 100}}
    up = settings_from_dict({"upstreams": [doc]}, base_dir=Path("."), environ={}).upstreams[0]
    c = UpstreamClient(up)
    await c.start()
    try:
        if refused:
            with pytest.raises(ResponseTooLarge) as err:
                await c.send(method, "/x", CIMultiDict(), b"", timeout=2.0)
            assert err.value.reason == "response_too_large"
        else:
            resp = await c.send(method, "/x", CIMultiDict(), b"", timeout=2.0)
            assert (resp.status, resp.body) == (int(status[:3]), body)
    finally:
        await c.close()
