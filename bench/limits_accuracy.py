"""Rate-limit accuracy across replicas: 3 `egress serve` + one redis-server, one upstream limit.

    .venv/bin/python bench/limits_accuracy.py [--replicas 3] [--rate 100] [--burst 5]
                                              [--offered 1000] [--duration 10]

Open loop: request i is sent at start + i/offered, round-robin over the replicas, whatever
happened to earlier ones.  Counts what the replicas admitted (200, the provider saw it) and
refused (429 rate_limited).  Done when admitted is within ±5% of burst + rate × duration.
Then the provider's own limit: it answers one 429 with `Retry-After: 5` while load goes on
(--hold-offered req/s for 7 s, all replicas); the provider's calls in the 5 s after that 429
are counted (done when 0).  Prints one JSON object (the issue's numbers).
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

from aiohttp import web  # noqa: E402

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


class Provider:
    """200s; `arm()`: the next call gets 429 Retry-After: 5.  Records when each call came."""

    def __init__(self) -> None:
        self.armed, self.calls, self.limited_at = False, [], None

    async def __call__(self, request):
        now = time.monotonic()
        self.calls.append(now)
        if self.armed:
            self.armed, self.limited_at = False, now
            return web.json_response({"error": "quota"}, status=429, headers={"Retry-After": "5"})
        return web.json_response({"ok": True})


async def local_decisions(procs) -> float:
    """egress_rate_limit_local_decisions_total over all replicas (decided without Redis)."""
    total = 0.0
    async with aiohttp.ClientSession() as session:
        for p in procs:
            async with session.get(p.admin_url + "/metrics") as resp:
                for line in (await resp.text()).splitlines():
                    if line.startswith("egress_rate_limit_local_decisions_total"):
                        total += float(line.rsplit(" ", 1)[1])
    return total


async def main(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        redis = RedisServer(tmp_path)
        redis.start()
        behaviour = Provider()
        fake = await FakeProvider(behaviour).start()
        doc = {"store": redis.url, "drain_timeout": 2, "upstreams": [{
            "name": "pay", "url": fake.url + "/v1", "callers": ["*"], "allow_private_addresses": True,
            "retry": {"attempts": 1}, "rate_limits": [{"per": "upstream", "rate": args.rate, "burst": args.burst}]}]}
        hold: dict = {}
        procs = [EgressProcess(doc, tmp_path, env={"EGRESS_LOG_LEVEL": "warning"}) for _ in range(args.replicas)]
        try:
            await asyncio.gather(*(p.astart() for p in procs))
            await asyncio.sleep(1.0)
            urls = [p.url + "/pay/x" for p in procs]
            outcomes, sent_for, late = await offer(urls, args.offered, args.duration)
            admitted = outcomes[(200, None)]
            hits = fake.hits
            local = await local_decisions(procs)
            calls = list(behaviour.calls)
            await asyncio.sleep(1.0)
            behaviour.armed = True
            held, _, _ = await offer(urls, args.hold_offered, 7.0)
            t0 = behaviour.limited_at
            hold = {"offered_per_s": args.hold_offered, "provider_429_at_s": None if t0 is None else 0.0,
                    "provider_calls_within_5s_after_429": None if t0 is None else
                    sum(1 for t in behaviour.calls if t0 < t < t0 + 5.0),
                    "calls_0.1_to_5s_after_429": None if t0 is None else
                    sum(1 for t in behaviour.calls if t0 + 0.1 < t < t0 + 5.0),
                    "first_call_after_429_s": None if t0 is None else
                    round(min((t - t0 for t in behaviour.calls if t > t0), default=-1), 3),
                    "outcomes": {f"{k[0]} {k[1] or ''}".strip(): v for k, v in held.items()}}
        finally:
            for p in procs:
                await asyncio.to_thread(p.stop)
            await fake.stop()
            redis.stop()
    expected = args.burst + args.rate * args.duration
    return {"replicas": args.replicas, "rate": args.rate, "burst": args.burst, "offered_per_s": args.offered,
            "duration_s": args.duration, "sent_in_s": round(sent_for, 2), "generator_max_late_s": round(late, 3),
            "admitted": admitted, "expected": expected, "error_pct": round(100 * (admitted - expected) / expected, 2),
            "provider_hits": hits, "local_decisions": local,
            # the replicas' own view: a loaded generator or proxy stretches 10 s of offered load
            # over a longer span, and the buckets refill over all of it
            "provider_span_s": round(calls[-1] - calls[0], 2) if calls else None,
            "admitted_per_s_over_span": round((hits - args.burst) / (calls[-1] - calls[0]), 1)
            if len(calls) > 1 else None, "provider_hold": hold, "outcomes": {f"{k[0]} {k[1] or ''}".strip(): v for k, v in outcomes.items()},
            "within_5pct": abs(admitted - expected) <= 0.05 * expected, "measured_at": time.strftime("%Y-%m-%dT%H:%MZ")}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--burst", type=float, default=5)
    parser.add_argument("--offered", type=float, default=1000)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--hold-offered", type=float, default=300)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=1))
