"""Breaker state shared through a real redis-server: propagation, late joiners, Redis outages."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from egress.config import BreakerSettings
from egress.send.resilience import BreakerRegistry
from egress.store.redis import RedisStore

try:
    from tests.redis_server import REDIS_SERVER, SKIP_REASON, RedisServer
except ImportError:   # tests/ is not a package: import the helper by its directory
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from redis_server import REDIS_SERVER, SKIP_REASON, RedisServer

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON)

TRIP = BreakerSettings(failures=3, reset_after=30.0)


class Replica:
    def __init__(self, url: str, name: str) -> None:
        self.name, self.events, self.changes = name, [], []
        self.registry = BreakerRegistry(on_change=lambda *c: self.changes.append(c))
        self.store = RedisStore(url, instance_id=name, on_event=lambda kind, detail: self.events.append(kind),
                                socket_timeout=0.5, backoff=0.05, max_backoff=0.5, ping_interval=0.2)
        self.registry.share_through(self.store)

    def breaker(self, settings: BreakerSettings = TRIP):
        return self.registry.get("payments", settings, None)

    def trip(self, settings: BreakerSettings = TRIP) -> None:
        breaker = self.breaker(settings)
        for _ in range(settings.failures):
            breaker.release(breaker.acquire(), "failure")
        assert breaker.state == "open"


@pytest.fixture
async def replicas(redis_server):
    started: list[Replica] = []

    async def start(name: str) -> Replica:
        replica = Replica(redis_server.url, name)
        started.append(replica)
        await replica.store.start()
        return replica
    yield start
    for replica in started:
        await replica.store.stop()


async def wait_for(predicate, timeout: float) -> float:
    """Seconds until predicate() held; fails after `timeout`."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(0.002)
    return time.monotonic() - t0


async def test_a_trip_opens_the_other_replica_within_a_second(replicas):
    a, b = await replicas("a"), await replicas("b")
    assert a.store.connected and b.store.connected
    a.trip()
    took = await wait_for(lambda: b.breaker().state == "open", 1.0)
    print(f"\nremote open seen by the other replica after {took * 1000:.1f} ms")
    assert 29.0 < b.breaker().retry_after() <= 30.0
    assert b.changes == [("payments", "closed", "open")] and a.events == b.events == []


async def test_a_probe_success_closes_the_other_replica(replicas):
    fast = BreakerSettings(failures=3, reset_after=0.3)
    a, b = await replicas("a"), await replicas("b")
    b.breaker(fast)
    a.trip(fast)
    await wait_for(lambda: b.breaker(fast).state == "open", 1.0)
    await asyncio.sleep(0.35)
    probe = a.breaker(fast).acquire()                         # a's single half-open probe
    a.breaker(fast).release(probe, "success")
    took = await wait_for(lambda: b.breaker(fast).state == "closed", 1.0)
    print(f"\nremote close seen after {took * 1000:.1f} ms")


async def test_a_late_joiner_sees_the_open_breaker(replicas):
    a = await replicas("a")
    a.trip()
    await wait_for(lambda: not a.store._queue, 1.0)          # a's change reached Redis
    late = await replicas("late")
    breaker = late.breaker()
    assert breaker.state == "open" and 29.0 < breaker.retry_after() <= 30.0


async def test_redis_outage_keeps_local_state_and_recovers(replicas, redis_server):
    a, b = await replicas("a"), await replicas("b")
    redis_server.kill()
    took = await wait_for(lambda: not a.store.connected and not b.store.connected, 3.0)
    print(f"\nredis killed: both stores disconnected after {took * 1000:.1f} ms")
    assert a.events == b.events == ["redis_down"]
    a.trip()                                                  # local breakers keep working
    assert b.breaker().acquire() is not None and b.breaker().state == "closed"
    await asyncio.sleep(0.6)                                  # several reconnect attempts: one event
    assert a.events == b.events == ["redis_down"]

    redis_server.start()                                      # same port
    took = await wait_for(lambda: a.store.connected and b.store.connected, 3.0)
    print(f"redis restarted: both stores reconnected after {took * 1000:.1f} ms")
    assert a.events == b.events == ["redis_down", "redis_up"]
    took = await wait_for(lambda: b.breaker().state == "open", 2.0)   # a's queued open got through
    print(f"open made during the outage reached the other replica {took * 1000:.1f} ms after that")


async def test_starting_while_redis_is_down_serves_locally_then_connects(tmp_path):
    server = RedisServer(tmp_path)                            # a free port, nothing listening yet
    replica = Replica(server.url, "early")
    try:
        t0 = time.monotonic()
        await replica.store.start()
        print(f"\nstart() with redis down returned after {(time.monotonic() - t0) * 1000:.1f} ms")
        assert (replica.store.connected, replica.events) == (False, ["redis_down"])
        replica.trip()                                        # local state works meanwhile
        server.start()
        await wait_for(lambda: replica.store.connected, 3.0)
        assert replica.events == ["redis_down", "redis_up"]
    finally:
        await replica.store.stop()
        server.stop()


async def test_stopping_reports_no_outage_and_unhooks_the_registry(replicas):
    a = await replicas("a")
    await a.store.stop()
    assert (a.store.connected, a.events) == (False, [])
    a.trip()                                                  # no publisher any more: nothing queued
    assert not a.store._queue
