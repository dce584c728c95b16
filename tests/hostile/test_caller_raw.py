"""Hostile or careless callers speaking raw bytes to the data port.

Smuggling shapes are refused by aiohttp's parser (400, nothing forwarded, egress keeps serving);
target forms egress must refuse answer 403 with a reason; Host vs path: when `Host` names an
upstream, Host wins (routes.py docstring), an absolute-form target wins over Host (RFC 9112 3.2.2).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import base_config
from tests.hostile.conftest import assert_still_serves, good_upstream


def upstreams(fake_url: str, other_url: str) -> list[dict]:
    return [{"name": "pay", "url": fake_url + "/v1", "callers": ["checkout"], "allow_private_addresses": True,
             "retry": {"attempts": 1}, "limits": {"max_request_bytes": 1024}},
            {"name": "ledger", "url": other_url + "/v2", "callers": ["*"], "allow_private_addresses": True,
             "retry": {"attempts": 1}}]


async def exchange(port: int, raw: bytes) -> bytes:
    """Send raw bytes, read until egress closes or goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), 1.0)
            if not chunk:
                break
            data += chunk
    except asyncio.TimeoutError:
        pass
    writer.close()
    return data


def statuses(data: bytes) -> list[int]:
    return [int(line.split()[1]) for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def reason_of(data: bytes) -> str | None:
    for line in data.split(b"\r\n"):
        if line.lower().startswith(b"x-egress-error:"):
            return line.split(b":", 1)[1].strip().decode()
    return None


C = b"X-Egress-Caller: checkout\r\n"
SMUGGLING = [
    # id, raw request; expected: one 400, nothing forwarded
    ("content-length-and-transfer-encoding",
     b"POST /pay/x HTTP/1.1\r\nHost: egress\r\n" + C + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\nGET /pay/smuggled HTTP/1.1\r\nHost: egress\r\n" + C + b"\r\n"),
    ("two-different-content-lengths",
     b"POST /pay/x HTTP/1.1\r\nHost: egress\r\n" + C + b"Content-Length: 4\r\nContent-Length: 40\r\n\r\nabcd"),
    ("two-equal-content-lengths",
     b"POST /pay/x HTTP/1.1\r\nHost: egress\r\n" + C + b"Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd"),
    ("content-length-list", b"POST /pay/x HTTP/1.1\r\nHost: egress\r\n" + C + b"Content-Length: 4, 4\r\n\r\nabcd"),
    ("obs-fold-header", b"GET /pay/x HTTP/1.1\r\nHost: egress\r\n" + C + b"X-Note: a\r\n b\r\n\r\n"),
    ("obfuscated-transfer-encoding",
     b"POST /pay/x HTTP/1.1\r\nHost: egress\r\n" + C + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
    ("space-before-colon",
     b"POST /pay/x HTTP/1.1\r\nHost: egress\r\n" + C + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
    ("bare-cr-in-header", b"GET /pay/x HTTP/1.1\r\nHost: egress\r\nX-Egress-Caller: checkout\rX-Evil: 1\r\n\r\n"),
    ("nul-in-header", b"GET /pay/x HTTP/1.1\r\nHost: egress\r\nX-Egress-Caller: check\x00out\r\n\r\n"),
    ("two-host-headers", b"GET /x HTTP/1.1\r\nHost: egress\r\nHost: 127.0.0.1\r\n" + C + b"\r\n"),
    ("header-line-over-8190", b"GET /pay/x HTTP/1.1\r\nHost: egress\r\n" + C + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n"),
    ("over-100-headers",
     b"GET /pay/x HTTP/1.1\r\nHost: egress\r\n" + C + b"".join(b"X-%d: 1\r\n" % i for i in range(120)) + b"\r\n"),
    ("request-line-over-8190", b"GET /pay/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: egress\r\n" + C + b"\r\n"),
    ("absolute-form-file-scheme", b"GET file:///etc/passwd HTTP/1.1\r\nHost: egress\r\n" + C + b"\r\n"),
]


@pytest.fixture
async def pair(provider, proxy, good):
    pay, ledger = await provider(), await provider()
    p = await proxy(base_config(upstreams(pay.url, ledger.url) + [good_upstream(good.url)]))
    return p, pay, ledger


@pytest.mark.parametrize("case", SMUGGLING, ids=[c[0] for c in SMUGGLING])
async def test_smuggling_shapes_are_refused_by_the_parser(case, pair):
    name, raw = case
    p, pay, ledger = pair
    data = await exchange(p.running.data_port, raw)
    assert statuses(data) == [400], data[:200]
    assert pay.hits == 0 and ledger.hits == 0
    await assert_still_serves(p)


def target_cases(pay_port: int, ledger_port: int) -> list[tuple]:
    P, L = pay_port, ledger_port
    return [
        # id, raw request, status, reason, which provider got it ("pay" | "ledger" | None), path it saw
        ("absolute-form-gopher", f"GET gopher://127.0.0.1:{P}/v1/x HTTP/1.1\r\nHost: egress\r\n", 403,
         "destination_not_allowed", None, None),
        ("absolute-form-forbidden-port", "GET http://127.0.0.1:22/v1/x HTTP/1.1\r\nHost: egress\r\n", 403,
         "destination_not_allowed", None, None),
        ("absolute-form-userinfo-confusion", f"GET http://127.0.0.1:{P}@evil.example/v1/x HTTP/1.1\r\nHost: e\r\n",
         403, "destination_not_allowed", None, None),
        ("absolute-form-wins-over-host", f"GET http://127.0.0.1:{P}/v1/x HTTP/1.1\r\nHost: evil.example\r\n",
         200, None, "pay", "/v1/x"),
        ("host-wins-over-path-prefix", f"GET /ledger/x HTTP/1.1\r\nHost: 127.0.0.1:{P}\r\n", 403,
         "destination_not_allowed", None, None),
        ("host-names-upstream-path-under-base", f"GET /v1/charges HTTP/1.1\r\nHost: 127.0.0.1:{P}\r\n", 200, None,
         "pay", "/v1/charges"),
        ("host-of-another-upstream-with-prefix", f"GET /pay/x HTTP/1.1\r\nHost: 127.0.0.1:{L}\r\n", 403,
         "destination_not_allowed", None, None),
        ("asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: egress\r\n", 403, "destination_not_allowed", None, None),
        ("encoded-slash-dot-dot", "GET /pay/a%2f..%2f..%2fadmin HTTP/1.1\r\nHost: egress\r\n", 403,
         "destination_not_allowed", None, None),
        ("backslash-dot-dot", "GET /pay/a\\..\\..\\admin HTTP/1.1\r\nHost: egress\r\n", 403,
         "destination_not_allowed", None, None),
        ("double-encoded-dot-dot", "GET /pay/%252e%252e/admin HTTP/1.1\r\nHost: egress\r\n", 403,
         "destination_not_allowed", None, None),
        ("semicolon-dot-dot", "GET /pay/..;/admin HTTP/1.1\r\nHost: egress\r\n", 403,
         "destination_not_allowed", None, None),
        ("encoded-slash-without-dots-passes", "GET /pay/projects/group%2Fproject HTTP/1.1\r\nHost: egress\r\n",
         200, None, "pay", "/v1/projects/group%2Fproject"),
        ("connect-tunnel", f"CONNECT 127.0.0.1:{P} HTTP/1.1\r\nHost: 127.0.0.1:{P}\r\n", 403,
         "tunnel_not_allowed", None, None),
    ]


CASE_IDS = [c[0] for c in target_cases(1, 2)]


@pytest.mark.parametrize("case_id", CASE_IDS)
async def test_target_forms(case_id, pair):
    p, pay, ledger = pair
    case = {c[0]: c for c in target_cases(pay.port, ledger.port)}[case_id]
    _, head, status, reason, reached, path = case
    raw = (head + "X-Egress-Caller: checkout\r\nConnection: close\r\n\r\n").encode()
    data = await exchange(p.running.data_port, raw)
    assert statuses(data) == [status], data[:300]
    assert reason_of(data) == reason
    if reason is not None:
        body = json.loads(data.partition(b"\r\n\r\n")[2])
        assert body["reason"] == reason
    hits = {"pay": pay.hits, "ledger": ledger.hits}
    assert hits == {"pay": int(reached == "pay"), "ledger": int(reached == "ledger")}
    if reached:
        assert {"pay": pay, "ledger": ledger}[reached].requests[-1].path_qs == path
    await assert_still_serves(p)


async def test_oversized_body_is_413_chunked_or_not(pair):
    p, pay, _ = pair
    declared = (b"POST /pay/x HTTP/1.1\r\nHost: egress\r\n" + C + b"Content-Length: 5000\r\nConnection: close\r\n\r\n"
                + b"a" * 5000)
    chunked = (b"POST /pay/x HTTP/1.1\r\nHost: egress\r\n" + C + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               + b"".join(b"100\r\n" + b"a" * 256 + b"\r\n" for _ in range(20)) + b"0\r\n\r\n")
    for raw in (declared, chunked):
        data = await exchange(p.running.data_port, raw)
        assert statuses(data) == [413] and reason_of(data) == "request_too_large"
    assert pay.hits == 0
    await assert_still_serves(p)


async def test_caller_claiming_two_names_is_refused(pair):
    """Two X-Egress-Caller headers: refused (the first is not silently picked)."""
    p, pay, _ = pair
    raw = (b"GET /pay/x HTTP/1.1\r\nHost: egress\r\nX-Egress-Caller: checkout\r\nX-Egress-Caller: reporting\r\n"
           b"Connection: close\r\n\r\n")
    data = await exchange(p.running.data_port, raw)
    assert statuses(data) == [403] and reason_of(data) == "caller_not_allowed"
    assert pay.hits == 0
