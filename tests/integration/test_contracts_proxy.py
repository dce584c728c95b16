"""Contracts through the real proxy: modes, unmatched policy, drift, recording, reload."""

import asyncio
import os
import stat

import orjson
import pytest
import yaml
from aiohttp import web

from egress.cli import main as cli_main
from tests.conftest import base_config

MARKER = "pii-MARKER-5150"
CHARGE = {"type": "object", "required": ["id", "amount"],
          "properties": {"id": {"type": "string"}, "amount": {"type": "integer"}}}


def write_contract(tmp_path, *, mode_override=None, extra_ops=None):
    ops = {
        "GET /charges/{id}": {"responses": {"200": {"schema": CHARGE}, "4XX": {"schema": {"type": "object"}}}},
        "GET /charges": {"responses": {"200": {"content_type": "text/csv"}}},
    }
    if mode_override:
        ops["GET /charges/{id}"]["mode"] = mode_override
    ops.update(extra_ops or {})
    (tmp_path / "pay.yaml").write_text(yaml.safe_dump({"operations": ops}))
    return tmp_path


def handler_for(body: bytes, content_type="application/json", status=200):
    async def handler(request):   # `?s=NNN` picks the status the provider answers with
        return web.Response(body=body, status=int(request.query.get("s", status)),
                            headers={"Content-Type": content_type})
    return handler


GOOD = orjson.dumps({"id": "ch_1", "amount": 5})
BAD = orjson.dumps({"id": "ch_1", "amount": MARKER})


def up(url, **over):
    return {"name": "pay", "url": url + "/v1", "callers": ["*"], "allow_private_addresses": True,
            "contract": "pay.yaml", "retry": {"attempts": 1}, **over}


async def start(tmp_path, provider, proxy, handler, observers=None, **over):
    fake = await provider(handler)
    write_contract(tmp_path, mode_override=over.pop("op_mode", None))
    p = await proxy(base_config([up(fake.url, **over)], contracts_dir=str(tmp_path)), base_dir=tmp_path,
                    observers=observers)
    return fake, p


MODES = [
    # id, body, ctype, upstream overrides, path, status, contract header, reason
    ("enforce-valid", GOOD, "application/json", {}, "/pay/charges/ch_1", 200, "valid", None),
    ("enforce-violation", BAD, "application/json", {}, "/pay/charges/ch_1", 502, "violated", "contract_violation"),
    ("report-violation-passes", BAD, "application/json", {"mode": "report"}, "/pay/charges/ch_1", 200, "violated",
     None),
    ("off-unchecked", BAD, "application/json", {"mode": "off"}, "/pay/charges/ch_1", 200, "unchecked", None),
    ("operation-override-report", BAD, "application/json", {"op_mode": "report"}, "/pay/charges/ch_1", 200,
     "violated", None),
    ("invalid-json", b'{"id": ', "application/json", {}, "/pay/charges/ch_1", 502, "violated", "invalid_json"),
    ("html-instead-of-json", b"<html>hi</html>", "text/html", {}, "/pay/charges/ch_1", 502, "violated",
     "unexpected_content_type"),
    ("json-with-parameters", GOOD, "Application/JSON; charset=utf-8", {}, "/pay/charges/ch_1", 200,
     "valid", None),
    ("non-json-declared-type-not-parsed", b"id,amount\n1,2", "text/csv", {}, "/pay/charges", 200, "valid", None),
    ("unmatched-report", GOOD, "application/json", {"unmatched": "report"}, "/pay/refunds", 200, "unmatched", None),
    ("unmatched-allow", GOOD, "application/json", {"unmatched": "allow"}, "/pay/refunds", 200, "unmatched", None),
    ("unmatched-block", GOOD, "application/json", {"unmatched": "block"}, "/pay/refunds", 403, None,
     "operation_not_allowed"),
    # 500 is neither declared nor in a declared range (200, 4XX): passed, but marked unmatched
    ("undeclared-status", GOOD, "application/json", {}, "/pay/charges/ch_1?s=500", 500, "unmatched", None),
]


@pytest.mark.parametrize("case", MODES, ids=[c[0] for c in MODES])
async def test_modes(case, tmp_path, provider, proxy):
    _, body, ctype, over, path, status, contract, reason = case
    fake, p = await start(tmp_path, provider, proxy, handler_for(body, ctype), **over)
    async with p.request("GET", path) as resp:
        raw = await resp.read()
        assert resp.status == status, raw
        if contract is not None:
            assert resp.headers["X-Egress-Contract"] == contract
        assert resp.headers.get("X-Egress-Error") == reason
        if reason is None:
            assert raw == body  # passed through unchanged
        else:
            assert MARKER.encode() not in raw  # a payload value never appears in an error
    if reason == "contract_violation":
        problem = orjson.loads(raw)
        assert problem["operation"] == "GET /charges/{id}"
        assert problem["violations"] == [{"instance_path": "/amount", "schema_path": "/properties/amount/type",
                                          "keyword": "type", "message": problem["violations"][0]["message"]}]
    assert fake.hits == (0 if reason == "operation_not_allowed" else 1)


async def test_violations_count_toward_the_breaker(tmp_path, provider, proxy):
    fake, p = await start(tmp_path, provider, proxy, handler_for(BAD),
                          breaker={"failures": 2, "reset_after": 30, "count_violations": True})
    statuses = []
    for _ in range(4):
        async with p.request("GET", "/pay/charges/ch_1") as resp:
            statuses.append((resp.status, resp.headers.get("X-Egress-Error")))
    assert statuses[:2] == [(502, "contract_violation")] * 2
    assert statuses[2:] == [(503, "circuit_open")] * 2
    assert fake.hits == 2


async def test_drift_reported_once_as_names(tmp_path, provider, proxy):
    seen = []
    body = orjson.dumps({"id": "ch_1", "amount": 5, "surprise_field": MARKER})
    fake, p = await start(tmp_path, provider, proxy, handler_for(body), observers=[seen.append])
    async with p.request("GET", "/pay/charges/ch_1") as resp:
        assert resp.status == 200 and resp.headers["X-Egress-Contract"] == "valid"
    drift = [e for ex in seen for e in ex.events if e.name == "egress.contract_drift"]
    assert drift and drift[0].attrs["fields"] == ["/surprise_field"]
    assert MARKER not in repr(drift)


async def test_recorded_samples_are_private_and_learnable(tmp_path, provider, proxy, capsys):
    samples = tmp_path / "samples"
    fake = await provider(handler_for(orjson.dumps({"id": "r_1", "amount": 3, "refunded": True})))
    write_contract(tmp_path)
    doc = base_config([up(fake.url, unmatched="report")], contracts_dir=str(tmp_path),
                      record={"dir": str(samples), "max_files_per_operation": 3})
    p = await proxy(doc, base_dir=tmp_path)
    for _ in range(5):
        async with p.request("GET", "/pay/refunds") as resp:
            assert resp.status == 200
    files = sorted(f for f in samples.rglob("*") if f.is_file())
    assert len([f for f in files if f.name.endswith(".meta.json")]) == 3  # bounded
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert all(stat.S_IMODE(d.stat().st_mode) == 0o700 for d in samples.rglob("*") if d.is_dir())
    out = tmp_path / "draft.yaml"
    assert cli_main(["contracts", "learn", "pay", "--samples", str(samples), "--out", str(out)]) == 0
    draft = yaml.safe_load(out.read_text())
    schema = draft["operations"]["GET /refunds"]["responses"]["200"]["schema"]
    assert set(schema["properties"]) == {"id", "amount", "refunded"}


async def test_reload_swaps_atomically_and_refuses_invalid(tmp_path, provider, proxy):
    release = asyncio.Event()

    async def handler(request):
        if request.path.endswith("/slow"):
            await release.wait()
        return web.Response(body=BAD, content_type="application/json")

    fake = await provider(handler)
    write_contract(tmp_path, extra_ops={"GET /charges/{id}/slow": {
        "responses": {"200": {"schema": CHARGE}}}})
    config = tmp_path / "egress.yaml"
    doc = base_config([up(fake.url)], contracts_dir=".")
    config.write_text(yaml.safe_dump(doc))
    from egress import app as egress_app
    from egress.config import load_settings
    running = await egress_app.start(load_settings(config, os.environ), data_port=0, admin_port=0)
    import aiohttp
    session = aiohttp.ClientSession()
    base = f"http://127.0.0.1:{running.data_port}"
    admin = f"http://127.0.0.1:{running.admin_port}"
    hdrs = {"X-Egress-Caller": "checkout"}
    try:
        # an in-flight request started under enforce...
        slow = asyncio.create_task(session.get(base + "/pay/charges/ch_1/slow", headers=hdrs))
        while not any(r.path_qs.endswith("/slow") for r in fake.requests):
            await asyncio.sleep(0.01)
        # ...a reload to report mode...
        doc["upstreams"][0]["mode"] = "report"
        config.write_text(yaml.safe_dump(doc))
        async with session.post(admin + "/admin/reload") as resp:
            assert resp.status == 200 and (await resp.json())["reloaded"] is True
        async with session.get(base + "/pay/charges/ch_1", headers=hdrs) as resp:
            assert resp.status == 200 and resp.headers["X-Egress-Contract"] == "violated"
        release.set()
        resp = await slow  # ...finishes under the contract generation it started with
        assert resp.status == 502 and resp.headers["X-Egress-Error"] == "contract_violation"
        resp.release()
        # an invalid contract is refused with every error; the old generation keeps serving
        (tmp_path / "pay.yaml").write_text("operations:\n  GET /x:\n    responses:\n      '200': {schema: {type: 12}}\n")
        async with session.post(admin + "/admin/reload") as resp:
            body = await resp.json()
            assert resp.status == 422 and body["reloaded"] is False and body["errors"]
        async with session.get(base + "/pay/charges/ch_1", headers=hdrs) as resp:
            assert resp.status == 200 and resp.headers["X-Egress-Contract"] == "violated"
    finally:
        await session.close()
        await running.drain(1)
