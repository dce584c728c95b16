"""Shared pieces for the hostile tests: raw-socket providers (tests/fakes.RawProvider), memory
probes, problem checks.

Every provider here listens on 127.0.0.1 port 0; nothing in tests/hostile connects anywhere else.
"""

from __future__ import annotations

import os
import threading

import aiohttp
import orjson
import pytest

from tests.fakes import FakeProvider, RawProvider, Script, each_closed, send_bytes  # noqa: F401 (re-exported)

PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 1024 * 1024


def rss_bytes(pid: int | str = "self") -> int:
    """Current resident set size, from /proc/<pid>/statm (no psutil)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


class RssWatch:
    """The peak RSS growth of ONE scenario: a thread samples /proc/self/statm every `interval`
    seconds from construction until `growth()` (the process's lifetime peak, ru_maxrss, would hide
    any growth below an earlier test's peak)."""

    def __init__(self, interval: float = 0.002) -> None:
        self.baseline = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, name="rss-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, rss_bytes())

    def growth(self) -> int:
        """Stop sampling; the highest RSS seen minus the RSS at the start."""
        self._stop.set()
        self._thread.join(1.0)
        self.peak = max(self.peak, rss_bytes())
        return self.peak - self.baseline


def open_fds(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
async def raw_provider():
    """make(script) -> a started RawProvider, stopped after the test."""
    async with each_closed(lambda script: RawProvider(script).start()) as make:
        yield make


@pytest.fixture
async def session():
    """A plain aiohttp client session (what egress hands its JWKS caches), closed after the test."""
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def good():
    """A well-behaved provider: after each hostile case, egress must still serve it."""
    fake = await FakeProvider().start()
    yield fake
    await fake.stop()


def hostile_upstream(url: str, **over) -> dict:
    doc = {"name": "bad", "url": url + "/v1", "callers": ["*"], "allow_private_addresses": True,
           "timeout": {"connect": 1, "total": 2}, "retry": {"attempts": 1},
           "breaker": {"failures": 1000},
           "limits": {"max_response_bytes": 1 * MiB, "max_decompressed_bytes": 8 * MiB}}
    doc.update(over)
    return doc


def good_upstream(url: str) -> dict:
    return {"name": "good", "url": url + "/v1", "callers": ["*"], "allow_private_addresses": True,
            "retry": {"attempts": 1}}


async def read_problem(resp) -> dict:
    """Assert the answer is egress's own problem+json and return its body."""
    body = orjson.loads(await resp.read())
    assert resp.headers["Content-Type"] == "application/problem+json", body
    assert resp.headers["X-Egress-Error"] == body["reason"]
    assert body["status"] == resp.status and body["title"] and body["detail"]
    return body


async def assert_still_serves(p) -> None:
    """A normal request through the same egress works after the hostile one."""
    async with p.request("GET", "/good/after") as resp:
        assert resp.status == 200, await resp.read()
        assert resp.headers["X-Egress-Contract"] == "unchecked"
