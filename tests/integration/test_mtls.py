"""Partners behind a private CA that require a client certificate (mutual TLS)."""

import ssl

import pytest
import trustme
from aiohttp import web

from tests.conftest import base_config
from tests.fakes import FakeProvider


@pytest.fixture
async def mtls_partner(tmp_path):
    server_ca, client_ca = trustme.CA(), trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert("localhost").configure_cert(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED
    client_ca.configure_trust(ctx)

    async def handler(request):
        peer = request.transport.get_extra_info("peercert")
        return web.json_response({"client": dict(x[0] for x in peer["subject"])["commonName"] if peer else None})

    fake = await FakeProvider(handler, ssl_context=ctx).start()
    files = {"ca": tmp_path / "server-ca.pem", "cert": tmp_path / "client.pem", "key": tmp_path / "client.key"}
    server_ca.cert_pem.write_to_path(str(files["ca"]))
    client = client_ca.issue_cert("egress-client", common_name="egress-client")
    client.cert_chain_pems[0].write_to_path(str(files["cert"]))
    client.private_key_pem.write_to_path(str(files["key"]))
    yield fake, files
    await fake.stop()


def up(fake, tls):
    return {"name": "bank", "url": f"https://localhost:{fake.port}/v1", "callers": ["*"],
            "allow_private_addresses": True, "tls": tls, "retry": {"attempts": 1}}


async def test_client_certificate_presented(mtls_partner, proxy):
    fake, f = mtls_partner
    p = await proxy(base_config([up(fake, {"ca_file": str(f["ca"]), "client_cert": str(f["cert"]),
                                           "client_key": str(f["key"])})]))
    async with p.request("GET", "/bank/accounts") as resp:
        assert resp.status == 200
        assert await resp.json() == {"client": "egress-client"}


async def test_without_client_certificate_the_partner_refuses(mtls_partner, proxy):
    fake, f = mtls_partner
    p = await proxy(base_config([up(fake, {"ca_file": str(f["ca"])})]))
    async with p.request("GET", "/bank/accounts") as resp:
        assert resp.status == 502 and resp.headers["X-Egress-Error"] == "upstream_unavailable"
    assert fake.hits == 0
