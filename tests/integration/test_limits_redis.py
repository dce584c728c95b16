"""Token buckets and provider holds in a real redis-server: the Lua script against the Python
arithmetic, replicas sharing buckets, keys that expire, and a Redis outage mid-test."""

from __future__ import annotations

import asyncio

import pytest

from egress.store.buckets import BucketSpec, BucketTable
from egress.store.redis import RedisStore
from tests.fakes import each_closed
from tests.redis_server import REDIS_SERVER, SKIP_REASON

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON)


@pytest.fixture
async def stores(redis_server):
    async def start(name: str) -> RedisStore:
        store = RedisStore(redis_server.url, instance_id=name, socket_timeout=0.5, backoff=0.05,
                           max_backoff=0.3, ping_interval=0.2)
        store.keyspace("hold", lambda *a: None, None)
        await store.start()
        return store

    async with each_closed(start) as make:
        yield make


# id, buckets (rate, burst), number of takes: the refill over the test's few ms is negligible
PARITY_CASES = [
    ("burst_of_three", [(0.001, 3)], 5),
    ("fractional_burst", [(0.001, 1.5)], 3),
    ("refusal_spends_nothing", [(0.001, 5), (0.001, 2)], 6),
    ("tightest_of_three", [(0.001, 4), (0.001, 3), (0.001, 6)], 5),
]


@pytest.mark.parametrize("buckets,n", [c[1:] for c in PARITY_CASES], ids=[c[0] for c in PARITY_CASES])
async def test_lua_script_decides_as_the_python_arithmetic(stores, buckets, n):
    store = await stores("a")
    specs = [BucketSpec(f"parity|{i}|*", r, b) for i, (r, b) in enumerate(buckets)]
    table = BucketTable()
    for step in range(n):
        remote, local = await store.take_buckets(specs), table.take(specs)
        assert not remote.local
        assert remote.allowed == local.allowed, f"step {step}"
        assert remote.tokens == pytest.approx(local.tokens, abs=0.01), f"step {step}"


async def test_refill_uses_redis_clock(stores):
    store = await stores("a")
    spec = [BucketSpec("refill|0|*", 20, 1)]
    assert [(await store.take_buckets(spec)).allowed for _ in range(2)] == [True, False]
    await asyncio.sleep(0.1)                  # 2 tokens' worth, capped at burst 1
    assert [(await store.take_buckets(spec)).allowed for _ in range(2)] == [True, False]


async def test_replicas_share_one_bucket_and_keys_expire(stores, redis_server):
    a, b = await stores("a"), await stores("b")
    spec = [BucketSpec("shared|0|*", 0.5, 4)]
    got = [(await s.take_buckets(spec)).allowed for s in (a, b, a, b, a, b)]
    assert got == [True, True, True, True, False, False]
    import redis.asyncio as aioredis
    client = aioredis.from_url(redis_server.url)
    try:
        pttl = await client.pttl("egress:bucket:shared|0|*")
    finally:
        await client.aclose()
    assert 0 < pttl <= (4 / 0.5 + 1) * 1000


async def test_a_hold_in_the_store_refuses_on_every_replica(stores):
    a, b = await stores("a"), await stores("b")
    a._spaces["hold"].put("pay", {"hold": True}, 3.0)
    spec = [BucketSpec("held|0|*", 1, 5)]
    for _ in range(50):
        taken = await b.take_buckets(spec, ("pay|GET /x", "pay"))
        if taken.held:
            break
        await asyncio.sleep(0.02)
    assert 2.0 < taken.held <= 3.0 and not taken.allowed


async def test_redis_down_fair_share_then_shared_again(stores, redis_server):
    a, b = await stores("a"), await stores("b")
    for _ in range(50):
        if a.replicas == 2:
            break
        await asyncio.sleep(0.05)
    assert a.replicas == 2
    redis_server.kill()
    spec = [BucketSpec("outage|0|*", 0.001, 10)]
    outcomes = [await a.take_buckets(spec) for _ in range(8)]
    assert all(t.local for t in outcomes)
    assert sum(t.allowed for t in outcomes) == 5          # half of burst 10: a fair share of 2
    redis_server.start()
    for _ in range(100):
        if a.connected:
            break
        await asyncio.sleep(0.05)
    taken = await a.take_buckets(spec)
    assert a.connected and not taken.local and taken.allowed   # a fresh shared bucket: recovered


async def test_local_decisions_say_so_on_the_exchange(redis_server):
    from pathlib import Path

    from egress.config import settings_from_dict
    from egress.exchange import Exchange
    from egress.send.limits import Limiter

    up = settings_from_dict({"upstreams": [{"name": "pay", "url": "https://api.pay.example",
                                            "rate_limits": [{"rate": 1, "burst": 5}]}]},
                            base_dir=Path("."), environ={}).upstreams[0]
    store = RedisStore(redis_server.url, instance_id="x", socket_timeout=0.5, backoff=0.05, ping_interval=0.2)
    limiter = Limiter()
    limiter.share_through(store)
    await store.start()
    try:
        shared = Exchange("GET")
        await limiter.admit(up, "checkout", None, shared)
        assert shared.events == []
        redis_server.kill()
        local = Exchange("GET")
        await limiter.admit(up, "checkout", None, local)
        assert [(e.name, e.attrs) for e in local.events] == [("egress.rate_limit_local", {"replicas": 1})]
        assert not local.anomalous and limiter.local_decisions == {"pay": 1}
    finally:
        await store.stop()


async def test_fallback_starts_from_what_this_replica_spent(stores, redis_server):
    a, _ = await stores("a"), await stores("b")
    for _ in range(50):
        if a.replicas == 2:
            break
        await asyncio.sleep(0.05)
    spec = [BucketSpec("shadow|0|*", 0.001, 8)]
    assert [(await a.take_buckets(spec)).allowed for _ in range(4)] == [True] * 4   # Redis decides
    redis_server.kill()
    outcomes = [await a.take_buckets(spec) for _ in range(4)]
    assert all(t.local for t in outcomes)
    assert sum(t.allowed for t in outcomes) == 0     # its fair share (8 / 2) is spent already
