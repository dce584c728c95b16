"""Hostile providers at the JSON layer, behind a contract (OWASP API10:2023 "validate what comes back").

Each named case serves one body to an upstream with a compact contract (written to tmp_path)
and asserts status, reason, the X-Egress-Contract verdict, that the provider was reached, that a
following normal request works, and that memory stayed bounded.
"""

from __future__ import annotations

import time

import pytest
import yaml
from aiohttp import web

from tests.conftest import base_config
from tests.hostile.conftest import (
    MiB,
    assert_still_serves,
    good_upstream,
    hostile_upstream,
    RssWatch,
    read_problem,
    rss_bytes,
)

CHARGE = {"type": "object", "required": ["id", "amount"],
          "properties": {"id": {"type": "string"}, "amount": {"type": "integer", "minimum": 0, "maximum": 1000}}}
DIGITS = b"9" * 100_000

CASES = [
    # id, body, content type, status, reason, contract verdict
    ("valid-control", b'{"id": "ch_1", "amount": 5}', "application/json", 200, None, "valid"),
    ("invalid-json", b'{"id": "ch_1", "amount": ', "application/json", 502, "invalid_json", "violated"),
    ("nested-100000-arrays", b"[" * 100_000 + b"]" * 100_000, "application/json", 502, "invalid_json", "violated"),
    ("nested-100000-objects", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "application/json", 502,
     "invalid_json", "violated"),
    ("huge-float-1e400", b'{"id": "ch_1", "amount": 1e400}', "application/json", 502, "contract_violation",
     "violated"),
    ("integer-past-2-64-exact", b'{"id": "ch_1", "amount": 18446744073709551617000}', "application/json", 502,
     "contract_violation", "violated"),
    ("integer-100000-digits-in-checked-field", b'{"id": "ch_1", "amount": ' + DIGITS + b"}", "application/json",
     502, ("contract_violation", "invalid_json"), "violated"),
    ("integer-100000-digits-in-free-field", b'{"id": "ch_1", "amount": 5, "note": ' + DIGITS + b"}",
     "application/json", 200, None, "valid"),
    ("nan-literal", b'{"id": "ch_1", "amount": NaN}', "application/json", 502, "invalid_json", "violated"),
    ("invalid-utf8", b'{"id": "\xff\xfe", "amount": 5}', "application/json", 502, "invalid_json", "violated"),
    ("lone-surrogate-escape", b'{"id": "\\ud800", "amount": 5}', "application/json", 502, "invalid_json",
     "violated"),
    ("json-content-type-over-html", b"<html><body>Down for maintenance</body></html>", "application/json", 502,
     "invalid_json", "violated"),
    ("html-content-type", b"<html><body>Down for maintenance</body></html>", "text/html", 502,
     "unexpected_content_type", "violated"),
    ("duplicate-keys-last-invalid", b'{"id": "ch_1", "amount": 5, "amount": "5; DROP"}', "application/json", 502,
     "invalid_json", "violated"),
]


def write_contract(tmp_path):
    ops = {"GET /charges/{id}": {"responses": {"200": {"content_type": "application/json", "schema": CHARGE}}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"operations": ops}))


def serve(body: bytes, content_type: str):
    async def handler(request):
        return web.Response(body=body, headers={"Content-Type": content_type})
    return handler


async def start(tmp_path, provider, proxy, good, handler):
    write_contract(tmp_path)
    bad = await provider(handler)
    doc = base_config([hostile_upstream(bad.url, contract="bad.yaml",
                                        limits={"max_response_bytes": 4 * MiB, "max_json_depth": 64}),
                       good_upstream(good.url)], contracts_dir=str(tmp_path))
    return bad, await proxy(doc, base_dir=tmp_path)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_hostile_json(case, tmp_path, provider, proxy, good):
    name, body, ctype, status, reason, verdict = case
    bad, p = await start(tmp_path, provider, proxy, good, serve(body, ctype))
    rss_before, watch = rss_bytes(), RssWatch()
    started = time.monotonic()
    async with p.request("GET", "/bad/charges/ch_1") as resp:
        assert resp.headers["X-Egress-Contract"] == verdict
        if reason is None:
            assert resp.status == status
            assert await resp.read() == body
        else:
            problem = await read_problem(resp)
            assert resp.status == status, problem
            assert problem["reason"] in (reason if isinstance(reason, tuple) else (reason,))
            # the problem names the operation and pointers, never the payload
            assert b"DROP" not in await resp.read() and b"maintenance" not in await resp.read()
    assert time.monotonic() - started < 2
    assert bad.hits == 1
    await assert_still_serves(p)
    assert rss_bytes() - rss_before < 64 * MiB
    assert watch.growth() < 64 * MiB


async def test_duplicate_keys_first_value_hostile_is_refused(tmp_path, provider, proxy, good):
    """`{"amount": "evil", "amount": 5}` passes a contract that checks the last value and is forwarded
    unchanged; a first-wins parser in the caller then reads "evil" (JSON interoperability attack)."""
    body = b'{"id": "ch_1", "amount": "5; DROP TABLE", "amount": 5}'
    bad, p = await start(tmp_path, provider, proxy, good, serve(body, "application/json"))
    async with p.request("GET", "/bad/charges/ch_1") as resp:
        assert (resp.status, resp.headers["X-Egress-Error"]) == (502, "invalid_json")
        assert resp.headers["X-Egress-Contract"] == "violated"
