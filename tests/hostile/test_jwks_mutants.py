"""The JWKS cache's edges that issue 19's mutation run found untested (egress/identity/jwks.py):
which key types a document yields, the whitespace around egress's own JWKS token, one log line
per outage (not one per cache), and the retry pace of an outage while the last good keys are
held.  Against the real aiohttp JWKS endpoint of tests/identity_fakes.py on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from tests.hostile.test_jwks_cache import cache_for, events, issuer, kept  # noqa: F401 (fixtures)
from tests.identity_fakes import b64, new_key, public_jwk

FAILED = "jwks fetch failed; keeping the last good keys"
NO_KEY = "no usable signing key (RSA/EC/OKP, allowed algorithm)"
OCT = {"kty": "oct", "k": b64(b"a-shared-hmac-secret-of-32-bytes"), "kid": "h", "alg": "HS256"}

KINDS = [
    # id, the document's keys, the algorithms allowed, the kids kept (or the JwksError message)
    ("rsa-kept", [public_jwk(new_key("RS256"), "r", "RS256")], ("RS256",), {"r"}),
    ("ec-kept", [public_jwk(new_key("ES256"), "e", "ES256")], ("ES256",), {"e"}),
    ("okp-ed25519-kept", [public_jwk(new_key("EdDSA"), "o", "EdDSA")], ("EdDSA",), {"o"}),
    ("all-three-kinds", [public_jwk(new_key(a), a, a) for a in ("RS256", "ES256", "EdDSA")],
     ("RS256", "ES256", "EdDSA"), {"RS256", "ES256", "EdDSA"}),
    # an HMAC secret is never a verification key, even where HS256 were allowed
    ("oct-dropped-even-if-hs256-allowed", [OCT], ("HS256", "RS256"), NO_KEY),
]


@pytest.mark.parametrize("jwks,algorithms,expected", [c[1:] for c in KINDS], ids=[c[0] for c in KINDS])
def test_key_kinds(jwks, algorithms, expected):
    assert kept(json.dumps({"keys": jwks}).encode(), algorithms) == expected


TOKENS = [
    # id, what the token file holds
    ("trailing-newline", "kube-token\n"),
    ("leading-and-trailing-whitespace", " \n\tkube-token \n"),
    ("leading-whitespace-only", "  kube-token"),
]


@pytest.mark.parametrize("content", [c[1] for c in TOKENS], ids=[c[0] for c in TOKENS])
async def test_jwks_token_file_is_stripped(issuer, cache_for, tmp_path, content):  # noqa: F811
    issuer.required_token = "kube-token"
    (tmp_path / "token").write_text(content)
    cache = await cache_for(issuer, issuer_kw={"jwks_token_file": str(tmp_path / "token")})
    assert set(cache.keys) == {"k1"} and cache.failures == 0  # the endpoint took the stripped token


async def test_each_outage_logs_once(issuer, cache_for, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, logger="egress")
    cache = await cache_for(issuer)
    for status in (503, 500):
        issuer.status = status
        assert await cache.refresh() is False and await cache.refresh() is False
        issuer.status = 200
        assert await cache.refresh() is True
    assert [f["detail"] for f in events(caplog, FAILED)] == ["HTTP 503", "HTTP 500"]
    assert len(events(caplog, "jwks reachable again")) == 2
    assert (cache.fetches, cache.failures, set(cache.keys)) == (3, 4, {"k1"})


async def test_outage_with_keys_held_retries_at_min_refresh(issuer, cache_for):  # noqa: F811
    cache = await cache_for(issuer, jwks_refresh=0.3, jwks_min_refresh=0.1)
    issuer.status = 503
    await asyncio.sleep(0.45)        # one regular refresh (at 0.3 s) finds the outage
    down_at = issuer.fetches
    await asyncio.sleep(0.55)        # down: every 0.1 s, not every 0.3 s
    assert issuer.fetches - down_at >= 4 and set(cache.keys) == {"k1"}
    issuer.status = 200
    await asyncio.sleep(0.25)
    assert cache.failures >= 5 and set(cache.keys) == {"k1"}
    up_at = issuer.fetches
    await asyncio.sleep(0.5)         # up again: back to every 0.3 s
    assert issuer.fetches - up_at <= 2


async def test_close_waits_for_the_fetch_in_flight(issuer, cache_for):  # noqa: F811
    cache = await cache_for(issuer)
    issuer.delay = 0.3
    waiter = asyncio.get_running_loop().create_task(cache.refresh())
    await asyncio.sleep(0.05)        # the fetch is at the (slow) endpoint
    await cache.close()
    issuer.delay = 0.0
    # the cancelled fetch has ended: a refresh now is a new fetch, not a join of the dead one
    assert await cache.refresh() is True and issuer.fetches == 3
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_refresh_before_start(issuer, cache_for, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, logger="egress")
    cache = await cache_for(issuer, start=False)
    # never fetched: an unknown kid may refresh at once; with no HTTP session it is a clear failure
    assert await cache.refresh_unknown("k1") is None and issuer.fetches == 0 and cache.failures == 1
    assert [f["detail"] for f in events(caplog, FAILED)] == ["no HTTP session (not started)"]
