"""Callers named by their client certificate (egress/identity/mtls.py, issue 19): the decision
table over verified peer certificates in `ssl.SSLSocket.getpeercert()` form (what aiohttp hands
egress after the handshake), each refusal with reason caller_unauthenticated and the detail that
names the check; and the data listener's TLS context, exercised by real handshakes on loopback."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme

from egress.config.model import ListenTls, MtlsSettings
from egress.errors import CallerUnauthenticated
from egress.identity.mtls import MtlsIdentifier, server_context
from tests.identity_fakes import ClientCA

SPIFFE = r"^spiffe://example\.org/ns/[^/]+/sa/(?P<caller>[^/]+)$"
SVID = "spiffe://example.org/ns/shop/sa/checkout"


def cert(uris=(), dns=(), cns=(), other_subject=(("organizationName", "Shop"),)) -> dict:
    subject = tuple(((k, v),) for k, v in other_subject) + tuple((("commonName", cn),) for cn in cns)
    return {"subject": subject, "subjectAltName": tuple(("URI", u) for u in uris) + tuple(("DNS", d) for d in dns)}


SPIFFE_ID = "certificate's SPIFFE ID (URI SAN)"
DNS_SAN = "certificate's DNS SAN"
CN = "certificate's subject CN"

CASES = [
    # id, caller_from, caller_pattern, peercert, the caller's name or the refusal's detail
    ("spiffe", "spiffe", SPIFFE, cert(uris=[SVID]), "checkout"),
    ("spiffe-scheme-in-capitals", "spiffe", None, cert(uris=["SPIFFE://x"]),
     f"the {SPIFFE_ID} does not give a service name"),
    ("spiffe-beside-a-dns-san", "spiffe", SPIFFE, cert(uris=[SVID], dns=["billing"]), "checkout"),
    ("spiffe-two-uris", "spiffe", SPIFFE, cert(uris=[SVID, SVID.replace("checkout", "billing")]),
     f"the {SPIFFE_ID} must be exactly one, found 2"),
    ("spiffe-beside-another-uri", "spiffe", SPIFFE, cert(uris=[SVID, "https://shop.example/checkout"]),
     f"the {SPIFFE_ID} must be exactly one, found 2"),
    ("spiffe-one-uri-not-spiffe", "spiffe", None, cert(uris=["checkout"]), f"the {SPIFFE_ID} must be exactly one, found 0"),
    ("spiffe-none", "spiffe", SPIFFE, cert(dns=["checkout"], cns=["checkout"]),
     f"the {SPIFFE_ID} must be exactly one, found 0"),
    ("spiffe-other-trust-domain", "spiffe", SPIFFE, cert(uris=["spiffe://evil.org/ns/shop/sa/checkout"]),
     f"the {SPIFFE_ID} does not match caller_pattern"),
    ("dns", "dns", None, cert(uris=["spiffe://x/y"], dns=["checkout"], cns=["billing"]), "checkout"),
    ("dns-through-pattern", "dns", r"^(?P<caller>[^.]+)\.shop\.svc$", cert(dns=["checkout.shop.svc"]), "checkout"),
    ("dns-two", "dns", None, cert(dns=["checkout", "billing"]), f"the {DNS_SAN} must be exactly one, found 2"),
    ("dns-none-only-uri", "dns", None, cert(uris=["checkout"]), f"the {DNS_SAN} must be exactly one, found 0"),
    ("cn", "cn", None, cert(uris=["spiffe://x/y"], dns=["billing"], cns=["checkout"]), "checkout"),
    ("cn-among-other-rdns", "cn", None, cert(cns=["checkout"], other_subject=(("countryName", "DE"),
                                                                             ("organizationName", "Shop"))),
     "checkout"),
    ("cn-two", "cn", None, cert(cns=["checkout", "billing"]), f"the {CN} must be exactly one, found 2"),
    ("cn-none", "cn", None, cert(dns=["checkout"]), f"the {CN} must be exactly one, found 0"),
    ("cn-not-a-service-name", "cn", None, cert(cns=["check out"]), f"the {CN} does not give a service name"),
    ("cn-pattern-without-group-takes-the-whole-match", "cn", r"^check\w+$", cert(cns=["checkout"]), "checkout"),
    ("no-san-at-all", "dns", None, {"subject": ((("commonName", "checkout"),),)},
     f"the {DNS_SAN} must be exactly one, found 0"),
    ("no-subject-at-all", "cn", None, {"subjectAltName": (("DNS", "checkout"),)},
     f"the {CN} must be exactly one, found 0"),
]


@pytest.mark.parametrize("how,pattern,peercert,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_caller_from_a_verified_certificate(how, pattern, peercert, expected):
    identifier = MtlsIdentifier(MtlsSettings(caller_from=how, caller_pattern=pattern))
    if "certificate" not in expected:
        got = identifier.identify(peercert)
        assert (got.name, got.scopes, got.proof) == (expected, frozenset(), "mtls")
        return
    with pytest.raises(CallerUnauthenticated) as info:
        identifier.identify(peercert)
    assert (info.value.status, info.value.reason) == (401, "caller_unauthenticated")
    assert info.value.detail.startswith(expected), info.value.detail


@pytest.mark.parametrize("peercert", [None, {}], ids=["no-certificate", "empty-certificate"])
def test_no_certificate_is_unauthenticated(peercert):
    with pytest.raises(CallerUnauthenticated) as info:
        MtlsIdentifier(MtlsSettings()).identify(peercert)
    assert info.value.detail == "connect with TLS and a client certificate (callers.identity: mtls)"


# ------------------------------------------------------------------ the data listener's TLS context


@pytest.fixture
def pki(tmp_path):
    server_ca, client_ca = trustme.CA(), ClientCA()
    server = server_ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    client_ca.write_ca(tmp_path / "client-ca.pem")
    return {"dir": tmp_path, "server_ca": server_ca, "client_ca": client_ca,
            "tls": ListenTls(str(tmp_path / "server.pem"), str(tmp_path / "server.key"), str(tmp_path / "client-ca.pem")),
            "tls_open": ListenTls(str(tmp_path / "server.pem"), str(tmp_path / "server.key"))}


async def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> dict | None:
    """A real TLS handshake on loopback; the client certificate the server saw (None: none), or
    raises the client's ssl.SSLError / ConnectionError when the server refuses."""
    seen: list = []

    async def serve(reader, writer):
        seen.append(writer.get_extra_info("peercert"))
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=client_ctx), 10)
        try:
            data = await asyncio.wait_for(reader.read(2), 10)
        finally:
            writer.close()
        if data != b"ok":
            raise ConnectionError("the server closed the connection")
        return seen[0]
    finally:
        server.close()
        await server.wait_closed()


def client(pki, cert=None, *, max_version=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    pki["server_ca"].configure_trust(ctx)
    if cert is not None:
        ctx.load_cert_chain(*cert)
    if max_version is not None:
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = max_version
    return ctx


def test_no_listen_tls_means_plain_http():
    assert server_context(None) is None


async def test_client_certificate_from_the_client_ca_is_required_and_read(pki):
    ctx = server_context(pki["tls"])
    good = pki["client_ca"].issue(pki["dir"], "good", uris=[SVID])
    peer = await handshake(ctx, client(pki, good))
    assert MtlsIdentifier(MtlsSettings(caller_pattern=SPIFFE)).identify(peer).name == "checkout"
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await handshake(ctx, client(pki))  # no certificate
    stranger = ClientCA("stranger").issue(pki["dir"], "stranger", uris=[SVID])
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await handshake(ctx, client(pki, stranger))


async def test_without_client_ca_no_certificate_is_asked_for(pki):
    peer = await handshake(server_context(pki["tls_open"]), client(pki))
    assert not peer
    with pytest.raises(CallerUnauthenticated):
        MtlsIdentifier(MtlsSettings()).identify(peer)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_below_1_2_is_refused(pki):
    good = pki["client_ca"].issue(pki["dir"], "good", uris=[SVID])
    ctx = server_context(pki["tls"])
    assert await handshake(ctx, client(pki, good, max_version=ssl.TLSVersion.TLSv1_2))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await handshake(ctx, client(pki, good, max_version=ssl.TLSVersion.TLSv1_1))
