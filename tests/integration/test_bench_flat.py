"""The ablation's two instruments.  bench/flat.py: the same checks as egress in one flat
coroutine; bench/forwarder.py --validate (floor-proxy): the forwarder that parses and validates.
Their numbers mean something only if they really do the checks: they answer the bench's valid
bodies whole and refuse their invalid twins; flat also refuses an unknown caller and an operation
outside the contract, and strips the internal token and header before the call leaves."""

from __future__ import annotations

import asyncio
import contextlib
import os
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


# ---------------------------------------------------------------- the accounting's removals
# bench/instructions.py --accounting counts flat and egress-quiet with one piece taken out at a
# time. A removal that removed nothing would report a piece as free; one that broke the proxy
# would fail the count. So each removal must still answer the valid body whole, and must really
# remove its piece: what the piece refuses or strips goes through without it.

@contextlib.asynccontextmanager
async def flat_without(provider, tmp_path, pieces: str):
    cfg = fixtures.egress_config(tmp_path / f"flat-{pieces}.yaml", port=free_port(), admin_port=free_port(),
                                 provider_port=provider.port, violations_upstream=False)
    env_before = dict(os.environ)
    os.environ["FLAT_WITHOUT"] = pieces
    try:
        async with serving("flat.py", str(cfg), ready_path="/pay/charges/ch_ok", log=tmp_path / f"flat-{pieces}.log") as port:
            yield f"http://127.0.0.1:{port}/pay"
    finally:
        os.environ.clear()
        os.environ.update(env_before)


@pytest.mark.parametrize("piece", ["route", "identity", "sanitize", "match", "check", "guarded", "timeout", "answer"])
async def test_flat_without_a_piece_still_answers_the_valid_body_whole(provider, tmp_path, piece):
    async with flat_without(provider, tmp_path, piece) as url:
        for name in ("charge", "list"):
            resp = await asyncio.to_thread(_get, url + fixtures.PATHS[name])
            assert (resp.status_code, resp.content) == (200, BODIES[name]), (piece, name)


async def test_flat_without_a_piece_really_goes_without_it(provider, tmp_path):
    async with flat_without(provider, tmp_path, "check") as url:  # the invalid twin passes unchecked
        assert (await asyncio.to_thread(_get, url + fixtures.PATHS["charge_invalid"])).status_code == 200
    async with flat_without(provider, tmp_path, "guarded") as url:  # the floor's validators still refuse it
        assert (await asyncio.to_thread(_get, url + fixtures.PATHS["charge_invalid"])).status_code == 502
    async with flat_without(provider, tmp_path, "sanitize") as url:  # the internal header reaches the provider
        await asyncio.to_thread(_get, url + "/charges/ch_ok")
        assert "X-Internal-User" in provider.requests[-1].headers
        assert provider.requests[-1].headers["Authorization"] == "Bearer bench-partner-token"  # still injected
    async with flat_without(provider, tmp_path, "identity") as url:  # the first caller is reused
        await asyncio.to_thread(_get, url + "/charges/ch_ok")
        assert (await asyncio.to_thread(_get, url + "/charges/ch_ok", **{"X-Egress-Caller": "intruder"})).status_code == 200
    async with flat_without(provider, tmp_path, "route+match") as url:
        assert (await asyncio.to_thread(_get, url + "/refunds/re_1")).status_code == 403  # a new path is still matched


def test_an_unknown_piece_is_refused_not_ignored():
    import ablate
    import flat as flat_module
    with pytest.raises(SystemExit, match="names no piece routes"):
        flat_module.pieces_without("routes")
    assert flat_module.pieces_without("route+check") == {"route", "check"}
    assert flat_module.pieces_without(None) == frozenset()
    with pytest.raises(SystemExit, match="no piece named metric"):
        ablate.pieces("metric")
    with pytest.raises(SystemExit, match=r"\(none\)"):
        ablate.pieces("")
    assert ablate.pieces("limits,observe") == ["limits", "observe"]


@contextlib.asynccontextmanager
async def egress_without(provider, tmp_path, pieces: str):
    port, admin = free_port(), free_port()
    cfg = fixtures.egress_config(tmp_path / f"egress-{pieces}.yaml", port=port, admin_port=admin,
                                 provider_port=provider.port, violations_upstream=False)
    with open(tmp_path / f"egress-{pieces}.log", "wb") as out:
        proc = subprocess.Popen([sys.executable, str(BENCH / "ablate.py"), pieces, "serve", "--config", str(cfg),
                                 "--workers", "1"], stdout=out, stderr=subprocess.STDOUT)
        try:
            await asyncio.to_thread(procs.wait_http, f"http://127.0.0.1:{port}/pay/charges/ch_ok", 60, proc)
            yield f"http://127.0.0.1:{port}/pay", f"http://127.0.0.1:{admin}"
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 30)


def _requests_counted(admin: str) -> bool:
    text = requests.get(admin + "/metrics", timeout=10).text
    return any(line.startswith("egress_requests_total{") for line in text.splitlines())


@pytest.mark.parametrize("pieces,counted", [("limits+resilience+inventory+baselines", True), ("metrics", False),
                                            ("observe", False)])
async def test_egress_without_pieces_answers_checks_and_drops_only_those(provider, tmp_path, pieces, counted):
    async with egress_without(provider, tmp_path, pieces) as (url, admin):
        for name in ("charge", "list"):
            resp = await asyncio.to_thread(_get, url + fixtures.PATHS[name])
            assert (resp.status_code, resp.content) == (200, BODIES[name]), (pieces, name)
        # the checks stay: the invalid twin is refused, the internal header stripped
        assert (await asyncio.to_thread(_get, url + fixtures.PATHS["charge_invalid"])).status_code == 502
        assert "X-Internal-User" not in provider.requests[-1].headers
        assert await asyncio.to_thread(_requests_counted, admin) is counted
