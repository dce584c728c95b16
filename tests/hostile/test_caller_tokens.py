"""Hostile caller tokens (`callers.identity: jwt`): each refused with reason caller_unauthenticated
and its own detail; good RS256 / ES256 / EdDSA tokens accepted.  The verifier is the real one
(egress.identity.jwt) with its JWKS fetched from a real aiohttp app on loopback."""

from __future__ import annotations

import base64
import json
import time

import pytest

from egress.config.model import JwtIssuer, JwtSettings
from egress.errors import CallerUnauthenticated
from egress.identity.jwks import JwksError, parse_jwks
from egress.identity.jwt import JwtVerifier
from tests.identity_fakes import PATTERN, FakeIssuer, b64, hmac_with_public_key, public_pem, unsigned


@pytest.fixture
async def issuer():
    async with FakeIssuer.with_keys(k1="RS256", e1="ES256", d1="EdDSA") as fake:
        yield fake


def settings_for(fake: FakeIssuer, **kw) -> JwtSettings:
    kw.setdefault("caller_pattern", PATTERN)
    kw.setdefault("jwks_min_refresh", 60.0)
    return JwtSettings(issuers=(JwtIssuer(fake.issuer, ("egress",), jwks_url=fake.jwks_url),), **kw)


@pytest.fixture
async def verifier(issuer):
    import aiohttp
    session = aiohttp.ClientSession()
    v = JwtVerifier(settings_for(issuer, max_token_bytes=4096))
    await v.start(session)
    yield v
    await v.close()
    await session.close()


def claims(**over) -> dict:
    now = int(time.time())
    base = {"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:shop:checkout",
            "aud": "egress", "iat": now, "exp": now + 600}
    base.update(over)
    return base


def _tamper(token: str) -> str:
    head, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["sub"] = "system:serviceaccount:shop:billing"
    return f"{head}.{b64(json.dumps(payload).encode())}.{sig}"


def _cross_alg(fake: FakeIssuer) -> str:
    """Signed with the RSA key, but naming the EC key's kid (the key decides the algorithm)."""
    import jwt
    return jwt.encode(claims(), fake.keys["k1"][0], algorithm="RS256", headers={"kid": "e1"})


HOSTILE = [
    ("missing", lambda f: None, "send your service's token"),
    ("empty", lambda f: "   ", "send your service's token"),
    ("not_bearer", lambda f: "Basic Y2hlY2tvdXQ6eA==", "must be 'Bearer <token>'"),
    ("bearer_nothing", lambda f: "Bearer ", "must be 'Bearer <token>'"),
    ("two_segments", lambda f: "Bearer abc.def", "not a JWT"),
    ("not_base64url", lambda f: "Bearer a+b/.c=d.e", "not a JWT"),
    ("header_not_json", lambda f: f"Bearer {b64(b'nope')}.{b64(b'{}')}.c2ln", "malformed"),
    ("header_is_list", lambda f: f"Bearer {b64(b'[1]')}.{b64(b'{}')}.c2ln", "malformed"),
    ("huge", lambda f: "Bearer " + "a" * 3000 + "." + "b" * 3000 + ".c", "larger than 4096 bytes"),
    ("alg_none", lambda f: "Bearer " + unsigned(claims(), {"alg": "none", "kid": "k1"}), "algorithm is not allowed"),
    ("alg_None", lambda f: "Bearer " + unsigned(claims(), {"alg": "None", "kid": "k1"}), "algorithm is not allowed"),
    ("alg_missing", lambda f: "Bearer " + unsigned(claims(), {"kid": "k1"}) + "c2ln", "algorithm is not allowed"),
    ("hs256_with_public_key", lambda f: "Bearer " + hmac_with_public_key(claims(), public_pem(f.keys["k1"][0]), "k1"),
     "algorithm is not allowed"),
    ("alg_does_not_match_key", lambda f: "Bearer " + _cross_alg(f), "does not match its key"),
    ("crit_header", lambda f: "Bearer " + f.token(headers={"crit": ["exp"]}), "JWS extensions"),
    ("expired", lambda f: "Bearer " + f.token(now=time.time() - 3600, ttl=600), "has expired"),
    ("future_nbf", lambda f: "Bearer " + f.token(extra={"nbf": int(time.time()) + 3600}), "not valid yet"),
    ("future_iat", lambda f: "Bearer " + f.token(extra={"iat": int(time.time()) + 3600}), "not valid yet"),
    ("wrong_aud", lambda f: "Bearer " + f.token(aud="https://api.other.example"), "audience"),
    ("aud_list_without_egress", lambda f: "Bearer " + f.token(aud=["a", "b"]), "audience"),
    ("no_aud", lambda f: "Bearer " + f.token(drop=("aud",)), "lacks the aud claim"),
    ("no_exp", lambda f: "Bearer " + f.token(drop=("exp",)), "lacks the exp claim"),
    ("untrusted_issuer", lambda f: "Bearer " + f.token(extra={"iss": "https://evil.example"}), "issuer is not trusted"),
    ("no_issuer", lambda f: "Bearer " + f.token(drop=("iss",)), "issuer is not trusted"),
    ("unknown_kid", lambda f: "Bearer " + _stranger(f).token("zz"), "signing key (kid)"),
    ("tampered_payload", lambda f: "Bearer " + _tamper(f.token()), "signature does not verify"),
    ("signature_of_another_key", lambda f: "Bearer " + _swap_key(f), "signature does not verify"),
    ("sub_outside_pattern", lambda f: "Bearer " + f.token(sub="alice"), "does not match caller_pattern"),
    ("sub_not_a_service_name", lambda f: "Bearer " + f.token(sub="system:serviceaccount:shop:bad name"),
     "service name"),
    ("sub_missing", lambda f: "Bearer " + f.token(drop=("sub",)), "names no caller"),
    ("sub_not_string", lambda f: "Bearer " + f.token(extra={"sub": 42}), "names no caller"),
    ("exp_not_number", lambda f: "Bearer " + f.token(extra={"exp": "tomorrow"}), "exp claim is not a number"),
    ("exp_bool", lambda f: "Bearer " + f.token(extra={"exp": True}), "exp claim is not a number"),
    ("aud_not_string", lambda f: "Bearer " + f.token(aud=[1, 2]), "audience"),
]


def _stranger(f: FakeIssuer) -> FakeIssuer:
    other = FakeIssuer(issuer=f.issuer)
    other.add_key("zz", "RS256")
    return other


def _swap_key(f: FakeIssuer) -> str:
    """A well-formed token for kid k1 signed by someone else's RSA key."""
    other = FakeIssuer(issuer=f.issuer)
    other.add_key("k1", "RS256")
    return other.token("k1")


@pytest.mark.parametrize("make,detail", [(m, d) for _, m, d in HOSTILE], ids=[i for i, _, _ in HOSTILE])
async def test_hostile_token_is_refused_with_its_reason(issuer, verifier, make, detail):
    value = make(issuer)
    with pytest.raises(CallerUnauthenticated) as exc:
        await verifier.verify(value)
    assert exc.value.reason == "caller_unauthenticated" and exc.value.status == 401
    assert detail in exc.value.detail
    if value and len(value) > 20:  # never the token, nor a piece of it, in the detail
        assert value.split()[-1][:20] not in exc.value.detail


@pytest.mark.parametrize("kid", ["k1", "e1", "d1"], ids=["RS256", "ES256", "EdDSA"])
async def test_good_token_names_the_caller_and_its_scopes(issuer, verifier, kid):
    caller = await verifier.verify("Bearer " + issuer.token(kid, extra={"scope": "payments.read charges"}))
    assert (caller.name, caller.scopes, caller.proof) == ("checkout", frozenset({"payments.read", "charges"}), "jwt")


async def test_expired_within_leeway_is_accepted(issuer, verifier):
    caller = await verifier.verify("Bearer " + issuer.token(now=time.time() - 610, ttl=600))
    assert caller.name == "checkout"


async def test_algorithm_outside_the_allowlist_is_refused_even_with_a_good_key(issuer):
    v = JwtVerifier(settings_for(issuer, algorithms=("RS256",)))
    import aiohttp
    async with aiohttp.ClientSession() as session:
        await v.start(session)
        try:
            with pytest.raises(CallerUnauthenticated, match="algorithm is not allowed"):
                await v.verify("Bearer " + issuer.token("e1"))
        finally:
            await v.close()


JWKS_CASES = [
    ("oct_key_dropped", {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h1", "alg": "HS256"}]}, "no usable"),
    ("enc_key_dropped", {"keys": [{"kty": "RSA", "use": "enc", "kid": "x", "n": "AQAB", "e": "AQAB"}]}, "no usable"),
    ("not_jwks", {"key": []}, "not a JWKS"),
    ("broken_key", {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "b"}]}, "no usable"),
]


@pytest.mark.parametrize("doc,message", [(d, m) for _, d, m in JWKS_CASES], ids=[i for i, _, _ in JWKS_CASES])
def test_unusable_jwks_documents_are_refused(doc, message):
    with pytest.raises(JwksError, match=message):
        parse_jwks(json.dumps(doc).encode(), ("RS256", "ES256", "EdDSA", "HS256"))


def test_non_json_jwks_is_refused():
    with pytest.raises(JwksError, match="not JSON"):
        parse_jwks(b"<html>", ("RS256",))
