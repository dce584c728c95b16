"""OAuth2 client credentials (RFC 6749 4.4): short-lived partner tokens, one cache per upstream.

`TokenSource.token()` returns a valid access token: fetched on first use (single-flight: one
POST however many requests wait), renewed in the background once `refresh_at` (~80%) of its
`expires_in` has passed while requests keep using the current one, and kept through an IdP
outage for as long as it is valid.  No valid token and the IdP failing: `CredentialUnavailable`
(503 `credential_unavailable`); after a failure the IdP is not asked again for a short,
growing backoff, so an outage costs the IdP one request per backoff, not one per caller.
`invalidate(token)` (the partner answered 401) drops that token so the next call fetches.

The token endpoint is called through `send.client.UpstreamClient`: the same address guard,
TLS rules (the upstream's `tls.ca_file`) and error translation as the upstream itself, no
redirects, a small response cap.  The client secret, the token and the IdP's answer never
reach a log line, span, metric or error: failures are logged by kind and status only.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import replace
from typing import Callable
from urllib.parse import quote, urlencode

import orjson
from multidict import CIMultiDict

from egress.config import Limits, Redirects, Secret, Timeout, Upstream
from egress.credentials.file import FileValue
from egress.errors import CredentialUnavailable, EgressError
from egress.observe.logs import log
from egress.send.client import UpstreamClient

DEFAULT_EXPIRES_IN = 300.0  # when the IdP gives no expires_in (RFC 6749 5.1: RECOMMENDED)
MAX_EXPIRES_IN = 86400  # a token is renewed at least daily, whatever the IdP says
EXPIRY_MARGIN = 1.0         # a token is not used in its last second (or last tenth)
MAX_TOKEN_ANSWER = 65536
BACKOFF, MAX_BACKOFF = 0.5, 10.0


class TokenError(Exception):
    """Why a fetch failed, in egress's words (a kind and maybe a status; no IdP text)."""


def token_endpoint(up: Upstream) -> Upstream:
    """The upstream's token endpoint as an Upstream: its address guard and TLS, no credential,
    no redirects, a small answer."""
    cfg = up.credential.oauth2
    return replace(up, name=f"{up.name}-token", url=cfg.token_url, credential=None, redirects=Redirects(),
                   limits=replace(Limits(), max_response_bytes=MAX_TOKEN_ANSWER),
                   timeout=Timeout(connect=min(up.timeout.connect, cfg.timeout), total=cfg.timeout))


class TokenSource:
    def __init__(self, up: Upstream, *, resolver=None, clock: Callable[[], float] = time.monotonic) -> None:
        self.upstream_name, self.cfg = up.name, up.credential.oauth2
        self._endpoint = token_endpoint(up)
        self._client = UpstreamClient(self._endpoint, resolver=resolver)
        self._started = False
        self._secret_file = FileValue(self.cfg.client_secret_file) if self.cfg.client_secret_file else None
        self._clock = clock
        self._token: Secret | None = None
        self._expires_at = self._refresh_at = 0.0
        self._inflight: asyncio.Task | None = None
        self._not_before = 0.0   # after a failure: no new fetch before this
        self._backoff = BACKOFF
        self.fetches = 0         # POSTs made (tests and bench read it)

    async def token(self) -> Secret:
        now = self._clock()
        if self._token is not None and now < self._expires_at:
            # (after a failed renewal refresh_at is the end of the backoff: no hammering)
            if now >= self._refresh_at and self._inflight is None:
                self._spawn()    # renew in the background; this request uses the current token
            return self._token
        if self._inflight is None:
            if now < self._not_before:
                raise CredentialUnavailable(f"the token endpoint of {self.upstream_name} failed recently "
                                            "and no valid token is cached")
            self._spawn()
        task = self._inflight
        await asyncio.shield(task)   # a cancelled request does not cancel the shared fetch
        if self._token is None or self._clock() >= self._expires_at:
            raise CredentialUnavailable(f"no valid token from the token endpoint of {self.upstream_name}")
        return self._token

    def invalidate(self, token: str) -> None:
        """The partner refused `token` (401): forget it if it is still the cached one."""
        if self._token is not None and self._token == token:
            self._token = None   # (expires_at is read only while a token is cached)

    async def close(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()
        await self._client.close()

    # ------------------------------------------------------------ fetching

    def _spawn(self) -> None:
        self._inflight = asyncio.get_running_loop().create_task(self._fetch(), name="egress-oauth2")

    async def _fetch(self) -> None:
        """One POST; never raises (the outcome is the cached token, or the backoff)."""
        started = self._clock()
        try:
            token, expires_in = await self._post()
        except TokenError as exc:
            self._failed(started, str(exc))
        except Exception as exc:  # a bug of ours: still only the type
            self._failed(started, type(exc).__name__)
        else:
            self._token, self._backoff, self._not_before = token, BACKOFF, 0.0
            self._expires_at = started + expires_in - min(EXPIRY_MARGIN, expires_in * 0.1)
            self._refresh_at = started + expires_in * self.cfg.refresh_at
        finally:
            self._inflight = None

    def _failed(self, started: float, why: str) -> None:
        self._not_before = started + self._backoff
        if self._token is not None:  # renew again after the backoff, while the token lasts
            self._refresh_at = self._not_before
        log(logging.WARNING, "oauth2 token fetch failed", upstream=self.upstream_name, error=why,
            retry_in=self._backoff, token_cached=self._token is not None)
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)

    def _client_secret(self) -> str:
        secret = self._secret_file.get() if self._secret_file is not None else self.cfg.client_secret
        if not secret:
            raise TokenError("client_secret_file unreadable")
        return secret

    async def _post(self) -> tuple[Secret, float]:
        cfg = self.cfg
        if not self._started:
            await self._client.start()
            self._started = True
        form = {"grant_type": "client_credentials"}
        if cfg.scope:
            form["scope"] = cfg.scope
        if cfg.audience:
            form["audience"] = cfg.audience
        headers = CIMultiDict({"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
        secret = self._client_secret()
        if cfg.auth_method == "client_secret_post":
            form.update(client_id=cfg.client_id, client_secret=secret)
        else:  # RFC 6749 2.3.1: each part form-urlencoded, then Basic
            pair = f"{quote(cfg.client_id, safe='')}:{quote(secret, safe='')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self.fetches += 1
        try:
            resp = await self._client.send("POST", cfg.token_url.raw_path_qs, headers, urlencode(form).encode(),
                                           timeout=cfg.timeout)
        except EgressError as exc:
            raise TokenError(exc.reason) from exc
        if resp.status != 200:
            raise TokenError(f"status {resp.status}")
        return parse_token_answer(resp.body)


def parse_token_answer(body: bytes) -> tuple[Secret, float]:
    """RFC 6749 5.1: access_token (required), token_type bearer, expires_in seconds."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise TokenError("answer is not JSON") from exc
    if not isinstance(doc, dict):
        raise TokenError("answer is not a JSON object")
    token = doc.get("access_token")
    if not isinstance(token, str) or not token or len(token) > 16384 or not token.isprintable() \
            or not token.isascii():
        raise TokenError("answer has no usable access_token")
    token_type = doc.get("token_type", "bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenError("token_type is not bearer")
    expires_in = doc.get("expires_in", DEFAULT_EXPIRES_IN)
    if isinstance(expires_in, str) and expires_in.isascii() and expires_in.isdigit():  # seen in the wild
        digits = expires_in.lstrip("0") or "0"  # its value's digits: 10 or more are over a day
        expires_in = int(digits) if len(digits) <= 9 else MAX_EXPIRES_IN
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or expires_in <= 0:
        raise TokenError("expires_in is not a positive number")
    return Secret(token), float(min(expires_in, MAX_EXPIRES_IN))
