"""The request a provider gets from UpstreamClient, byte for byte, is the one aiohttp's own
ClientRequest writes for the same session settings (no User-Agent of aiohttp's, its Accept and
Accept-Encoding when the caller sent none).  client._Request sets the auto headers without a
per-call copy (issue 18); this holds it to aiohttp's way, case by case, at a raw socket.

Providers are raw asyncio servers on 127.0.0.1 port 0 that keep the exact request bytes.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from multidict import CIMultiDict

from egress.send import client as client_mod
from tests.fakes import RawProvider, each_closed
from tests.unit.test_client_transport_mutants import client  # noqa: F401 - the fixture

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"  # (a HEAD too)


def body_then_answer(bodies: list[bytes]):
    """A script that keeps the request body (its declared Content-Length) and answers ANSWER."""
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = raw.heads[-1].decode("latin-1").lower()
        length = 0
        for line in head.split("\r\n"):
            if line.startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        bodies.append(await reader.readexactly(length) if length else b"")
        writer.write(ANSWER)
        await writer.drain()
    raw = RawProvider(script)
    return raw


@pytest.fixture
async def recorder():
    """(provider, bodies): a raw provider keeping every request head, and the bodies."""
    async with each_closed(lambda p: p.start()) as start:
        async def make():
            bodies: list[bytes] = []
            return await start(body_then_answer(bodies)), bodies
        yield make


def aiohttp_session(**over) -> aiohttp.ClientSession:
    """A session as UpstreamClient builds its own, with aiohttp's ClientRequest (the slow path)."""
    settings = dict(auto_decompress=False, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                    skip_auto_headers=("User-Agent",))
    settings.update(over)
    return aiohttp.ClientSession(**settings)


CASES = [
    ("GET", [], b""),
    ("GET", [("Accept", "application/json")], b""),
    ("GET", [("accept-encoding", "br")], b""),
    ("GET", [("Accept", "text/csv"), ("Accept-Encoding", "identity")], b""),
    ("GET", [("User-Agent", "checkout/1.2")], b""),
    ("GET", [("X-Dup", "a"), ("x-dup", "b"), ("Authorization", "Bearer partner")], b""),
    ("GET", [("host", "other.example:8443")], b""),
    ("GET", [("Accept", "a"), ("X-Long", "v" * 2000), ("Cookie", "k=v"), ("Accept", "b")], b""),
    ("HEAD", [], b""),
    ("DELETE", [], b""),
    ("POST", [], b'{"amount": 1}'),
    ("POST", [("Content-Type", "application/json")], b'{"amount": 1}'),
    ("PUT", [("Content-Type", "text/plain")], b""),
    ("PATCH", [("Content-Encoding", "gzip"), ("Content-Type", "application/json")], b"\x1f\x8b\x08\x00"),
]
IDS = ["bare-get", "caller-accept", "caller-accept-encoding", "caller-both", "caller-user-agent",
       "duplicates-kept", "caller-host", "repeated-and-long", "head", "delete", "post-body", "post-typed", "put-empty", "patch-encoded"]


@pytest.mark.parametrize(("method", "fields", "body"), CASES, ids=IDS)
async def test_the_request_bytes_are_aiohttps_own(recorder, client, method, fields, body):  # noqa: F811
    ours, our_bodies = await recorder()
    theirs, their_bodies = await recorder()
    c = await client(ours.url)
    await c.send(method, "/v1/charges?limit=3", CIMultiDict(fields), body, timeout=5.0)
    async with aiohttp_session() as s:
        async with s.request(method, theirs.url + "/v1/charges?limit=3", headers=CIMultiDict(fields),
                             data=body or None, allow_redirects=False) as r:
            await r.read()
    host_ours, host_theirs = f"127.0.0.1:{ours.port}".encode(), f"127.0.0.1:{theirs.port}".encode()
    assert ours.heads[0].replace(host_ours, b"HOST") == theirs.heads[0].replace(host_theirs, b"HOST")
    assert our_bodies == their_bodies == [body]
    head = ours.heads[0].lower()
    assert b"user-agent: python" not in head and b"aiohttp" not in head, "never aiohttp's User-Agent"
    if not any(k.lower() == "accept" for k, _ in fields):
        assert b"\r\naccept: */*\r\n" in head, "aiohttp's Accept when the caller sent none"


@pytest.mark.parametrize("skip", [("Accept",), ("User-Agent", "Accept-Encoding")], ids=["other", "more"])
async def test_another_skip_set_is_aiohttps_own_way(recorder, skip):
    """_Request serves only the session's set itself; any other set goes to aiohttp's method."""
    ours, _ = await recorder()
    theirs, _ = await recorder()
    for provider, over in ((ours, {"request_class": client_mod._Request}), (theirs, {})):
        async with aiohttp_session(skip_auto_headers=skip, **over) as s:
            async with s.get(provider.url + "/x") as r:
                await r.read()
    assert ours.heads[0].replace(str(ours.port).encode(), b"P") == theirs.heads[0].replace(
        str(theirs.port).encode(), b"P")
    assert (b"accept: */*" in ours.heads[0].lower()) == ("Accept" not in skip)


async def test_a_read_body_gives_its_connection_back(provider, client):  # noqa: F811
    """A body read to its end is not released again (aiohttp gave the connection back at the end
    of the payload): the connection is pooled, not held, and the next request reuses it."""
    fake = await provider()
    c = await client(fake.url)
    connector = c._session.connector
    for n in range(3):
        resp = await c.send("GET", "/x", CIMultiDict(), b"", timeout=5.0)
        assert resp.status == 200 and resp.body == b'{"ok": true}'
        assert not connector._acquired, "no connection held after a read body"
        assert sum(len(v) for v in connector._conns.values()) == 1, f"one pooled connection after {n + 1}"
    assert len(fake.requests) == 3


async def test_the_session_uses_the_request_class(client):  # noqa: F811
    c = await client("http://127.0.0.1:9")
    assert c._session._request_class is client_mod._Request
    assert c._session.skip_auto_headers == frozenset({"User-Agent"})
