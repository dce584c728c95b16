"""JWKS: one issuer's signing keys, fetched with aiohttp off the request path, cached, kept.

`JwksCache(issuer, settings)`: `start(session)` loads the keys once (bounded by `jwks_timeout`;
a failure there does not stop egress, it leaves the issuer without keys until a refresh works),
then a background task refreshes every `jwks_refresh` seconds.  `key(kid)` is a dict lookup on
the request path.  `refresh_unknown(kid)`: a token names a kid we do not hold (the issuer rotated):
one fetch, shared by every request waiting for it (single-flight), at most once per
`jwks_min_refresh` seconds, so a flood of made-up kids cannot turn egress into a JWKS hammer.
A failed fetch (outage, bad document) keeps the last good keys.  `jwks_file` is read the same way.

Only public asymmetric keys are kept: `kty: oct` (HMAC secrets), `use: enc` keys and keys whose
algorithm is not in `callers.jwt.algorithms` are dropped, so an HMAC-with-the-public-key token has
no key to verify with.  Never `PyJWKClient`: its urllib fetch blocks the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from pathlib import Path
from typing import Callable

import aiohttp
import jwt
import orjson

from egress.config.model import JwtIssuer, JwtSettings
from egress.observe.logs import log

MAX_JWKS_BYTES = 1 << 20
MAX_KEYS = 100


class JwksError(Exception):
    """A JWKS document could not be fetched or read (the message names no key material)."""


def parse_jwks(data: bytes, algorithms: tuple[str, ...]) -> tuple[dict[str | None, jwt.PyJWK], frozenset]:
    """(kid -> verification key, a fingerprint of those keys) for the usable keys of a JWKS
    document; JwksError if there are none."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise JwksError("not JSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise JwksError('not a JWKS document ({"keys": [...]})')
    keys: dict[str | None, jwt.PyJWK] = {}
    prints = set()
    for raw in doc["keys"][:MAX_KEYS]:
        if not isinstance(raw, dict) or raw.get("kty") not in ("RSA", "EC", "OKP") or raw.get("use") == "enc":
            continue
        try:
            key = jwt.PyJWK(raw)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
        if key.algorithm_name in algorithms:
            kid = raw.get("kid")
            keys[kid if isinstance(kid, str) else None] = key
            prints.add(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS))
    if not keys:
        raise JwksError("no usable signing key (RSA/EC/OKP, allowed algorithm)")
    return keys, frozenset(prints)


class JwksCache:
    def __init__(self, issuer: JwtIssuer, settings: JwtSettings, *, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[], None] | None = None) -> None:
        self.issuer, self.settings, self.clock = issuer, settings, clock
        self.keys: dict[str | None, jwt.PyJWK] = {}
        self._print: frozenset = frozenset()
        self.fetches = self.failures = 0
        self._on_change = on_change
        self._session: aiohttp.ClientSession | None = None
        self._last_attempt = float("-inf")
        self._inflight: asyncio.Future | None = None
        self._task: asyncio.Task | None = None
        self._down = False
        self._ssl = ssl.create_default_context(cafile=issuer.ca_file)  # no ca_file: the system roots

    def adopt(self, previous: "JwksCache") -> None:
        """Start from the keys of the previous generation's cache of the same source (a reload
        during an issuer outage keeps the last good keys)."""
        if (previous.issuer.jwks_url, previous.issuer.jwks_file) == (self.issuer.jwks_url, self.issuer.jwks_file):
            self.keys, self._print = previous.keys, previous._print

    async def start(self, session: aiohttp.ClientSession | None) -> None:
        self._session = session
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._periodic())

    async def close(self) -> None:
        for task in (self._task, self._inflight):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = None

    def key(self, kid: str | None) -> jwt.PyJWK | None:
        key = self.keys.get(kid)
        if key is None and kid is None and len(self.keys) == 1:
            key = next(iter(self.keys.values()))  # a token without kid, an issuer with one key
        return key

    async def refresh_unknown(self, kid: str | None) -> jwt.PyJWK | None:
        """The key after one (rate-limited, shared) refresh, or None."""
        if self._inflight is None and self.clock() - self._last_attempt < self.settings.jwks_min_refresh:
            return None
        await self.refresh()
        return self.key(kid)

    async def refresh(self) -> bool:
        """Fetch now (joining a fetch in flight); True when the keys were replaced.  The fetch
        is its own task: a waiting request that is cancelled does not cancel it for the others."""
        if self._inflight is None:
            self._last_attempt = self.clock()
            self._inflight = asyncio.get_running_loop().create_task(self._refresh())
            self._inflight.add_done_callback(self._fetched)
        return await asyncio.shield(self._inflight)

    def _fetched(self, task: asyncio.Task) -> None:
        self._inflight = None

    async def _refresh(self) -> bool:
        ok = False
        try:
            keys, fingerprint = parse_jwks(await self._read(), self.settings.algorithms)
            self.fetches += 1
            changed, self._print = fingerprint != self._print, fingerprint
            self.keys, ok = keys, True
            if self._down:
                self._down = False
                log(logging.INFO, "jwks reachable again", issuer=self.issuer.issuer)
            if changed and self._on_change is not None:
                self._on_change()
        except (JwksError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.failures += 1
            if not self._down:  # one line per outage, not per attempt; no key material
                self._down = True
                log(logging.WARNING, "jwks fetch failed; keeping the last good keys", issuer=self.issuer.issuer,
                    error=type(exc).__name__, detail=str(exc) if isinstance(exc, JwksError) else "",
                    keys=len(self.keys))
        return ok

    async def _read(self) -> bytes:
        if self.issuer.jwks_file is not None:
            return await asyncio.to_thread(self.issuer.jwks_file.read_bytes)
        if self._session is None:
            raise JwksError("no HTTP session (not started)")
        timeout = aiohttp.ClientTimeout(total=self.settings.jwks_timeout)
        headers = {}
        if self.issuer.jwks_token_file is not None:  # e.g. the Kubernetes API server's discovery
            try:
                token = (await asyncio.to_thread(Path(self.issuer.jwks_token_file).read_text)).strip()
            except OSError as exc:
                raise JwksError("jwks_token_file cannot be read") from exc
            headers["Authorization"] = f"Bearer {token}"
        async with self._session.get(self.issuer.jwks_url, timeout=timeout, allow_redirects=False, headers=headers,
                                     ssl=self._ssl) as resp:
            if resp.status != 200:
                raise JwksError(f"HTTP {resp.status}")
            if (resp.content_length or 0) > MAX_JWKS_BYTES:
                raise JwksError("document too large")
            data = bytearray()  # content.read(n) returns what has arrived, up to n: read to the end
            async for chunk in resp.content.iter_any():
                data += chunk
                if len(data) > MAX_JWKS_BYTES:
                    raise JwksError("document too large")
            return bytes(data)

    async def _periodic(self) -> None:
        while True:
            # after an outage, retry sooner than the regular interval (no keys after start() means
            # its fetch failed: down; parse_jwks never yields an empty key set)
            wait = self.settings.jwks_min_refresh if self._down else self.settings.jwks_refresh
            await asyncio.sleep(max(wait, 0.1))
            await self.refresh()
