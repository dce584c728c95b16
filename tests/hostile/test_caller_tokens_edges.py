"""Caller tokens at their edges (egress/identity/jwt.py, issue 19): each refusal's exact detail
(reason caller_unauthenticated), the time and audience boundaries with an injected clock, claim
types that must not crash the verifier, key rotation and removal through a real JWKS endpoint
(tests/identity_fakes.FakeIssuer, aiohttp on loopback)."""

from __future__ import annotations

import json

import pytest

from egress.config.model import JwtIssuer, JwtSettings
from egress.errors import CallerUnauthenticated
from egress.identity.jwt import JwtVerifier
from tests.fakes import each_closed
from tests.identity_fakes import PATTERN, FakeIssuer, b64

NOW = 1_760_000_000.0
LEEWAY = 30.0


@pytest.fixture
async def issuer():
    async with FakeIssuer.with_keys(k1="RS256", e1="ES256") as fake:
        yield fake


@pytest.fixture
async def make(issuer, session):
    async def make_verifier(fake=None, **kw) -> JwtVerifier:
        fake = fake or issuer
        kw.setdefault("caller_pattern", PATTERN)
        kw.setdefault("jwks_min_refresh", 0.0)
        kw.setdefault("leeway", LEEWAY)
        clock = kw.pop("clock", lambda: NOW)
        v = JwtVerifier(JwtSettings(issuers=(JwtIssuer(fake.issuer, ("egress", "egress-2"), jwks_url=fake.jwks_url),),
                                    **kw), clock=clock)
        await v.start(session)
        return v

    async with each_closed(make_verifier, close="close") as made:
        yield made


@pytest.fixture
async def verifier(make):
    return await make()


def tok(fake: FakeIssuer, kid="k1", **kw) -> str:
    kw.setdefault("now", NOW)
    return "Bearer " + fake.token(kid, **kw)


def raw(header: dict, payload: dict, sig: str = "c2ln") -> str:
    return f"Bearer {b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{sig}"


def claims(**over) -> dict:
    return {"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:shop:checkout", "aud": "egress",
            "iat": int(NOW), "exp": int(NOW) + 600, **over}


def _cut_to_one_past_a_multiple_of_4(value: str) -> str:
    """The signature shortened to 4n+1 characters: not decodable base64 (binascii.Error)."""
    n = len(value.rsplit(".", 1)[1])
    return value[:len(value) - (n - 1) % 4]


REFUSALS = [
    # id, the Authorization value (from the issuer), the exact detail
    ("missing", lambda f: None, "send your service's token: Authorization: Bearer <token>"),
    ("not-bearer", lambda f: "Token abc.def.ghi", "Authorization must be 'Bearer <token>'"),
    ("not-a-jwt", lambda f: "Bearer abc.def", "the token is not a JWT (three base64url segments)"),
    ("words-after-the-token", lambda f: tok(f) + " more", "the token is not a JWT (three base64url segments)"),
    ("header-not-json", lambda f: f"Bearer {b64(b'no')}.{b64(b'{}')}.c2ln",
     "the token is malformed (header or payload is not a JSON object)"),
    ("payload-is-a-list", lambda f: f"Bearer {b64(json.dumps({'alg': 'RS256'}).encode())}.{b64(b'[]')}.c2ln",
     "the token is malformed (header or payload is not a JSON object)"),
    ("alg-hs256", lambda f: raw({"alg": "HS256", "kid": "k1"}, claims()),
     "the token's algorithm is not allowed (callers.jwt.algorithms)"),
    ("alg-not-a-string", lambda f: raw({"alg": ["RS256"], "kid": "k1"}, claims()),
     "the token's algorithm is not allowed (callers.jwt.algorithms)"),
    ("crit", lambda f: tok(f, headers={"crit": ["exp"]}),
     "the token uses JWS extensions egress does not accept (crit, b64)"),
    ("b64-false", lambda f: raw({"alg": "RS256", "kid": "k1", "b64": False}, claims()),
     "the token uses JWS extensions egress does not accept (crit, b64)"),
    ("untrusted-issuer", lambda f: tok(f, extra={"iss": "https://evil.example"}),
     "the token's issuer is not trusted (callers.jwt.issuers)"),
    ("kid-a-number", lambda f: raw({"alg": "RS256", "kid": 5}, claims()), "the token's kid is not a string"),
    ("kid-unknown", lambda f: raw({"alg": "RS256", "kid": "zz"}, claims()),
     "the token's signing key (kid) is not in its issuer's JWKS"),
    ("no-kid-issuer-with-two-keys", lambda f: raw({"alg": "RS256"}, claims()),
     "the token's signing key (kid) is not in its issuer's JWKS"),
    ("alg-of-another-key", lambda f: raw({"alg": "ES256", "kid": "k1"}, claims()),
     "the token's algorithm does not match its key"),
    ("signature-garbage", lambda f: raw({"alg": "RS256", "kid": "k1"}, claims()),
     "the token's signature does not verify"),
    ("signature-not-base64-length", lambda f: _cut_to_one_past_a_multiple_of_4(tok(f)),
     "the token's signature does not verify"),
    ("es256-signature-cut", lambda f: _cut_to_one_past_a_multiple_of_4(tok(f, "e1")),
     "the token's signature does not verify"),
    ("signature-empty", lambda f: tok(f).rsplit(".", 1)[0] + ".", "the token's signature does not verify"),
    ("no-exp", lambda f: tok(f, drop=("exp",)), "the token lacks the exp claim"),
    ("no-aud", lambda f: tok(f, drop=("aud",)), "the token lacks the aud claim"),
    ("nbf-a-string", lambda f: tok(f, extra={"nbf": "soon"}), "the token's nbf claim is not a number"),
    ("iat-a-bool", lambda f: tok(f, extra={"iat": True}), "the token's iat claim is not a number"),
    ("iat-null", lambda f: tok(f, extra={"iat": None}), "the token's iat claim is not a number"),
    ("exp-a-string", lambda f: tok(f, extra={"exp": "later"}), "the token's exp claim is not a number"),
    ("expired", lambda f: tok(f, now=NOW - 700, ttl=600), "the token has expired"),
    ("nbf-ahead", lambda f: tok(f, extra={"nbf": NOW + LEEWAY + 1}),
     "the token is not valid yet (nbf or iat in the future)"),
    ("iat-ahead-without-nbf", lambda f: tok(f, drop=("nbf",), extra={"iat": NOW + LEEWAY + 1}),
     "the token is not valid yet (nbf or iat in the future)"),
    ("aud-other", lambda f: tok(f, aud="someone"),
     "the token's audience is not egress's (callers.jwt.issuers[].audiences)"),
    ("aud-a-number", lambda f: tok(f, aud=5), "the token's audience is not egress's (callers.jwt.issuers[].audiences)"),
    ("aud-an-object-naming-egress", lambda f: tok(f, aud={"egress": True}),
     "the token's audience is not egress's (callers.jwt.issuers[].audiences)"),
    ("sub-missing", lambda f: tok(f, drop=("sub",)), "the token's sub claim names no caller"),
    ("sub-outside-pattern", lambda f: tok(f, sub="alice"),
     "the token's sub claim does not match caller_pattern (wrong trust domain or issuer?)"),
    ("sub-not-a-service-name", lambda f: tok(f, sub="system:serviceaccount:shop:bad name"),
     "the token's sub claim does not give a service name (letters, digits, . _ -)"),
]


@pytest.mark.parametrize("value,detail", [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
async def test_refusal_details(issuer, verifier, value, detail):
    with pytest.raises(CallerUnauthenticated) as info:
        await verifier.verify(value(issuer))
    assert (info.value.status, info.value.reason, info.value.detail) == (401, "caller_unauthenticated", detail)


ACCEPTED = [
    # id, the Authorization value: each names checkout
    ("plain", lambda f: tok(f)),
    ("two-spaces-after-bearer", lambda f: tok(f).replace("Bearer ", "Bearer  ")),
    ("lower-case-scheme", lambda f: tok(f).replace("Bearer ", "bearer ")),
    ("aud-list-with-egress", lambda f: tok(f, aud=["other", "egress"])),
    ("second-audience", lambda f: tok(f, aud="egress-2")),
    ("no-nbf-no-iat", lambda f: tok(f, drop=("nbf", "iat"))),
    ("expiry-exactly-at-the-leeway", lambda f: tok(f, now=NOW - 600 - LEEWAY, ttl=600)),
    ("nbf-exactly-at-the-leeway", lambda f: tok(f, extra={"nbf": NOW + LEEWAY})),
    ("iat-exactly-at-the-leeway", lambda f: tok(f, drop=("nbf",), extra={"iat": NOW + LEEWAY})),
    ("float-times", lambda f: tok(f, extra={"exp": NOW + 0.5, "nbf": NOW - 0.5})),
]


@pytest.mark.parametrize("value", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
async def test_accepted_tokens(issuer, verifier, value):
    caller = await verifier.verify(value(issuer))
    assert (caller.name, caller.proof) == ("checkout", "jwt")


async def test_token_of_exactly_max_token_bytes_is_read(issuer, make):
    value = tok(issuer)
    v = await make(max_token_bytes=len(value))
    try:
        assert (await v.verify(value)).name == "checkout"
    finally:
        await v.close()
    v = await make(max_token_bytes=len(value) - 1)
    try:
        with pytest.raises(CallerUnauthenticated) as info:
            await v.verify(value)
        assert info.value.detail == f"the token is larger than {len(value) - 1} bytes"
    finally:
        await v.close()


SCOPES = [
    ("space-separated", "a b  c", {"a", "b", "c"}),
    ("list", ["a", 5, "b", None], {"a", "b"}),
    ("a-number", 7, set()),
    ("absent", None, set()),
]


@pytest.mark.parametrize("scope,expected", [c[1:] for c in SCOPES], ids=[c[0] for c in SCOPES])
async def test_scopes_claim_forms(issuer, verifier, scope, expected):
    extra = {} if scope is None else {"scope": scope}
    assert (await verifier.verify(tok(issuer, extra=extra))).scopes == frozenset(expected)


PATTERNS = [
    # id, caller_pattern, sub, the caller name or the refusal's detail
    ("no-pattern-the-claim-is-the-name", None, "checkout", "checkout"),
    ("no-pattern-not-a-name", None, PATTERN, "the token's sub claim does not give a service name"),
    ("pattern-without-groups-is-the-whole-match", r"check\w+", "checkout", "checkout"),
    ("pattern-is-a-fullmatch", r"check", "checkout", "the token's sub claim does not match caller_pattern"),
]


@pytest.mark.parametrize("pattern,sub,expected", [c[1:] for c in PATTERNS], ids=[c[0] for c in PATTERNS])
async def test_caller_pattern_forms(issuer, make, pattern, sub, expected):
    v = await make(caller_pattern=pattern)
    try:
        if " " not in expected:
            assert (await v.verify(tok(issuer, sub=sub))).name == expected
            return
        with pytest.raises(CallerUnauthenticated) as info:
            await v.verify(tok(issuer, sub=sub))
        assert info.value.detail.startswith(expected)
    finally:
        await v.close()


async def test_other_caller_claim_is_named_in_the_detail(issuer, make):
    v = await make(caller_claim="client_id", caller_pattern=None)
    try:
        assert (await v.verify(tok(issuer, extra={"client_id": "billing"}))).name == "billing"
        with pytest.raises(CallerUnauthenticated) as info:
            await v.verify(tok(issuer))
        assert info.value.detail == "the token's client_id claim names no caller"
    finally:
        await v.close()


async def test_a_token_without_kid_uses_the_one_key_of_its_issuer(make):
    async with FakeIssuer.with_keys(only="ES256") as single:
        v = await make(single)
        token = single.token("only", now=NOW)
        head = json.loads(__import__("base64").urlsafe_b64decode(token.split(".")[0] + "=="))
        assert head["kid"] == "only"
        import jwt
        no_kid = jwt.encode(claims(), single.keys["only"][0], algorithm="ES256")
        assert (await v.verify("Bearer " + no_kid)).name == "checkout"
        await v.close()


async def test_repeated_token_is_served_until_its_key_leaves_the_jwks(issuer, verifier):
    """The same token twice is accepted twice (from the cache); once its key is removed from the
    JWKS and the keys are refreshed, it is refused at once, cached or not."""
    value = tok(issuer)
    assert (await verifier.verify(value)).name == "checkout"
    assert (await verifier.verify(value)).name == "checkout"
    del issuer.keys["k1"]
    assert await verifier.issuers[issuer.issuer].refresh()
    with pytest.raises(CallerUnauthenticated) as info:
        await verifier.verify(value)
    assert info.value.detail == "the token's signing key (kid) is not in its issuer's JWKS"


async def test_a_cached_token_expires_with_the_clock(issuer, make):
    now = [NOW]
    v = await make(clock=lambda: now[0])
    try:
        value = tok(issuer, ttl=60)
        assert (await v.verify(value)).name == "checkout"
        now[0] = NOW + 60 + LEEWAY + 1
        with pytest.raises(CallerUnauthenticated) as info:
            await v.verify(value)
        assert info.value.detail == "the token has expired"
    finally:
        await v.close()


async def test_a_rotated_in_key_is_fetched_for_its_first_token(issuer, verifier):
    issuer.add_key("k2", "RS256")
    assert (await verifier.verify(tok(issuer, "k2"))).name == "checkout"


async def test_a_new_generation_adopts_the_keys_of_the_same_issuer(issuer, make, session):
    old = await make()
    issuer.status = 503  # the issuer is down when the new generation starts
    other = FakeIssuer(issuer="https://other.example")
    settings = JwtSettings(issuers=(JwtIssuer(issuer.issuer, ("egress",), jwks_url=issuer.jwks_url),
                                    JwtIssuer(other.issuer, ("egress",), jwks_url=issuer.jwks_url)),
                           caller_pattern=PATTERN, jwks_min_refresh=60.0)
    new = JwtVerifier(settings, clock=lambda: NOW)
    new.adopt(old)
    await new.start(session)
    try:
        assert (await new.verify(tok(issuer))).name == "checkout"
        assert new.issuers[other.issuer].keys == {}
    finally:
        await new.close()
        await old.close()
