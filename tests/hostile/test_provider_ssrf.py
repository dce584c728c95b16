"""Hostile providers steering egress somewhere else (OWASP API7:2023 SSRF) and broken TLS.

Loopback only: the upstreams allow exactly 127.0.0.1/32 as a "private" network, so the address
guard treats every other address (127.0.0.2, 169.254.169.254, ...) as forbidden.  Redirects to
metadata, localhost or file:// are refused by the Location check or the hop allowlist before any
connection; the guard cases use 127.0.0.2, where a trap server proves nothing arrived.
"""

from __future__ import annotations

import datetime
import socket

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import base_config
from tests.fakes import FakeProvider, tls_server
from tests.hostile.conftest import assert_still_serves, good_upstream, hostile_upstream, read_problem

LOOPBACK_ONLY = ["127.0.0.1/32"]


def redirect_to(location: str, status: int = 302):
    async def handler(request):
        return web.Response(status=status, headers={"Location": location})
    return handler


async def trap_on(address: str, port: int = 0) -> FakeProvider:
    """A provider on another loopback address; it must never be reached."""
    async def answer(request):
        return web.Response(text="trap")

    trap = FakeProvider(answer)
    trap.host, trap.listen_port = address, port
    return await trap.start()


def loopback2_available() -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.2", 0))
            return True
        except OSError:
            return False


needs_127_0_0_2 = pytest.mark.skipif(not loopback2_available(), reason="127.0.0.2 is not routable here")

LOCATIONS = [
    # id, Location, follow  (all reach only the hostile provider, once)
    ("metadata-ip", "http://169.254.169.254/latest/meta-data/iam/security-credentials/", False),
    ("metadata-ip-followed", "http://169.254.169.254/latest/meta-data/", True),
    ("metadata-ipv4-mapped-v6", "http://[::ffff:169.254.169.254]/latest/meta-data/", True),
    ("metadata-hex-literal", "http://0xA9FEA9FE/latest/meta-data/", True),
    ("metadata-scheme-relative", "//169.254.169.254/latest/meta-data/", True),
    ("localhost", "http://localhost:22/", False),
    ("localhost-followed", "http://localhost:22/", True),
    ("file-scheme", "file:///etc/passwd", False),
    ("file-scheme-followed", "file:///etc/passwd", True),
    ("gopher-scheme", "gopher://127.0.0.1:6379/_FLUSHALL", True),
    ("credentials-in-location", "http://user:pw@169.254.169.254/", True),
]


@pytest.mark.parametrize("case", LOCATIONS, ids=[c[0] for c in LOCATIONS])
async def test_redirect_out_of_the_allowlist_is_refused(case, provider, proxy, good):
    name, location, follow = case
    bad = await provider(redirect_to(location))
    p = await proxy(base_config([hostile_upstream(bad.url, allow_private_addresses=LOOPBACK_ONLY,
                                                  redirects={"follow": follow, "allow_hosts": []}),
                                 good_upstream(good.url)]))
    async with p.request("GET", "/bad/x") as resp:
        problem = await read_problem(resp)
        assert resp.status == 502 and problem["reason"] == "redirect_blocked", problem
        assert "Location" not in resp.headers
        assert "169.254" not in problem["detail"]
    assert bad.hits == 1
    await assert_still_serves(p)


async def test_backslash_authority_stays_on_the_upstream_origin(provider, proxy, good):
    """`http:\\\\169.254.169.254` is an authority to a WHATWG browser but a relative path to yarl: the
    hop stays on the provider's own origin (it only ever reaches the provider) until max_hops."""
    bad = await provider(redirect_to("http:\\\\169.254.169.254\\latest"))
    p = await proxy(base_config([hostile_upstream(bad.url, allow_private_addresses=LOOPBACK_ONLY,
                                                  redirects={"follow": True, "max_hops": 2}),
                                 good_upstream(good.url)]))
    async with p.request("GET", "/bad/x") as resp:
        problem = await read_problem(resp)
        assert resp.status == 502 and problem["reason"] == "redirect_blocked", problem
    assert bad.hits == 3  # the first request and two same-origin hops, then refused
    await assert_still_serves(p)


@needs_127_0_0_2
async def test_followed_redirect_to_another_loopback_address_hits_the_address_guard(provider, proxy, good):
    """The hop is on redirects.allow_hosts, but 127.0.0.2 is not an allowed address: refused at
    connect time (socket_factory), nothing reaches the trap."""
    trap = await trap_on("127.0.0.2")
    try:
        bad = await provider(redirect_to(f"http://127.0.0.2:{trap.port}/steal", 307))
        p = await proxy(base_config([hostile_upstream(bad.url, allow_private_addresses=LOOPBACK_ONLY,
                                                      redirects={"follow": True,
                                                                     "allow_hosts": [f"127.0.0.2:{trap.port}"]}),
                                     good_upstream(good.url)]))
        async with p.request("GET", "/bad/x") as resp:
            problem = await read_problem(resp)
            assert resp.status == 502 and problem["reason"] == "address_blocked", problem
        assert bad.hits == 1 and trap.hits == 0
        await assert_still_serves(p)
    finally:
        await trap.stop()


class RebindingResolver(aiohttp.abc.AbstractResolver):
    """First answer 127.0.0.1 (allowed), every later answer 127.0.0.2 (not allowed)."""

    def __init__(self) -> None:
        self.calls = 0

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.calls += 1
        address = "127.0.0.1" if self.calls == 1 else "127.0.0.2"
        return [{"hostname": host, "host": address, "port": port, "family": socket.AF_INET, "proto": 0,
                 "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        return None


@needs_127_0_0_2
async def test_dns_rebinding_first_allowed_then_not(provider, proxy, good):
    async def close_each(request):
        resp = web.json_response({"ok": True})
        resp.force_close()  # no pooled connection: the next request must connect (and resolve) again
        return resp

    bad = await provider(close_each)
    trap = await trap_on("127.0.0.2", bad.port)  # same port, the rebound address
    resolver = RebindingResolver()
    try:
        p = await proxy(base_config([hostile_upstream(f"http://rebind.test:{bad.port}",
                                                      allow_private_addresses=LOOPBACK_ONLY),
                                     good_upstream(good.url)]), resolver=resolver)
        async with p.request("GET", "/bad/first") as resp:
            assert resp.status == 200, await resp.read()
        # the DNS cache (ttl 10 s) would hide the rebinding for a while; expire it now
        p.state.generation.clients["bad"]._session.connector.clear_dns_cache()
        async with p.request("GET", "/bad/second") as resp:
            problem = await read_problem(resp)
            assert resp.status == 502 and problem["reason"] == "address_blocked", problem
        assert resolver.calls >= 2
        assert bad.hits == 1 and trap.hits == 0
        await assert_still_serves(p)
    finally:
        await trap.stop()


# ------------------------------------------------------------------ TLS

def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


CERTS = [
    # id, issue_cert kwargs
    ("certificate-for-another-host", {"identities": ("partner.other.example",)}),
    ("certificate-expired", {"identities": ("localhost",), "not_before": now() - datetime.timedelta(days=30),
                             "not_after": now() - datetime.timedelta(days=1)}),
    ("certificate-not-yet-valid", {"identities": ("localhost",), "not_before": now() + datetime.timedelta(days=1),
                                   "not_after": now() + datetime.timedelta(days=30)}),
]


@pytest.mark.parametrize("case", CERTS, ids=[c[0] for c in CERTS])
async def test_bad_certificate_is_refused_before_anything_is_sent(case, proxy, good, tmp_path):
    name, kw = case
    kw = dict(kw)
    ctx, ca_file = tls_server(tmp_path, *kw.pop("identities"), **kw)
    fake = await FakeProvider(ssl_context=ctx).start()
    try:
        p = await proxy(base_config([hostile_upstream(f"https://localhost:{fake.port}", tls={"ca_file": str(ca_file)},
                                                      credential={"header": "Authorization",
                                                                  "value": "Bearer partner-secret"}),
                                     good_upstream(good.url)]))
        async with p.request("GET", "/bad/x") as resp:
            problem = await read_problem(resp)
            assert resp.status == 502 and problem["reason"] == "upstream_unavailable", problem
            assert "certificate" in problem["detail"]
        assert fake.hits == 0  # the handshake failed: no request, no credential left
        await assert_still_serves(p)
    finally:
        await fake.stop()


async def test_https_upstream_redirect_to_plain_http_is_refused(proxy, good, tmp_path):
    """Following a 307 from https to http would replay the request (body included) in clear text."""
    ctx, ca_file = tls_server(tmp_path, "localhost")
    plain = await FakeProvider().start()
    tls = await FakeProvider(redirect_to(f"http://localhost:{plain.port}/v1/x", 307), ssl_context=ctx).start()
    try:
        p = await proxy(base_config([hostile_upstream(f"https://localhost:{tls.port}", tls={"ca_file": str(ca_file)},
                                                      redirects={"follow": True,
                                                                     "allow_hosts": [f"localhost:{plain.port}"]}),
                                     good_upstream(good.url)]))
        async with p.request("POST", "/bad/x", data=b'{"card": "4242"}') as resp:
            problem = await read_problem(resp)
            assert resp.status == 502 and problem["reason"] == "redirect_blocked", problem
        assert tls.hits == 1 and plain.hits == 0
        await assert_still_serves(p)
    finally:
        await tls.stop()
        await plain.stop()
