"""The send path's timers and body read after issue 18's flattening keep every bound.

- One timer for a call that succeeds at once: the exchange's deadline (`bound`) is entered only
  around retries. Held: a first answer never enters it; a retry does, once; a bound that expires
  cuts a retry's wait (and the pipeline turns that into upstream_timeout).
- `UpstreamClient.send`'s `timeout` bounds the attempt with all its redirect hops: each hop gets
  what is left, so a chain of slow hops cannot outlast it (before, each hop got the whole timeout
  and only the exchange's outer timer held the total).
- `UpstreamClient._read` takes buffered bytes at once and waits only when none are: a body in
  pieces with pauses is read whole, the cap holds across a wait, a provider that drops mid-body
  is upstream_unavailable, an empty body is empty.

Providers are real aiohttp servers or raw sockets on 127.0.0.1 port 0, read by a real
UpstreamClient; the retry tests drive call_with_resilience with a scripted attempt.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web
from multidict import CIMultiDict

from egress.config import BreakerSettings, Retry
from egress.errors import ResponseTooLarge, UpstreamTimeout, UpstreamUnavailable
from egress.send.resilience import BreakerRegistry, RetryBudget, call_with_resilience
from tests.fakes import FakeProvider, RawProvider, each_closed
from tests.unit.test_client_transport_mutants import client  # noqa: F401 - the fixture

RETRY = Retry(attempts=3, backoff=0.1, max_backoff=2.0, on_status=(503,), max_retry_after=5.0)


class Answer:
    def __init__(self, status: int) -> None:
        self.status, self.headers = status, CIMultiDict()

    async def release(self) -> None:
        pass


class Bound:
    """A bound() that counts how often it is entered, expiring after `seconds`."""

    def __init__(self, seconds: float = 30.0) -> None:
        self.seconds, self.entered = seconds, 0

    def __call__(self):
        self.entered += 1
        return asyncio.timeout(self.seconds)


async def call(statuses, bound, *, sleep=asyncio.sleep, attempts=RETRY):
    seen = []

    async def attempt(n: int):
        seen.append(n)
        return Answer(statuses[min(n, len(statuses)) - 1])

    breaker = BreakerRegistry().get("pay", BreakerSettings(failures=10**9))
    resp = await call_with_resilience(attempt, method="GET", idempotency_key=False, retry=attempts,
                                      breaker=breaker, budget=RetryBudget(1.0), deadline=time.monotonic() + 30,
                                      rng=lambda: 0.0, sleep=sleep, bound=bound)
    return resp, seen


async def test_a_first_answer_enters_no_bound():
    bound = Bound()
    resp, seen = await call([200], bound)
    assert (resp.status, seen, bound.entered) == (200, [1], 0)


async def test_a_final_error_status_enters_no_bound():
    bound = Bound()
    resp, seen = await call([404], bound)
    assert (resp.status, seen, bound.entered) == (404, [1], 0)


async def test_a_retry_is_inside_the_bound_once():
    bound = Bound()
    resp, seen = await call([503, 503, 200], bound)
    assert (resp.status, seen, bound.entered) == (200, [1, 2, 3], 1)


async def test_an_expired_bound_cuts_the_retry_wait():
    async def long_sleep(seconds: float) -> None:
        await asyncio.sleep(10)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await call([503, 200], Bound(0.2), sleep=long_sleep)
    assert time.monotonic() - started < 2


async def test_without_a_bound_retries_as_before():
    resp, seen = await call([503, 200], None)
    assert (resp.status, seen) == (200, [1, 2])


# ------------------------------------------------------------------ a real client


@pytest.fixture
async def slow_hops():
    """/hop/N waits `pause` then redirects to /hop/N-1; /hop/0 answers 200."""
    pause = 0.4

    async def answer(request: web.BaseRequest) -> web.StreamResponse:
        await asyncio.sleep(pause)
        n = int(request.path.rsplit("/", 1)[1])
        if n == 0:
            return web.json_response({"ok": True})
        return web.Response(status=307, headers={"Location": f"/hop/{n - 1}"})

    fake = FakeProvider(answer)
    await fake.start()
    yield fake
    await fake.stop()


async def test_redirect_hops_share_the_attempts_timeout(slow_hops, client):  # noqa: F811
    c = await client(slow_hops.url, redirects={"follow": True, "max_hops": 5})
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):  # three hops of 0.4 s each: 1.2 s > 1.0 s
        await c.send("GET", "/hop/2", CIMultiDict(), b"", timeout=1.0)
    took = time.monotonic() - started
    assert 0.9 < took < 1.15, took


async def test_redirect_hops_within_the_timeout_are_followed(slow_hops, client):  # noqa: F811
    c = await client(slow_hops.url, redirects={"follow": True, "max_hops": 5})
    resp = await c.send("GET", "/hop/2", CIMultiDict(), b"", timeout=3.0)
    assert resp.status == 200 and resp.body == b'{"ok": true}'
    assert len(slow_hops.requests) == 3


def raw(*pieces, pause: float = 0.15):
    """A raw provider writing each piece, then pausing; a None piece closes the connection."""
    async def script(reader, writer):
        for piece in pieces:
            if piece is None:
                writer.transport.abort()
                return
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(pause)
    return script


HEAD_LEN = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
HEAD_CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
BODY = b'{"id": "ch_1", "amount": 1200, "note": "' + b"x" * 3000 + b'"}'


def chunk(b: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(b), b)


READS = [  # id, pieces the provider writes (pausing after each), the body read, or the error
    ("length-whole-with-head", [HEAD_LEN % len(BODY) + BODY], BODY),
    ("length-in-three-pieces", [HEAD_LEN % len(BODY), BODY[:1000], BODY[1000:2000], BODY[2000:]], BODY),
    ("chunked-in-pieces", [HEAD_CHUNKED, chunk(BODY[:10]), chunk(BODY[10:]), b"0\r\n\r\n"], BODY),
    ("chunked-whole", [HEAD_CHUNKED + chunk(BODY) + b"0\r\n\r\n"], BODY),
    ("empty-length", [HEAD_LEN % 0], b""),
    ("empty-chunked", [HEAD_CHUNKED + b"0\r\n\r\n"], b""),
    ("drop-mid-body", [HEAD_LEN % len(BODY), BODY[:1000], None], UpstreamUnavailable),
    ("drop-mid-chunked", [HEAD_CHUNKED, chunk(BODY[:10]), None], UpstreamUnavailable),
]
CAP = len(BODY) - 1  # the two cap cases: one byte under the body, reached after a wait
CAPPED = [
    ("over-the-cap-after-a-wait", [HEAD_CHUNKED, chunk(BODY[:2000]), chunk(BODY[2000:]), b"0\r\n\r\n"],
     ResponseTooLarge),
    ("at-the-cap-after-a-wait", [HEAD_CHUNKED, chunk(BODY[:2000]), chunk(BODY[2000:CAP]), b"0\r\n\r\n"],
     BODY[:CAP]),
]


@pytest.mark.parametrize("pieces, expected, cap", [(*c[1:], 65536) for c in READS] + [(*c[1:], CAP) for c in CAPPED],
                         ids=[c[0] for c in READS + CAPPED])
async def test_the_body_is_read_whole_under_the_cap(pieces, expected, cap, client):  # noqa: F811
    async with each_closed(lambda s: RawProvider(s).start()) as make:
        fake = await make(raw(*pieces))
        c = await client(fake.url, limits={"max_response_bytes": cap})
        if isinstance(expected, bytes):
            resp = await c.send("GET", "/x", CIMultiDict(), b"", timeout=5)
            assert (resp.status, resp.body) == (200, expected)
        else:
            with pytest.raises(expected):
                await c.send("GET", "/x", CIMultiDict(), b"", timeout=5)
