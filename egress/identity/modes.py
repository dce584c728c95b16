"""Which identity mode proves the caller: `Identity(settings).identify(request) -> Caller`.

One per config generation (start/close with it: the JWKS fetchers and their HTTP session).
Reads the inbound request's headers and, for mtls, its TLS peer certificate; changes nothing.

- `header` (default; trusted networks, the demo): the caller header, optionally HMAC-signed
  (header.py).  Any pod that can reach egress can write any name there.
- `jwt`: the caller's bearer token (jwt.py).  `X-Egress-Caller`, when sent, must agree with it.
- `mtls`: the verified client certificate (mtls.py).  `X-Egress-Caller`, when sent, must agree.
Raises CallerUnauthenticated (401), CallerMissing / CallerNotAllowed (403, header mode).
"""

from __future__ import annotations

import aiohttp

from egress.config import Settings
from egress.errors import CallerUnauthenticated
from egress.identity.header import identify as identify_header
from egress.identity.jwt import Caller, JwtVerifier
from egress.identity.mtls import MtlsIdentifier

_NAMED = 1024


class Identity:
    def __init__(self, settings: Settings) -> None:
        self.callers = callers = settings.callers
        self.mode = callers.identity
        self.jwt = JwtVerifier(callers.jwt) if callers.identity == "jwt" and callers.jwt else None
        self.mtls = MtlsIdentifier(callers.mtls) if callers.identity == "mtls" and callers.mtls else None
        self._session: aiohttp.ClientSession | None = None
        self._named: dict[str, Caller] = {}  # header mode: name -> its Caller (a value), bounded

    def adopt(self, previous: "Identity | None") -> None:
        """Keep the previous generation's JWKS keys until this one has fetched its own."""
        if self.jwt is not None and previous is not None and previous.jwt is not None:
            self.jwt.adopt(previous.jwt)

    async def start(self) -> None:
        if self.jwt is not None:
            if any(i.jwks_url for i in self.callers.jwt.issuers):
                # aiohttp's defaults: no proxy from the environment, bodies decoded (tests hold both)
                self._session = aiohttp.ClientSession()
            await self.jwt.start(self._session)

    async def close(self) -> None:
        if self.jwt is not None:
            await self.jwt.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def identify(self, request, upstream: str | None = None) -> Caller:
        headers, callers = request.headers, self.callers
        if self.mode == "header":
            name = identify_header(headers.get(callers.header), callers, method=request.method,
                                   target=request.raw_path, headers=headers, upstream=upstream)
            caller = self._named.get(name)
            if caller is None:
                if len(self._named) >= _NAMED:  # names are the caller's to choose: never unbounded
                    self._named.clear()
                caller = self._named[name] = Caller(name)
            return caller
        if self.jwt is not None:
            caller = await self.jwt.verify(headers.get(callers.jwt.header))
        else:
            transport = request.transport
            caller = self.mtls.identify(transport.get_extra_info("peercert") if transport is not None else None)
        asserted = headers.getall(callers.header, ())
        if any(value.strip() != caller.name for value in asserted):
            raise CallerUnauthenticated(f"{callers.header} does not agree with the proven caller")
        return caller
