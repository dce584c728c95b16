"""CPU cost of one rate-limit check, memory store vs Redis store, side by side.

    .venv/bin/python bench/limits_cost.py [--checks 20000] [--repeat 1]

A check is `Limiter.admit` for an upstream with three buckets (upstream, caller, caller +
operation) and a concurrency limit, the way the pipeline calls it.  Memory: CPU µs per check
(process_time).  Redis: a real redis-server on loopback; CPU µs per check in this process,
wall µs per check, and Redis round trips per check (commandstats: EVALSHA + EVAL calls /
checks), beside the CPU cost of a bare redis-py PING on the same pool (the client library's
own floor for any one command).  Per-check numbers are the best of --repeat runs.  Without a
redis-server binary (or when it does not start), "redis" holds {"skipped": the reason}: never a
number that was not measured.  Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from egress.config import RateLimit, settings_from_dict  # noqa: E402
from egress.exchange import Exchange  # noqa: E402
from egress.send.limits import Limiter  # noqa: E402
from egress.store.redis import RedisStore  # noqa: E402
from tests.redis_server import REDIS_SERVER, SKIP_REASON, RedisServer  # noqa: E402


def upstream():
    doc = {"upstreams": [{"name": "pay", "url": "https://api.pay.example", "concurrency": 1000,
                          "rate_limits": [{"per": "upstream", "rate": 1e9, "burst": 1e9},
                                          {"per": "caller", "rate": 1e9, "burst": 1e9}]}]}
    up = settings_from_dict(doc, base_dir=Path("."), environ={}).upstreams[0]
    return replace(up, rate_limits=up.rate_limits + (RateLimit("caller", 1e9, 1e9, "POST /charges"),))


async def checks(limiter: Limiter, up, n: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per check over n sequential checks."""
    callers = [f"svc{i}" for i in range(20)]
    for i in range(200):   # warm up
        (await limiter.admit(up, callers[i % 20], "POST /charges", Exchange("POST"))).release()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(n):
        permit = await limiter.admit(up, callers[i % 20], "POST /charges", Exchange("POST"))
        permit.release()
    return ((time.process_time() - cpu0) / n * 1e6, (time.perf_counter() - wall0) / n * 1e6)


async def baseline(n: int) -> float:
    """CPU µs per iteration of the same loop without the check (Exchange + await overhead)."""
    async def nothing():
        return None
    cpu0 = time.process_time()
    for _ in range(n):
        Exchange("POST")
        await nothing()
    return (time.process_time() - cpu0) / n * 1e6


async def redis_round_trips(store: RedisStore) -> int:
    import redis.asyncio as aioredis
    client = aioredis.from_url(store._url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return sum(v.get("calls", 0) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


async def best(limiter: Limiter, up, n: int, repeat: int) -> tuple[float, float]:
    """The lowest (CPU µs, wall µs) per check of `repeat` runs of `checks`."""
    runs = [await checks(limiter, up, n) for _ in range(max(repeat, 1))]
    return min(r[0] for r in runs), min(r[1] for r in runs)


async def main(n: int, repeat: int = 1) -> dict:
    up = upstream()
    out: dict = {"checks": n, "buckets_per_check": 3}
    out["loop_overhead_cpu_us"] = round(await baseline(n), 2)
    cpu, wall = await best(Limiter(), up, n, repeat)
    out["memory"] = {"cpu_us_per_check": round(cpu, 2), "wall_us_per_check": round(wall, 2)}
    if REDIS_SERVER is None:
        out["redis"] = {"skipped": SKIP_REASON}
        return out
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        try:
            server.start()
        except RuntimeError as exc:
            out["redis"] = {"skipped": f"redis-server did not start: {exc}"}
            return out
        try:
            out["redis"] = await redis_rows(server, up, max(1000, n // 4), repeat)
        finally:
            server.stop()
    return out


async def redis_rows(server: RedisServer, up, rn: int, repeat: int) -> dict:
    store = RedisStore(server.url, instance_id="bench")
    limiter = Limiter()
    limiter.share_through(store)
    await store.start()
    try:
        before = await redis_round_trips(store)
        cpu, wall = await best(limiter, up, rn, repeat)
        trips = (await redis_round_trips(store) - before) / ((rn + 200) * max(repeat, 1))
        client = store.buckets._client
        ping = float("inf")
        for _ in range(max(repeat, 1)):
            cpu0 = time.process_time()
            for _ in range(rn):
                await client.ping()
            ping = min(ping, (time.process_time() - cpu0) / rn * 1e6)
    finally:
        await store.stop()
    return {"checks": rn, "cpu_us_per_check": round(cpu, 2), "wall_us_per_check": round(wall, 2),
            "round_trips_per_check": round(trips, 3),
            "redis_py_ping_cpu_us": round(ping, 2)}   # the client's own cost of any command


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.checks, args.repeat)), indent=1))
