"""Two and three `egress serve` processes sharing rate limits and provider holds through one
real redis-server, with Redis killed and restarted mid-test."""

import asyncio
import re
import time

import aiohttp
import pytest
from aiohttp import web

from tests.fakes import FakeProvider
from tests.process import EgressProcess, start_all
from tests.redis_server import REDIS_SERVER, SKIP_REASON

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON)


class Provider:
    """Answers 200, or 429 with Retry-After while `limited` is set."""

    def __init__(self):
        self.limited: str | None = None

    async def __call__(self, request):
        if self.limited is not None:
            return web.json_response({"error": "quota"}, status=429, headers={"Retry-After": self.limited})
        return web.json_response({"ok": True})


async def start_fleet(tmp_path, redis, n, rate_limits):
    behaviour = Provider()
    fake = await FakeProvider(behaviour).start()
    doc = {"store": redis.url, "drain_timeout": 2, "upstreams": [{
        "name": "pay", "url": fake.url + "/v1", "callers": ["*"], "allow_private_addresses": True,
        "retry": {"attempts": 1}, "rate_limits": rate_limits}]}
    procs = [EgressProcess(doc, tmp_path) for _ in range(n)]
    try:
        await start_all(procs)  # one replica failing to start stops the others
    except BaseException:
        await fake.stop()
        raise
    async with aiohttp.ClientSession() as s:     # each replica's store connects and sees the others
        for _ in range(100):
            if all([await metric(s, p, "egress_rate_limit_replicas") == n for p in procs]):
                break
            await asyncio.sleep(0.1)
    return procs, fake, behaviour


async def stop_fleet(procs, fake):
    for p in procs:
        await asyncio.to_thread(p.stop)
    await fake.stop()


async def get(session, proc, caller="checkout"):
    async with session.get(proc.url + "/pay/x", headers={"X-Egress-Caller": caller}) as resp:
        await resp.read()
        return resp.status, resp.headers.get("X-Egress-Error")


async def metric(session, proc, pattern):
    async with session.get(proc.admin_url + "/metrics") as resp:
        text = await resp.text()
    return sum(float(v) for v in re.findall("^" + pattern + r"(?:\{[^}]*\})? (\S+)$", text, re.MULTILINE))


@pytest.mark.parametrize("n", [2, 3], ids=["two_replicas", "three_replicas"])
async def test_replicas_share_upstream_and_caller_buckets(tmp_path, redis_server, n):
    procs, fake, _ = await start_fleet(tmp_path, redis_server, n, [
        {"per": "upstream", "rate": 0.01, "burst": 7}, {"per": "caller", "rate": 0.01, "burst": 3}])
    try:
        async with aiohttp.ClientSession() as s:
            batch = [await get(s, procs[i % n], "batch") for i in range(6)]
            assert batch == [(200, None)] * 3 + [(429, "rate_limited")] * 3    # its own 3, on any replica
            rest = [await get(s, procs[i % n], f"svc{i}") for i in range(6)]
            assert rest.count((200, None)) == 4                              # the upstream's 7 in all
            assert fake.hits == 7
            assert await metric(s, procs[0], "egress_rate_limit_local_decisions_total") == 0
    finally:
        await stop_fleet(procs, fake)


async def test_provider_429_retry_after_holds_every_replica(tmp_path, redis_server):
    procs, fake, behaviour = await start_fleet(tmp_path, redis_server, 3, [{"rate": 1000, "burst": 1000}])
    try:
        async with aiohttp.ClientSession() as s:
            behaviour.limited = "3"
            assert await get(s, procs[0]) == (429, None)        # the provider's own answer
            held_at = time.monotonic()
            behaviour.limited = None
            seen = []
            while time.monotonic() - held_at < 2.5:
                seen += [await get(s, p, f"c{len(seen)}") for p in procs]
                await asyncio.sleep(0.05)
            assert set(seen) == {(429, "rate_limited")}
            assert fake.hits == 1              # no replica called the provider while held
            await asyncio.sleep(max(0.0, 3.2 - (time.monotonic() - held_at)))
            assert [await get(s, p) for p in procs] == [(200, None)] * 3
    finally:
        await stop_fleet(procs, fake)


async def test_redis_killed_and_restarted_mid_test(tmp_path, redis_server):
    procs, fake, _ = await start_fleet(tmp_path, redis_server, 2, [{"per": "caller", "rate": 0.01, "burst": 4}])
    try:
        async with aiohttp.ClientSession() as s:
            assert [await get(s, procs[i % 2], "a") for i in range(5)] == [(200, None)] * 4 + [(429, "rate_limited")]
            redis_server.kill()
            for _ in range(50):               # both notice (ping)
                if all([await metric(s, p, "egress_breaker_store_up") == 0 for p in procs]):
                    break
                await asyncio.sleep(0.1)
            # local buckets at a fair share (4 / 2 replicas): each replica admits 2 of caller b
            down = [await get(s, procs[i % 2], "b") for i in range(6)]
            assert down.count((200, None)) == 4 and down.count((429, "rate_limited")) == 2
            assert await metric(s, procs[0], "egress_rate_limit_local_decisions_total") >= 3
            assert await metric(s, procs[0], "egress_breaker_store_up") == 0
            redis_server.start()
            for _ in range(100):
                if await metric(s, procs[0], "egress_breaker_store_up") == 1 and \
                        await metric(s, procs[1], "egress_breaker_store_up") == 1:
                    break
                await asyncio.sleep(0.1)
            # recovered without a restart: shared again (Redis lost its keys: fresh buckets)
            after = [await get(s, procs[i % 2], "c") for i in range(5)]
            assert after == [(200, None)] * 4 + [(429, "rate_limited")]
            local = await metric(s, procs[0], "egress_rate_limit_local_decisions_total")
            await get(s, procs[0], "d")
            assert await metric(s, procs[0], "egress_rate_limit_local_decisions_total") == local
    finally:
        await stop_fleet(procs, fake)
    for p in procs:
        assert "sk_" not in p.logs()
