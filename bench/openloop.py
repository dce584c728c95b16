"""Open-loop load at a fixed rate (the part of wrk2 the benchmark needs; wrk2 is not in Debian).

    python bench/openloop.py URL --rate 300 --duration 15 [--warmup 1] [-H 'Name: value'] ...

Request i is due at start + i/rate whatever happened to earlier ones (open loop), and its
latency is measured from that due time, not from when it was actually sent: a stall of the
server (or of this generator) shows up in the latencies instead of silently lowering the rate
(no coordinated omission).  Up to --connections requests are in flight; more wait for a
connection, and that wait counts too.  Prints one JSON object: count, errors, latency
percentiles in ms (warm-up excluded), and how late this generator was in sending.
"""

import argparse
import asyncio
import json

import aiohttp


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[i]


async def run(args) -> dict:
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    connector = aiohttp.TCPConnector(limit=args.connections)
    latencies, lags, statuses = [], [], {}
    errors = 0
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                     timeout=aiohttp.ClientTimeout(total=10)) as session:
        loop = asyncio.get_running_loop()
        total = int(args.rate * (args.duration + args.warmup))
        warm = int(args.rate * args.warmup)
        start = loop.time() + 0.1

        async def one(i: int, due: float) -> None:
            nonlocal errors
            try:
                async with session.get(args.url, headers=headers) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                    ok = resp.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                ok = False
            if not ok:
                errors += 1
            if i >= warm:
                latencies.append((loop.time() - due) * 1000)

        tasks = set()
        for i in range(total):
            due = start + i / args.rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if i >= warm:
                lags.append((loop.time() - due) * 1000)
            task = loop.create_task(one(i, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=15)
    latencies.sort()
    lags.sort()
    return {"count": len(latencies), "errors": errors, "statuses": statuses, "rate": args.rate,
            "latency_ms": {f"p{q}": percentile(latencies, q) for q in (50, 90, 99, 99.9)} | {"max": latencies[-1] if latencies else None},
            "send_lag_ms": {"p50": percentile(lags, 50), "p99": percentile(lags, 99)},
            "samples_ms": latencies if args.samples else None}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--rate", type=float, default=300)
    p.add_argument("--duration", type=float, default=15)
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--samples", action="store_true", help="include every latency (ms) in the output")
    p.add_argument("-H", "--header", action="append", default=[])
    print(json.dumps(asyncio.run(run(p.parse_args()))))


if __name__ == "__main__":
    main()
