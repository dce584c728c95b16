"""SIGTERM drains within drain_timeout: requests that finish in time answer normally; the
rest answer 503 shutting_down when it passes (with an access line), upstream connections
close, and the process exits 0 — never later than drain_timeout plus a flush second."""

import asyncio
import json
import signal
import time

import pytest
import requests
from aiohttp import web

from tests.fakes import FakeProvider
from tests.process import EgressProcess

DRAIN = 1.5


@pytest.fixture
async def slow_provider():
    cut = []  # paths whose upstream connection egress closed before the answer

    async def handler(request):
        seconds = float(request.query.get("s", "0"))
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(0.02)
            if request.transport is None or request.transport.is_closing():
                cut.append(request.path)
                break
        return web.json_response({"slept": seconds})

    fake = await FakeProvider(handler).start()
    fake.cut = cut
    yield fake
    await fake.stop()


@pytest.mark.parametrize("seconds,status,reason", [
    (0.6, 200, None),               # finishes inside drain_timeout
    (8.0, 503, "shutting_down"),    # still in flight when drain_timeout passes
], ids=["finishes-within-drain-timeout", "cut-at-drain-timeout"])
async def test_sigterm_drain_is_bounded(slow_provider, tmp_path, seconds, status, reason):
    doc = {"drain_timeout": DRAIN, "upstreams": [{
        "name": "pay", "url": f"{slow_provider.url}/v1", "callers": ["*"], "allow_private_addresses": True,
        "timeout": {"connect": 2, "total": 30}, "retry": {"attempts": 1}}]}
    proc = await EgressProcess(doc, tmp_path).astart()
    try:
        def call():
            return requests.get(f"{proc.url}/pay/wait?s={seconds}", headers={"X-Egress-Caller": "a"}, timeout=30)

        task = asyncio.create_task(asyncio.to_thread(call))
        for _ in range(200):
            if slow_provider.hits:
                break
            await asyncio.sleep(0.02)
        sent = time.monotonic()
        proc.signal(signal.SIGTERM)
        resp = await task
        answered = time.monotonic() - sent
        code = await asyncio.to_thread(proc.proc.wait, 15)
        exited = time.monotonic() - sent
    finally:
        proc.stop()
    assert resp.status_code == status
    assert code == 0
    # loose bounds (a shared machine): never the old 2 x drain_timeout, never unbounded
    assert exited < DRAIN + 3.0, exited
    access = [json.loads(line) for line in proc.logs().splitlines() if '"msg":"access"' in line]
    assert [(a["status"], a["reason"]) for a in access] == [(status, reason)]
    if reason is None:
        assert resp.json() == {"slept": seconds}
        assert slow_provider.cut == []
    else:
        assert DRAIN - 0.2 < answered < DRAIN + 2.0, answered
        problem = resp.json()
        assert problem["reason"] == reason and resp.headers["X-Egress-Error"] == reason
        assert problem["status"] == 503 and problem["trace_id"]
        for _ in range(50):  # the upstream connection was closed, not left hanging
            if slow_provider.cut:
                break
            await asyncio.sleep(0.05)
        assert slow_provider.cut == ["/v1/wait"]
