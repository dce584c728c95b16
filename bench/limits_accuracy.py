"""Rate-limit accuracy across replicas: 3 `egress serve` + one redis-server, one upstream limit.

    .venv/bin/python bench/limits_accuracy.py [--replicas 3] [--rate 100] [--burst 5]
                                              [--offered 1000] [--duration 10]

Open loop: request i is sent at start + i/offered, round-robin over the replicas, whatever
happened to earlier ones.  Counts what the replicas admitted (200, the provider saw it) and
refused (429 rate_limited).  Done when admitted is within ±5% of burst + rate × duration.
Prints one JSON object (the issue's numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes import FakeProvider  # noqa: E402
from tests.process import EgressProcess  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402


async def offer(urls: list[str], offered: float, duration: float) -> tuple[Counter, float, float]:
    outcomes: Counter = Counter()
    connector = aiohttp.TCPConnector(limit=400)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(url: str) -> None:
            try:
                async with session.get(url, headers={"X-Egress-Caller": "batch"}) as resp:
                    await resp.read()
                    outcomes[(resp.status, resp.headers.get("X-Egress-Error"))] += 1
            except aiohttp.ClientError as exc:
                outcomes[("error", type(exc).__name__)] += 1

        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks, late = [], 0.0
        n = int(offered * duration)
        for i in range(n):
            due = start + i / offered
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late = max(late, -delay)
            tasks.append(asyncio.create_task(one(urls[i % len(urls)])))
        sent_for = loop.time() - start
        await asyncio.gather(*tasks)
    return outcomes, sent_for, late


async def main(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        redis = RedisServer(tmp_path)
        redis.start()
        fake = await FakeProvider().start()
        doc = {"store": redis.url, "drain_timeout": 2, "upstreams": [{
            "name": "pay", "url": fake.url + "/v1", "callers": ["*"], "allow_private_addresses": True,
            "retry": {"attempts": 1}, "rate_limits": [{"per": "upstream", "rate": args.rate, "burst": args.burst}]}]}
        procs = [EgressProcess(doc, tmp_path, env={"EGRESS_LOG_LEVEL": "warning"}) for _ in range(args.replicas)]
        try:
            await asyncio.gather(*(p.astart() for p in procs))
            await asyncio.sleep(1.0)
            outcomes, sent_for, late = await offer([p.url + "/pay/x" for p in procs], args.offered, args.duration)
        finally:
            for p in procs:
                await asyncio.to_thread(p.stop)
            await fake.stop()
            redis.stop()
    admitted = outcomes[(200, None)]
    expected = args.burst + args.rate * args.duration
    return {"replicas": args.replicas, "rate": args.rate, "burst": args.burst, "offered_per_s": args.offered,
            "duration_s": args.duration, "sent_in_s": round(sent_for, 2), "generator_max_late_s": round(late, 3),
            "admitted": admitted, "expected": expected, "error_pct": round(100 * (admitted - expected) / expected, 2),
            "provider_hits": fake.hits, "outcomes": {f"{k[0]} {k[1] or ''}".strip(): v for k, v in outcomes.items()},
            "within_5pct": abs(admitted - expected) <= 0.05 * expected, "measured_at": time.strftime("%Y-%m-%dT%H:%MZ")}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--burst", type=float, default=5)
    parser.add_argument("--offered", type=float, default=1000)
    parser.add_argument("--duration", type=float, default=10)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=1))
