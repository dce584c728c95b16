"""Resilience through the real proxy against flaky fake providers (real sockets, real time)."""

import asyncio
import time

from aiohttp import web

from tests.conftest import base_config


class Flaky:
    """Fails the first `failures` requests with `status` (optionally Retry-After), then 200."""

    def __init__(self, failures, status=503, retry_after=None, delay=0.0):
        self.failures, self.status, self.retry_after, self.delay = failures, status, retry_after, delay
        self.times = []

    async def __call__(self, request):
        self.times.append(time.monotonic())
        if self.delay:
            await asyncio.sleep(self.delay)
        if len(self.times) <= self.failures:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.Response(status=self.status, headers=headers, text="busy")
        return web.json_response({"ok": True})


def up(url, **over):
    doc = {"name": "pay", "url": url + "/v1", "callers": ["*"], "allow_private_addresses": True,
           "timeout": {"connect": 1, "total": 5},
           "retry": {"attempts": 3, "backoff": 0.01, "max_backoff": 0.05, "budget": 1.0},
           "breaker": {"failures": 50, "reset_after": 30}}
    for key, value in over.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    return doc


async def test_get_retried_to_success(provider, proxy):
    flaky = Flaky(2)
    fake = await provider(flaky)
    p = await proxy(base_config([up(fake.url)]))
    async with p.request("GET", "/pay/charges") as resp:
        assert resp.status == 200
    assert fake.hits == 3


async def test_post_not_retried_after_provider_saw_it(provider, proxy):
    flaky = Flaky(2)
    fake = await provider(flaky)
    p = await proxy(base_config([up(fake.url)]))
    async with p.request("POST", "/pay/charges", data=b'{"amount": 1}') as resp:
        assert resp.status == 503  # the provider's answer, not a second charge
    assert fake.hits == 1


async def test_post_with_idempotency_key_is_retried(provider, proxy):
    flaky = Flaky(1)
    fake = await provider(flaky)
    p = await proxy(base_config([up(fake.url)]))
    async with p.request("POST", "/pay/charges", data=b'{"amount": 1}', headers={"Idempotency-Key": "k-1"}) as resp:
        assert resp.status == 200
    assert fake.hits == 2
    assert fake.requests[0].body == fake.requests[1].body == b'{"amount": 1}'  # replayed exactly


async def test_post_timeout_not_retried(provider, proxy):
    flaky = Flaky(0, delay=2.0)
    fake = await provider(flaky)
    p = await proxy(base_config([up(fake.url, timeout={"connect": 0.5, "total": 0.5})]))
    async with p.request("POST", "/pay/charges", data=b"{}") as resp:
        assert resp.status == 504 and resp.headers["X-Egress-Error"] == "upstream_timeout"
    await asyncio.sleep(0.1)
    assert fake.hits == 1


async def test_retry_after_respected(provider, proxy):
    flaky = Flaky(1, status=503, retry_after="1")
    fake = await provider(flaky)
    p = await proxy(base_config([up(fake.url, retry={"max_retry_after": 2})]))
    async with p.request("GET", "/pay/x") as resp:
        assert resp.status == 200
    gap = flaky.times[1] - flaky.times[0]
    print(f"\nRetry-After: 1 -> measured gap {gap:.3f} s")
    assert 0.95 <= gap < 1.5


async def test_429_with_long_retry_after_goes_straight_back(provider, proxy):
    flaky = Flaky(5, status=429, retry_after="120")
    fake = await provider(flaky)
    p = await proxy(base_config([up(fake.url)]))
    start = time.monotonic()
    async with p.request("GET", "/pay/x") as resp:
        assert resp.status == 429 and resp.headers["Retry-After"] == "120"
    assert time.monotonic() - start < 0.5 and fake.hits == 1


async def test_whole_exchange_within_total_timeout(provider, proxy):
    flaky = Flaky(100, status=503, delay=0.3)
    fake = await provider(flaky)
    p = await proxy(base_config([up(fake.url, timeout={"connect": 0.5, "total": 1.0}, retry={"attempts": 10})]))
    start = time.monotonic()
    async with p.request("GET", "/pay/x") as resp:
        elapsed = time.monotonic() - start
        assert resp.status in (503, 504)
    assert elapsed < 1.3


async def test_retry_budget_stops_a_retry_storm(provider, proxy):
    flaky = Flaky(10_000, status=503)
    fake = await provider(flaky)
    p = await proxy(base_config([up(fake.url, retry={"attempts": 3, "budget": 0.1},
                                    breaker={"failures": 100_000})]))
    n = 100

    async def one():
        async with p.request("GET", "/pay/x") as resp:
            assert "X-Egress-Error" not in resp.headers  # the provider's 503, not the breaker's
            return resp.status

    statuses = await asyncio.gather(*(one() for _ in range(n)))
    retries = fake.hits - n
    print(f"\nbudget 0.1: {n} requests, {retries} retries (without a budget: {2 * n})")
    assert all(s == 503 for s in statuses)
    assert 0 < retries <= 0.1 * n + 3  # ratio x requests + the floor


async def test_half_open_lets_exactly_one_probe_through(provider, proxy):
    flaky = Flaky(2, status=500, delay=0.0)
    fake = await provider(flaky)
    p = await proxy(base_config([up(fake.url, retry={"attempts": 1},
                                    breaker={"failures": 2, "reset_after": 0.5})]))
    for _ in range(2):
        async with p.request("GET", "/pay/x") as resp:
            assert resp.status == 500
    async with p.request("GET", "/pay/x") as resp:
        assert resp.status == 503 and resp.headers["X-Egress-Error"] == "circuit_open"
    await asyncio.sleep(0.6)
    flaky.delay = 0.3  # the probe takes a while; everyone else arrives meanwhile

    async def one():
        async with p.request("GET", "/pay/x") as resp:
            return resp.status

    statuses = await asyncio.gather(*(one() for _ in range(20)))
    assert sorted(statuses).count(200) == 1 and statuses.count(503) == 19
    assert fake.hits == 3  # two failures, one probe
    async with p.request("GET", "/pay/x") as resp:
        assert resp.status == 200  # the probe's success closed it


async def test_connect_failure_retried_even_for_post(provider, proxy):
    fake = await provider()
    port = fake.port
    await fake.stop()
    p = await proxy(base_config([up(f"http://127.0.0.1:{port}", retry={"attempts": 3})]))
    seen = []
    p.state.observers.append(seen.append)
    async with p.request("POST", "/pay/charges", data=b"{}") as resp:
        assert resp.status == 502 and resp.headers["X-Egress-Error"] == "upstream_unavailable"
    assert len(seen[-1].attempts) == 3  # nothing was sent, so retrying could not double a charge
    assert [e.name for e in seen[-1].events].count("egress.retry") == 2


async def test_requests_say_when_the_shared_breaker_store_is_down(provider, proxy):
    from tests.process import free_port
    fake = await provider()
    dead = free_port()  # nothing listens: Redis is "down" from the start
    p = await proxy(base_config([up(fake.url)], store=f"redis://127.0.0.1:{dead}/0"))
    seen = []
    p.state.observers.append(seen.append)
    async with p.request("GET", "/pay/x") as resp:
        assert resp.status == 200  # served on local breaker state
    events = [e for e in seen[-1].events if e.name == "egress.breaker_store_down"]
    assert events and events[0].attrs == {"breaker": "pay"}
    assert not seen[-1].anomalous  # not every request forced into a trace
