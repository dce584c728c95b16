"""Rate limits, concurrency and provider holds through the real proxy (store: memory).

Each case asserts the status, the reason (body and X-Egress-Error), Retry-After, and how many
calls the provider saw: a limited request is never sent.
"""

import asyncio
import json

import orjson
import pytest
from aiohttp import web

from tests.conftest import base_config

SECRET = "sk_live_LIMITS_MARKER_9f8e"


def up(url, **over):
    doc = {"name": "pay", "url": url + "/v1", "callers": ["checkout", "billing", "batch"],
           "allow_private_addresses": True, "retry": {"attempts": 1},
           "credential": {"header": "Authorization", "value": f"Bearer {SECRET}"}}
    doc.update(over)
    return doc


async def statuses(px, n, caller="checkout", path="/pay/x"):
    out = []
    for _ in range(n):
        async with px.request("GET", path, caller=caller) as resp:
            await resp.read()
            out.append((resp.status, resp.headers.get("X-Egress-Error")))
    return out


OK, LIMITED = (200, None), (429, "rate_limited")

# id, rate_limits, [(caller, n requests, expected statuses)]
CASES = [
    ("per_caller_each_its_own", [{"per": "caller", "rate": 0.01, "burst": 2}],
     [("checkout", 3, [OK, OK, LIMITED]), ("billing", 2, [OK, OK]), ("billing", 1, [LIMITED])]),
    ("per_upstream_shared_by_all", [{"per": "upstream", "rate": 0.01, "burst": 3}],
     [("batch", 2, [OK, OK]), ("checkout", 2, [OK, LIMITED]), ("billing", 1, [LIMITED])]),
    ("runaway_batch_cannot_spend_checkouts_share",
     [{"per": "upstream", "rate": 0.01, "burst": 4}, {"per": "caller", "rate": 0.01, "burst": 2}],
     [("batch", 5, [OK, OK, LIMITED, LIMITED, LIMITED]), ("checkout", 2, [OK, OK])]),
]


@pytest.mark.parametrize("limits,steps", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_rate_limits_through_the_proxy(provider, proxy, limits, steps):
    fake = await provider()
    px = await proxy(base_config([up(fake.url, rate_limits=limits)]))
    sent = 0
    for caller, n, expected in steps:
        assert await statuses(px, n, caller) == expected, caller
        sent += expected.count(OK)
    assert fake.hits == sent          # nothing sent for a limited request


async def test_429_carries_retry_after_ratelimit_headers_and_problem(provider, proxy):
    fake = await provider()
    px = await proxy(base_config([up(fake.url, rate_limits=[{"per": "caller", "rate": 0.25, "burst": 1}])]))
    await statuses(px, 1)
    async with px.request("GET", "/pay/x") as resp:
        body = await resp.read()
        assert resp.status == 429
        assert resp.headers["X-Egress-Error"] == "rate_limited"
        assert resp.headers["Retry-After"] == "4"
        assert resp.headers["RateLimit-Policy"] == '"rate_limits[0]";q=1;w=4'
        assert resp.headers["RateLimit"] == '"rate_limits[0]";r=0;t=4'
        assert resp.headers["Content-Type"] == "application/problem+json"
    doc = orjson.loads(body)
    assert (doc["reason"], doc["status"], doc["upstream"]) == ("rate_limited", 429, "pay")
    assert SECRET not in body.decode() and SECRET not in json.dumps(dict(resp.headers))


async def test_limited_before_the_body_is_read(provider, proxy):
    fake = await provider()
    px = await proxy(base_config([up(fake.url, rate_limits=[{"rate": 0.01, "burst": 1}],
                                     limits={"max_request_bytes": 10})]))
    await statuses(px, 1)
    async with px.request("POST", "/pay/x", data=b"x" * 1000) as resp:   # too large, but limited first
        assert (resp.status, resp.headers["X-Egress-Error"]) == (429, "rate_limited")


async def test_provider_429_holds_the_upstream_for_every_caller(provider, proxy):
    async def limited(request):
        return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "2"})

    fake = await provider(limited)
    px = await proxy(base_config([up(fake.url)]))
    assert await statuses(px, 1) == [(429, None)]     # the provider's own answer, passed on
    for caller in ("checkout", "billing", "batch"):
        async with px.request("GET", "/pay/x", caller=caller) as resp:
            await resp.read()
            assert (resp.status, resp.headers["X-Egress-Error"]) == (429, "rate_limited")
            assert 1 <= int(resp.headers["Retry-After"]) <= 2
    assert fake.hits == 1
    await asyncio.sleep(2.1)
    await statuses(px, 1)
    assert fake.hits == 2           # the hold is over: the provider is asked again


async def test_concurrency_limit_refuses_at_once(provider, proxy):
    release = asyncio.Event()

    async def slow(request):
        await release.wait()
        return web.json_response({"ok": True})

    fake = await provider(slow)
    px = await proxy(base_config([up(fake.url, concurrency=2)]))

    async def one():
        async with px.request("GET", "/pay/x") as resp:
            await resp.read()
            return resp.status, resp.headers.get("X-Egress-Error"), resp.headers.get("Retry-After")

    held = [asyncio.create_task(one()) for _ in range(2)]
    while fake.hits < 2:
        await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await one() == (503, "concurrency_limited", "1")
    assert loop.time() - started < 0.5          # no queue: refused at once
    release.set()
    assert [await t for t in held] == [(200, None, None)] * 2
    assert await one() == (200, None, None)     # slots freed when the exchanges ended
    assert px.state.limits.in_flight["pay"] == 0


async def test_metrics_and_inventory_show_usage_against_limits(provider, proxy):
    fake = await provider()
    px = await proxy(base_config([up(fake.url, rate_limits=[{"per": "caller", "rate": 0.01, "burst": 1}])]))
    await statuses(px, 2, "checkout")
    async with px.session.get(px.admin_url + "/metrics") as resp:
        text = await resp.text()
    assert 'egress_rate_limit_decisions_total{caller="checkout",outcome="admitted",upstream="pay"} 1.0' in text
    assert 'egress_rate_limit_decisions_total{caller="checkout",outcome="rate_limited",upstream="pay"} 1.0' in text
    async with px.session.get(px.admin_url + "/admin/inventory") as resp:
        inv = await resp.json()
    limits = inv["upstreams"][0]["limits"]
    assert limits["callers"]["checkout"] == {"admitted": 1, "rate_limited": 1}
    assert limits["buckets"]["rate_limits[0] checkout"]["tokens_left"] == 0.0
    assert SECRET not in text and SECRET not in json.dumps(inv)


async def test_provider_remaining_quota_exported_as_gauges(provider, proxy):
    async def quota(request):
        return web.json_response({}, headers={"X-RateLimit-Remaining": "17", "X-RateLimit-Reset": "40"})

    fake = await provider(quota)
    px = await proxy(base_config([up(fake.url)]))
    await statuses(px, 1)
    async with px.session.get(px.admin_url + "/metrics") as resp:
        text = await resp.text()
    assert 'egress_provider_ratelimit_remaining{upstream="pay"} 17.0' in text
    assert 'egress_provider_ratelimit_reset_seconds{upstream="pay"} 40.0' in text
