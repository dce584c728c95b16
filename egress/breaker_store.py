"""Cross-replica breaker state through Redis (redis.asyncio), never on the request path.

Each replica keeps its own local breakers (breaker.py).  This store, in one background task:

- publishes every LOCAL open/close (the registry calls `_enqueue` synchronously; a bounded
  queue that drops the oldest change when Redis is slow or down): an open sets
  `egress:breaker:{key}` with PX = the time left open, a close deletes it, and both are
  published on the channel `egress:breaker:changes` as JSON
  {"key", "state", "remaining", "at" (wall time), "instance"};
- applies other replicas' messages (its own are ignored): a remote open opens the key here
  for the time left, a remote close closes it (`BreakerRegistry.apply_remote`);
- on start and after every reconnect reads the `egress:breaker:*` keys (PTTL = time left), so
  a replica started after the trip also rejects, and writes its own open breakers back
  (SET NX) in case Redis lost them.

Half-open is local: once the open period ends every replica sends its own single probe (at
most one probe per replica per period, no Redis round trip on the request path).  A probe
that fails re-opens the key everywhere; one that succeeds closes it everywhere.

Redis down: requests keep being served on local state, `connected` is False, on_event
("redis_down", detail) fires once per outage and ("redis_up", detail) on recovery;
reconnects use capped exponential backoff.  Redis errors never leave this module.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from typing import Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import NoBackoff
from yarl import URL

from .breaker import CLOSED, OPEN, BreakerChange, BreakerRegistry

log = logging.getLogger(__name__)

CHANNEL = "egress:breaker:changes"
KEY_PREFIX = "egress:breaker:"


class RedisBreakerStore:
    """Shares breaker opens/closes between replicas; `connected` says whether Redis is reachable."""

    def __init__(self, url: str, registry: BreakerRegistry, *, instance_id: str,
                 on_event: Callable[[str, str], None] | None = None, queue_size: int = 1000,
                 socket_timeout: float = 0.5, backoff: float = 0.1, max_backoff: float = 5.0,
                 ping_interval: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._url, self._registry, self.instance_id = url, registry, instance_id
        parsed = URL(url)
        self._where = f"{parsed.host}:{parsed.port}/{parsed.path.lstrip('/') or '0'}"   # no credentials
        self._on_event = on_event
        self._queue: deque[tuple[BreakerChange, float]] = deque(maxlen=queue_size)
        self._socket_timeout, self._backoff, self._max_backoff = socket_timeout, backoff, max_backoff
        self._ping_interval, self._clock, self._wall = ping_interval, clock, wall
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._first_attempt = asyncio.Event()
        self._outage = False
        self._had_session = False
        self._stopping = False
        self._session_id = 0
        self.connected = False
        self.dropped = 0          # changes dropped because the queue was full

    async def start(self, wait: float = 2.0) -> None:
        """Start the background task; wait up to `wait` s for the first connection (never fails)."""
        self._registry.set_publisher(self._enqueue)
        self._task = asyncio.create_task(self._run(), name="egress-breaker-store")
        try:
            await asyncio.wait_for(self._first_attempt.wait(), wait)
        except asyncio.TimeoutError:
            pass

    async def stop(self, wait: float = 2.0) -> None:
        """Stop the background task.  Does not rely on redis-py honouring a single cancel
        (a cancel that lands inside a redis-py call was seen swallowed): a flag ends the
        loops, and the task is cancelled again until it ends or `wait` runs out."""
        self._registry.set_publisher(None)
        self._stopping = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is not None:
            deadline = asyncio.get_running_loop().time() + wait
            while not task.done() and asyncio.get_running_loop().time() < deadline:
                task.cancel()
                await asyncio.wait({task}, timeout=0.1)
            if not task.done():
                log.warning("breaker store task did not stop within %.1fs", wait)
        self.connected = False

    # ------------------------------------------------------------ request path (sync, no I/O)

    def _enqueue(self, change: BreakerChange) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append((change, self._clock()))
        self._wakeup.set()

    # ------------------------------------------------------------ background

    async def _run(self) -> None:
        delay = self._backoff
        while not self._stopping:
            client = aioredis.from_url(
                self._url, socket_timeout=self._socket_timeout,
                socket_connect_timeout=self._socket_timeout, retry=RedisRetry(NoBackoff(), 0))
            try:
                await self._session(client)            # returns only by raising
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # RedisError, OSError, timeouts: all mean "Redis unusable"
                if not self._stopping:
                    self._down(exc)
            finally:
                await self._close(client)
            self._first_attempt.set()
            if self._had_session:
                self._had_session, delay = False, self._backoff
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)

    async def _session(self, client: aioredis.Redis) -> None:
        pubsub = client.pubsub()
        self._session_id += 1
        try:
            await pubsub.subscribe(CHANNEL)
            await self._load(client)
            await self._write_back(client)
            self._up()
            sid = self._session_id
            tasks = {asyncio.create_task(self._read(pubsub, sid)), asyncio.create_task(self._write(client, sid)),
                     asyncio.create_task(self._ping(client, sid))}
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                # redis-py 8.1 can swallow a cancel that lands inside a command (measured):
                # the loops also stop on the session id, and every wait in them is bounded.
                self._session_id += 1
                self._wakeup.set()
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks, timeout=2 * self._socket_timeout + 1.0)
            for task in done:
                task.result()          # re-raise the error that ended the session
            raise ConnectionError("redis session ended")
        finally:
            await self._close(pubsub)

    def _live(self, sid: int) -> bool:
        return sid == self._session_id and not self._stopping

    async def _load(self, client: aioredis.Redis) -> None:
        """Late joiner / after reconnect: open every key another replica holds open."""
        async for raw_key in client.scan_iter(match=KEY_PREFIX + "*", count=500):
            async with client.pipeline(transaction=False) as pipe:
                value, pttl = await pipe.get(raw_key).pttl(raw_key).execute()
            if value is None or pttl is None or pttl <= 0:
                continue
            msg = self._parse(value)
            if msg is not None and msg.get("instance") != self.instance_id:
                self._registry.apply_remote(msg["key"], OPEN, pttl / 1000.0, float(msg.get("at", 0.0)))

    async def _write_back(self, client: aioredis.Redis) -> None:
        for key, left in self._registry.open_breakers():
            body = self._message(key, OPEN, left, self._wall())
            await client.set(KEY_PREFIX + key, body, px=max(1, int(left * 1000)), nx=True)

    async def _read(self, pubsub, sid: int) -> None:
        while self._live(sid):
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if msg is None or msg.get("type") != "message":
                continue
            data = self._parse(msg["data"])
            if data is None or data.get("instance") == self.instance_id:
                continue
            state = data.get("state")
            if state in (OPEN, CLOSED) and isinstance(data.get("key"), str):
                self._registry.apply_remote(data["key"], state, float(data.get("remaining", 0.0)),
                                            float(data.get("at", 0.0)))

    async def _write(self, client: aioredis.Redis, sid: int) -> None:
        while self._live(sid):
            while self._queue and self._live(sid):
                change, queued_at = self._queue[0]
                remaining = change.remaining - (self._clock() - queued_at)
                if change.state == OPEN and remaining <= 0:
                    self._queue.popleft()
                    continue
                body = self._message(change.key, change.state, max(remaining, 0.0), change.at)
                async with client.pipeline(transaction=False) as pipe:
                    if change.state == OPEN:
                        pipe.set(KEY_PREFIX + change.key, body, px=max(1, int(remaining * 1000)))
                    else:
                        pipe.delete(KEY_PREFIX + change.key)
                    pipe.publish(CHANNEL, body)
                    await pipe.execute()
                if self._queue and self._queue[0][0] is change:
                    self._queue.popleft()     # only once Redis took it: survives an outage
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    async def _ping(self, client: aioredis.Redis, sid: int) -> None:
        while self._live(sid):
            await asyncio.sleep(self._ping_interval)
            await client.ping()

    # ------------------------------------------------------------ helpers

    def _message(self, key: str, state: str, remaining: float, at: float) -> str:
        return json.dumps({"key": key, "state": state, "remaining": round(remaining, 3),
                           "at": at, "instance": self.instance_id})

    @staticmethod
    def _parse(raw) -> dict | None:
        try:
            data = json.loads(raw)
        except (TypeError, ValueError):
            return None
        return data if isinstance(data, dict) and isinstance(data.get("key"), str) else None

    def _up(self) -> None:
        self.connected = True
        self._had_session = True
        self._first_attempt.set()
        if self._outage:
            self._outage = False
            self._emit("redis_up", f"reconnected to {self._where}")

    def _down(self, exc: BaseException) -> None:
        self.connected = False
        if not self._outage:
            self._outage = True
            self._emit("redis_down", f"{type(exc).__name__} talking to {self._where}")

    def _emit(self, kind: str, detail: str) -> None:
        if self._on_event is not None:
            try:
                self._on_event(kind, detail)
            except Exception:
                log.exception("breaker store on_event callback failed")

    @staticmethod
    async def _close(resource) -> None:
        try:
            await asyncio.wait_for(resource.aclose(), 1.0)
        except Exception:
            log.debug("closing a redis resource failed", exc_info=True)
