"""Callers proven by their client certificate (`callers.identity: mtls`): the data listener speaks
TLS (`listen_tls`) and requires a certificate from `client_ca_file`; the caller comes from the
SPIFFE ID (URI SAN), a DNS SAN or the CN, through `caller_pattern`, which pins the trust domain.
Real TLS on loopback (trustme server certificate, client certificates with URI SANs made with
cryptography), aiohttp and curl as clients."""

from __future__ import annotations

import asyncio
import shutil
import ssl

import aiohttp
import pytest
import trustme

from tests.conftest import base_config
from tests.identity_fakes import ClientCA

SPIFFE_PATTERN = r"^spiffe://example\.org/ns/[^/]+/sa/(?P<caller>[^/]+)$"


@pytest.fixture
def pki(tmp_path):
    server_ca, client_ca = trustme.CA(), ClientCA()
    server = server_ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    server_ca.cert_pem.write_to_path(str(tmp_path / "server-ca.pem"))
    client_ca.write_ca(tmp_path / "client-ca.pem")
    return {"dir": tmp_path, "server_ca": str(tmp_path / "server-ca.pem"), "client_ca": client_ca}


def mtls_config(p, pki, caller_from="spiffe", pattern=SPIFFE_PATTERN) -> dict:
    mtls = {"caller_from": caller_from, **({"caller_pattern": pattern} if pattern else {})}
    d = pki["dir"]
    return base_config([{"name": "pay", "url": p.url, "allow_private_addresses": True,
                         "callers": ["checkout"]}],
                       callers={"identity": "mtls", "mtls": mtls},
                       listen_tls={"cert_file": str(d / "server.pem"), "key_file": str(d / "server.key"),
                                   "client_ca_file": str(d / "client-ca.pem")})


def client_ssl(pki, cert: tuple[str, str] | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki["server_ca"])
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


async def get(px, ctx, headers=None):
    url = f"https://127.0.0.1:{px.running.data_port}/pay/charges/1"
    async with aiohttp.ClientSession() as s, s.get(url, ssl=ctx, headers=headers or {}) as r:
        return r.status, r.headers.get("X-Egress-Error"), await r.json(content_type=None)


CASES = [
    ("spiffe_ok", "spiffe", SPIFFE_PATTERN, {"uris": ["spiffe://example.org/ns/shop/sa/checkout"]}, {}, 200, None),
    ("spiffe_other_trust_domain", "spiffe", SPIFFE_PATTERN, {"uris": ["spiffe://evil.org/ns/shop/sa/checkout"]}, {},
     401, "caller_unauthenticated"),
    ("spiffe_two_uris", "spiffe", SPIFFE_PATTERN,
     {"uris": ["spiffe://example.org/ns/shop/sa/checkout", "spiffe://example.org/ns/shop/sa/billing"]}, {},
     401, "caller_unauthenticated"),
    ("spiffe_none_only_dns", "spiffe", SPIFFE_PATTERN, {"dns": ["checkout.shop.svc"]}, {}, 401,
     "caller_unauthenticated"),
    ("spiffe_proven_but_not_in_callers", "spiffe", SPIFFE_PATTERN,
     {"uris": ["spiffe://example.org/ns/shop/sa/billing"]}, {}, 403, "caller_not_allowed"),
    ("spiffe_header_disagrees", "spiffe", SPIFFE_PATTERN, {"uris": ["spiffe://example.org/ns/shop/sa/checkout"]},
     {"X-Egress-Caller": "billing"}, 401, "caller_unauthenticated"),
    ("spiffe_header_agrees", "spiffe", SPIFFE_PATTERN, {"uris": ["spiffe://example.org/ns/shop/sa/checkout"]},
     {"X-Egress-Caller": "checkout"}, 200, None),
    ("dns_ok", "dns", r"^(?P<caller>[^.]+)\.shop\.svc$", {"dns": ["checkout.shop.svc"]}, {}, 200, None),
    ("cn_ok", "cn", None, {"cn": "checkout"}, {}, 200, None),
    ("cn_not_a_service_name", "cn", None, {"cn": "check out"}, {}, 401, "caller_unauthenticated"),
]


@pytest.mark.parametrize("how,pattern,cert,headers,status,reason", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_caller_from_client_certificate(provider, proxy, pki, how, pattern, cert, headers, status, reason):
    p = await provider()
    px = await proxy(mtls_config(p, pki, how, pattern))
    got = await get(px, client_ssl(pki, pki["client_ca"].issue(pki["dir"], "client", **cert)), headers)
    assert (got[0], got[1]) == (status, reason)
    if reason:
        assert got[2]["reason"] == reason
    assert p.hits == (1 if status == 200 else 0)
    if status == 200:
        assert "X-Egress-Caller" not in p.requests[0].headers


async def test_no_client_certificate_fails_the_handshake(provider, proxy, pki):
    p = await provider()
    px = await proxy(mtls_config(p, pki))
    with pytest.raises(aiohttp.ClientError):
        await get(px, client_ssl(pki, None))
    assert p.hits == 0


async def test_certificate_from_another_ca_fails_the_handshake(provider, proxy, pki):
    p = await provider()
    px = await proxy(mtls_config(p, pki))
    stranger = ClientCA("stranger").issue(pki["dir"], "stranger", uris=["spiffe://example.org/ns/shop/sa/checkout"])
    with pytest.raises(aiohttp.ClientError):
        await get(px, client_ssl(pki, stranger))
    assert p.hits == 0


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
async def test_curl_with_a_spiffe_certificate(provider, proxy, pki):
    p = await provider()
    px = await proxy(mtls_config(p, pki))
    cert, key = pki["client_ca"].issue(pki["dir"], "curl", uris=["spiffe://example.org/ns/shop/sa/checkout"])
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", pki["server_ca"], "--cert", cert,
        "--key", key, f"https://127.0.0.1:{px.running.data_port}/pay/charges/1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert out.decode() == "200", err.decode()
    assert p.hits == 1
