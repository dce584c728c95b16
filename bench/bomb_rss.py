"""RSS of an `egress serve` process under many slow callers each fetching a gzip bomb.

A provider (in this process, 127.0.0.1) answers every request with ~50 KB of gzip that
inflates to 49 MiB.  N callers (raw sockets, `Accept-Encoding: identity`, so egress must
decode) each read 64 KiB every 100 ms.  The egress subprocess's RSS is sampled from
/proc/<pid>/statm every 50 ms; printed: baseline, peak, answers by status.

    .venv/bin/python bench/bomb_rss.py [--callers 40] [--seconds 8] [--inflight BYTES]

`--inflight` sets the top-level `limits.max_inflight_bytes` (omit it to run against a tree
that does not know the key).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.process import EgressProcess  # noqa: E402

MiB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")


def bomb(size: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join([c.compress(bytes(MiB)) for _ in range(size // MiB)] + [c.flush()])


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


async def slow_caller(port: int, results: dict, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /bomb/x HTTP/1.1\r\nHost: egress.internal\r\nX-Egress-Caller: bench\r\n"
                 b"Accept-Encoding: identity\r\nConnection: close\r\n\r\n")
    await writer.drain()
    try:
        status_line = await asyncio.wait_for(reader.readline(), 30)
        status = status_line.split()[1].decode() if status_line else "none"
        results[status] = results.get(status, 0) + 1
        while not stop.is_set():
            if not await reader.read(65536):
                break
            await asyncio.sleep(0.1)
    except (asyncio.TimeoutError, ConnectionError):
        results["error"] = results.get("error", 0) + 1
    finally:
        writer.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--callers", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--inflated-mib", type=int, default=49)
    ap.add_argument("--inflight", type=int, default=None)
    args = ap.parse_args()
    body = bomb(args.inflated_mib * MiB)

    async def handler(request):
        return web.Response(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    runner = web.ServerRunner(web.Server(handler), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    doc = {"upstreams": [{"name": "bomb", "url": f"http://127.0.0.1:{port}/v1", "callers": ["*"],
                          "allow_private_addresses": True, "retry": {"attempts": 1},
                          "timeout": {"connect": 2, "total": 30}, "breaker": {"failures": 10000}}]}
    if args.inflight is not None:
        doc["limits"] = {"max_inflight_bytes": args.inflight}
    with tempfile.TemporaryDirectory() as tmp:
        egress = await EgressProcess(doc, Path(tmp)).astart()
        try:
            await asyncio.sleep(1.0)
            baseline = rss(egress.proc.pid)
            results: dict = {}
            stop = asyncio.Event()
            tasks = [asyncio.create_task(slow_caller(egress.port, results, stop)) for _ in range(args.callers)]
            samples = [baseline]

            async def sampler() -> None:
                while True:
                    samples.append(rss(egress.proc.pid))
                    await asyncio.sleep(0.05)

            sampling = asyncio.create_task(sampler())
            await asyncio.sleep(args.seconds)
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.sleep(1.0)
            sampling.cancel()
            peak, after = max(samples), rss(egress.proc.pid)
        finally:
            egress.stop()
    await runner.cleanup()
    print(f"wire body {len(body) / 1024:.0f} KiB -> {args.inflated_mib} MiB; callers {args.callers}; "
          f"inflight limit {args.inflight}")
    print(f"egress RSS baseline {baseline / MiB:.0f} MiB, peak {peak / MiB:.0f} MiB, "
          f"after {after / MiB:.0f} MiB; answers {dict(sorted(results.items()))}")


if __name__ == "__main__":
    asyncio.run(main())
