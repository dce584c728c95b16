"""Token buckets in Redis: the request path's one round trip (`store: redis://...`).

`RedisBuckets.take` runs buckets.TAKE_LUA by EVALSHA (redis-py reloads it after a Redis
restart emptied the script cache) on its own small pool, apart from the store's background
connection: every bucket and provider hold of one request in one atomic call.  A connection
error is retried once at once (a pooled connection that died with a Redis restart).  While the
store says Redis is down, or when the call fails, the replica decides on its own buckets
(buckets.BucketTable) scaled to a fair share (1 / the replicas that heartbeat last), and
`Taken.local` says so.  Every request Redis admits is also spent from those local buckets (a
shadow), so a fallback in the middle of traffic (one timed-out call on a loaded machine, or
an outage) starts from what this replica used, not from full buckets: without it, calls
that time out now and then were measured admitting up to twice the limit.  Redis errors
never leave this module.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import NoBackoff

from egress.store.buckets import TAKE_LUA, BucketSpec, BucketTable, Taken, parse_lua_reply

log = logging.getLogger(__name__)


class RedisBuckets:
    def __init__(self, url: str, prefix: str, *, timeout: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._url, self._prefix, self._timeout = url, prefix, timeout
        self.local = BucketTable(clock=clock)
        self._client: aioredis.Redis | None = None
        self._script = None
        self.failures = 0          # calls that failed and were decided locally

    def start(self) -> None:
        self._client = aioredis.from_url(self._url, socket_timeout=self._timeout,
                                         socket_connect_timeout=self._timeout, retry=RedisRetry(NoBackoff(), 1))
        self._script = self._client.register_script(TAKE_LUA)

    async def stop(self) -> None:
        client, self._client, self._script = self._client, None, None
        if client is not None:
            try:
                await asyncio.wait_for(client.aclose(), 1.0)
            except Exception:
                log.debug("closing the bucket pool failed", exc_info=True)

    async def take(self, specs: list[BucketSpec], hold_keys: tuple[str, ...], *, connected: bool,
                   replicas: int, scale: float = 1.0) -> Taken:
        if connected and self._script is not None:
            keys = [f"{self._prefix}bucket:{s.key}" for s in specs] + [f"{self._prefix}hold:{k}" for k in hold_keys]
            args: list = [len(specs)]
            for s in specs:
                args += [repr(float(s.rate)), repr(float(s.burst))]
            try:
                taken = parse_lua_reply(await self._script(keys=keys, args=args), len(specs))
                if taken.allowed:
                    self.local.spend(specs, scale / max(1, replicas))
                return taken
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # RedisError, OSError, timeouts, a bad reply: decide locally
                self.failures += 1
                log.debug("bucket script failed: %s", type(exc).__name__)
        taken = self.local.take(specs, scale / max(1, replicas))
        return Taken(taken.allowed, taken.wait, taken.tokens, local=True)
