"""Fake third parties: real aiohttp servers on 127.0.0.1 port 0 that record what they got."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path_qs: str
    headers: CIMultiDict
    body: bytes


async def json_ok(request: web.BaseRequest) -> web.StreamResponse:
    return web.json_response({"ok": True})


@dataclass
class FakeProvider:
    handler: Handler = json_ok
    requests: list[Seen] = field(default_factory=list)
    runner: web.BaseRunner | None = None
    ssl_context: object = None

    async def start(self) -> "FakeProvider":
        async def record(request: web.BaseRequest) -> web.StreamResponse:
            body = await request.read()
            self.requests.append(Seen(request.method, request.path_qs, CIMultiDict(request.headers), body))
            return await self.handler(request)

        self.runner = web.ServerRunner(web.Server(record), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.ssl_context).start()
        return self

    @property
    def port(self) -> int:
        return self.runner.addresses[0][1]

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def hits(self) -> int:
        return len(self.requests)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


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
