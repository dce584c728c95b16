"""A streamed response dropped before its body is read (the pipeline's oauth2 401 replay calls
`resp.release()`) still tells the breaker its outcome, once: a half-open probe that got such an
answer ends, and the breaker closes, instead of refusing every caller with `circuit_open` forever."""

import time
from pathlib import Path

from aiohttp import web

from egress.config import BreakerSettings, Retry, settings_from_dict
from egress.send.client import UpstreamClient
from egress.send.resilience import BreakerRegistry, RetryBudget, call_with_resilience
from tests.conftest import base_config


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_a_released_stream_ends_the_half_open_probe(provider):
    async def handler(request):
        return web.Response(status=401, body=b"x" * 200_000, content_type="text/html")
    fake = await provider(handler)
    doc = base_config([{"name": "u", "url": fake.url + "/v1", "callers": ["*"], "allow_private_addresses": True}])
    up = settings_from_dict(doc, base_dir=Path("."), environ={}).upstreams[0]
    client = UpstreamClient(up)
    await client.start()
    clock = Clock()
    breaker = BreakerRegistry(clock=clock).get("u", BreakerSettings(failures=1, reset_after=5))
    breaker.release(breaker.acquire(), "failure")
    assert breaker.state == "open"
    clock.t += 6  # half-open: the next attempt is the one probe

    async def attempt(n):
        return await client.send("GET", "/x", {}, b"", timeout=5, stream_if=lambda status, headers: True)

    try:
        resp = await call_with_resilience(attempt, method="GET", idempotency_key=False, retry=Retry(attempts=1),
                                          breaker=breaker, budget=RetryBudget(0.1), deadline=time.monotonic() + 5)
        assert resp.status == 401 and resp.stream is not None and breaker.state == "half_open"
        await resp.release()  # dropped unread, as the oauth2 replay does
        assert breaker.state == "closed"  # the probe's outcome (a 401 is no provider failure) was counted
        breaker.acquire()  # and callers are admitted again
    finally:
        await client.close()
