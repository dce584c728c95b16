"""Grants through the real proxy: an operation not granted is refused with 403 operation_not_granted
and nothing is sent (with or without a contract on the upstream; by caller or by token scope), and
the inventory shows, per grantee, what is granted, what is used and what was never used."""

from __future__ import annotations

import pytest

from tests.conftest import base_config
from tests.identity_fakes import PATTERN, FakeIssuer

GRANTS = {"checkout": ["GET /charges/{id}", "POST /charges", "DELETE /charges/{id}"], "billing": ["GET *"]}
CONTRACT = """operations:
  GET /charges/{id}:
    responses: {"200": {schema: {type: object}}}
  POST /charges:
    responses: {"200": {schema: {type: object}}}
"""


def config(p, tmp_path, with_contract: bool) -> dict:
    up = {"name": "pay", "url": p.url, "allow_private_addresses": True, "grants": GRANTS}
    if with_contract:
        (tmp_path / "pay.yaml").write_text(CONTRACT)
        up["contract"] = "pay.yaml"
    return base_config([up], contracts_dir=str(tmp_path))


CASES = [
    ("granted_template", "checkout", "GET", "/pay/charges/ch_1", 200, None),
    ("granted_literal", "checkout", "POST", "/pay/charges", 200, None),
    ("method_not_granted", "checkout", "PUT", "/pay/charges/ch_1", 403, "operation_not_granted"),
    ("path_not_granted", "checkout", "GET", "/pay/customers/cu_1", 403, "operation_not_granted"),
    ("any_path_grant", "billing", "GET", "/pay/customers/cu_1", 200, None),
    ("any_path_is_one_method", "billing", "POST", "/pay/charges", 403, "operation_not_granted"),
    ("caller_without_grants", "reports", "GET", "/pay/charges/ch_1", 403, "operation_not_granted"),
]


@pytest.mark.parametrize("with_contract", [False, True], ids=["no_contract", "contract"])
@pytest.mark.parametrize("caller,method,path,status,reason", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_grants_decide_per_operation(provider, proxy, tmp_path, with_contract, caller, method, path, status,
                                           reason):
    p = await provider()
    px = await proxy(config(p, tmp_path, with_contract))
    async with px.request(method, path, caller=caller) as r:
        body = await r.read()
    assert (r.status, r.headers.get("X-Egress-Error")) == (status, reason), body
    assert p.hits == (1 if status == 200 else 0)


async def test_inventory_shows_granted_vs_used(provider, proxy, tmp_path):
    p = await provider()
    px = await proxy(config(p, tmp_path, True))
    for caller, method, path in [("checkout", "GET", "/pay/charges/a"), ("checkout", "GET", "/pay/charges/b"),
                                 ("checkout", "PUT", "/pay/charges/a"), ("billing", "GET", "/pay/x")]:
        async with px.request(method, path, caller=caller) as r:
            await r.read()
    async with px.session.get(px.admin_url + "/admin/inventory") as r:
        inv = await r.json()
    grants = inv["upstreams"][0]["grants"]
    assert grants["checkout"] == {"granted": GRANTS["checkout"], "used": {"GET /charges/{id}": 2},
                                  "unused": ["POST /charges", "DELETE /charges/{id}"], "callers": {"checkout": 2}}
    assert grants["billing"]["used"] == {"GET *": 1} and grants["billing"]["unused"] == []


@pytest.fixture
async def issuer():
    async with FakeIssuer.with_keys(k1="ES256") as fake:
        yield fake


SCOPES = [
    ("scope_grants", "payments.read", "GET", 200, None),
    ("scope_list_claim", ["payments.read", "x"], "GET", 200, None),
    ("scope_does_not_cover_method", "payments.read", "POST", 403, "operation_not_granted"),
    ("no_scope", None, "GET", 403, "operation_not_granted"),
]


@pytest.mark.parametrize("scope,method,status,reason", [c[1:] for c in SCOPES], ids=[c[0] for c in SCOPES])
async def test_token_scope_grants(provider, proxy, issuer, scope, method, status, reason):
    p = await provider()
    jwt = {"issuers": [{"issuer": issuer.issuer, "jwks_url": issuer.jwks_url, "audiences": ["egress"]}],
           "caller_pattern": PATTERN}
    up = {"name": "pay", "url": p.url, "allow_private_addresses": True,
          "grants": {"scope:payments.read": ["GET *"], "billing": ["POST /charges"]}}
    px = await proxy(base_config([up], callers={"identity": "jwt", "jwt": jwt}))
    token = issuer.token("k1", extra={"scope": scope} if scope is not None else None)
    async with px.request(method, "/pay/charges", caller=None, headers={"Authorization": f"Bearer {token}"}) as r:
        await r.read()
    assert (r.status, r.headers.get("X-Egress-Error")) == (status, reason)
    assert p.hits == (1 if status == 200 else 0)


def test_inventory_table_shows_unused_grants():
    from egress.observe.grants import grants_report
    from egress.observe.inventory import render_table
    report = grants_report({"checkout": ("GET /charges/{id}", "POST /charges")},
                           {("checkout", "GET /charges/{id}", "checkout"): 3})
    text = render_table({"upstreams": [{"name": "pay", "grants": report}]})
    assert "grants checkout: 1/2 used  unused: POST /charges" in text
