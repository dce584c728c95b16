"""What leaves, what comes back: headers, redirects, encodings and streamed bodies."""

import gzip

import orjson
from aiohttp import web

from tests.conftest import base_config

CRED = "Bearer partner-cred-MARKER"


def up(url, **over):
    return {"name": "pay", "url": url + "/v1", "callers": ["*"], "allow_private_addresses": True,
            "credential": {"header": "Authorization", "value": CRED}, "retry": {"attempts": 1}, **over}


async def test_provider_cannot_set_cookies_or_hop_headers_on_callers(provider, proxy):
    async def handler(request):
        return web.Response(text="{}", content_type="application/json", headers={
            "Set-Cookie": "session=stolen", "X-Leak": "1", "Connection": "X-Leak", "Keep-Alive": "timeout=5",
            "X-Egress-Contract": "valid"})

    fake = await provider(handler)
    p = await proxy(base_config([up(fake.url)]))
    async with p.request("GET", "/pay/x") as resp:
        assert resp.status == 200
        assert "Set-Cookie" not in resp.headers and "X-Leak" not in resp.headers
        assert "Keep-Alive" not in resp.headers
        assert resp.headers.getall("X-Egress-Contract") == ["unchecked"]  # not the provider's claim


async def test_cookie_from_provider_not_replayed_to_later_requests(provider, proxy):
    async def handler(request):
        return web.json_response({"cookie": request.headers.get("Cookie")}, headers={"Set-Cookie": "sid=abc"})

    fake = await provider(handler)
    p = await proxy(base_config([up(fake.url)]))
    for _ in range(2):
        async with p.request("GET", "/pay/x") as resp:
            assert (await resp.json())["cookie"] is None  # no cookie jar shared between callers


async def test_redirect_to_allowlisted_upstream_passes_through(provider, proxy):
    async def handler(request):
        return web.Response(status=302, headers={"Location": "/v1/elsewhere"})

    fake = await provider(handler)
    p = await proxy(base_config([up(fake.url)]))
    async with p.request("GET", "/pay/x", allow_redirects=False) as resp:
        assert resp.status == 302
        assert resp.headers["Location"] == "/v1/elsewhere"
    assert fake.hits == 1  # not followed by egress


async def test_redirect_outside_upstreams_blocked(provider, proxy):
    async def handler(request):
        return web.Response(status=307, headers={"Location": "file:///etc/passwd"})

    fake = await provider(handler)
    p = await proxy(base_config([up(fake.url)]))
    async with p.request("GET", "/pay/x", allow_redirects=False) as resp:
        assert resp.status == 502 and resp.headers["X-Egress-Error"] == "redirect_blocked"


async def test_follow_redirects_only_to_allowed_hosts_and_drop_credential(provider, proxy):
    other = await provider(lambda r: _json({"auth": r.headers.get("Authorization")}))

    async def handler(request):
        return web.Response(status=302, headers={"Location": f"http://localhost:{other.port}/landing"})

    first = await provider(handler)
    p = await proxy(base_config([up(first.url, redirects={"follow": True, "allow_hosts": [f"localhost:{other.port}"]})]))
    async with p.request("GET", "/pay/x") as resp:
        assert resp.status == 200
        assert (await resp.json()) == {"auth": None}  # the credential stayed with its origin
    assert first.requests[0].headers["Authorization"] == CRED
    assert other.hits == 1

    blocked = await proxy(base_config([up(first.url, redirects={"follow": True, "allow_hosts": []})]))
    async with blocked.request("GET", "/pay/x") as resp:
        assert resp.status == 502 and resp.headers["X-Egress-Error"] == "redirect_blocked"
    assert other.hits == 1


async def test_followed_hop_still_passes_address_guard(provider, proxy):
    # only 127.0.0.1 is allowed; the hop to 127.0.0.2 (another loopback address, so nothing can
    # leave this machine) must be refused by the socket factory before any connection is made
    async def handler(request):
        return web.Response(status=302, headers={"Location": f"http://127.0.0.2:{request.url.port}/v1/y"})

    fake = await provider(handler)
    doc = up(fake.url, allow_private_addresses=["127.0.0.1/32"],
             redirects={"follow": True, "allow_hosts": [f"127.0.0.2:{fake.port}"]})
    p = await proxy(base_config([doc]))
    async with p.request("GET", "/pay/x") as resp:
        assert resp.status == 502 and resp.headers["X-Egress-Error"] == "address_blocked"
    assert fake.hits == 1


async def test_gzip_forwarded_when_caller_accepts_it_decoded_otherwise(provider, proxy):
    payload = orjson.dumps({"items": list(range(100))})

    async def handler(request):
        return web.Response(body=gzip.compress(payload), headers={
            "Content-Encoding": "gzip", "Content-Type": "application/json"})

    fake = await provider(handler)
    p = await proxy(base_config([up(fake.url)]))
    async with p.request("GET", "/pay/x", headers={"Accept-Encoding": "gzip"}) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(await resp.read()) == payload
    async with p.request("GET", "/pay/x", headers={"Accept-Encoding": "identity"}) as resp:
        assert "Content-Encoding" not in resp.headers
        assert await resp.read() == payload
    assert fake.requests[0].headers["Accept-Encoding"] == "gzip, deflate"


async def test_chunked_request_body_over_cap_is_413_and_not_sent(provider, proxy):
    fake = await provider()
    p = await proxy(base_config([up(fake.url, limits={"max_request_bytes": 100_000})]))

    async def chunks():
        for _ in range(50):
            yield b"x" * 10_000

    async with p.request("POST", "/pay/upload", data=chunks()) as resp:
        assert resp.status == 413 and resp.headers["X-Egress-Error"] == "request_too_large"
    assert fake.hits == 0


async def test_request_body_forwarded_exactly(provider, proxy):
    fake = await provider()
    p = await proxy(base_config([up(fake.url)]))
    body = orjson.dumps({"amount": 1200, "currency": "EUR"})
    async with p.request("POST", "/pay/charges", data=body, headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 200
    assert fake.requests[0].body == body
    assert fake.requests[0].headers["Content-Type"] == "application/json"


async def _json(doc):
    return web.json_response(doc)


async def test_refusals_inside_an_attempt_are_span_events(provider, proxy):
    async def huge(request):
        return web.Response(body=b"x" * 10_000, content_type="application/json")

    async def away(request):
        return web.Response(status=302, headers={"Location": "http://localhost:1/elsewhere"})

    cases = [(huge, {"limits": {"max_response_bytes": 1000}}, "response_too_large", "egress.limit_exceeded",
              {"limit": "max_response_bytes", "value": 1000}),
             (away, {"redirects": {"follow": True, "allow_hosts": []}}, "redirect_blocked",
              "egress.redirect_blocked", {"followed": True})]
    for handler, over, reason, event, attrs in cases:
        fake = await provider(handler)
        seen = []
        p = await proxy(base_config([up(fake.url, **over)]), observers=[seen.append])
        async with p.request("GET", "/pay/x") as resp:
            assert resp.headers["X-Egress-Error"] == reason
        found = [e.attrs for e in seen[-1].events if e.name == event]
        assert found == [attrs], seen[-1].events
