"""Many slow callers, each fetching a gzip bomb: the process-wide in-flight budget holds.

Per-response limits bound one answer, not forty.  A real `egress serve` subprocess (its RSS
sampled from /proc, not this process's peak) serves 24 slow-reading callers, each asking for
~10 KB of gzip that inflates to 7 MiB, under `limits.max_inflight_bytes: 32 MiB`.  Beyond
the budget egress answers 503 `proxy_overloaded` with Retry-After; RSS stays near the budget;
once the callers are gone the whole budget is available again (nothing leaked) and a normal
request works.  bench/bomb_rss.py measures the same at the issue's scale (40 x 49 MiB).  The route
is validated (a JSON schema): those bodies are read whole; an unvalidated body is streamed and charges
only its read-ahead window (tests/integration/test_passthrough.py).
"""

from __future__ import annotations

import asyncio
import zlib

import pytest
import yaml
from aiohttp import web

from tests.hostile.conftest import MiB, rss_bytes
from tests.process import EgressProcess

INFLATED = 7 * MiB
BUDGET = 32 * MiB
CALLERS = 24


def bomb(size: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join([c.compress(bytes(MiB)) for _ in range(size // MiB)] + [c.flush()])


async def get(port: int, path: str, *, slow: asyncio.Event | None = None) -> tuple[int, dict, int]:
    """One request over a raw socket; with `slow`, read 16 KiB per 100 ms until it is set."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: egress.internal\r\nX-Egress-Caller: checkout\r\n"
                 "Accept-Encoding: identity\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        received = 0
        while True:
            chunk = await reader.read(16384)
            if not chunk:
                break
            received += len(chunk)
            if slow is not None and not slow.is_set():
                await asyncio.sleep(0.1)
        return int(lines[0].split()[1]), headers, received
    finally:
        writer.close()


@pytest.fixture
async def bomb_provider():
    body = bomb(INFLATED)

    async def handler(request):
        if request.path.endswith("/small"):
            return web.json_response({"ok": True})
        return web.Response(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    runner = web.ServerRunner(web.Server(handler), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_inflight_budget_under_many_slow_bomb_callers(bomb_provider, tmp_path):
    ops = {f"GET /{name}": {"responses": {"200": {"content_type": "application/json", "schema": {"type": "object"}}}}
           for name in ("bomb", "small")}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"operations": ops}))
    doc = {"limits": {"max_inflight_bytes": BUDGET}, "contracts_dir": str(tmp_path),
           "upstreams": [{"name": "bad", "url": bomb_provider + "/v1", "callers": ["*"], "contract": "bad.yaml", "mode": "report",
                          "allow_private_addresses": True, "retry": {"attempts": 1},
                          "timeout": {"connect": 2, "total": 20}, "breaker": {"failures": 10000},
                          "limits": {"max_decompressed_bytes": 8 * MiB}}]}
    egress = await EgressProcess(doc, tmp_path).astart()
    try:
        pid = egress.proc.pid
        await asyncio.sleep(0.5)
        baseline, samples = rss_bytes(pid), []

        async def sampler():
            while True:
                samples.append(rss_bytes(pid))
                await asyncio.sleep(0.05)

        sampling = asyncio.create_task(sampler())
        slow = asyncio.Event()
        callers = [asyncio.create_task(get(egress.port, "/bad/bomb", slow=slow)) for _ in range(CALLERS)]
        await asyncio.sleep(3)
        slow.set()
        answers = await asyncio.gather(*callers)
        sampling.cancel()
        statuses = sorted(status for status, _, _ in answers)
        refused = [h for status, h, _ in answers if status == 503]
        assert refused and all(h["x-egress-error"] == "proxy_overloaded" and int(h["retry-after"]) >= 1
                               for h in refused), statuses
        served = [n for status, _, n in answers if status == 200]
        assert served and all(n == INFLATED for n in served)  # those served got the whole checked body
        assert len(served) <= BUDGET // INFLATED
        # budget + one body being decoded + allocator slack; without the budget: ~24 x 2 x 7 MiB
        assert max(samples) - baseline < BUDGET + 2 * INFLATED + 48 * MiB, (baseline, max(samples))
        # the callers are gone: every hold was given back, the whole budget serves again
        again = await asyncio.gather(*(get(egress.port, "/bad/bomb") for _ in range(BUDGET // INFLATED)))
        assert [status for status, _, _ in again] == [200] * (BUDGET // INFLATED)
        status, _, _ = await get(egress.port, "/bad/small")
        assert status == 200
    finally:
        egress.stop()
