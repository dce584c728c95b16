"""Regressions in the security core that an earlier suite let pass (issue 19's mutation review).

Each test below was written against a deliberate one-line breakage that every other test
missed: stripping `authorization` or `forwarded`, checking contracts only below status 500,
percent-decoding query names before stripping, and the `egress.contract_unmatched` event.
All go through the real proxy to a real fake provider, with an upstream that has NO credential
of its own (an injected credential would hide whether the caller's header was stripped).
"""

from __future__ import annotations

import orjson
import pytest
import yaml
from aiohttp import web
from yarl import URL

from tests.conftest import base_config

SECRET = "internal-session-5150"
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
CHARGE = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
PAYLOAD = "pii-MARKER-7321"


def upstream(url: str, **over) -> dict:
    return {"name": "pay", "url": url + "/v1", "callers": ["*"], "allow_private_addresses": True,
            "retry": {"attempts": 1}, **over}


# ------------------------------------------------------------------ headers that must not leave

# (header as the caller sends it, config, stripped?)
DEFAULT_STRIP = ["authorization", "cookie", "proxy-authorization", "x-internal-user", "x-forwarded-for",
                 "forwarded", "baggage"]
HEADER_CASES = (
    [(f"default-{h}", h, {}, True) for h in DEFAULT_STRIP]
    + [(f"default-{h}-other-case", h.upper(), {}, True) for h in ("authorization", "forwarded", "cookie")]
    + [
        ("configured-exact", "X-Session", {"strip_headers": ["x-session"]}, True),
        ("configured-wildcard", "X-Corp-Trace", {"strip_headers": ["x-corp-*"]}, True),
        ("configured-any-case", "x-SESSION", {"strip_headers": ["X-Session"]}, True),
        ("ordinary-header-kept", "X-Request-Color", {}, False),
    ]
)


@pytest.mark.parametrize("case", HEADER_CASES, ids=[c[0] for c in HEADER_CASES])
async def test_stripped_headers_never_reach_an_upstream_without_a_credential(case, provider, proxy):
    _, name, sanitize, stripped = case
    fake = await provider()
    doc = base_config([upstream(fake.url)])
    doc["sanitize"].update(sanitize)
    p = await proxy(doc)
    async with p.request("GET", "/pay/ping", headers={name: SECRET, "Accept": "application/json"}) as resp:
        assert resp.status == 200, await resp.text()
    seen = fake.requests[-1].headers
    assert (name not in seen) is stripped, dict(seen)
    assert seen["Accept"] == "application/json"      # the rest of the request still went
    if stripped:
        assert SECRET not in repr(list(seen.items()))


async def test_repeated_stripped_header_is_stripped_every_time(provider, proxy):
    fake = await provider()
    p = await proxy(base_config([upstream(fake.url)]))
    headers = [("Authorization", "Bearer a-" + SECRET), ("Authorization", "Bearer b-" + SECRET),
               ("Forwarded", "for=10.0.0.1"), ("Forwarded", "for=10.0.0.2")]
    async with p.session.get(p.url + "/pay/ping", headers=[("X-Egress-Caller", "checkout"), *headers]) as resp:
        assert resp.status == 200
    seen = fake.requests[-1].headers
    assert "Authorization" not in seen and "Forwarded" not in seen


# ------------------------------------------------------------------ query names, encoded

QUERY_CASES = [
    ("plain", "access_token=" + SECRET, True),
    ("percent-encoded-underscore", "access%5Ftoken=" + SECRET, True),
    ("percent-encoded-lowercase-hex", "access%5ftoken=" + SECRET, True),
    ("percent-encoded-every-byte", "".join(f"%{b:02X}" for b in b"api_key") + "=" + SECRET, True),
    ("upper-case-name", "ACCESS_TOKEN=" + SECRET, True),
    ("ordinary-name-kept", "limit=3", False),
]


@pytest.mark.parametrize("case", QUERY_CASES, ids=[c[0] for c in QUERY_CASES])
async def test_query_names_are_compared_decoded(case, provider, proxy):
    _, query, stripped = case
    fake = await provider()
    p = await proxy(base_config([upstream(fake.url)]))
    # encoded=True: the client must send the name exactly as written (yarl would decode %5F)
    async with p.session.get(URL(f"{p.url}/pay/ping?a=1&{query}", encoded=True),
                             headers={"X-Egress-Caller": "checkout"}) as resp:
        assert resp.status == 200
    sent = fake.requests[-1].path_qs
    assert sent.startswith("/v1/ping?a=1")
    assert (SECRET not in sent) if stripped else (query in sent), sent


# ------------------------------------------------------------------ non-2xx answers are checked too


def contract(tmp_path) -> None:
    ops = {"GET /charges/{id}": {"responses": {
        "200": {"schema": CHARGE},
        "404": {"schema": ERROR},
        "5XX": {"schema": ERROR},
    }}}
    (tmp_path / "pay.yaml").write_text(yaml.safe_dump({"operations": ops}))


VALID_ERROR = orjson.dumps({"error": "no such charge"})
BAD_ERROR = orjson.dumps({"error": {"detail": PAYLOAD}})

# id, mode, status the provider sends, body, status the caller gets, X-Egress-Contract, reason
STATUS_CASES = [
    ("enforce-declared-404-valid", "enforce", 404, VALID_ERROR, 404, "valid", None),
    ("enforce-declared-404-violating", "enforce", 404, BAD_ERROR, 502, "violated", "contract_violation"),
    ("enforce-range-500-valid", "enforce", 500, VALID_ERROR, 500, "valid", None),
    ("enforce-range-500-violating", "enforce", 500, BAD_ERROR, 502, "violated", "contract_violation"),
    ("enforce-range-503-violating", "enforce", 503, BAD_ERROR, 502, "violated", "contract_violation"),
    ("enforce-undeclared-409-passes-unmatched", "enforce", 409, BAD_ERROR, 409, "unmatched", None),
    ("report-range-500-violating-passes", "report", 500, BAD_ERROR, 500, "violated", None),
    ("report-declared-404-violating-passes", "report", 404, BAD_ERROR, 404, "violated", None),
    ("off-500-unchecked", "off", 500, BAD_ERROR, 500, "unchecked", None),
]


@pytest.mark.parametrize("case", STATUS_CASES, ids=[c[0] for c in STATUS_CASES])
async def test_non_2xx_answers_are_checked_in_every_mode(case, tmp_path, provider, proxy):
    _, mode, sent, body, status, verdict, reason = case

    async def handler(request):
        return web.Response(body=body, status=sent, headers={"Content-Type": "application/json"})

    fake = await provider(handler)
    contract(tmp_path)
    p = await proxy(base_config([upstream(fake.url, contract="pay.yaml", mode=mode, retry={"attempts": 1,
                                                                                          "on_status": []})],
                                contracts_dir=str(tmp_path)), base_dir=tmp_path)
    async with p.request("GET", "/pay/charges/ch_1") as resp:
        raw = await resp.read()
        assert resp.status == status, raw
        assert resp.headers["X-Egress-Contract"] == verdict
        assert resp.headers.get("X-Egress-Error") == reason
    if reason is None:
        assert raw == body
    else:
        problem = orjson.loads(raw)
        assert problem["reason"] == reason
        assert [v["instance_path"] for v in problem["violations"]] == ["/error"]
        assert PAYLOAD not in raw.decode()
    assert fake.hits == 1


# ------------------------------------------------------------------ unmatched: the event


UNMATCHED_CASES = [
    # id, unmatched policy, path, event expected
    ("report-emits-event", "report", "/pay/refunds/re_1", True),
    ("allow-emits-none", "allow", "/pay/refunds/re_1", False),
    ("matched-emits-none", "report", "/pay/charges/ch_1", False),
]


@pytest.mark.parametrize("case", UNMATCHED_CASES, ids=[c[0] for c in UNMATCHED_CASES])
async def test_contract_unmatched_event_present_and_absent(case, tmp_path, provider, proxy):
    _, policy, path, expected = case

    async def handler(request):
        return web.json_response({"id": "x"})

    seen = []
    fake = await provider(handler)
    contract(tmp_path)
    p = await proxy(base_config([upstream(fake.url, contract="pay.yaml", unmatched=policy)],
                                contracts_dir=str(tmp_path)), base_dir=tmp_path, observers=[seen.append])
    async with p.request("GET", path) as resp:
        assert resp.status == 200
        assert resp.headers["X-Egress-Contract"] == ("unmatched" if path.startswith("/pay/refunds") else "valid")
    events = [e for e in seen[-1].events if e.name == "egress.contract_unmatched"]
    assert len(events) == (1 if expected else 0), [e.name for e in seen[-1].events]
    if expected:
        assert events[0].attrs == {"method": "GET"}   # names only; not an anomaly (the event carries no flag)
