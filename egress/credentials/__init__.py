"""The credentials stage: inject the upstream's partner credential into what leaves.

Runs after sanitize (which stripped every internal credential); the caller never holds the
partner's secret.  Three kinds, one per module: static.py (a value from config/env),
file.py (a file re-read when it rotates), oauth2.py (short-lived client-credentials tokens).
`Credentials` (one per process, so token caches outlive reloads) holds the file values and
token sources per upstream; it reads the upstream's `credential`, sets one header on the
outgoing headers and records `egress.credential_injected` (header name and kind only); it
raises `CredentialUnavailable` when no valid value exists.  Every value is a `Secret`: it
reaches the outgoing header and nothing else (no log, span, metric or error).
"""

from __future__ import annotations

import asyncio

from multidict import CIMultiDict

from egress.config import Upstream
from egress.credentials.file import FileValue
from egress.credentials.oauth2 import TokenSource
from egress.credentials.static import inject
from egress.errors import CredentialUnavailable
from egress.exchange import Exchange

RETIRED_CLOSE_AFTER = 60.0  # a replaced token source may still serve the old generation's requests


class Credentials:
    def __init__(self, *, resolver=None) -> None:
        self._resolver = resolver
        # upstream name -> (what the source was built from, the source, the Upstream last seen)
        self._sources: dict[str, tuple[tuple, FileValue | TokenSource, Upstream]] = {}
        self._retired: list[TokenSource] = []

    def _source(self, up: Upstream) -> FileValue | TokenSource:
        held = self._sources.get(up.name)
        if held is not None and held[2] is up:   # the hot path: same generation's Upstream
            return held[1]
        cred = up.credential
        key = (cred, up.tls, up.allow_private_addresses, up.timeout.connect)
        if held is not None and held[0] == key:   # a reload that left this credential alone
            self._sources[up.name] = (key, held[1], up)
            return held[1]
        if held is not None and isinstance(held[1], TokenSource):
            self._retire(held[1])
        source = (TokenSource(up, resolver=self._resolver) if cred.oauth2 is not None
                  else FileValue(cred.value_file))
        self._sources[up.name] = (key, source, up)
        return source

    def _retire(self, source: TokenSource) -> None:
        self._retired.append(source)
        loop = asyncio.get_running_loop()
        loop.call_later(RETIRED_CLOSE_AFTER, lambda: loop.create_task(self._close_retired(source)))

    async def _close_retired(self, source: TokenSource) -> None:
        if source in self._retired:
            self._retired.remove(source)
            await source.close()

    async def inject(self, headers: CIMultiDict[str], up: Upstream, ex: Exchange) -> None:
        cred = up.credential
        if cred is None or cred.kind == "static":
            inject(headers, up, ex)
            return
        source = self._source(up)
        if isinstance(source, TokenSource):
            value = await source.token()
            prefix = "Bearer " if cred.prefix is None else cred.prefix
        else:
            value = source.get()
            prefix = cred.prefix or ""
            if value is None:
                raise CredentialUnavailable(f"the credential file of {up.name} cannot be read")
        headers[cred.header] = prefix + value
        ex.event("egress.credential_injected", anomaly=False, header=cred.header.lower(), kind=cred.kind)

    async def renew_after_401(self, headers: CIMultiDict[str], up: Upstream, ex: Exchange) -> bool:
        """The partner answered 401 to an oauth2 token: drop that token and inject a new one.
        True when the request should be sent once more (the body is buffered: replayable)."""
        cred = up.credential
        if cred is None or cred.oauth2 is None:
            return False
        source = self._source(up)
        prefix = "Bearer " if cred.prefix is None else cred.prefix
        sent = headers.get(cred.header)
        if sent is not None:
            source.invalidate(sent.removeprefix(prefix))
        ex.event("egress.credential_rejected", header=cred.header.lower(), kind=cred.kind)
        await self.inject(headers, up, ex)
        return True

    async def close(self) -> None:
        for _, source, _ in self._sources.values():
            if isinstance(source, TokenSource):
                await source.close()
        for source in self._retired:
            await source.close()
        self._sources.clear()
        self._retired.clear()


__all__ = ["Credentials", "inject"]
