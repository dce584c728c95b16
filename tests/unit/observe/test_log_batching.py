"""The access log's batched writes (egress.observe.logs.log_fast / flush): one write(2) per
event-loop iteration, lines in order, nothing lost at the iteration's end, a broken stream
never raises into a request."""

from __future__ import annotations

import asyncio
import io
import logging
import time

import orjson
import pytest

from egress.observe import logs


class CountingRaw(io.RawIOBase):
    """A real raw stream that records each write it receives (what write(2) would get)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed_for_writes = False

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self.closed_for_writes:
            raise OSError(32, "Broken pipe")
        self.writes.append(bytes(data))
        return len(data)

    def lines(self) -> list[dict]:
        return [orjson.loads(line) for line in b"".join(self.writes).splitlines()]


@pytest.fixture
def sink():
    """A line-buffered text stream (as sys.stderr is) over CountingRaw, owned by log_fast."""
    raw = CountingRaw()
    stream = io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8", line_buffering=True)
    saved_stream, saved_level = logs._FAST["stream"], logs.LOGGER.level
    saved_handlers = logs.LOGGER.handlers[:]
    logs.flush()
    logs._FAST["stream"] = stream
    logs.LOGGER.handlers[:] = []
    logs.LOGGER.setLevel(logging.INFO)
    yield raw
    logs._PENDING.clear()
    logs._FAST["stream"] = saved_stream
    logs.LOGGER.handlers[:] = saved_handlers
    logs.LOGGER.setLevel(saved_level)


async def _in_one_iteration(n: int, raw: CountingRaw) -> tuple[int, int]:
    for i in range(n):
        logs.log_fast("access", {"n": i, "status": 200})
    during = len(raw.writes)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return during, len(raw.writes)


BATCH_CASES = [
    # id, lines logged in one iteration, writes before the next iteration, writes after it
    ("one-line", 1, 0, 1),
    ("32-lines-one-write", 32, 0, 1),
    ("over-max-pending-written-at-once", logs.MAX_PENDING + 3, 1, 2),
]


@pytest.mark.parametrize("n, during, after", [c[1:] for c in BATCH_CASES], ids=[c[0] for c in BATCH_CASES])
def test_lines_of_one_iteration_go_out_in_one_write(sink, n, during, after):
    seen = asyncio.run(_in_one_iteration(n, sink))
    assert seen == (during, after)
    lines = sink.lines()
    assert [d["n"] for d in lines] == list(range(n))  # none lost, in order
    assert all(d["msg"] == "access" and d["level"] == "info" and d["logger"] == "egress" for d in lines)


def test_without_an_event_loop_a_line_is_written_at_once(sink):
    logs.log_fast("access", {"n": 0})
    assert len(sink.writes) == 1 and sink.lines()[0]["n"] == 0


def test_a_log_line_flushes_pending_access_lines_first(sink):
    """log() goes through logging (its own handler on the same stream): pending lines first."""
    handler = logging.StreamHandler(logs._FAST["stream"])
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = [handler]

    async def go():
        logs.log_fast("access", {"n": 0})
        logs.log_fast("access", {"n": 1})
        logs.log(logging.WARNING, "breaker opened", upstream="pay")
        await asyncio.sleep(0)
    try:
        asyncio.run(go())
    finally:
        root.handlers[:] = saved
    assert [d.get("n", d["msg"]) for d in sink.lines()] == [0, 1, "breaker opened"]


def test_a_broken_stream_drops_lines_without_raising(sink):
    sink.closed_for_writes = True

    async def go():
        logs.log_fast("access", {"n": 0})
        await asyncio.sleep(0)
    asyncio.run(go())  # the loop's callback must not raise (asyncio would log a traceback)
    logs.log_fast("access", {"n": 1})  # and not a direct write either
    assert logs._PENDING == []


TS_CASES = [
    ("whole-second", 1_700_000_000.0, "2023-11-14T22:13:20.000Z"),
    ("milliseconds", 1_700_000_000.123, "2023-11-14T22:13:20.123Z"),
    ("next-second-after-cache", 1_700_000_001.999, "2023-11-14T22:13:21.999Z"),
    ("back-to-an-earlier-second", 1_699_999_999.5, "2023-11-14T22:13:19.500Z"),
]


@pytest.mark.parametrize("now, expected", [c[1:] for c in TS_CASES], ids=[c[0] for c in TS_CASES])
def test_cached_timestamp_matches_strftime(now, expected):
    assert logs._timestamp(now) == expected
    reference = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    assert logs._timestamp(now) == reference
