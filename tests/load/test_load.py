"""Load and soak against `egress serve` as a real process, loopback only, bounded, self-stopping.

Default run (CI): 1,000 concurrent keep-alive connections held ~10 s, and a 60-second soak.
Knobs: EGRESS_LOAD_CONNECTIONS (1000), EGRESS_LOAD_HOLD_SECONDS (10), EGRESS_SOAK_SECONDS (60),
EGRESS_SOAK_RATE (requests per second, 200), EGRESS_SOAK_REPORT (a file to write the numbers to, JSON).
The 5-minute soak quoted in docs/security.md: EGRESS_SOAK_SECONDS=300.

What is measured on the egress process: RSS (/proc/PID/statm) and open file descriptors
(/proc/PID/fd) after warm-up and after the run; every request sent must get an answer, and every
answer must be one of the expected kinds.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import time

import aiohttp
import pytest
from aiohttp import web

from tests.fakes import FakeProvider
from tests.hostile.conftest import MiB, open_fds, rss_bytes
from tests.process import EgressProcess

CONNECTIONS = int(os.environ.get("EGRESS_LOAD_CONNECTIONS", "1000"))
HOLD_SECONDS = float(os.environ.get("EGRESS_LOAD_HOLD_SECONDS", "10"))
SOAK_SECONDS = float(os.environ.get("EGRESS_SOAK_SECONDS", "60"))
SOAK_RATE = float(os.environ.get("EGRESS_SOAK_RATE", "200"))

pytestmark = pytest.mark.slow


def raise_fd_limit(wanted: int) -> None:
    """Client sockets + the fake provider's side live in this process; egress inherits the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < wanted:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the {wanted} descriptors this test needs")


def upstream_doc(url: str, **over) -> dict:
    doc = {"name": "pay", "url": url + "/v1", "callers": ["*"], "allow_private_addresses": True}
    doc.update(over)
    return doc


async def http_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> tuple[int, dict, bytes]:
    """One keep-alive request on an open connection (raw bytes: no client pool in the way)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: egress\r\nX-Egress-Caller: load\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers, body


def sample(pid: int) -> dict:
    return {"rss_mib": round(rss_bytes(pid) / MiB, 1), "fds": open_fds(pid)}


async def test_thousand_concurrent_keep_alive_connections(tmp_path):
    raise_fd_limit(CONNECTIONS * 3 + 512)
    fake = await FakeProvider().start()
    proc = await EgressProcess({"upstreams": [upstream_doc(fake.url)]}, tmp_path).astart()
    try:
        pid = proc.proc.pid
        idle = sample(pid)
        conns = []
        for start in range(0, CONNECTIONS, 100):  # open in batches (listen backlog is 1024)
            conns += await asyncio.gather(*(asyncio.open_connection("127.0.0.1", proc.port)
                                            for _ in range(start, min(start + 100, CONNECTIONS))))
        first = await asyncio.gather(*(http_get(r, w, f"/pay/first/{i}") for i, (r, w) in enumerate(conns)))
        assert [s for s, _, _ in first] == [200] * CONNECTIONS
        loaded = sample(pid)
        assert loaded["fds"] >= idle["fds"] + CONNECTIONS  # every connection is really held open
        await asyncio.sleep(HOLD_SECONDS)
        held = sample(pid)
        assert held["fds"] >= idle["fds"] + CONNECTIONS  # none was dropped while idle
        second = await asyncio.gather(*(http_get(r, w, f"/pay/second/{i}") for i, (r, w) in enumerate(conns)))
        assert [s for s, _, _ in second] == [200] * CONNECTIONS  # the same connections still work
        assert fake.hits == 2 * CONNECTIONS
        for _, w in conns:
            w.close()
        await asyncio.sleep(1.0)
        after = sample(pid)
        print(f"\nload: idle {idle}, {CONNECTIONS} open {loaded}, held {HOLD_SECONDS:g}s {held}, closed {after}")
        # with the clients gone, egress holds at most its upstream pool beyond the idle count
        assert after["fds"] <= idle["fds"] + 256 + 16
        assert after["rss_mib"] - idle["rss_mib"] < 150
        assert proc.proc.poll() is None
    finally:
        proc.stop()
        await fake.stop()


class Flaky:
    """A provider that answers 503 to 10% of requests (seeded, so a run is repeatable)."""

    def __init__(self, seed: int = 1234, failure_rate: float = 0.10) -> None:
        self.rng = random.Random(seed)
        self.failure_rate = failure_rate
        self.failures = 0

    async def __call__(self, request):
        if self.rng.random() < self.failure_rate:
            self.failures += 1
            return web.Response(status=503, text="try later")
        return web.json_response({"id": "ch_1", "amount": 5})


@pytest.mark.timeout(SOAK_SECONDS + 180)
async def test_soak_steady_rate_with_a_provider_failing_ten_percent(tmp_path):
    raise_fd_limit(4096)
    flaky = Flaky()
    fake = await FakeProvider(flaky).start()
    doc = {"upstreams": [upstream_doc(fake.url, timeout={"connect": 1, "total": 5},
                                      retry={"attempts": 3, "backoff": 0.01, "max_backoff": 0.05})]}
    proc = await EgressProcess(doc, tmp_path).astart()
    outcomes: dict[str, int] = {}
    sent = answered = 0
    latencies: list[float] = []

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        nonlocal answered
        started = time.monotonic()
        try:
            async with session.get(f"{proc.url}/pay/charges/{i}", headers={"X-Egress-Caller": "soak"}) as resp:
                await resp.read()
                reason = resp.headers.get("X-Egress-Error")
                kind = f"{resp.status}:{reason}" if reason else str(resp.status)
        except Exception as exc:  # noqa: BLE001 - counted, and the test fails on any
            kind = f"exception:{type(exc).__name__}"
        answered += kind.startswith(("2", "3", "4", "5"))
        outcomes[kind] = outcomes.get(kind, 0) + 1
        latencies.append(time.monotonic() - started)

    try:
        pid = proc.proc.pid
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=15)) as session:
            tasks = set()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            warm = None
            while (now := loop.time()) - t0 < SOAK_SECONDS:
                if warm is None and now - t0 >= min(5.0, SOAK_SECONDS / 4):
                    warm = sample(pid)  # after warm-up: pools filled, code paths imported
                task = asyncio.create_task(one(session, sent))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
                await asyncio.sleep(max(0.0, t0 + sent / SOAK_RATE - loop.time()))
            await asyncio.gather(*tasks)
        await asyncio.sleep(1.0)
        end = sample(pid)
        latencies.sort()
        report = {
            "seconds": SOAK_SECONDS, "rate": SOAK_RATE, "sent": sent, "answered": answered,
            "lost": sent - answered, "outcomes": outcomes, "provider_requests": fake.hits,
            "provider_503s": flaky.failures, "after_warmup": warm, "end": end,
            "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        }
        print("\nsoak:", json.dumps(report))
        if os.environ.get("EGRESS_SOAK_REPORT"):
            with open(os.environ["EGRESS_SOAK_REPORT"], "w") as f:
                json.dump(report, f, indent=2)
        assert sent >= SOAK_SECONDS * SOAK_RATE * 0.9
        assert answered == sent  # nothing lost
        expected = {"200", "503", "503:circuit_open"}  # provider 503 after retries; breaker open
        assert set(outcomes) <= expected, outcomes
        assert outcomes.get("200", 0) >= sent * 0.95  # retries absorb almost all of the 10%
        assert flaky.failures > 0
        # flat: RSS within 25 MiB of the warmed-up value, descriptors within the client pool size
        assert end["rss_mib"] - warm["rss_mib"] < 25, (warm, end)
        assert end["fds"] <= warm["fds"] + 64, (warm, end)
        assert proc.proc.poll() is None
    finally:
        proc.stop()
        await fake.stop()
