"""A named case for every reason code a caller can see (DESIGN "Errors returned to callers").

Each case runs the real proxy against a real fake provider and asserts the status, the
reason (body and X-Egress-Error), the problem+json shape, and whether the provider was hit.
"""

import asyncio
import gzip
import json
import socket

import orjson
import pytest
from aiohttp import web

from tests.conftest import base_config
from tests.fakes import INTERNAL_ISSUER, make_jwt


async def slow(request):
    await asyncio.sleep(5)
    return web.json_response({})


async def huge(request):
    return web.Response(body=b"x" * 5000, content_type="application/json")


async def bomb(request):
    return web.Response(body=gzip.compress(b"0" * 2_000_000), headers={
        "Content-Encoding": "gzip", "Content-Type": "application/json"})


async def brotli(request):
    return web.Response(body=b"\x00\x01", headers={"Content-Encoding": "br", "Content-Type": "application/json"})


async def to_metadata(request):
    return web.Response(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})


async def server_error(request):
    return web.Response(status=500, text="down")


def up(url, **over):
    doc = {"name": "pay", "url": url + "/v1", "callers": ["checkout"], "allow_private_addresses": True,
           "timeout": {"connect": 1, "total": 1}, "retry": {"attempts": 1},
           "limits": {"max_response_bytes": 4096, "max_decompressed_bytes": 100000,
                      "max_request_bytes": 1024}}
    doc.update(over)
    return doc


CASES = [
    # id, handler, upstream overrides, method, path, request kwargs, status, reason, provider hit
    ("destination_not_allowed-prefix", None, {}, "GET", "/unknown/x", {}, 403, "destination_not_allowed", False),
    ("destination_not_allowed-dot-segments", None, {}, "GET", "/pay/a/%2e%2e/%2e%2e/admin", {}, 403,
     "destination_not_allowed", False),
    ("caller_missing", None, {}, "GET", "/pay/x", {"caller": None}, 403, "caller_missing", False),
    ("caller_not_allowed", None, {}, "GET", "/pay/x", {"caller": "reporting"}, 403, "caller_not_allowed", False),
    ("operation_not_granted", None, {"grants": {"checkout": ["GET /charges/{id}"]}}, "GET", "/pay/x", {}, 403,
     "operation_not_granted", False),
    ("internal_token_in_body", None, {}, "POST", "/pay/charges",
     {"json": {"deep": [{"x": {"token": make_jwt(INTERNAL_ISSUER)}}]}}, 403, "internal_token_in_body", False),
    ("request_too_large", None, {}, "POST", "/pay/charges", {"data": b"a" * 2048}, 413, "request_too_large", False),
    ("response_too_large-wire", huge, {}, "GET", "/pay/x", {}, 502, "response_too_large", True),
    ("response_too_large-gzip-bomb", bomb, {}, "GET", "/pay/x", {}, 502, "response_too_large", True),
    ("unexpected_content_encoding", brotli, {}, "GET", "/pay/x", {}, 502, "unexpected_content_encoding", True),
    ("redirect_blocked-metadata", to_metadata, {}, "GET", "/pay/x", {}, 502, "redirect_blocked", True),
    ("address_blocked-loopback", None, {"allow_private_addresses": False}, "GET", "/pay/x", {}, 502,
     "address_blocked", False),
    ("upstream_timeout", slow, {}, "GET", "/pay/x", {}, 504, "upstream_timeout", True),
    ("circuit_open", server_error, {"breaker": {"failures": 1, "reset_after": 30}}, "GET", "/pay/x", {}, 503,
     "circuit_open", True),
    ("upstream_suspended", None, {}, "GET", "/pay/x", {}, 503, "upstream_suspended", False),
    ("caller_suspended", None, {}, "GET", "/pay/x", {}, 403, "caller_suspended", False),
    ("credential_unavailable-idp-down", None, {"credential": {"header": "Authorization", "oauth2": {
        "token_url": "http://127.0.0.1:1/oauth/token", "client_id": "egress", "client_secret": "s3cret-MARKER"}}},
     "GET", "/pay/x", {}, 503, "credential_unavailable", False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_reason(case, provider, proxy):
    name, handler, over, method, path, kw, status, reason, hit = case
    fake = await provider(handler)
    p = await proxy(base_config([up(fake.url, **over)]))
    kw = dict(kw)
    caller = kw.pop("caller", "checkout")
    if reason in ("upstream_suspended", "caller_suspended"):  # the kill switch, as an operator pulls it
        target, who = ("upstream", "pay") if reason == "upstream_suspended" else ("caller", caller)
        p.state.suspensions.change(target, who, suspended=True, reason="test", by="test")
    if reason == "circuit_open":  # trip it first: one failure opens a failures=1 breaker
        async with p.request(method, path, caller=caller, **kw) as first:
            assert first.status == 500
    async with p.request(method, path, caller=caller, **kw) as resp:
        body = orjson.loads(await resp.read())
        assert resp.status == status, body
        assert resp.headers["X-Egress-Error"] == reason
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert body["reason"] == reason and body["status"] == status
        assert body["type"].endswith(reason) and body["title"] and body["detail"]
        assert len(body["trace_id"]) == 32
        if reason == "circuit_open":
            assert 1 <= int(resp.headers["Retry-After"]) <= 30
    assert (fake.hits > 0) == hit


async def test_upstream_unavailable_when_port_closed(proxy):
    # a port bound but never listened on refuses connections, and stays ours for the test: a port
    # freed by a stopped server could be handed to the proxy itself (it would then answer itself)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        p = await proxy(base_config([up(f"http://127.0.0.1:{closed.getsockname()[1]}")]))
        async with p.request("GET", "/pay/x") as resp:
            assert resp.status == 502
            assert resp.headers["X-Egress-Error"] == "upstream_unavailable"


async def raw_exchange(port: int, head: bytes) -> tuple[int, dict, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    head_part, _, body = rest.partition(b"\r\n\r\n")
    headers = {}
    for line in head_part.split(b"\r\n"):
        k, _, v = line.partition(b":")
        headers[k.decode().strip().lower()] = v.decode().strip()
    return int(status_line.split()[1]), headers, body


RAW_CASES = [
    ("tunnel_not_allowed-connect", b"CONNECT api.payments.example:443 HTTP/1.1\r\nHost: api.payments.example:443\r\n\r\n",
     403, "tunnel_not_allowed"),
    ("destination_not_allowed-ftp-scheme", b"GET ftp://127.0.0.1/v1/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Egress-Caller: checkout\r\n\r\n",
     403, "destination_not_allowed"),
    ("destination_not_allowed-unknown-host", b"GET http://evil.example/v1/x HTTP/1.1\r\nHost: evil.example\r\nX-Egress-Caller: checkout\r\n\r\n",
     403, "destination_not_allowed"),
    ("destination_not_allowed-forbidden-port", b"GET http://127.0.0.1:22/v1/x HTTP/1.1\r\nHost: 127.0.0.1:22\r\nX-Egress-Caller: checkout\r\n\r\n",
     403, "destination_not_allowed"),
    ("destination_not_allowed-outside-base-path", None, 403, "destination_not_allowed"),
    ("method_not_allowed-trace", b"TRACE /pay/x HTTP/1.1\r\nHost: egress\r\nX-Egress-Caller: checkout\r\n\r\n",
     403, "method_not_allowed"),
    ("bad_request-fragment", b"GET /pay/x#y HTTP/1.1\r\nHost: egress\r\nX-Egress-Caller: checkout\r\n\r\n",
     400, "bad_request"),
    ("bad_request-host-port", b"GET /v1/x HTTP/1.1\r\nHost: egress:8o\r\nX-Egress-Caller: checkout\r\n\r\n",
     400, "bad_request"),
    ("internal_token_in_path", b"GET /pay/x/" + make_jwt(INTERNAL_ISSUER).encode()
     + b" HTTP/1.1\r\nHost: egress\r\nX-Egress-Caller: checkout\r\n\r\n", 403, "internal_token_in_path"),
]


@pytest.mark.parametrize("case", RAW_CASES, ids=[c[0] for c in RAW_CASES])
async def test_raw_target_forms(case, provider, proxy):
    name, head, status, reason = case
    fake = await provider()
    p = await proxy(base_config([up(fake.url)]))
    if head is None:
        head = (f"GET http://127.0.0.1:{fake.port}/admin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "X-Egress-Caller: checkout\r\n\r\n").encode()
    got_status, headers, body = await raw_exchange(p.running.data_port, head)
    assert got_status == status
    assert headers["x-egress-error"] == reason
    assert json.loads(body)["reason"] == reason
    assert fake.hits == 0
