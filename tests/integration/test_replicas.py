"""Several `egress serve` processes sharing breaker state through a real redis-server.

The numbers these tests print (propagation time, provider hits) are quoted in the resilience
issue note; run with `-s` to see them.
"""

import asyncio
import signal
import time

import aiohttp
import pytest
from aiohttp import web

from tests.fakes import FakeProvider
from tests.process import EgressProcess, start_all
from tests.redis_server import REDIS_SERVER, SKIP_REASON

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON)
HDRS = {"X-Egress-Caller": "checkout"}


class Switchable:
    """A provider whose health the test flips: failing (503) or healthy (200)."""

    def __init__(self):
        self.failing = True

    async def __call__(self, request):
        if self.failing:
            return web.Response(status=503, text="down")
        return web.json_response({"ok": True})


@pytest.fixture
async def fleet(tmp_path, redis_server):
    redis = redis_server
    behaviour = Switchable()
    fake = await FakeProvider(behaviour).start()
    doc = {"store": redis.url, "drain_timeout": 5, "upstreams": [{
        "name": "pay", "url": fake.url + "/v1", "callers": ["*"], "allow_private_addresses": True,
        "retry": {"attempts": 1}, "breaker": {"failures": 3, "reset_after": 30},
    }]}
    procs = [EgressProcess(doc, tmp_path) for _ in range(3)]
    try:
        await start_all(procs)  # one replica failing to start stops the others
        await asyncio.sleep(0.5)  # each replica's store connects and subscribes
        yield procs, fake, behaviour, doc
    finally:
        for p in procs:
            await asyncio.to_thread(p.stop)
        await fake.stop()


async def get(session, proc, path="/pay/x"):
    async with session.get(proc.url + path, headers=HDRS) as resp:
        await resp.read()
        return resp.status, resp.headers.get("X-Egress-Error")


async def test_one_replica_trips_all_reject_without_calling_provider(fleet, redis_server):
    procs, fake, behaviour, _ = fleet
    async with aiohttp.ClientSession() as s:
        statuses = [await get(s, procs[0]) for _ in range(3)]
        assert statuses == [(503, None)] * 3  # the provider's own 503s, counted as failures
        tripped_at = time.monotonic()
        assert await get(s, procs[0]) == (503, "circuit_open")
        # the others learn it through Redis, off their request path
        seen = {}
        while len(seen) < 2 and time.monotonic() - tripped_at < 3:
            for i in (1, 2):
                if i not in seen and (await get(s, procs[i]))[1] == "circuit_open":
                    seen[i] = time.monotonic() - tripped_at
            await asyncio.sleep(0.02)
        print(f"\nbreaker open on replicas 2 and 3 after {seen} s; provider hits {fake.hits}")
        assert set(seen) == {1, 2} and max(seen.values()) < 1.0
        hits = fake.hits
        assert hits <= 3 + 2  # failures, plus at most one in-flight call per other replica
        for _ in range(20):
            for p in procs:
                assert (await get(s, p))[1] == "circuit_open"
        assert fake.hits == hits  # the failing provider is left alone by all replicas


async def test_late_joiner_sees_open_breaker(fleet, redis_server, tmp_path):
    procs, fake, behaviour, doc = fleet
    async with aiohttp.ClientSession() as s:
        for _ in range(3):
            await get(s, procs[0])
        late = await EgressProcess(doc, tmp_path).astart()
        try:
            await asyncio.sleep(0.5)
            hits = fake.hits
            assert await get(s, late) == (503, "circuit_open")
            assert fake.hits == hits
        finally:
            await asyncio.to_thread(late.stop)


async def test_redis_down_everyone_keeps_serving(fleet, redis_server):
    procs, fake, behaviour, _ = fleet
    redis = redis_server
    behaviour.failing = False
    redis.kill()
    async with aiohttp.ClientSession() as s:
        await asyncio.sleep(0.3)
        for _ in range(5):
            for p in procs:
                assert await get(s, p) == (200, None)
        redis.start()  # same port: the stores reconnect with backoff
        await asyncio.sleep(6)
        for p in procs:
            assert await get(s, p) == (200, None)
    for p in procs:
        logs = p.logs()
        assert "breaker store unreachable" in logs and "reachable again" in logs


async def test_reload_on_one_does_not_disturb_others(fleet):
    procs, fake, behaviour, doc = fleet
    behaviour.failing = False
    async with aiohttp.ClientSession() as s:
        async def steady(proc, n=60):
            return [await get(s, proc) for _ in range(n)]

        others = asyncio.gather(steady(procs[1]), steady(procs[2]))
        async with s.post(procs[0].admin_url + "/admin/reload") as resp:
            assert resp.status == 200
        procs[0].signal(signal.SIGHUP)
        results = await others
        assert all(r == (200, None) for batch in results for r in batch)
        await asyncio.sleep(0.3)
        assert await get(s, procs[0]) == (200, None)
    assert "reloaded" in procs[0].logs()


async def test_rolling_restart_loses_no_request(fleet):
    procs, fake, behaviour, _ = fleet
    behaviour.failing = False
    answers, retries = [], 0
    stop = asyncio.Event()

    async def client():
        nonlocal retries
        async with aiohttp.ClientSession() as s:
            i = 0
            while not stop.is_set():
                for attempt in range(30):  # a client that retries on connection refused
                    proc = procs[(i + attempt) % len(procs)]
                    try:
                        answers.append(await get(s, proc))
                        break
                    except aiohttp.ClientConnectionError:
                        retries += 1
                        await asyncio.sleep(0.05)
                else:
                    answers.append(("lost", None))
                i += 1

    task = asyncio.create_task(client())
    for p in procs:  # SIGTERM one, start it again, then the next
        await asyncio.sleep(0.3)
        await asyncio.to_thread(p.stop)
        await p.astart()
    await asyncio.sleep(0.3)
    stop.set()
    await task
    print(f"\nrolling restart: {len(answers)} requests, {retries} retried on connection errors")
    assert answers and all(a == (200, None) for a in answers)
