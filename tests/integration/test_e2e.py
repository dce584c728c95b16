"""End to end: `egress serve` as a process, real clients (curl -x, requests), real TLS."""

import asyncio
import json
import shutil
import signal

import pytest
import requests
import trustme
from aiohttp import web

from tests.fakes import FakeProvider, tls_server
from tests.process import EgressProcess

CREDENTIAL = "Bearer partner-cred-e2e-MARKER"


@pytest.fixture
async def tls_provider(tmp_path):
    ctx, ca_file = tls_server(tmp_path, "localhost", "127.0.0.1")

    async def handler(request):
        if request.path == "/v1/slow":
            await asyncio.sleep(1.0)
        return web.json_response({"id": "ch_1", "path": request.path_qs})

    fake = await FakeProvider(handler, ssl_context=ctx).start()
    yield fake, ca_file
    await fake.stop()


@pytest.fixture
async def egress_proc(tls_provider, tmp_path):
    fake, ca_file = tls_provider
    doc = {
        "sanitize": {"internal_jwt_issuers": ["https://auth.internal.example"]},
        "upstreams": [{
            "name": "payments", "url": f"https://localhost:{fake.port}/v1", "callers": ["checkout"],
            "allow_private_addresses": True, "tls": {"ca_file": str(ca_file)},
            "credential": {"header": "Authorization", "value": "${PAY_TOKEN}"},
        }],
    }
    proc = await EgressProcess(doc, tmp_path, env={"PAY_TOKEN": CREDENTIAL}).astart()
    yield proc, fake
    proc.stop()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_forward_proxy_originates_tls(egress_proc):
    proc, fake = egress_proc
    # curl speaks plain HTTP to the proxy (absolute-form); egress originates TLS to the partner
    cmd = ["curl", "-sS", "-x", proc.url, "-H", "X-Egress-Caller: checkout",
           "-H", "Authorization: Bearer internal-session", "-D", "-",
           f"http://localhost:{fake.port}/v1/charges/ch_1?access_token=zzz&limit=2"]
    out = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await out.communicate()
    assert out.returncode == 0, stderr
    head, _, body = stdout.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200")
    assert "x-egress-contract: unchecked" in head.lower()
    assert json.loads(body) == {"id": "ch_1", "path": "/v1/charges/ch_1?limit=2"}
    seen = fake.requests[-1]
    assert seen.headers["Authorization"] == CREDENTIAL
    assert "X-Egress-Caller" not in seen.headers and "Proxy-Connection" not in seen.headers
    assert CREDENTIAL not in proc.logs()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_connect_refused(egress_proc):
    proc, fake = egress_proc
    cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_connect}", "-p", "-x", proc.url,
           f"https://localhost:{fake.port}/v1/x"]
    out = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, _ = await out.communicate()
    assert stdout.decode() == "403"
    assert fake.hits == 0


async def test_requests_base_url(egress_proc):
    proc, fake = egress_proc

    def call():
        return requests.get(f"{proc.url}/payments/charges/ch_2", headers={"X-Egress-Caller": "checkout"},
                            timeout=10)

    resp = await asyncio.to_thread(call)
    assert resp.status_code == 200
    assert resp.json()["path"] == "/v1/charges/ch_2"
    assert fake.requests[-1].headers["Authorization"] == CREDENTIAL

    def denied():
        return requests.get(f"{proc.url}/payments/x", headers={"X-Egress-Caller": "intruder"}, timeout=10)

    resp = await asyncio.to_thread(denied)
    assert resp.status_code == 403 and resp.json()["reason"] == "caller_not_allowed"


async def test_requests_proxies_setting(egress_proc):
    proc, fake = egress_proc

    def call():
        return requests.get(f"http://localhost:{fake.port}/v1/charges", headers={"X-Egress-Caller": "checkout"},
                            proxies={"http": proc.url}, timeout=10)

    resp = await asyncio.to_thread(call)
    assert resp.status_code == 200 and resp.json()["path"] == "/v1/charges"


async def test_sigterm_drains_in_flight_then_exits_zero(egress_proc):
    proc, fake = egress_proc

    def slow_call():
        return requests.get(f"{proc.url}/payments/slow", headers={"X-Egress-Caller": "checkout"}, timeout=10)

    task = asyncio.create_task(asyncio.to_thread(slow_call))
    for _ in range(100):  # wait until the provider has the request
        if any(r.path_qs == "/v1/slow" for r in fake.requests):
            break
        await asyncio.sleep(0.02)
    proc.signal(signal.SIGTERM)
    await asyncio.sleep(0.2)

    def ready():
        try:
            return requests.get(f"{proc.admin_url}/readyz", timeout=2).status_code
        except requests.ConnectionError:
            return "closed"

    # readiness false at once, while the admin port stays up for the in-flight request's drain
    assert await asyncio.to_thread(ready) == 503
    resp = await task
    assert resp.status_code == 200  # the in-flight request finished
    code = await asyncio.to_thread(proc.proc.wait, 15)
    assert code == 0


async def test_tls_wrong_ca_is_unavailable(tls_provider, tmp_path):
    fake, _ = tls_provider
    other_ca = trustme.CA()
    wrong = tmp_path / "other-ca.pem"
    other_ca.cert_pem.write_to_path(str(wrong))
    doc = {"upstreams": [{"name": "payments", "url": f"https://localhost:{fake.port}/v1", "callers": ["*"],
                          "allow_private_addresses": True, "tls": {"ca_file": str(wrong)},
                          "retry": {"attempts": 1}}]}
    proc = await EgressProcess(doc, tmp_path).astart()
    try:
        resp = await asyncio.to_thread(requests.get, f"{proc.url}/payments/x",
                                       headers={"X-Egress-Caller": "a"}, timeout=10)
        assert resp.status_code == 502
        assert resp.json()["reason"] == "upstream_unavailable"
        assert "certificate" in resp.json()["detail"]
        assert fake.hits == 0
    finally:
        proc.stop()
