"""The ablation's two instruments.  bench/flat.py: the same checks as egress in one flat
coroutine; bench/forwarder.py --validate (floor-proxy): the forwarder that parses and validates.
Their numbers mean something only if they really do the checks: they answer the bench's valid
bodies whole and refuse their invalid twins; flat also refuses an unknown caller and an operation
outside the contract, and strips the internal token and header before the call leaves."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from aiohttp import web

from tests.fakes import FakeProvider
from tests.process import free_port

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import ablation
import fixtures
import procs

import bench

BODIES = fixtures.bodies()
SERVED = {"/v1" + path: BODIES[name] for name, path in fixtures.PATHS.items()}


async def _serve_bench_bodies(request: web.BaseRequest) -> web.Response:
    body = SERVED.get(request.path)
    if body is None:
        return web.Response(status=404)
    return web.Response(body=body, content_type="application/json")


@pytest.fixture
async def provider():
    fake = await FakeProvider(handler=_serve_bench_bodies).start()
    yield fake
    await fake.stop()


@contextlib.asynccontextmanager
async def serving(script: str, *args: str, ready_path: str, log: Path):
    """bench/SCRIPT listening on a free port: its base URL; SIGTERM and a wait at the end."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(BENCH / script), str(port), *args],
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            await asyncio.to_thread(procs.wait_http, f"http://127.0.0.1:{port}{ready_path}", 30, proc)
            yield port
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 20)


@pytest.fixture
async def flat(provider, tmp_path):
    # flat listens on the port it is given; the config's own listen addresses go unused
    cfg = fixtures.egress_config(tmp_path / "flat.yaml", port=free_port(), admin_port=free_port(),
                                 provider_port=provider.port, violations_upstream=False)
    async with serving("flat.py", str(cfg), ready_path="/pay/charges/ch_ok", log=tmp_path / "flat.log") as port:
        yield f"http://127.0.0.1:{port}/pay"


def _get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers={**bench.headers(), **headers}, timeout=10)


async def test_valid_bodies_answered_whole(flat):
    for name in ("charge", "list"):
        resp = await asyncio.to_thread(_get, flat + fixtures.PATHS[name])
        assert (resp.status_code, resp.content) == (200, BODIES[name]), name
        assert resp.headers["Content-Type"].startswith("application/json")


async def test_invalid_twins_refused(flat):
    for name in ("charge_invalid", "list_invalid"):
        resp = await asyncio.to_thread(_get, flat + fixtures.PATHS[name])
        assert resp.status_code == 502, name
        assert resp.content == b"", name  # nothing of the refused body reaches the caller


async def test_caller_and_operation_refused(flat):
    assert (await asyncio.to_thread(_get, flat + "/charges/ch_ok", **{"X-Egress-Caller": "intruder"})).status_code == 403
    assert (await asyncio.to_thread(_get, flat + "/refunds/re_1")).status_code == 403  # not in the contract


async def test_internal_token_and_header_stripped_partner_credential_injected(flat, provider):
    await asyncio.to_thread(_get, flat + "/charges/ch_ok")
    seen = provider.requests[-1].headers
    assert seen["Authorization"] == "Bearer bench-partner-token"
    assert "X-Internal-User" not in seen and "X-Egress-Caller" not in seen


async def test_the_ablation_checks_flat_before_measuring_it(flat, provider):
    await asyncio.to_thread(ablation.check_refuses, "flat", flat, bench.headers())  # passes: it refuses the twin
    # something that forwards without checking (here the provider itself) is caught
    with pytest.raises(RuntimeError, match="provider answered 200 to /charges/ch_bad, not 502"):
        await asyncio.to_thread(ablation.check_refuses, "provider", provider.url + "/v1", bench.headers())


@pytest.fixture
async def floor_proxy(provider, tmp_path):
    async with serving("forwarder.py", provider.url + "/v1", "--validate", ready_path="/charges/ch_ok",
                       log=tmp_path / "floor-proxy.log") as port:
        yield f"http://127.0.0.1:{port}"


async def test_floor_proxy_validates_every_body(floor_proxy):
    for name in ("charge", "list"):
        resp = await asyncio.to_thread(_get, floor_proxy + fixtures.PATHS[name])
        assert (resp.status_code, resp.content) == (200, BODIES[name]), name
    for name in ("charge_invalid", "list_invalid"):
        assert (await asyncio.to_thread(_get, floor_proxy + fixtures.PATHS[name])).status_code == 502, name
    await asyncio.to_thread(ablation.check_refuses, "floor-proxy", floor_proxy, bench.headers())
