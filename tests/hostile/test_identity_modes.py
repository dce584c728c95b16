"""Which mode proves the caller (egress/identity/modes.py, issue 19), through real aiohttp requests:
a loopback app whose handler asks `Identity(settings).identify(request)` and answers the caller it
proved or the refusal's reason and detail.  The JWKS is a real aiohttp app (FakeIssuer)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from egress.config import settings_from_dict
from egress.errors import EgressError
from egress.identity import Identity
from tests.identity_fakes import PATTERN, FakeIssuer


@pytest.fixture
async def issuer():
    async with FakeIssuer.with_keys(k1="RS256") as fake:
        yield fake


def settings(callers: dict):
    return settings_from_dict({"upstreams": [{"name": "pay", "url": "https://api.pay.example"}], "callers": callers},
                              base_dir=Path("."), environ={})


def jwt_callers(fake: FakeIssuer, **over) -> dict:
    return {"identity": "jwt", "jwt": {"issuers": [{"issuer": fake.issuer, "jwks_url": fake.jwks_url,
                                                    "audiences": ["egress"]}], "caller_pattern": PATTERN, **over}}


@pytest.fixture
async def ask():
    """ask(identity, headers) -> (status, body) from a real request to a loopback app."""
    runners = []

    async def run(identity: Identity, headers, server_ssl=None, client_ssl=None) -> tuple[int, dict]:
        async def handler(request: web.Request) -> web.Response:
            try:
                caller = await identity.identify(request, upstream="pay")
            except EgressError as exc:
                return web.json_response({"reason": exc.reason, "detail": exc.detail}, status=exc.status)
            return web.json_response({"name": caller.name, "proof": caller.proof, "scopes": sorted(caller.scopes)})

        app = web.Application()
        app.router.add_get("/pay/x", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl)
        await site.start()
        port = runner.addresses[0][1]
        url = f"{'https' if server_ssl else 'http'}://127.0.0.1:{port}/pay/x"
        async with aiohttp.ClientSession() as s, s.get(url, headers=headers, ssl=client_ssl or True) as r:
            return r.status, await r.json()

    yield run
    for runner in runners:
        await runner.cleanup()


def multi(*pairs):
    from multidict import CIMultiDict
    h = CIMultiDict()
    for k, v in pairs:
        h.add(k, v)
    return h


HEADER_MODE = [
    ("named", multi(("X-Egress-Caller", "checkout")), 200, {"name": "checkout", "proof": "header", "scopes": []}),
    ("missing", multi(), 403, {"reason": "caller_missing",
                               "detail": "send the X-Egress-Caller header naming your service"}),
    ("two-names", multi(("X-Egress-Caller", "checkout"), ("X-Egress-Caller", "billing")), 403,
     {"reason": "caller_not_allowed", "detail": "send exactly one X-Egress-Caller header"}),
]


@pytest.mark.parametrize("headers,status,body", [c[1:] for c in HEADER_MODE], ids=[c[0] for c in HEADER_MODE])
async def test_header_mode(ask, headers, status, body):
    identity = Identity(settings({}))
    assert (identity.jwt, identity.mtls) == (None, None)
    assert await ask(identity, headers) == (status, body)


async def test_header_mode_keeps_each_name_s_caller_within_a_bound(ask, monkeypatch):
    """The same name is the same Caller (kept, a value); the names a caller may choose never grow
    the memo past its bound; a kept name still passes the header checks (two names: refused)."""
    import egress.identity.modes as modes
    monkeypatch.setattr(modes, "_NAMED", 8)
    identity = Identity(settings({}))
    for i in range(30):
        assert (await ask(identity, multi(("X-Egress-Caller", f"svc-{i}"))))[1]["name"] == f"svc-{i}"
        assert len(identity._named) <= 8
    assert await ask(identity, multi(("X-Egress-Caller", "svc-29"))) == (
        200, {"name": "svc-29", "proof": "header", "scopes": []})
    kept = identity._named["svc-29"]
    assert kept.name == "svc-29"
    await ask(identity, multi(("X-Egress-Caller", "svc-29")))
    assert identity._named["svc-29"] is kept  # the kept Caller answered, not a new one
    assert (await ask(identity, multi(("X-Egress-Caller", "svc-29"), ("X-Egress-Caller", "x"))))[0] == 403


async def test_header_mode_verifies_a_signature_over_the_request(ask):
    import hashlib
    import hmac
    import time
    key = "checkout-caller-key-0123456789abcdef"
    identity = Identity(settings_from_dict({"upstreams": [{"name": "pay", "url": "https://api.pay.example"}],
                                            "callers": {"hmac_keys": {"checkout": "${K}"}}},
                                           base_dir=Path("."), environ={"K": key}))
    t = int(time.time())
    mac = hmac.new(key.encode(), f"{t}.checkout.GET.pay./pay/x".encode(), hashlib.sha256).hexdigest()
    good = multi(("X-Egress-Caller", "checkout"), ("X-Egress-Caller-Signature", f"t={t},v2={mac}"))
    assert (await ask(identity, good))[1]["name"] == "checkout"
    bad = multi(("X-Egress-Caller", "checkout"), ("X-Egress-Caller-Signature", f"t={t},v2={'0' * 64}"))
    assert (await ask(identity, bad))[1]["reason"] == "caller_not_allowed"


DISAGREE = {"reason": "caller_unauthenticated", "detail": "X-Egress-Caller does not agree with the proven caller"}

JWT_MODE = [
    # id, extra headers beside the token, status, body
    ("token-only", [], 200, {"name": "checkout", "proof": "jwt", "scopes": ["pay"]}),
    ("header-agrees", [("X-Egress-Caller", "checkout")], 200, {"name": "checkout", "proof": "jwt", "scopes": ["pay"]}),
    ("header-agrees-with-spaces", [("X-Egress-Caller", " checkout ")], 200,
     {"name": "checkout", "proof": "jwt", "scopes": ["pay"]}),
    ("header-disagrees", [("X-Egress-Caller", "billing")], 401, DISAGREE),
    ("second-header-disagrees", [("X-Egress-Caller", "checkout"), ("X-Egress-Caller", "billing")], 401, DISAGREE),
]


@pytest.mark.parametrize("extra,status,body", [c[1:] for c in JWT_MODE], ids=[c[0] for c in JWT_MODE])
async def test_jwt_mode(ask, issuer, extra, status, body):
    identity = Identity(settings(jwt_callers(issuer)))
    assert identity.mtls is None
    await identity.start()
    try:
        headers = multi(("Authorization", "Bearer " + issuer.token(extra={"scope": "pay"})), *extra)
        assert await ask(identity, headers) == (status, body)
        assert await ask(identity, multi(*extra)) == (401, {
            "reason": "caller_unauthenticated", "detail": "send your service's token: Authorization: Bearer <token>"})
    finally:
        await identity.close()
        await identity.close()  # closing twice is harmless


async def test_jwt_mode_reads_the_configured_token_header(ask, issuer):
    identity = Identity(settings(jwt_callers(issuer, header="X-Caller-Token")))
    await identity.start()
    try:
        token = "Bearer " + issuer.token()
        assert (await ask(identity, {"X-Caller-Token": token}))[1]["name"] == "checkout"
        assert (await ask(identity, {"Authorization": token}))[1]["reason"] == "caller_unauthenticated"
    finally:
        await identity.close()


async def test_jwks_fetch_ignores_proxy_environment_variables(ask, issuer, monkeypatch):
    """The JWKS session does not take HTTP_PROXY from the environment (trust_env=False): an
    unreachable proxy there does not stop egress from fetching the issuer's keys."""
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    identity = Identity(settings(jwt_callers(issuer)))
    await identity.start()
    try:
        assert issuer.fetches == 1
        assert (await ask(identity, {"Authorization": "Bearer " + issuer.token()}))[1]["name"] == "checkout"
    finally:
        await identity.close()


async def test_jwks_file_needs_no_http_session(ask, issuer, tmp_path):
    import json
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(issuer.jwks()))
    identity = Identity(settings({"identity": "jwt", "jwt": {"issuers": [
        {"issuer": issuer.issuer, "jwks_file": str(path), "audiences": ["egress"]}], "caller_pattern": PATTERN}}))
    await identity.start()
    try:
        assert identity._session is None
        assert (await ask(identity, {"Authorization": "Bearer " + issuer.token()}))[1]["name"] == "checkout"
        assert issuer.fetches == 0
    finally:
        await identity.close()


async def test_a_new_generation_keeps_the_keys_while_the_issuer_is_down(ask, issuer):
    old = Identity(settings(jwt_callers(issuer)))
    await old.start()
    issuer.status = 503
    new = Identity(settings(jwt_callers(issuer, jwks_min_refresh=60)))
    new.adopt(old)
    new.adopt(None)  # a first generation has nothing to adopt
    Identity(settings({})).adopt(old)  # a header-mode generation keeps no keys
    await new.start()
    try:
        assert (await ask(new, {"Authorization": "Bearer " + issuer.token()}))[1]["name"] == "checkout"
    finally:
        await new.close()
        await old.close()


async def test_mtls_mode_without_a_tls_peer_is_unauthenticated(ask, tmp_path):
    for name in ("s.pem", "s.key", "ca.pem"):
        (tmp_path / name).write_text("x")
    s = settings_from_dict({"upstreams": [{"name": "pay", "url": "https://api.pay.example"}],
                            "callers": {"identity": "mtls"},
                            "listen_tls": {"cert_file": "s.pem", "key_file": "s.key", "client_ca_file": "ca.pem"}},
                           base_dir=tmp_path, environ={})
    identity = Identity(s)
    assert identity.jwt is None and identity.mtls is not None
    assert await ask(identity, {"X-Egress-Caller": "checkout"}) == (401, {
        "reason": "caller_unauthenticated",
        "detail": "connect with TLS and a client certificate (callers.identity: mtls)"})


async def test_mtls_mode_names_the_caller_from_the_tls_peer(ask, tmp_path):
    import ssl

    import trustme

    from egress.identity.mtls import server_context
    from tests.identity_fakes import ClientCA
    server_ca, client_ca = trustme.CA(), ClientCA()
    server = server_ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "s.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "s.key"))
    client_ca.write_ca(tmp_path / "ca.pem")
    s = settings_from_dict({"upstreams": [{"name": "pay", "url": "https://api.pay.example"}],
                            "callers": {"identity": "mtls", "mtls": {"caller_from": "dns"}},
                            "listen_tls": {"cert_file": "s.pem", "key_file": "s.key", "client_ca_file": "ca.pem"}},
                           base_dir=tmp_path, environ={})
    client = ssl.create_default_context()
    server_ca.configure_trust(client)
    client.load_cert_chain(*client_ca.issue(tmp_path, "c", dns=["checkout"]))
    identity = Identity(s)
    tls = server_context(s.listen_tls)
    assert await ask(identity, {}, tls, client) == (200, {"name": "checkout", "proof": "mtls", "scopes": []})
    assert await ask(identity, {"X-Egress-Caller": "billing"}, tls, client) == (401, DISAGREE)


async def test_header_mode_ignores_a_configured_jwt_section(ask, issuer):
    """`callers.jwt` given while `identity: header`: no verifier, no JWKS fetch, header names the caller."""
    identity = Identity(settings({"identity": "header", **{k: v for k, v in jwt_callers(issuer).items()
                                                           if k != "identity"}}))
    assert identity.jwt is None
    await identity.start()
    try:
        assert issuer.fetches == 0
        assert (await ask(identity, {"X-Egress-Caller": "checkout"}))[1]["name"] == "checkout"
    finally:
        await identity.close()
