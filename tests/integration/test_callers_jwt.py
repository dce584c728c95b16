"""Callers proven by their own token (`callers.identity: jwt`), through the real proxy: the JWKS is
served by a real aiohttp app (rotation, unknown kid, outage, key removal), the caller's token is
never forwarded nor recorded, and nothing is sent upstream when the caller is not proven."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.conftest import base_config
from tests.identity_fakes import PATTERN, FakeIssuer


@pytest.fixture
async def issuer():
    async with FakeIssuer.with_keys(k1="RS256", e1="ES256") as fake:
        yield fake


def jwt_config(fake: FakeIssuer, upstream: dict, **jwt_over) -> dict:
    jwt = {"issuers": [{"issuer": fake.issuer, "jwks_url": fake.jwks_url, "audiences": ["egress"]}],
           "caller_pattern": PATTERN, "jwks_min_refresh": 0.5, **jwt_over}
    return base_config([upstream], callers={"identity": "jwt", "jwt": jwt})


def upstream(p, **kw) -> dict:
    return {"name": "pay", "url": p.url, "allow_private_addresses": True,
            "credential": {"header": "Authorization", "value": "Bearer partner-secret"}, **kw}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def verifier(px):
    return px.state.generation.identity.jwt


REFUSED = [
    ("no_token", lambda f: {}, "send your service's token"),
    ("wrong_audience", lambda f: bearer(f.token(aud="someone-else")), "audience"),
    ("expired", lambda f: bearer(f.token(ttl=-3600)), "expired"),
    ("header_disagrees", lambda f: {**bearer(f.token()), "X-Egress-Caller": "billing"}, "does not agree"),
    ("header_only", lambda f: {"X-Egress-Caller": "checkout"}, "send your service's token"),
]


@pytest.mark.parametrize("make,detail", [(m, d) for _, m, d in REFUSED], ids=[i for i, _, _ in REFUSED])
async def test_unproven_caller_gets_401_and_nothing_is_sent(provider, proxy, issuer, make, detail):
    p = await provider()
    px = await proxy(jwt_config(issuer, upstream(p)))
    async with px.request("GET", "/pay/charges/1", caller=None, headers=make(issuer)) as r:
        body = await r.json(content_type=None)
    assert (r.status, r.headers["X-Egress-Error"], body["reason"]) == (401, "caller_unauthenticated",
                                                                       "caller_unauthenticated")
    assert detail in body["detail"]
    assert r.headers["Content-Type"] == "application/problem+json" and body["type"].endswith("caller_unauthenticated")
    assert len(body["trace_id"]) == 32
    assert p.hits == 0


async def test_proven_caller_is_served_and_its_token_never_leaves(provider, proxy, issuer, caplog):
    p = await provider()
    seen = []
    px = await proxy(jwt_config(issuer, upstream(p)), observers=[seen.append])
    token = issuer.token("e1")
    caplog.set_level(logging.DEBUG)
    for headers in (bearer(token), {**bearer(token), "X-Egress-Caller": "checkout"}):
        async with px.request("GET", "/pay/charges/1", caller=None, headers=headers) as r:
            body = await r.read()
        assert r.status == 200, body
    assert [ex.caller for ex in seen] == ["checkout", "checkout"]
    sent = p.requests[0].headers
    assert sent.getall("Authorization") == ["Bearer partner-secret"]
    assert "X-Egress-Caller" not in sent
    assert token not in caplog.text and token[-30:] not in caplog.text
    for ex in seen:
        assert token[-30:] not in repr([(e.name, e.attrs) for e in ex.events])


async def test_rotation_new_kid_is_fetched_once_then_cached(provider, proxy, issuer):
    p = await provider()
    px = await proxy(jwt_config(issuer, upstream(p)))
    before = issuer.fetches
    issuer.add_key("k2", "RS256")
    await asyncio.sleep(0.6)  # past jwks_min_refresh since the start-up fetch
    for _ in range(3):
        async with px.request("GET", "/pay/x", caller=None, headers=bearer(issuer.token("k2"))) as r:
            assert r.status == 200
    assert issuer.fetches == before + 1


async def test_unknown_kid_flood_costs_one_fetch(provider, proxy, issuer):
    p = await provider()
    px = await proxy(jwt_config(issuer, upstream(p), jwks_min_refresh=30))
    stranger = FakeIssuer(issuer=issuer.issuer)
    before = issuer.fetches
    verifier(px).issuers[issuer.issuer]._last_attempt = float("-inf")  # as if the last fetch were long ago
    tokens = []
    for i in range(20):
        stranger.add_key(f"made-up-{i}", "ES256")
        tokens.append(stranger.token(f"made-up-{i}"))

    async def one(t):
        async with px.request("GET", "/pay/x", caller=None, headers=bearer(t)) as r:
            return r.status, r.headers.get("X-Egress-Error")

    results = await asyncio.gather(*(one(t) for t in tokens))
    assert set(results) == {(401, "caller_unauthenticated")}
    assert issuer.fetches - before == 1
    assert p.hits == 0


async def test_outage_keeps_last_good_keys(provider, proxy, issuer, caplog):
    p = await provider()
    px = await proxy(jwt_config(issuer, upstream(p)))
    cache = verifier(px).issuers[issuer.issuer]
    issuer.status = 503
    caplog.set_level(logging.WARNING)
    assert await cache.refresh() is False
    assert "jwks fetch failed; keeping the last good keys" in caplog.text
    async with px.request("GET", "/pay/x", caller=None, headers=bearer(issuer.token("k1"))) as r:
        assert r.status == 200
    issuer.add_key("k3")  # rotated during the outage: not reachable, refused, nothing sent
    await asyncio.sleep(0.6)
    async with px.request("GET", "/pay/x", caller=None, headers=bearer(issuer.token("k3"))) as r:
        assert (r.status, r.headers["X-Egress-Error"]) == (401, "caller_unauthenticated")
    assert p.hits == 1
    issuer.status = 200
    assert await cache.refresh() is True


async def test_key_removed_from_jwks_stops_its_tokens_even_cached(provider, proxy, issuer):
    p = await provider()
    px = await proxy(jwt_config(issuer, upstream(p)))
    token = issuer.token("k1")
    async with px.request("GET", "/pay/x", caller=None, headers=bearer(token)) as r:
        assert r.status == 200
    del issuer.keys["k1"]  # compromised key withdrawn by the issuer
    assert await verifier(px).issuers[issuer.issuer].refresh() is True
    async with px.request("GET", "/pay/x", caller=None, headers=bearer(token)) as r:
        body = await r.json(content_type=None)
    assert (r.status, body["reason"]) == (401, "caller_unauthenticated")
    assert "signing key" in body["detail"]


async def test_jwks_file_issuer(provider, proxy, issuer, tmp_path):
    import json
    (tmp_path / "internal.jwks.json").write_text(json.dumps(issuer.jwks()))
    p = await provider()
    doc = jwt_config(issuer, upstream(p))
    doc["callers"]["jwt"]["issuers"] = [{"issuer": issuer.issuer, "jwks_file": "internal.jwks.json",
                                         "audiences": ["egress"]}]
    px = await proxy(doc, base_dir=tmp_path)
    async with px.request("GET", "/pay/x", caller=None, headers=bearer(issuer.token("e1"))) as r:
        assert r.status == 200


async def test_jwks_fetch_authenticates_with_the_token_file(provider, proxy, issuer, tmp_path, caplog):
    """Like the Kubernetes API server's /openid/v1/jwks: the fetch needs egress's own token,
    re-read from its (projected, rotating) file at each fetch, and never logged."""
    issuer.required_token = "egress-own-sa-token-0123456789"
    p = await provider()
    doc = jwt_config(issuer, upstream(p))
    doc["callers"]["jwt"]["issuers"][0]["jwks_token_file"] = str(tmp_path / "token")
    (tmp_path / "token").write_text("stale-token-of-yesterday\n")
    caplog.set_level(logging.INFO)
    px = await proxy(doc)
    async with px.request("GET", "/pay/x", caller=None, headers=bearer(issuer.token("k1"))) as r:
        assert (r.status, r.headers["X-Egress-Error"]) == (401, "caller_unauthenticated")  # no keys yet
    (tmp_path / "token").write_text(issuer.required_token + "\n")  # the kubelet rotated it
    assert await verifier(px).issuers[issuer.issuer].refresh() is True
    async with px.request("GET", "/pay/x", caller=None, headers=bearer(issuer.token("k1"))) as r:
        assert r.status == 200
    assert "stale-token-of-yesterday" not in caplog.text and issuer.required_token not in caplog.text


async def test_reload_during_an_issuer_outage_keeps_the_last_good_keys(provider, proxy, issuer, tmp_path):
    import yaml
    p = await provider()
    doc = jwt_config(issuer, upstream(p))
    (tmp_path / "egress.yaml").write_text(yaml.safe_dump(doc))
    px = await proxy(doc)
    first = px.state.generation
    issuer.status = 503
    assert await px.state.reload(tmp_path / "egress.yaml") == []
    assert px.state.generation is not first
    assert verifier(px).issuers[issuer.issuer].failures >= 1
    async with px.request("GET", "/pay/x", caller=None, headers=bearer(issuer.token("k1"))) as r:
        assert r.status == 200


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch(provider, proxy, issuer):
    p = await provider()
    px = await proxy(jwt_config(issuer, upstream(p)))
    cache = verifier(px).issuers[issuer.issuer]
    before = issuer.fetches
    issuer.delay = 0.3
    first = asyncio.get_running_loop().create_task(cache.refresh())
    await asyncio.sleep(0.05)
    first.cancel()  # e.g. the client that triggered it hung up
    assert await cache.refresh() is True  # joins the same fetch, which completes
    assert issuer.fetches == before + 1
