"""The JWKS cache (egress/identity/jwks.py, issue 19): which keys a document yields, and how the
cache fetches them from a real aiohttp JWKS endpoint on loopback (FakeIssuer): rate-limited
refresh for an unknown kid, outages keep the last good keys and log once, size limits, no
redirects, egress's own token, the periodic refresh and its stop."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp import web

from egress.config.model import JwtIssuer, JwtSettings
from egress.identity.jwks import MAX_JWKS_BYTES, JwksCache, JwksError, parse_jwks
from tests.fakes import FakeProvider, each_closed, tls_server
from tests.identity_fakes import FakeIssuer, new_key, public_jwk

ALGS = ("RS256", "ES256", "EdDSA")


def rsa_jwk(kid: str, **over) -> dict:
    return {**public_jwk(new_key("RS256"), kid, "RS256"), **over}


PARSE = [
    # id, document, kids kept (or the JwksError message)
    ("not-json", b"<html>", "not JSON"),
    ("a-list", b"[]", 'not a JWKS document ({"keys": [...]})'),
    ("keys-not-a-list", b'{"keys": {}}', 'not a JWKS document ({"keys": [...]})'),
    ("enc-key-dropped-beside-a-sig-key", {"keys": [rsa_jwk("enc", use="enc"), rsa_jwk("sig")]}, {"sig"}),
    ("only-an-enc-key", {"keys": [rsa_jwk("enc", use="enc")]}, "no usable signing key (RSA/EC/OKP, allowed algorithm)"),
    ("junk-entry-before-a-good-key", {"keys": [5, {"kty": "oct", "k": "c2VjcmV0"}, rsa_jwk("k1")]}, {"k1"}),
    ("broken-key-before-a-good-key", {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "b"},
                                               rsa_jwk("k1")]}, {"k1"}),
    ("algorithm-not-allowed", {"keys": [{**rsa_jwk("k1"), "alg": "RS512"}]},
     "no usable signing key (RSA/EC/OKP, allowed algorithm)"),
    ("non-string-kid-is-no-kid", {"keys": [rsa_jwk(5), rsa_jwk("k1")]}, {None, "k1"}),
    ("only-the-first-100-entries", {"keys": [5] * 100 + [rsa_jwk("k101")]},
     "no usable signing key (RSA/EC/OKP, allowed algorithm)"),
    ("the-100th-entry-counts", {"keys": [5] * 99 + [rsa_jwk("k100")]}, {"k100"}),
]


def kept(data: bytes, algorithms) -> set | str:
    """The kids parse_jwks keeps from `data`, or the message of the JwksError it raises."""
    try:
        keys, _ = parse_jwks(data, algorithms)
    except JwksError as exc:
        return str(exc)
    return set(keys)


@pytest.mark.parametrize("doc,expected", [c[1:] for c in PARSE], ids=[c[0] for c in PARSE])
def test_parse_jwks(doc, expected):
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    assert kept(data, ALGS) == expected


def test_fingerprint_names_the_keys_not_their_spelling():
    a, b = rsa_jwk("a"), rsa_jwk("b")
    fp = lambda doc: parse_jwks(json.dumps(doc).encode(), ALGS)[1]  # noqa: E731
    assert fp({"keys": [a, b]}) == fp({"keys": [b, dict(reversed(list(a.items())))]})
    assert fp({"keys": [a, b]}) != fp({"keys": [a]}) != fp({"keys": [b]})


# ------------------------------------------------------------------ the cache against a real endpoint


@pytest.fixture
async def issuer():
    async with FakeIssuer.with_keys(k1="RS256") as fake:
        yield fake


@pytest.fixture
async def cache_for(session):
    async def make(fake, *, url=None, start=True, clock=None, on_change=None, sess=session, **kw):
        kw.setdefault("jwks_min_refresh", 10.0)
        issuer_kw = kw.pop("issuer_kw", {})
        cache = JwksCache(JwtIssuer(fake.issuer, ("egress",), jwks_url=url or fake.jwks_url, **issuer_kw),
                          JwtSettings(**kw), **({"clock": clock} if clock else {}), on_change=on_change)
        if start:
            await cache.start(sess)
        return cache

    async with each_closed(make, close="close") as made:
        yield made


def events(caplog, msg):
    return [r.fields for r in caplog.records if r.getMessage() == msg]


async def test_key_lookup(issuer, cache_for):
    cache = await cache_for(issuer)
    assert cache.key("k1") is cache.keys["k1"]
    assert cache.key(None) is cache.keys["k1"]  # no kid, one key
    assert cache.key("zz") is None               # an unknown kid never falls back
    issuer.add_key("k2", "ES256")
    assert await cache.refresh()
    assert cache.key(None) is None               # no kid, two keys: which one?
    assert cache.key("k2") is cache.keys["k2"]


async def test_unknown_kid_refreshes_at_most_once_per_min_refresh(issuer, cache_for):
    now = [100.0]
    cache = await cache_for(issuer, clock=lambda: now[0], jwks_min_refresh=10.0)
    assert issuer.fetches == 1
    issuer.add_key("k2", "RS256")
    now[0] = 109.9
    assert await cache.refresh_unknown("k2") is None and issuer.fetches == 1
    now[0] = 110.0
    assert await cache.refresh_unknown("k2") is cache.keys["k2"] and issuer.fetches == 2
    now[0] = 115.0
    assert await cache.refresh_unknown("k3") is None and issuer.fetches == 2


async def test_a_fetch_in_flight_is_shared(issuer, cache_for):
    cache = await cache_for(issuer, jwks_min_refresh=60.0)
    issuer.delay = 0.3
    issuer.add_key("k2", "RS256")
    got = await asyncio.gather(cache.refresh(), cache.refresh_unknown("k2"), cache.refresh_unknown("k2"))
    assert got[0] is True and got[1] is got[2] is cache.keys["k2"]
    assert issuer.fetches == 2


async def test_outage_keeps_the_keys_logs_once_and_recovers(issuer, cache_for, caplog):
    caplog.set_level(logging.INFO, logger="egress")
    changes = []
    cache = await cache_for(issuer, on_change=lambda: changes.append(1))
    assert (cache.fetches, cache.failures, changes) == (1, 0, [1])
    assert await cache.refresh() is True and changes == [1]  # the same keys: no change
    issuer.status = 503
    assert await cache.refresh() is False and await cache.refresh() is False
    assert (cache.fetches, cache.failures, set(cache.keys)) == (2, 2, {"k1"})
    assert events(caplog, "jwks fetch failed; keeping the last good keys") == [
        {"issuer": issuer.issuer, "error": "JwksError", "detail": "HTTP 503", "keys": 1}]
    assert [r.levelno for r in caplog.records if r.getMessage().startswith("jwks fetch")] == [logging.WARNING]
    issuer.status = 200
    issuer.add_key("k2", "RS256")
    assert await cache.refresh() is True
    assert (cache.fetches, cache.failures, set(cache.keys), changes) == (3, 2, {"k1", "k2"}, [1, 1])
    assert events(caplog, "jwks reachable again") == [{"issuer": issuer.issuer}]
    assert [r.levelno for r in caplog.records if r.getMessage() == "jwks reachable again"] == [logging.INFO]


async def test_connection_failure_is_logged_without_detail(issuer, cache_for, caplog):
    caplog.set_level(logging.INFO, logger="egress")
    cache = await cache_for(issuer, url="http://127.0.0.1:9/jwks")
    assert cache.keys == {} and cache.failures == 1
    [fields] = events(caplog, "jwks fetch failed; keeping the last good keys")
    assert fields["detail"] == "" and fields["keys"] == 0 and fields["error"] != "JwksError"


async def test_not_started_means_no_session(issuer, cache_for, caplog):
    caplog.set_level(logging.INFO, logger="egress")
    cache = await cache_for(issuer, sess=None)
    assert cache.keys == {} and issuer.fetches == 0
    assert events(caplog, "jwks fetch failed; keeping the last good keys")[0]["detail"] == \
        "no HTTP session (not started)"


async def test_jwks_file(issuer, cache_for, tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(issuer.jwks()))
    cache = JwksCache(JwtIssuer(issuer.issuer, ("egress",), jwks_file=path), JwtSettings())
    try:
        await cache.start(None)
        assert set(cache.keys) == {"k1"} and issuer.fetches == 0
    finally:
        await cache.close()


async def test_egress_token_for_the_jwks_endpoint(issuer, cache_for, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="egress")
    issuer.required_token = "kube-token"
    (tmp_path / "token").write_text("kube-token\n")
    cache = await cache_for(issuer, issuer_kw={"jwks_token_file": str(tmp_path / "token")})
    assert set(cache.keys) == {"k1"}
    missing = await cache_for(issuer, issuer_kw={"jwks_token_file": str(tmp_path / "nope")})
    assert missing.keys == {}
    assert events(caplog, "jwks fetch failed; keeping the last good keys")[0]["detail"] == \
        "jwks_token_file cannot be read"


@pytest.fixture
async def endpoint():
    """A JWKS endpoint answering what the test sets: (status, headers, body, chunked)."""
    state = {}

    async def handler(request):
        status, headers, body, chunked = state["answer"]
        if not chunked:
            return web.Response(status=status, headers=headers, body=body)
        resp = web.StreamResponse(status=status, headers=headers)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(body), 65536):
            await resp.write(body[i:i + 65536])
        await resp.write_eof()
        return resp

    async with FakeProvider(handler) as fake:
        state["url"] = fake.url + "/jwks"
        yield state


def padded(doc: dict, size: int) -> bytes:
    data = json.dumps(doc).encode()
    return data[:-1] + b" " * (size - len(data)) + b"}"


SIZES = [
    # id, body size, chunked, kept or the detail
    ("exactly-the-limit", MAX_JWKS_BYTES, False, {"k1"}),
    ("exactly-the-limit-chunked", MAX_JWKS_BYTES, True, {"k1"}),
    ("one-byte-over", MAX_JWKS_BYTES + 1, False, "document too large"),
    ("one-byte-over-chunked", MAX_JWKS_BYTES + 1, True, "document too large"),
]


@pytest.mark.parametrize("size,chunked,expected", [c[1:] for c in SIZES], ids=[c[0] for c in SIZES])
async def test_document_size_limit(issuer, endpoint, cache_for, caplog, size, chunked, expected):
    caplog.set_level(logging.INFO, logger="egress")
    body = padded(issuer.jwks(), size)
    assert len(body) == size
    endpoint["answer"] = (200, {"Content-Type": "application/json"}, body, chunked)
    cache = await cache_for(issuer, url=endpoint["url"])
    if isinstance(expected, set):
        assert set(cache.keys) == expected
    else:
        assert cache.keys == {}
        assert events(caplog, "jwks fetch failed; keeping the last good keys")[0]["detail"] == expected


async def test_redirects_are_not_followed(issuer, endpoint, cache_for, caplog):
    caplog.set_level(logging.INFO, logger="egress")
    endpoint["answer"] = (302, {"Location": issuer.jwks_url}, b"", False)
    cache = await cache_for(issuer, url=endpoint["url"])
    assert cache.keys == {} and issuer.fetches == 0
    assert events(caplog, "jwks fetch failed; keeping the last good keys")[0]["detail"] == "HTTP 302"


async def test_gzip_document_is_decoded(issuer, endpoint, cache_for):
    import gzip
    endpoint["answer"] = (200, {"Content-Encoding": "gzip"}, gzip.compress(json.dumps(issuer.jwks()).encode()), False)
    assert set((await cache_for(issuer, url=endpoint["url"])).keys) == {"k1"}


async def test_slow_endpoint_is_bounded_by_jwks_timeout(issuer, cache_for):
    issuer.delay = 2.0
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    cache = await cache_for(issuer, jwks_timeout=0.3)
    assert cache.keys == {} and loop.time() - t0 < 1.5


async def test_tls_endpoint_trusted_through_ca_file(tmp_path, cache_for):
    ctx, ca_file = tls_server(tmp_path, "127.0.0.1")
    fake = FakeIssuer.with_keys(k1="RS256")
    fake.ssl_context = ctx
    async with fake:
        url = fake.jwks_url
        assert url.startswith("https://127.0.0.1:")
        assert set((await cache_for(fake, url=url, issuer_kw={"ca_file": str(ca_file)})).keys) == {"k1"}
        assert (await cache_for(fake, url=url)).keys == {}  # not trusted by the system roots


async def test_periodic_refresh_and_its_stop(issuer, cache_for):
    cache = await cache_for(issuer, jwks_refresh=0.2, jwks_min_refresh=60.0)
    await asyncio.sleep(0.7)
    assert issuer.fetches >= 3
    await cache.close()
    seen = issuer.fetches
    await asyncio.sleep(0.4)
    assert issuer.fetches == seen


async def test_periodic_refresh_retries_sooner_while_down(issuer, cache_for):
    issuer.status = 503
    cache = await cache_for(issuer, jwks_refresh=60.0, jwks_min_refresh=0.2)
    await asyncio.sleep(0.7)
    assert issuer.fetches >= 3 and cache.keys == {}
    issuer.status = 200
    await asyncio.sleep(0.4)
    assert set(cache.keys) == {"k1"}
    seen = issuer.fetches
    await asyncio.sleep(0.5)
    assert issuer.fetches == seen  # up again: back to jwks_refresh


async def test_periodic_refresh_waits_at_least_a_tenth_of_a_second(issuer, cache_for):
    await cache_for(issuer, jwks_refresh=0.0, jwks_min_refresh=0.0)
    await asyncio.sleep(0.35)
    assert 2 <= issuer.fetches <= 5


async def test_adopt_keeps_the_keys_of_the_same_source_only(issuer, cache_for):
    old = await cache_for(issuer)
    same = await cache_for(issuer, start=False)
    same.adopt(old)
    assert same.keys is old.keys
    other = await cache_for(issuer, url=issuer.jwks_url + "?other", start=False)
    other.adopt(old)
    assert other.keys == {}
