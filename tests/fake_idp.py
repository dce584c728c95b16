"""Fake OAuth2 token endpoints (RFC 6749 4.4) and a partner that accepts only their live tokens.

Real aiohttp apps on 127.0.0.x, port 0, over real TLS (trustme) when given a context.
`FakeIdP` is an IdP that checks its client; the test drives it: `expires_in`, `revoke()` (the
partner starts refusing a token with 401), `mode` ("ok" | "500" | "not_json" | "no_token" | "mac"
| "slow"), `secret` (what the client must present; change it to model a rotation).
`ScriptedIdP` checks nothing and answers whatever the test sets (every boundary of an answer).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

from aiohttp import web

from tests.fakes import FakeProvider, Served

CLIENT_ID = "egress-client"


@dataclass
class FakeIdP(Served):
    secret: str
    expires_in: float | None = 60
    mode: str = "ok"
    host: str = "127.0.0.1"
    ssl_context: object = None
    issued: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    forms: list[dict] = field(default_factory=list)
    auth_headers: list[str | None] = field(default_factory=list)
    delay: float = 0.0
    runner: web.BaseRunner | None = None
    _n: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def start(self) -> "FakeIdP":
        await self.serve(self.token, post="/oauth/token")
        return self

    @property
    def url(self) -> str:
        return self.base_url + "/oauth/token"

    @property
    def fetches(self) -> int:
        return len(self.forms)

    def _client(self, request, form) -> tuple[str | None, str | None]:
        auth = request.headers.get("Authorization")
        if auth and auth.startswith("Basic "):
            cid, _, sec = base64.b64decode(auth[6:]).decode().partition(":")
            return unquote(cid), unquote(sec)
        return form.get("client_id"), form.get("client_secret")

    async def token(self, request: web.Request) -> web.Response:
        form = {k: v[0] for k, v in parse_qs((await request.read()).decode()).items()}
        self.forms.append(form)
        self.auth_headers.append(request.headers.get("Authorization"))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.mode == "500":
            return web.json_response({"error": "temporarily_unavailable", "secret_echo": self.secret},
                                     status=500)
        if form.get("grant_type") != "client_credentials" or self._client(request, form) != (CLIENT_ID, self.secret):
            return web.json_response({"error": "invalid_client"}, status=401)
        token = f"tok-{next(self._n)}-SECRETTOKEN"
        if self.mode == "not_json":
            return web.Response(text=f"<html>{token}</html>", content_type="text/html")
        if self.mode == "no_token":
            return web.json_response({"token_type": "bearer", "expires_in": 60})
        self.issued.append(token)
        doc = {"access_token": token, "token_type": "mac" if self.mode == "mac" else "Bearer"}
        if self.expires_in is not None:
            doc["expires_in"] = self.expires_in
        return web.json_response(doc)

    def live(self, token: str) -> bool:
        return token in self.issued and token not in self.revoked

    def revoke_all(self) -> None:
        self.revoked.update(self.issued)


@dataclass
class ScriptedIdP(FakeProvider):
    """A token endpoint (any path) that answers `status` with `doc` after a numbered access_token
    (tok-1, tok-2, ...), or the `raw` bytes (with a Location header), after `delay` seconds;
    `peers` holds each request's client address, `requests` / `hits` what came (FakeProvider)."""
    status: int = 200
    doc: dict = field(default_factory=lambda: {"expires_in": 60})
    raw: bytes | None = None
    delay: float = 0.0
    n: int = 0
    peers: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.handler = self.answer

    async def answer(self, request: web.BaseRequest) -> web.StreamResponse:
        self.peers.append(request.transport.get_extra_info("peername"))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.raw is not None:
            return web.Response(status=self.status, body=self.raw, headers={"Location": "/elsewhere"})
        self.n += 1
        return web.json_response({"access_token": f"tok-{self.n}", **self.doc}, status=self.status)

    @property
    def url(self) -> str:
        return self.base_url + "/oauth/token"


def partner_accepting(idp: FakeIdP):
    """A partner handler: 200 for a live bearer token of `idp`, 401 otherwise."""
    async def handler(request: web.BaseRequest) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and idp.live(auth[7:]):
            return web.json_response({"ok": True})
        return web.json_response({"error": "invalid_token"}, status=401)
    return handler
