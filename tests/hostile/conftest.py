"""Shared pieces for the hostile tests: raw-socket providers, memory probes, problem checks.

Every provider here listens on 127.0.0.1 port 0; nothing in tests/hostile connects anywhere else.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import orjson
import pytest

from tests.fakes import FakeProvider

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
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


@dataclass
class RawProvider:
    """A provider that writes whatever bytes its script says, after reading the request head."""

    script: Script
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    server: asyncio.AbstractServer | None = None
    tasks: set = field(default_factory=set)

    async def start(self) -> "RawProvider":
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self.tasks.add(asyncio.current_task())
            try:
                self.heads.append(await reader.readuntil(b"\r\n\r\n"))
                await self.script(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass
            finally:
                writer.close()
                self.tasks.discard(asyncio.current_task())

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hits(self) -> int:
        return self.connections

    async def stop(self) -> None:
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def send_bytes(payload: bytes, *, linger: float = 0.0) -> Script:
    async def script(reader, writer):
        writer.write(payload)
        await writer.drain()
        if linger:
            await asyncio.sleep(linger)
    return script


@pytest.fixture
async def raw_provider():
    made: list[RawProvider] = []

    async def make(script: Script) -> RawProvider:
        p = await RawProvider(script).start()
        made.append(p)
        return p

    yield make
    for p in made:
        await p.stop()


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
