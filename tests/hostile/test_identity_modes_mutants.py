"""mTLS mode when the caller's connection is already gone (egress/identity/modes.py, issue 19): a
request whose transport is None (the client hung up before identify ran) is refused as
unauthenticated, not a crash.  A real aiohttp app on 127.0.0.1 and a real client that disconnects."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from egress.config import settings_from_dict
from egress.errors import EgressError
from egress.identity import Identity


def mtls_settings(tmp_path: Path):
    for name in ("s.pem", "s.key", "ca.pem"):
        (tmp_path / name).write_text("x")
    return settings_from_dict({"upstreams": [{"name": "pay", "url": "https://api.pay.example"}],
                               "callers": {"identity": "mtls"},
                               "listen_tls": {"cert_file": "s.pem", "key_file": "s.key", "client_ca_file": "ca.pem"}},
                              base_dir=tmp_path, environ={})


async def test_mtls_identify_after_the_client_hung_up(tmp_path):
    identity = Identity(mtls_settings(tmp_path))
    arrived, outcome = asyncio.Event(), asyncio.get_running_loop().create_future()

    async def handler(request: web.Request) -> web.Response:
        arrived.set()
        for _ in range(200):             # wait (up to 2 s) for the hang-up to reach the server
            if request.transport is None:
                break
            await asyncio.sleep(0.01)
        try:
            outcome.set_result(("caller", (await identity.identify(request, upstream="pay")).name))
        except EgressError as exc:
            outcome.set_result((exc.reason, exc.detail))
        except Exception as exc:  # noqa: BLE001 (what the test is about: no crash)
            outcome.set_result(("crash", type(exc).__name__))
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/pay/x", handler)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/pay/x"
        async with aiohttp.ClientSession() as session:
            request = asyncio.get_running_loop().create_task(session.get(url))
            await asyncio.wait_for(arrived.wait(), 5)
            request.cancel()             # the client hangs up
            with pytest.raises(asyncio.CancelledError):
                await request
        assert await asyncio.wait_for(outcome, 5) == (
            "caller_unauthenticated", "connect with TLS and a client certificate (callers.identity: mtls)")
    finally:
        await runner.cleanup()
