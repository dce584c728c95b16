"""The Redis store (`store: redis://...`): state shared across replicas, never on the request path.

One connection, one background task, one pub/sub channel (`egress:changes`) for every kind of
shared state.  A kind is a `Keyspace` (`store.keyspace("breaker", on_remote, snapshot)`):
its keys are `egress:{kind}:{key}`, each a JSON `{"value", "instance", "at"}` that expires
with the state it describes (PX = seconds left).  Breakers are the first kind; rate-limit
buckets, provider holds and suspensions are more kinds of the same store.

- `Keyspace.put`/`delete` are synchronous and do no I/O (the request path may call them): a
  bounded queue that drops the oldest change when Redis is slow or down; the background task
  writes each change (SET PX or DEL) and publishes it as JSON
  {"kind", "key", "value", "ttl", "deleted", "instance"};
- other replicas' messages (our own are ignored) reach the kind's `on_remote(key, value,
  ttl, deleted)`;
- on start and after every reconnect every kind's keys are read (PTTL = time left), so a
  replica started late sees what others hold, and the kind's `snapshot()` is written back
  (SET NX) in case Redis lost it.

Token buckets: `take_buckets` (redis_buckets.py), one round trip per request.  Each replica
heartbeats into `egress:replicas` (a sorted set): `replicas` says how many share the limits.

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

from egress.store.buckets import BucketSpec, Taken
from egress.store.keyspace import Change, Keyspace, OnRemote, Snapshot
from egress.store.redis_buckets import RedisBuckets

log = logging.getLogger(__name__)

CHANNEL = "egress:changes"
PREFIX = "egress:"
REPLICAS = "egress:replicas"


class RedisStore:
    """Shares every keyspace's changes between replicas; `connected` says whether Redis is reachable."""

    shared = True

    def __init__(self, url: str, *, instance_id: str, on_event: Callable[[str, str], None] | None = None,
                 queue_size: int = 1000, socket_timeout: float = 0.5, backoff: float = 0.1,
                 max_backoff: float = 5.0, ping_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._url, self.instance_id = url, instance_id
        parsed = URL(url)
        self._where = f"{parsed.host}:{parsed.port}/{parsed.path.lstrip('/') or '0'}"   # no credentials
        self._on_event = on_event
        self._spaces: dict[str, Keyspace] = {}
        self._queue: deque[tuple[Change, float]] = deque(maxlen=queue_size)
        self._socket_timeout, self._backoff, self._max_backoff = socket_timeout, backoff, max_backoff
        self._ping_interval, self._clock = ping_interval, clock
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._first_attempt = asyncio.Event()
        self._outage = False
        self._had_session = False
        self._stopping = False
        self._session_id = 0
        self.connected = False
        self.dropped = 0          # changes dropped because the queue was full
        self.replicas = 1         # replicas that heartbeat recently (this one included)
        self.buckets = RedisBuckets(url, PREFIX, timeout=socket_timeout, clock=clock)

    def keyspace(self, kind: str, on_remote: OnRemote | None = None, snapshot: Snapshot | None = None) -> Keyspace:
        """Register a kind of shared state (before start())."""
        space = self._spaces[kind] = Keyspace(kind, self._enqueue, on_remote, snapshot)
        return space

    async def start(self, wait: float = 2.0) -> None:
        """Start the background task; wait up to `wait` s for the first connection (never fails)."""
        self.buckets.start()
        self._task = asyncio.create_task(self._run(), name="egress-store")
        try:
            await asyncio.wait_for(self._first_attempt.wait(), wait)
        except asyncio.TimeoutError:
            pass

    async def stop(self, wait: float = 2.0) -> None:
        """Stop the background task.  Does not rely on redis-py honouring a single cancel
        (a cancel that lands inside a redis-py call was seen swallowed): a flag ends the
        loops, and the task is cancelled again until it ends or `wait` runs out."""
        self._stopping = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is not None:
            deadline = asyncio.get_running_loop().time() + wait
            while not task.done() and asyncio.get_running_loop().time() < deadline:
                task.cancel()
                await asyncio.wait({task}, timeout=0.1)
            if not task.done():
                log.warning("store task did not stop within %.1fs", wait)
        self._queue.clear()
        self.connected = False
        await self.buckets.stop()

    # ------------------------------------------------------------ request path (sync, no I/O)

    def _enqueue(self, change: Change) -> None:
        if self._stopping:
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append((change, self._clock()))
        self._wakeup.set()

    async def take_buckets(self, specs: list[BucketSpec], hold_keys: tuple[str, ...] = (),
                           scale: float = 1.0) -> Taken:
        """One token from every bucket or none, unless a `hold` key in hold_keys is set."""
        return await self.buckets.take(specs, hold_keys, connected=self.connected, replicas=self.replicas,
                                       scale=scale)

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
            for space in list(self._spaces.values()):
                await self._load(client, space)
                await self._write_back(client, space)
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

    async def _load(self, client: aioredis.Redis, space: Keyspace) -> None:
        """Late joiner / after reconnect: hand every key another replica holds to its kind."""
        if space.on_remote is None:
            return
        prefix = f"{PREFIX}{space.kind}:"
        async for raw_key in client.scan_iter(match=prefix + "*", count=500):
            async with client.pipeline(transaction=False) as pipe:
                value, pttl = await pipe.get(raw_key).pttl(raw_key).execute()
            if value is None or pttl is None or pttl == -2:
                continue
            msg = self._parse(value)
            if msg is None or msg.get("instance") == self.instance_id:
                continue
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            self._deliver(space, key[len(prefix):], msg.get("value"), pttl / 1000.0 if pttl > 0 else None, False)

    async def _write_back(self, client: aioredis.Redis, space: Keyspace) -> None:
        if space.snapshot is None:
            return
        for key, value, ttl in space.snapshot():
            body = json.dumps({"value": value, "instance": self.instance_id})
            await client.set(f"{PREFIX}{space.kind}:{key}", body,
                             px=None if ttl is None else max(1, int(ttl * 1000)), nx=True)

    async def _read(self, pubsub, sid: int) -> None:
        while self._live(sid):
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if msg is None or msg.get("type") != "message":
                continue
            data = self._parse(msg["data"])
            if data is None or data.get("instance") == self.instance_id:
                continue
            space = self._spaces.get(data.get("kind"))
            if space is None or not isinstance(data.get("key"), str):
                continue
            ttl = data.get("ttl")
            self._deliver(space, data["key"], data.get("value"), float(ttl) if ttl is not None else None,
                          bool(data.get("deleted")))

    async def _write(self, client: aioredis.Redis, sid: int) -> None:
        while self._live(sid):
            while self._queue and self._live(sid):
                change, queued_at = self._queue[0]
                ttl = None if change.ttl is None else change.ttl - (self._clock() - queued_at)
                if not change.deleted and ttl is not None and ttl <= 0:
                    self._queue.popleft()         # expired while queued: nothing left to share
                    continue
                key = f"{PREFIX}{change.kind}:{change.key}"
                message = json.dumps({"kind": change.kind, "key": change.key, "value": change.value,
                                      "ttl": None if ttl is None else round(ttl, 3),
                                      "deleted": change.deleted, "instance": self.instance_id})
                async with client.pipeline(transaction=False) as pipe:
                    if change.deleted:
                        pipe.delete(key)
                    else:
                        body = json.dumps({"value": change.value, "instance": self.instance_id})
                        pipe.set(key, body, px=max(1, int(ttl * 1000)) if ttl is not None else None)
                    pipe.publish(CHANNEL, message)
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
            now = time.time()
            async with client.pipeline(transaction=False) as pipe:   # heartbeat: who shares limits
                pipe.zadd(REPLICAS, {self.instance_id: now})
                pipe.zremrangebyscore(REPLICAS, "-inf", now - 3 * self._ping_interval - 2.0)
                pipe.zcard(REPLICAS)
                self.replicas = max(1, int((await pipe.execute())[2]))
            await asyncio.sleep(self._ping_interval)
            await client.ping()

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _deliver(space: Keyspace, key: str, value, ttl: float | None, deleted: bool) -> None:
        try:
            space.on_remote(key, value, ttl, deleted)
        except Exception:
            log.exception("store: applying a remote %s change failed", space.kind)

    @staticmethod
    def _parse(raw) -> dict | None:
        try:
            data = json.loads(raw)
        except (TypeError, ValueError):
            return None
        return data if isinstance(data, dict) else None

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
                log.exception("store on_event callback failed")

    @staticmethod
    async def _close(resource) -> None:
        try:
            await asyncio.wait_for(resource.aclose(), 1.0)
        except Exception:
            log.debug("closing a redis resource failed", exc_info=True)
