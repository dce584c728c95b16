"""Fake third parties: real aiohttp servers on 127.0.0.1 port 0 that record what they got."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import trustme
from aiohttp import web
from multidict import CIMultiDict

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Seen:
    method: str
    path_qs: str
    headers: CIMultiDict
    body: bytes


async def json_ok(request: web.BaseRequest) -> web.StreamResponse:
    return web.json_response({"ok": True})


class Served:
    """What every fake third party shares: an aiohttp server on `host` (127.0.0.1) port 0, over
    real TLS when `ssl_context` is set; its port, base URL, stop; `async with fake:` starts and
    stops it.  A subclass sets `runner`, `ssl_context` (dataclass fields) and `start()`; set
    `host` / `listen_port` on an instance to listen elsewhere (another loopback address)."""

    runner: web.BaseRunner | None = None
    host: str = "127.0.0.1"
    listen_port: int = 0
    ssl_context: object = None

    async def serve(self, handler: Handler, post: str | None = None, **server_kw) -> None:
        """Listen: `handler` answers every request (`server_kw` to aiohttp's web.Server), or with
        `post` only POSTs to that path (aiohttp's own 404/405 for the rest)."""
        if post is None:
            self.runner = web.ServerRunner(web.Server(handler, **server_kw), access_log=None)
        else:
            app = web.Application()
            app.router.add_post(post, handler)
            self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, self.listen_port, ssl_context=self.ssl_context).start()

    @property
    def port(self) -> int:
        return self.runner.addresses[0][1]

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()


def tls_server(tmp_path: Path, *identities: str, ca: trustme.CA | None = None, **cert_kw) -> tuple[ssl.SSLContext, Path]:
    """A fake's side of real TLS: a server context holding a certificate that `ca` (a new
    trustme.CA unless given) issues for `identities` (localhost unless given), and that CA's PEM
    written to tmp_path/ca.pem (what an upstream's `tls.ca_file` names)."""
    ca = ca or trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(identities or ("localhost",)), **cert_kw).configure_cert(ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ctx, ca_file


@contextlib.asynccontextmanager
async def each_closed(start: Callable[..., Awaitable[Any]], close: str = "stop") -> AsyncIterator[Callable]:
    """The body of a factory fixture: `make(...)` is `await start(...)`, and everything made is
    closed (its `close` method awaited) when the block ends, in the order made."""
    made = []

    async def make(*args, **kw):
        thing = await start(*args, **kw)
        made.append(thing)
        return thing

    try:
        yield make
    finally:
        for thing in made:
            await getattr(thing, close)()


@dataclass
class FakeProvider(Served):
    handler: Handler = json_ok
    requests: list[Seen] = field(default_factory=list)
    runner: web.BaseRunner | None = None
    ssl_context: object = None
    auto_decompress: bool = True  # False: `body` is what came on the wire, still encoded

    async def start(self) -> "FakeProvider":
        async def record(request: web.BaseRequest) -> web.StreamResponse:
            body = await request.read()
            self.requests.append(Seen(request.method, request.path_qs, CIMultiDict(request.headers), body))
            return await self.handler(request)

        await self.serve(record, auto_decompress=self.auto_decompress)
        return self

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def hits(self) -> int:
        return len(self.requests)


@dataclass
class RawProvider:
    """A provider that writes whatever bytes its script says, after reading the request head."""

    script: Script
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    server: asyncio.AbstractServer | None = None
    tasks: set = field(default_factory=set)

    async def start(self) -> "RawProvider":
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self.tasks.add(asyncio.current_task())
            try:
                self.heads.append(await reader.readuntil(b"\r\n\r\n"))
                await self.script(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass
            finally:
                writer.close()
                self.tasks.discard(asyncio.current_task())

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hits(self) -> int:
        return self.connections

    async def stop(self) -> None:
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def send_bytes(payload: bytes, *, linger: float = 0.0) -> Script:
    async def script(reader, writer):
        writer.write(payload)
        await writer.drain()
        if linger:
            await asyncio.sleep(linger)
    return script


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(iss: str, sub: str = "svc-checkout") -> str:
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"iss": iss, "sub": sub, "exp": 4102444800}).encode())
    return f"{header}.{payload}.{b64url(b'signature-bytes-here')}"


INTERNAL_ISSUER = "https://auth.internal.example"


class BackgroundLoop:
    """An event loop in a thread, for synchronous tests (hypothesis, requests) against
    in-process servers.  `run(coro)` waits for the coroutine's result."""

    def __init__(self) -> None:
        import asyncio
        import threading

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro, timeout: float = 30):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()
