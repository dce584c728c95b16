"""The redirect policy of send/client.py, held exactly: how an `allow_hosts` entry is read, which
hop it allows (scheme, host AND port), how many hops, what a followed hop carries (method,
body, the partner credential), and which answers are redirects at all.

Hops go between real aiohttp apps on 127.0.0.1 / localhost (port 0) through a real
`UpstreamClient`; the address guard allows loopback only (`allow_private_addresses`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from egress.config import settings_from_dict
from egress.errors import RedirectBlocked
from egress.send.client import UpstreamClient, allowed_origins, is_redirect, split_host_port
from tests.fakes import FakeProvider, each_closed

ENTRIES = [  # id, allow_hosts entry, (host, port) or ("", None) when malformed
    ("host", "api.example", ("api.example", None)),
    ("host-any-case-and-spaces", " API.Example ", ("api.example", None)),
    ("host-port", "api.example:8443", ("api.example", 8443)),
    ("port-1", "a:1", ("a", 1)),
    ("port-65535", "a:65535", ("a", 65535)),
    ("port-0", "a:0", ("", None)),
    ("port-65536", "a:65536", ("", None)),
    ("port-empty", "a:", ("", None)),
    ("port-not-a-number", "a:https", ("", None)),
    ("port-not-ascii-digits", "a:\u0663", ("", None)),
    ("port-signed", "a:+80", ("", None)),
    ("v6", "[::1]", ("::1", None)),
    ("v6-port", "[2001:db8::1]:8443", ("2001:db8::1", 8443)),
    ("v6-port-empty", "[::1]:", ("", None)),
    ("v6-junk-after-bracket", "[::1]8443", ("", None)),
    ("v6-port-0", "[::1]:0", ("", None)),
    ("v6-without-brackets", "2001:db8::1", ("", None)),
    ("v6-two-closing-brackets", "[::1]]:80", ("", None)),
    ("empty", "", ("", None)),
    ("empty-brackets", "[]", ("", None)),
]


@pytest.mark.parametrize("entry, expected", [c[1:] for c in ENTRIES], ids=[c[0] for c in ENTRIES])
def test_allow_hosts_entry(entry, expected):
    assert split_host_port(entry) == expected


ORIGINS = [  # id, allow_hosts, the upstream's scheme, origins allowed
    ("http-default-port", ("a",), "http", {("a", 80)}),
    ("https-default-port", ("a",), "https", {("a", 443)}),
    ("explicit-port", ("a:8080",), "https", {("a", 8080)}),
    ("malformed-allows-nothing", ("a:0", "::1", ""), "https", set()),
    ("several", ("a", "[::1]:9"), "http", {("a", 80), ("::1", 9)}),
]


@pytest.mark.parametrize("hosts, scheme, expected", [c[1:] for c in ORIGINS], ids=[c[0] for c in ORIGINS])
def test_allowed_origins(hosts, scheme, expected):
    assert allowed_origins(hosts, scheme) == expected


@pytest.mark.parametrize("status, redirect", [
    (299, False), (300, True), (301, True), (304, False), (305, True), (308, True), (399, True), (400, False),
], ids=["299", "300", "301", "304-not-modified", "305", "308", "399", "400"])
def test_which_statuses_are_redirects(status, redirect):
    assert is_redirect(status) is redirect


# ------------------------------------------------------------------ hops through a real client

class Hop:
    """A provider whose path says where to send the caller next: /go/<status>?to=<location>."""

    def __init__(self) -> None:
        self.fake = FakeProvider(self.answer)

    async def answer(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path.startswith("/go/"):
            headers = {"Location": request.query["to"]} if "to" in request.query else {}
            return web.Response(status=int(request.path.split("/")[2]), headers=headers)
        return web.json_response({"at": request.path})

    @property
    def seen(self):
        return self.fake.requests


@pytest.fixture
async def hops():
    made = []

    async def make() -> Hop:
        h = Hop()
        await h.fake.start()
        made.append(h)
        return h

    yield make
    for h in made:
        await h.fake.stop()


@pytest.fixture
async def client():
    async def make(url: str, **over) -> UpstreamClient:
        doc = {"name": "pay", "url": url, "allow_private_addresses": ["127.0.0.1/32"],
               "credential": {"header": "X-Api-Key", "value": "${K}"}, **over}
        up = settings_from_dict({"upstreams": [doc]}, base_dir=Path("."), environ={"K": "partner-key"}).upstreams[0]
        c = UpstreamClient(up)
        await c.start()
        return c

    async with each_closed(make, close="close") as made:
        yield made


def with_key():
    from multidict import CIMultiDict
    return CIMultiDict({"X-Api-Key": "partner-key", "Accept": "application/json"})


async def test_a_redirect_is_answered_as_is_unless_follow_is_on(hops, client):
    a = await hops()
    c = await client(a.fake.url, redirects={"follow": False, "allow_hosts": []})
    resp = await c.send("GET", "/go/302?to=/end", with_key(), b"", timeout=5)
    assert (resp.status, resp.headers["Location"]) == (302, "/end") and len(a.seen) == 1


async def test_a_redirect_without_location_is_answered_as_is(hops, client):
    a = await hops()
    c = await client(a.fake.url, redirects={"follow": True})
    resp = await c.send("GET", "/go/302", with_key(), b"", timeout=5)
    assert resp.status == 302 and len(a.seen) == 1


@pytest.mark.parametrize("max_hops, hits, outcome", [(2, 3, 200), (1, 2, "redirect_blocked")],
                         ids=["two-hops-allowed", "one-hop-too-many"])
async def test_max_hops(hops, client, max_hops, hits, outcome):
    a = await hops()
    c = await client(a.fake.url, redirects={"follow": True, "max_hops": max_hops})
    target = "/go/302?to=" + "/go/307%3Fto%3D/end"
    if outcome == 200:
        resp = await c.send("GET", target, with_key(), b"", timeout=5)
        assert (resp.status, str(resp.url)) == (200, a.fake.url + "/end")
    else:
        with pytest.raises(RedirectBlocked) as err:
            await c.send("GET", target, with_key(), b"", timeout=5)
        assert err.value.reason == outcome
    assert len(a.seen) == hits


HOPS = [  # id, the allow_hosts entry (None: only the same origin; "@...": the upstream is named
    #       localhost), where the hop goes, followed?
    ("same-origin", None, "{a}/end", True),
    ("same-origin-by-name", "@upstream-named-localhost", "http://LocalHost:{a_port}/end", True),
    ("same-host-other-port", None, "http://127.0.0.1:{b_port}/end", False),
    ("allowed-host-and-port", "localhost:{b_port}", "http://localhost:{b_port}/end", True),
    ("allowed-host-any-case", "localhost:{b_port}", "http://LocalHost:{b_port}/end", True),
    ("allowed-host-other-port", "localhost:{b_port}", "http://localhost:{a_port}/end", False),
    ("allowed-host-default-port-only", "localhost", "http://localhost:{b_port}/end", False),
    ("other-scheme", "localhost:{b_port}", "https://localhost:{b_port}/end", False),
]


@pytest.mark.parametrize("allow, to, followed", [c[1:] for c in HOPS], ids=[c[0] for c in HOPS])
async def test_a_followed_hop_must_match_scheme_host_and_port(hops, client, allow, to, followed):
    a, b = await hops(), await hops()
    fill = {"a": a.fake.url, "a_port": a.fake.port, "b_port": b.fake.port}
    by_name = allow == "@upstream-named-localhost"
    base = f"http://localhost:{a.fake.port}" if by_name else a.fake.url
    allow = None if by_name else allow
    c = await client(base, redirects={"follow": True, "allow_hosts": [allow.format(**fill)] if allow else []})
    from urllib.parse import quote
    target = "/go/307?to=" + quote(to.format(**fill), safe="")
    if followed:
        resp = await c.send("GET", target, with_key(), b"", timeout=5)
        assert resp.status == 200 and len(a.seen) + len(b.seen) == 2
    else:
        with pytest.raises(RedirectBlocked) as err:
            await c.send("GET", target, with_key(), b"", timeout=5)
        assert err.value.reason == "redirect_blocked" and len(a.seen) + len(b.seen) == 1


@pytest.mark.parametrize("status, method, then", [
    (301, "POST", "GET"), (302, "POST", "GET"), (303, "POST", "GET"), (303, "PUT", "GET"),
    (307, "POST", "POST"), (308, "POST", "POST"), (301, "PUT", "PUT"), (302, "PATCH", "PATCH"),
], ids=["301-post-becomes-get", "302-post-becomes-get", "303-post-becomes-get", "303-put-becomes-get",
        "307-keeps-post", "308-keeps-post", "301-keeps-put", "302-keeps-patch"])
async def test_what_a_followed_hop_replays(hops, client, status, method, then):
    a = await hops()
    c = await client(a.fake.url, redirects={"follow": True})
    resp = await c.send(method, f"/go/{status}?to=/end", with_key(), b'{"amount": 5}', timeout=5)
    assert resp.status == 200
    hop = a.seen[1]
    assert hop.method == then
    assert hop.body == (b"" if then == "GET" else b'{"amount": 5}')
    assert hop.headers["X-Api-Key"] == "partner-key", "the same origin keeps the credential"


async def test_the_credential_stays_at_the_upstreams_origin(hops, client):
    a, b = await hops(), await hops()
    c = await client(a.fake.url, redirects={"follow": True, "allow_hosts": [f"localhost:{b.fake.port}"]})
    from urllib.parse import quote
    headers = with_key()
    to = quote(f"http://localhost:{b.fake.port}/go/307?to={quote(a.fake.url + '/end', safe='')}", safe="")
    resp = await c.send("GET", "/go/307?to=" + to, headers, b"", timeout=5)
    assert resp.status == 200
    assert "X-Api-Key" not in b.seen[0].headers and b.seen[0].headers["Accept"] == "application/json"
    assert "X-Api-Key" not in a.seen[1].headers, "dropped for the rest of the chain"
    assert headers["X-Api-Key"] == "partner-key", "the caller's headers object is not changed"


async def test_an_upstream_without_credential_forwards_its_headers_across_origins(hops, client):
    a, b = await hops(), await hops()
    c = await client(a.fake.url, credential=None,
                     redirects={"follow": True, "allow_hosts": [f"localhost:{b.fake.port}"]})
    from urllib.parse import quote
    to = quote(f"http://localhost:{b.fake.port}/end", safe="")
    resp = await c.send("GET", "/go/307?to=" + to, with_key(), b"", timeout=5)
    assert resp.status == 200 and b.seen[0].headers["X-Api-Key"] == "partner-key"


@pytest.mark.parametrize("location", ["http://[::1", "http://a:99999/", "http://:80/"],
                         ids=["unclosed-bracket", "bad-port", "no-host"])
async def test_a_malformed_location_is_refused(hops, client, location):
    a = await hops()
    c = await client(a.fake.url, redirects={"follow": True, "allow_hosts": ["a"]})
    from urllib.parse import quote
    with pytest.raises(RedirectBlocked) as err:
        await c.send("GET", "/go/302?to=" + quote(location, safe=""), with_key(), b"", timeout=5)
    assert err.value.reason == "redirect_blocked" and len(a.seen) == 1


async def test_a_cross_origin_hop_without_the_credential_header_is_followed(hops, client):
    from urllib.parse import quote

    from multidict import CIMultiDict
    a, b = await hops(), await hops()
    c = await client(a.fake.url, redirects={"follow": True, "allow_hosts": [f"localhost:{b.fake.port}"]})
    to = quote(f"http://localhost:{b.fake.port}/end", safe="")
    resp = await c.send("GET", "/go/302?to=" + to, CIMultiDict({"Accept": "text/plain"}), b"", timeout=5)
    assert resp.status == 200 and b.seen[0].headers["Accept"] == "text/plain"


LOCATIONS = [  # id, Location, the request target of the hop
    ("space-and-non-ascii-encoded", "/end/a b/caf\u00e9", "/end/a%20b/caf%C3%A9"),
    ("stray-percent-encoded", "/end?x=%zz", "/end?x=%25zz"),
    ("escapes-kept", "/end/x%2Fy?q=a%26b", "/end/x%2Fy?q=a%26b"),
]


@pytest.mark.parametrize("location, target", [c[1:] for c in LOCATIONS], ids=[c[0] for c in LOCATIONS])
async def test_a_location_is_re_encoded_before_it_is_requested(hops, client, location, target):
    from urllib.parse import quote
    a = await hops()
    c = await client(a.fake.url, redirects={"follow": True})
    resp = await c.send("GET", "/go/307?to=" + quote(location, safe=""), with_key(), b"", timeout=5)
    assert resp.status == 200, "a valid request line"
    assert resp.url.raw_path_qs == target
