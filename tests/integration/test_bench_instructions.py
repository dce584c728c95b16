"""bench/instructions.py counts what the target executes for exactly the requests it is sent:
a real forwarder under valgrind behind a real aiohttp provider.  The count per request does not
depend on how many requests are counted (the start-up and warm-up are outside the window), and
two runs agree closely (the property the bench relies on: ratios that do not move with load)."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest
from aiohttp import web

from tests.fakes import FakeProvider
from tests.process import free_port

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import instructions  # noqa: E402
from procs import Processes  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("callgrind_control") is None,
                                reason="valgrind is not installed (scripts/test installs it as root)")


async def _ok(request: web.BaseRequest) -> web.Response:
    return web.Response(body=b'{"id": "ch_1", "amount": 1200}', content_type="application/json")


@pytest.fixture
async def provider():
    fake = await FakeProvider(handler=_ok).start()
    yield fake
    await fake.stop()


async def _count(tmp_path, provider, n: int, name: str) -> float:
    procs = Processes(tmp_path)
    port = free_port()
    argv = [sys.executable, str(BENCH / "forwarder.py"), str(port), provider.url + "/v1"]
    try:
        return await asyncio.to_thread(instructions.count, procs, name, argv, f"http://127.0.0.1:{port}/charges/ch_1",
                                       n=n, headers={}, python=sys.executable, warm=50)
    finally:
        procs.stop_all()


async def test_the_count_is_per_request_and_repeatable(tmp_path, provider):
    few = await _count(tmp_path, provider, 80, "few")
    many = await _count(tmp_path, provider, 240, "many")
    again = await _count(tmp_path, provider, 240, "again")
    assert few > 50_000  # an aiohttp forwarder executes hundreds of thousands per request
    assert abs(many - again) / many < 0.05, (many, again)
    assert abs(few - many) / many < 0.15, (few, many)  # no start-up or warm-up inside the window
    # every request sent reached the provider once: 3 warm-ups of 50, 80 + 240 + 240 counted, and
    # each start's readiness check (one answered GET, more only if a poll outlived its own timeout)
    assert 3 <= len(provider.requests) - (3 * 50 + 80 + 240 + 240) <= 6, len(provider.requests)
