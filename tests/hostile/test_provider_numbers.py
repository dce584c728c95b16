"""Exact numbers: a provider's number is checked as written, never after rounding to a double.

`1.0000000000000001` reads as the double 1.0, an integer; `-9999999999999999998` past 64 bits
as -1e19; `1e-400` as 0.0.  Each named case serves one number in a checked field through the
real proxy (enforce mode) and asserts status, reason and verdict, then a normal request.
"""

from __future__ import annotations

import pytest
import yaml
from aiohttp import web

from tests.conftest import base_config
from tests.hostile.conftest import assert_still_serves, good_upstream, hostile_upstream, read_problem

CASES = [
    # id, schema of "n", the number as written, status, reason
    ("integer-control", {"type": "integer"}, b"5", 200, None),
    ("integer-written-with-zero-fraction", {"type": "integer"}, b"5.0", 200, None),
    ("one-point-zero-sixteen-zeros-one-is-not-an-integer", {"type": "integer"}, b"1.0000000000000001", 502,
     "contract_violation"),
    ("seventeen-digit-integer-exact", {"type": "integer", "maximum": 12345678901234567},
     b"12345678901234567", 200, None),
    ("just-over-maximum-by-1e-14", {"maximum": 1000}, b"1000.00000000000001", 502, "contract_violation"),
    ("negative-past-64-bits-over-maximum", {"maximum": -9999999999999999999}, b"-9999999999999999998", 502,
     "contract_violation"),
    ("tiny-positive-is-not-zero", {"maximum": 0}, b"1e-400", 502, "contract_violation"),
    ("tiny-positive-over-exclusive-minimum", {"exclusiveMinimum": 0}, b"1e-400", 200, None),
    ("const-of-a-long-decimal", {"const": 0.1}, b"0.10000000000000001", 502, "contract_violation"),
    ("just-under-exclusive-maximum", {"exclusiveMaximum": 1}, b"0.99999999999999999", 200, None),
    # number-like text egress's scan must read without failing itself (each was a 502 "egress failed")
    ("e-dash-dot-in-a-string", {"type": "string"}, b'"1e-.5"', 200, None),
    ("5000-digit-exponent-in-a-string", {"type": "string"}, b'"1e-' + b"7" * 5000 + b'"', 200, None),
    ("5000-digit-exponent", {"type": "number"}, b"1e-" + b"7" * 5000, 502, "invalid_json"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_exact_numbers(case, tmp_path, provider, proxy, good):
    name, schema, number, status, reason = case
    body_schema = {"type": "object", "required": ["n"], "properties": {"n": schema}}
    ops = {"GET /charges/{id}": {"responses": {"200": {"content_type": "application/json", "schema": body_schema}}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"operations": ops}))

    async def handler(request):
        return web.Response(body=b'{"n": ' + number + b"}", headers={"Content-Type": "application/json"})

    bad = await provider(handler)
    p = await proxy(base_config([hostile_upstream(bad.url, contract="bad.yaml"), good_upstream(good.url)],
                                contracts_dir=str(tmp_path)), base_dir=tmp_path)
    async with p.request("GET", "/bad/charges/ch_1") as resp:
        assert resp.status == status, await resp.read()
        assert resp.headers.get("X-Egress-Error") == reason
        assert resp.headers["X-Egress-Contract"] == ("valid" if reason is None else "violated")
        if reason is not None:
            problem = await read_problem(resp)
            assert problem["violations"] or reason == "invalid_json"
            assert number.decode() not in str(problem)  # never the value
    await assert_still_serves(p)
