"""Caller identity from the caller's own bearer token (`callers.identity: jwt`).

`JwtVerifier(settings).verify(header_value) -> Caller` or raises CallerUnauthenticated (401).
Checks, in order, each with its own detail (never the token, never a claim value):
size (`max_token_bytes`) and shape (three base64url segments) -> header JSON with an `alg` in
the allowlist (`none` and HS* never: only asymmetric names pass the schema) -> `iss` one of the
configured issuers -> the key for `kid` in that issuer's JWKS (jwks.py; an unknown kid triggers
one rate-limited refresh) -> signature with the key's own algorithm (a token claiming another
alg than its key's is refused) -> `exp` (required), `nbf`, `iat` with `leeway` -> `aud`
(required) contains one of the issuer's audiences -> the caller name from `caller_claim` through
`caller_pattern` (fullmatch; group `caller`), a service name (letters, digits, . _ -).

A verified token is cached until its `exp` (bounded; emptied whenever an issuer's keys change,
so a key removed from the JWKS stops its tokens at once): a service reuses its token for many
requests, and a repeat costs a dict lookup instead of a signature check (bench/identity_cost.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import time
from dataclasses import dataclass
from typing import Callable

import jwt
import orjson

from egress.config.model import JwtSettings
from egress.errors import CallerUnauthenticated
from egress.identity.jwks import JwksCache

MAX_CACHED_TOKENS = 10000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_SEGMENTS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Caller:
    """A caller as proven: its name, the scopes its token carries, and how it was proven."""
    name: str
    scopes: frozenset[str] = frozenset()
    proof: str = "header"


def _segment(text: str) -> object:
    try:
        return orjson.loads(base64.urlsafe_b64decode(text + "=="))  # padding beyond what is needed is ignored
    except (binascii.Error, ValueError):
        return None


def caller_name(value: object, pattern: re.Pattern[str] | None, what: str) -> str:
    """The service name from a claim or certificate value; CallerUnauthenticated otherwise."""
    if not isinstance(value, str) or not value:
        raise CallerUnauthenticated(f"the {what} names no caller")
    if pattern is not None:
        m = pattern.fullmatch(value)
        if m is None:
            raise CallerUnauthenticated(f"the {what} does not match caller_pattern (wrong trust domain or issuer?)")
        value = m.group("caller") if "caller" in pattern.groupindex else m.group(0)
    if not _NAME.match(value):
        raise CallerUnauthenticated(f"the {what} does not give a service name (letters, digits, . _ -)")
    return value


def scopes_of(value: object) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(s for s in value if isinstance(s, str))
    return frozenset()


class JwtVerifier:
    def __init__(self, settings: JwtSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings, self.clock = settings, clock
        self.issuers = {i.issuer: JwksCache(i, settings, on_change=self.forget) for i in settings.issuers}
        self._audiences = {i.issuer: list(i.audiences) for i in settings.issuers}
        self._pattern = re.compile(settings.caller_pattern) if settings.caller_pattern else None
        self._cache: dict[str, tuple[float, Caller]] = {}

    def forget(self) -> None:
        """Drop every cached verification (an issuer's keys changed)."""
        self._cache.clear()

    def adopt(self, previous: "JwtVerifier") -> None:
        for name, cache in self.issuers.items():
            if name in previous.issuers:
                cache.adopt(previous.issuers[name])

    async def start(self, session) -> None:
        await asyncio.gather(*(cache.start(session) for cache in self.issuers.values()))

    async def close(self) -> None:
        for cache in self.issuers.values():
            await cache.close()

    async def verify(self, value: str | None) -> Caller:
        token = self._token(value)
        hit = self._cache.get(token)
        if hit is not None and self.clock() < hit[0]:
            return hit[1]
        header, payload = self._unverified(token)
        cache = self.issuers.get(payload.get("iss"))  # type: ignore[arg-type]
        if cache is None:
            raise CallerUnauthenticated("the token's issuer is not trusted (callers.jwt.issuers)")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise CallerUnauthenticated("the token's kid is not a string")
        key = cache.key(kid) or await cache.refresh_unknown(kid)
        if key is None:
            raise CallerUnauthenticated("the token's signing key (kid) is not in its issuer's JWKS")
        claims = self._decode(token, payload, key, header["alg"], cache.issuer.issuer)
        caller = Caller(caller_name(claims.get(self.settings.caller_claim), self._pattern,
                                    f"token's {self.settings.caller_claim} claim"),
                        scopes_of(claims.get(self.settings.scopes_claim)), "jwt")
        if len(self._cache) >= MAX_CACHED_TOKENS:
            self._cache.clear()
        self._cache[token] = (float(claims["exp"]) + self.settings.leeway, caller)
        return caller

    def _token(self, value: str | None) -> str:
        name = self.settings.header
        if value is None or not value.strip():
            raise CallerUnauthenticated(f"send your service's token: {name}: Bearer <token>")
        if len(value) > self.settings.max_token_bytes:
            raise CallerUnauthenticated(f"the token is larger than {self.settings.max_token_bytes} bytes")
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise CallerUnauthenticated(f"{name} must be 'Bearer <token>'")
        if not _SEGMENTS.match(token):
            raise CallerUnauthenticated("the token is not a JWT (three base64url segments)")
        return token

    def _unverified(self, token: str) -> tuple[dict, dict]:
        head, body, _ = token.split(".")
        header, payload = _segment(head), _segment(body)
        if not isinstance(header, dict) or not isinstance(payload, dict):
            raise CallerUnauthenticated("the token is malformed (header or payload is not a JSON object)")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.settings.algorithms:
            raise CallerUnauthenticated("the token's algorithm is not allowed (callers.jwt.algorithms)")
        if header.get("crit") is not None or header.get("b64") is not None:
            raise CallerUnauthenticated("the token uses JWS extensions egress does not accept (crit, b64)")
        return header, payload

    def _decode(self, token: str, payload: dict, key: jwt.PyJWK, alg: str, issuer: str) -> dict:
        """The signature (with the key's own algorithm, through PyJWT's algorithm objects), then
        the time and audience claims.  PyJWT's decode() is not used: it re-parses the token and
        its per-character base64 check costs ~100 us; the shape was checked in _token()."""
        if alg != key.algorithm_name:
            raise CallerUnauthenticated("the token's algorithm does not match its key")
        head, body, sig = token.split(".")
        try:
            ok = key.Algorithm.verify(f"{head}.{body}".encode("ascii"), key.key,
                                      base64.urlsafe_b64decode(sig + "=="))
        except (binascii.Error, ValueError, TypeError, jwt.InvalidKeyError):
            ok = False
        if not ok:
            raise CallerUnauthenticated("the token's signature does not verify")
        now, leeway = self.clock(), self.settings.leeway
        for claim in ("exp", "aud"):
            if claim not in payload:
                raise CallerUnauthenticated(f"the token lacks the {claim} claim")
        for claim in ("exp", "nbf", "iat"):
            value = payload.get(claim)
            if claim in payload and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise CallerUnauthenticated(f"the token's {claim} claim is not a number")
        if now > payload["exp"] + leeway:
            raise CallerUnauthenticated("the token has expired")
        if any(payload[claim] > now + leeway for claim in ("nbf", "iat") if claim in payload):
            raise CallerUnauthenticated("the token is not valid yet (nbf or iat in the future)")
        aud = payload["aud"]
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(isinstance(a, str) and a in self._audiences[issuer] for a in auds):
            raise CallerUnauthenticated("the token's audience is not egress's (callers.jwt.issuers[].audiences)")
        return payload
