"""OAuth2 client credentials against a fake token endpoint (real aiohttp app, real TLS) that
expires, revokes and fails; the partner accepts only the IdP's live tokens."""

import asyncio
import base64
import json
import logging
import os
import ssl

import pytest
import trustme

from tests.conftest import base_config
from tests.fake_idp import CLIENT_ID, FakeIdP, partner_accepting
from tests.fakes import each_closed

SECRET = "client-secret-MARKER-0123456789"


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def ca_file(ca, tmp_path):
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
async def idp_factory(ca):
    async def start(host="127.0.0.1", **kw) -> FakeIdP:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(host).configure_cert(ctx)
        return await FakeIdP(SECRET, host=host, ssl_context=ctx, **kw).start()

    async with each_closed(start) as make:
        yield make


@pytest.fixture
def partner_factory(provider):
    """make(handler) -> a started FakeProvider (tests/conftest.py's `provider`)."""
    return provider


def doc_for(partner, idp_url, ca_file, **oauth):
    oauth = {"token_url": idp_url, "client_id": CLIENT_ID, "client_secret": "${PARTNER_SECRET}", **oauth}
    return base_config([{
        "name": "partner", "url": partner.url + "/v1", "callers": ["*"], "retry": {"attempts": 1},
        "allow_private_addresses": ["127.0.0.1/32"], "tls": {"ca_file": ca_file},
        "credential": {"header": "Authorization", "oauth2": oauth},
    }])


async def start(proxy, partner, idp_url, ca_file, exchanges=None, **oauth):
    return await proxy(doc_for(partner, idp_url, ca_file, **oauth), environ={"PARTNER_SECRET": SECRET},
                       observers=[exchanges.append] if exchanges is not None else None)


async def call(handle, path="/partner/x", method="GET", **kw):
    async with handle.request(method, path, **kw) as resp:
        return resp.status, resp.headers.get("X-Egress-Error"), await resp.read()


async def test_first_use_fetches_once_for_concurrent_requests(proxy, idp_factory, partner_factory, ca_file):
    idp = await idp_factory()
    partner = await partner_factory(partner_accepting(idp))
    handle = await start(proxy, partner, idp.url, ca_file, scope="charges:read", audience="https://api.partner")
    results = await asyncio.gather(*(call(handle) for _ in range(20)))
    assert {r[:2] for r in results} == {(200, None)}
    assert idp.fetches == 1, "single-flight: one POST for twenty waiting requests"
    assert {r.headers["Authorization"] for r in partner.requests} == {"Bearer " + idp.issued[0]}
    assert idp.forms[0] == {"grant_type": "client_credentials", "scope": "charges:read",
                            "audience": "https://api.partner"}
    assert base64.b64decode(idp.auth_headers[0][6:]).decode() == f"{CLIENT_ID}:{SECRET}"


@pytest.mark.parametrize("method, in_header, in_form", [
    ("client_secret_basic", True, False),
    ("client_secret_post", False, True),
], ids=["basic", "post"])
async def test_client_authentication_method(proxy, idp_factory, partner_factory, ca_file, method, in_header, in_form):
    idp = await idp_factory()
    partner = await partner_factory(partner_accepting(idp))
    handle = await start(proxy, partner, idp.url, ca_file, auth_method=method)
    assert (await call(handle))[:2] == (200, None)
    assert (idp.auth_headers[0] is not None) is in_header
    assert (idp.forms[0].get("client_secret") == SECRET) is in_form


async def test_token_is_renewed_in_the_background_before_expiry(proxy, idp_factory, partner_factory, ca_file):
    idp = await idp_factory(expires_in=2)
    partner = await partner_factory(partner_accepting(idp))
    handle = await start(proxy, partner, idp.url, ca_file, refresh_at=0.5)
    assert (await call(handle))[:2] == (200, None)
    await asyncio.sleep(1.1)                       # past 50% of expires_in, still valid
    assert (await call(handle))[:2] == (200, None)
    assert partner.requests[-1].headers["Authorization"] == "Bearer " + idp.issued[0], \
        "the request that triggered the renewal did not wait for it"
    for _ in range(50):
        if idp.fetches == 2:
            break
        await asyncio.sleep(0.02)
    assert idp.fetches == 2
    assert (await call(handle))[:2] == (200, None)
    assert partner.requests[-1].headers["Authorization"] == "Bearer " + idp.issued[1]


async def test_revoked_token_is_replaced_and_the_request_replayed_once(proxy, idp_factory, partner_factory,
                                                                        ca_file):
    idp = await idp_factory()
    partner = await partner_factory(partner_accepting(idp))
    exchanges = []
    handle = await start(proxy, partner, idp.url, ca_file, exchanges)
    assert (await call(handle))[:2] == (200, None)
    idp.revoke_all()
    status, reason, _ = await call(handle, method="POST", json={"amount": 5})
    assert (status, reason) == (200, None)
    assert partner.hits == 3 and idp.fetches == 2
    assert partner.requests[1].body == partner.requests[2].body == b'{"amount": 5}'
    assert "egress.credential_rejected" in [e.name for e in exchanges[-1].events]


async def test_a_partner_that_keeps_refusing_gets_one_retry_only(proxy, idp_factory, partner_factory, ca_file):
    from aiohttp import web

    async def refuse(request):
        return web.json_response({"error": "invalid_token"}, status=401)

    idp = await idp_factory()
    partner = await partner_factory(refuse)
    handle = await start(proxy, partner, idp.url, ca_file)
    status, reason, _ = await call(handle)
    assert (status, reason) == (401, None)        # the partner's own answer, after one retry
    assert partner.hits == 2 and idp.fetches == 2


async def test_idp_outage_keeps_a_valid_token_and_is_not_hammered(proxy, idp_factory, partner_factory, ca_file):
    idp = await idp_factory(expires_in=10)
    partner = await partner_factory(partner_accepting(idp))
    handle = await start(proxy, partner, idp.url, ca_file, refresh_at=0.01)   # renew after 0.1 s
    assert (await call(handle))[:2] == (200, None)
    idp.mode = "500"
    for _ in range(30):                     # ~1.2 s of traffic: renewals at 0.1, 0.6, 1.6 s (backoff)
        assert (await call(handle))[:2] == (200, None)
        await asyncio.sleep(0.03)
    assert 2 <= idp.fetches <= 4, f"backoff: {idp.fetches} POSTs during the outage"


def _unreachable_url():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"https://127.0.0.1:{s.getsockname()[1]}/oauth/token"


NO_TOKEN_CASES = [  # (id, the IdP's behaviour, oauth2 settings, why egress logs it failed)
    ("idp_500", {"mode": "500"}, {}, "status 500"),
    ("idp_unreachable", {"url": "unreachable"}, {}, "upstream_unavailable"),
    ("answer_not_json", {"mode": "not_json"}, {}, "answer is not JSON"),
    ("answer_without_access_token", {"mode": "no_token"}, {}, "answer has no usable access_token"),
    ("token_type_not_bearer", {"mode": "mac"}, {}, "token_type is not bearer"),
    ("client_secret_refused", {"secret": "another-secret"}, {}, "status 401"),
    ("idp_too_slow", {"delay": 1.0}, {"timeout": 0.3}, "upstream_timeout"),
    ("idp_on_a_blocked_address", {"host": "127.0.0.2"}, {}, "address_blocked"),
    ("idp_tls_not_trusted", {"ca": "untrusted"}, {}, "upstream_unavailable"),
]


@pytest.mark.parametrize("case, idp_kw, oauth, why", NO_TOKEN_CASES, ids=[c[0] for c in NO_TOKEN_CASES])
async def test_no_valid_token_is_503_credential_unavailable(proxy, idp_factory, partner_factory, ca_file,
                                                             tmp_path, caplog, case, idp_kw, oauth, why):
    caplog.set_level(logging.WARNING, logger="egress")
    idp_kw = dict(idp_kw)
    url_kind, ca_kind, secret = idp_kw.pop("url", None), idp_kw.pop("ca", None), idp_kw.pop("secret", None)
    idp = await idp_factory(**idp_kw)
    if secret:
        idp.secret = secret
    partner = await partner_factory(partner_accepting(idp))
    url = _unreachable_url() if url_kind else idp.url
    if ca_kind:
        other = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other))
        ca_file = str(other)
    handle = await start(proxy, partner, url, ca_file, **oauth)
    status, reason, body = await call(handle)
    assert (status, reason) == (503, "credential_unavailable")
    assert partner.hits == 0, "nothing is sent without a credential"
    assert SECRET.encode() not in body and b"SECRETTOKEN" not in body
    failures = [r.fields for r in caplog.records if r.getMessage() == "oauth2 token fetch failed"]
    assert failures and failures[0]["error"] == why and failures[0]["upstream"] == "partner"
    fetches = idp.fetches
    assert (await call(handle))[:2] == (503, "credential_unavailable")
    assert idp.fetches == fetches, "within the backoff the IdP is not asked again"


async def test_nothing_secret_in_logs_spans_metrics_or_errors(proxy, idp_factory, partner_factory, ca_file, caplog):
    caplog.set_level(logging.DEBUG)
    idp = await idp_factory()
    partner = await partner_factory(partner_accepting(idp))
    exchanges = []
    handle = await start(proxy, partner, idp.url, ca_file, exchanges)
    bodies = [(await call(handle))[2]]
    idp.revoke_all()
    idp.mode = "500"                      # the IdP's error echoes the secret: it must go nowhere
    bodies.append((await call(handle))[2])
    async with handle.session.get(handle.admin_url + "/metrics") as resp:
        metrics = await resp.text()
    async with handle.session.get(handle.admin_url + "/admin/inventory") as resp:
        inventory = await resp.text()
    logs = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    events = json.dumps([[e.name, e.attrs] for ex in exchanges for e in ex.events], default=str)
    assert any(b"credential_unavailable" in b for b in bodies)
    assert "oauth2 token fetch failed" in logs
    for text in (logs, events, metrics, inventory, *(b.decode() for b in bodies)):
        assert SECRET not in text
        assert "SECRETTOKEN" not in text
        assert base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode() not in text


def _k8s_secret_dir(root, files: dict, version: int):
    """Write a Secret volume the way the kubelet does: ..<ts> dir, ..data symlink swapped atomically."""
    data = root / f"..2026_12_01_{version}"
    data.mkdir()
    for name, value in files.items():
        (data / name).write_text(value)
    tmp_link = root / "..data_tmp"
    os.symlink(data.name, tmp_link)
    os.replace(tmp_link, root / "..data")
    for name in files:
        if not (root / name).is_symlink():
            os.symlink(f"..data/{name}", root / name)


async def test_client_secret_file_rotation_is_picked_up(proxy, idp_factory, partner_factory, ca_file, tmp_path):
    volume = tmp_path / "oauth-secret"
    volume.mkdir()
    _k8s_secret_dir(volume, {"client_secret": SECRET + "\n"}, 1)
    idp = await idp_factory()
    partner = await partner_factory(partner_accepting(idp))
    doc = doc_for(partner, idp.url, ca_file)
    oauth = doc["upstreams"][0]["credential"]["oauth2"]
    del oauth["client_secret"]
    oauth["client_secret_file"] = str(volume / "client_secret")
    handle = await proxy(doc)
    assert (await call(handle))[:2] == (200, None)
    rotated = "rotated-secret-ABCDEFGHIJKLMNOP"
    _k8s_secret_dir(volume, {"client_secret": rotated}, 2)
    idp.secret = rotated
    idp.revoke_all()
    await asyncio.sleep(1.1)                 # files are looked at once a second
    assert (await call(handle))[:2] == (200, None)
    assert base64.b64decode(idp.auth_headers[-1][6:]).decode() == f"{CLIENT_ID}:{rotated}"


@pytest.mark.parametrize("change, fetches_after", [
    ({}, 1), ({"scope": "charges:write"}, 2),
], ids=["same_credential_keeps_the_token", "changed_credential_fetches_anew"])
async def test_token_cache_across_reload(proxy, idp_factory, partner_factory, ca_file, tmp_path, monkeypatch,
                                         change, fetches_after):
    import yaml
    idp = await idp_factory()
    partner = await partner_factory(partner_accepting(idp))
    handle = await start(proxy, partner, idp.url, ca_file)
    assert (await call(handle))[:2] == (200, None) and idp.fetches == 1
    doc = doc_for(partner, idp.url, ca_file, **change)
    config = tmp_path / "egress.yaml"
    config.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("PARTNER_SECRET", SECRET)
    assert await handle.state.reload(config) == []
    assert (await call(handle))[:2] == (200, None)
    assert idp.fetches == fetches_after
