"""Issue 12, request side: what a careless or hostile caller sends, refused or made harmless.

Raw bytes to the data port (so nothing a client library normalizes gets in the way): methods
that echo the request (TRACE/TRACK: the provider would hand back the injected credential), `#`
fragments, internal JWTs in path segments and matrix parameters, malformed Host, header names
spelled with `_`, query names spelled `access_token[]=` or after a `;`, a signature replayed
against another upstream, and callers whose own requests would open the breaker for everyone.
Every case is followed by a normal request that still works.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import yaml
from aiohttp import web

from tests.conftest import base_config
from tests.fakes import INTERNAL_ISSUER, make_jwt
from tests.hostile.conftest import assert_still_serves, good_upstream
from tests.hostile.test_caller_raw import exchange, reason_of, statuses

JWT = make_jwt(INTERNAL_ISSUER)
PARTNER_KEY = "partner-key-0123456789"
CONTRACT = {"operations": {"GET /charges/{id}": {"responses": {"200": {"schema": {"type": "object"}}}}}}


@pytest.fixture
async def side(tmp_path, provider, proxy, good):
    (tmp_path / "pay.yaml").write_text(yaml.safe_dump(CONTRACT))
    pay, free = await provider(), await provider()
    common = {"callers": ["checkout"], "allow_private_addresses": True, "retry": {"attempts": 1}}
    doc = base_config([{"name": "pay", "url": pay.url + "/v1", "contract": "pay.yaml", "unmatched": "block",
                        **common},
                       {"name": "free", "url": free.url + "/v2", **common,
                        "credential": {"header": "X-Api-Key", "value": PARTNER_KEY}},
                       good_upstream(good.url)], contracts_dir=str(tmp_path))
    return await proxy(doc, base_dir=tmp_path), pay, free


def raw(head: str, *extra: str) -> bytes:
    lines = [head, *extra, "X-Egress-Caller: checkout", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def refusals(pay_port: int) -> list[tuple]:
    enc = JWT.replace(".", "%2E")
    return [
        # id, request line, Host, status, reason
        ("trace-echoes-the-credential", "TRACE /pay/charges/ch_1 HTTP/1.1", "egress", 403, "method_not_allowed"),
        # TRACK never reaches egress with aiohttp's C parser (400 there); the router refuses it too
        # (tests/unit/test_routes.py::test_methods): PURGE/PROPFIND are ones the parser does pass
        ("purge", "PURGE /pay/charges/ch_1 HTTP/1.1", "egress", 403, "method_not_allowed"),
        ("trace-forward-proxy", f"TRACE http://127.0.0.1:{pay_port}/v1/charges/ch_1 HTTP/1.1", "egress", 403,
         "method_not_allowed"),
        ("propfind", "PROPFIND /pay/charges/ch_1 HTTP/1.1", "egress", 403, "method_not_allowed"),
        ("fragment-turns-get-one-into-list", "GET /pay/charges/# HTTP/1.1", "egress", 400, "bad_request"),
        ("fragment-after-query", "GET /pay/charges/ch_1?expand=x#/admin HTTP/1.1", "egress", 400, "bad_request"),
        ("fragment-absolute-form", f"GET http://127.0.0.1:{pay_port}/v1/charges/#x HTTP/1.1", "egress", 400,
         "bad_request"),
        ("jwt-as-path-segment", f"GET /pay/charges/{JWT} HTTP/1.1", "egress", 403, "internal_token_in_path"),
        ("jwt-in-matrix-param", f"GET /pay/charges/ch_1;session={JWT} HTTP/1.1", "egress", 403,
         "internal_token_in_path"),
        ("jwt-percent-encoded-dots", f"GET /pay/charges/{enc} HTTP/1.1", "egress", 403, "internal_token_in_path"),
        ("jwt-double-encoded", f"GET /pay/charges/{enc.replace('%', '%25')} HTTP/1.1", "egress", 403,
         "internal_token_in_path"),
        ("jwt-host-routed", f"GET /v1/charges/{JWT} HTTP/1.1", f"127.0.0.1:{pay_port}", 403,
         "internal_token_in_path"),
        ("host-port-arabic-indic-digits", "GET /v1/charges/ch_1 HTTP/1.1",
         "127.0.0.1:" + "".join(chr(0x660 + int(d)) for d in str(pay_port)), 400, "bad_request"),
        ("host-port-superscript-digit", "GET /v1/charges/ch_1 HTTP/1.1", "127.0.0.1:\u00b2", 400, "bad_request"),
        ("host-port-letters", "GET /v1/charges/ch_1 HTTP/1.1", "127.0.0.1:8o8o", 400, "bad_request"),
        ("host-port-out-of-range", "GET /v1/charges/ch_1 HTTP/1.1", "127.0.0.1:99999", 400, "bad_request"),
    ]


REFUSAL_IDS = [c[0] for c in refusals(1)]


@pytest.mark.parametrize("case_id", REFUSAL_IDS)
async def test_refused_before_anything_is_sent(case_id, side):
    p, pay, free = side
    _, line, host, status, reason = {c[0]: c for c in refusals(pay.port)}[case_id]
    data = await exchange(p.running.data_port, raw(line, f"Host: {host}"))
    assert statuses(data) == [status], data[:300]
    assert reason_of(data) == reason
    assert json.loads(data.partition(b"\r\n\r\n")[2])["reason"] == reason
    assert JWT.encode() not in data
    assert pay.hits == 0 and free.hits == 0
    data = await exchange(p.running.data_port, raw("GET /pay/charges/ch_1 HTTP/1.1", "Host: egress"))
    assert statuses(data) == [200] and pay.requests[-1].path_qs == "/v1/charges/ch_1"
    await assert_still_serves(p)


HEADERS = [
    # id, sanitize config, header sent, value, forwarded as sent?
    ("internal-header-with-underscore", {}, "X-Internal_Token", "tok-underscore", False),
    ("internal-header-all-underscores", {}, "X_Internal_Token", "tok-all-underscores", False),
    ("proxy-authorization-underscore", {}, "Proxy_Authorization", "Basic cHJveHk=", False),
    ("caller-header-underscore", {}, "X_Egress_Caller", "billing-claimed", False),
    ("credential-header-underscore", {}, "X_Api_Key", "callers-own-key", False),
    ("replaced-list-keeps-authorization", {"strip_headers": ["x-secret"]}, "Authorization", "Bearer internal-1", False),
    ("replaced-list-keeps-cookie", {"strip_headers": ["x-secret"]}, "Cookie", "sid=internal-2", False),
    ("replaced-list-strips-its-own-underscored", {"strip_headers": ["x-secret"]}, "X_Secret", "internal-3", False),
    ("keep-defaults-false-forwards-authorization", {"strip_headers": ["x-secret"], "keep_defaults": False},
     "Authorization", "Bearer meant-for-partner", True),
    ("ordinary-underscore-header-forwarded", {}, "X_Request_Tag", "blue", True),
]


@pytest.mark.parametrize("case", HEADERS, ids=[c[0] for c in HEADERS])
async def test_header_spelling(case, provider, proxy, good):
    _, sanitize, name, value, forwarded = case
    free = await provider()
    doc = base_config([{"name": "free", "url": free.url + "/v2", "callers": ["checkout"],
                        "allow_private_addresses": True, "retry": {"attempts": 1},
                        "credential": {"header": "X-Api-Key", "value": PARTNER_KEY}},
                       good_upstream(good.url)],
                      sanitize={"internal_jwt_issuers": [INTERNAL_ISSUER], **sanitize})
    p = await proxy(doc)
    data = await exchange(p.running.data_port, raw("GET /free/things HTTP/1.1", "Host: egress", f"{name}: {value}"))
    assert statuses(data) == [200], data[:300]
    seen = free.requests[-1].headers
    assert (seen.get(name) == value) is forwarded, dict(seen)
    if not forwarded:
        assert value not in " ".join(seen.values())
    assert seen.getall("X-Api-Key") == [PARTNER_KEY]
    await assert_still_serves(p)


QUERIES = [
    # id, query sent, query the provider must see
    ("brackets", "access_token[]=qs-secret&limit=2", "limit=2"),
    ("encoded-brackets", "access_token%5B%5D=qs-secret&limit=2", "limit=2"),
    ("indexed-brackets", "limit=2&access_token[0]=qs-secret", "limit=2"),
    ("semicolon-pair", "limit=2;access_token=qs-secret", "limit=2"),
    ("semicolon-first", "access_token=qs-secret;limit=2", "limit=2"),
    ("php-dotted-name", "access.token=qs-secret&limit=2", "limit=2"),
    ("case-and-hyphen", "Access-Token=qs-secret&limit=2", "limit=2"),
    ("jwt-after-semicolon", f"limit=2;session={JWT}", "limit=2"),
    ("separators-kept-when-nothing-stripped", "a=1;b=2&c=3", "a=1;b=2&c=3"),
]


@pytest.mark.parametrize("case", QUERIES, ids=[c[0] for c in QUERIES])
async def test_query_spelling(case, side):
    p, _, free = side
    _, query, expected = case
    data = await exchange(p.running.data_port, raw(f"GET /free/things?{query} HTTP/1.1", "Host: egress"))
    assert statuses(data) == [200], data[:300]
    assert free.requests[-1].path_qs == f"/v2/things?{expected}"
    await assert_still_serves(p)


# ------------------------------------------------------------------ signatures bind the upstream

CALLER_KEY = "checkout-caller-key-0123456789abcdef"


def signature(t: int, upstream: str, target: str) -> str:
    message = f"{t}.checkout.GET.{upstream}.{target}".encode()
    return f"t={t},v2={hmac.new(CALLER_KEY.encode(), message, hashlib.sha256).hexdigest()}"


async def test_signature_for_one_upstream_is_not_replayable_against_another(provider, proxy, good):
    pay, ledger = await provider(), await provider()
    ups = [{"name": n, "url": f.url + "/v1", "callers": ["checkout"], "allow_private_addresses": True,
            "retry": {"attempts": 1}} for n, f in (("pay", pay), ("ledger", ledger))]
    p = await proxy(base_config(ups + [good_upstream(good.url)], callers={"hmac_keys": {"checkout": "${K}"}}),
                    environ={"K": CALLER_KEY})
    signed = signature(int(time.time()), "pay", "/v1/charges")
    for host, status, reason in ((pay.port, 200, None), (ledger.port, 403, "caller_not_allowed")):
        data = await exchange(p.running.data_port, raw("GET /v1/charges HTTP/1.1", f"Host: 127.0.0.1:{host}",
                                                       f"X-Egress-Caller-Signature: {signed}"))
        assert statuses(data) == [status] and reason_of(data) == reason, data[:300]
    assert pay.hits == 1 and ledger.hits == 0
    fresh = signature(int(time.time()), "ledger", "/v1/charges")  # signed for ledger, it works there
    data = await exchange(p.running.data_port, raw("GET /v1/charges HTTP/1.1", f"Host: 127.0.0.1:{ledger.port}",
                                                   f"X-Egress-Caller-Signature: {fresh}"))
    assert statuses(data) == [200] and ledger.hits == 1


# ------------------------------------------------------------------ one caller can't open the breaker

async def charges(request: web.BaseRequest) -> web.StreamResponse:
    if "limit=1000" in request.query_string:
        return web.json_response({"data": ["x" * 100] * 1000})
    if "bad=1" in request.query_string:
        return web.json_response(["not", "an", "error", "object"], status=400)
    if "missing=1" in request.query_string:
        return web.json_response({"error": "no such charge"}, status=404)
    if "fail=1" in request.query_string:
        return web.json_response({"error": "down"}, status=503)
    return web.json_response({"data": []})


BREAKER = [
    # id, the careless caller's request, its answer (status, reason), what the next caller gets
    ("response-too-large-for-that-query", "/pay/charges?limit=1000", 502, "response_too_large", 200, None),
    ("4xx-answer-violating-its-contract", "/pay/charges?bad=1", 502, "contract_violation", 200, None),
    ("plain-4xx", "/pay/charges?missing=1", 404, None, 200, None),
    ("provider-5xx-still-opens-it", "/pay/charges?fail=1", 503, None, 503, "circuit_open"),
]


@pytest.mark.parametrize("case", BREAKER, ids=[c[0] for c in BREAKER])
async def test_one_caller_cannot_open_the_breaker_for_all(case, tmp_path, provider, proxy, good):
    _, path, status, reason, next_status, next_reason = case
    contract = {"operations": {"GET /charges": {"responses": {
        "200": {"schema": {"type": "object"}},
        "4XX": {"schema": {"type": "object", "required": ["error"]}}}}}}
    (tmp_path / "pay.yaml").write_text(yaml.safe_dump(contract))
    pay = await provider(charges)
    doc = base_config([{"name": "pay", "url": pay.url + "/v1", "contract": "pay.yaml", "callers": ["*"],
                        "allow_private_addresses": True, "retry": {"attempts": 1},
                        "breaker": {"failures": 2, "reset_after": 60},
                        "limits": {"max_response_bytes": 4096}}, good_upstream(good.url)],
                      contracts_dir=str(tmp_path))
    p = await proxy(doc, base_dir=tmp_path)
    for _ in range(2):
        async with p.request("GET", path, caller="careless") as resp:
            assert resp.status == status and resp.headers.get("X-Egress-Error") == reason, await resp.read()
    async with p.request("GET", "/pay/charges", caller="checkout") as resp:
        assert resp.status == next_status, await resp.read()
        assert resp.headers.get("X-Egress-Error") == next_reason
    await assert_still_serves(p)
