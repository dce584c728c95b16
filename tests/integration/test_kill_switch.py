"""The kill switch: suspend/resume upstreams and callers from the admin port; nothing is sent
while suspended; kept across reloads; audited; in the inventory; shared by replicas through a
real redis-server within a second."""

import asyncio
import logging
import time

import aiohttp
import pytest
import yaml

from tests.conftest import base_config
from tests.process import EgressProcess
from tests.redis_server import REDIS_SERVER, SKIP_REASON

TOKEN = "admin-token-MARKER-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def two_upstreams(provider_url):
    return base_config([
        {"name": "pay", "url": provider_url + "/v1", "allow_private_addresses": True, "retry": {"attempts": 1}},
        {"name": "ship", "url": provider_url + "/ship", "allow_private_addresses": True},
    ], admin_token="${ADMIN_TOKEN}")


@pytest.fixture
async def switched(proxy, provider):
    fake = await provider()
    handle = await proxy(two_upstreams(fake.url), environ={"ADMIN_TOKEN": TOKEN})
    return handle, fake


async def admin(handle, path, body=None, headers=AUTH, method="POST"):
    async with handle.session.request(method, handle.admin_url + path, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def status_of(handle, path, caller="checkout"):
    async with handle.request("GET", path, caller=caller) as resp:
        await resp.read()
        return resp.status, resp.headers.get("X-Egress-Error")


SWITCH_CASES = [  # (id, what is suspended, who calls what, expected answer)
    ("upstream_suspended", "/admin/upstreams/pay", ("checkout", "/pay/x"), (503, "upstream_suspended")),
    ("other_upstream_unaffected", "/admin/upstreams/pay", ("checkout", "/ship/x"), (200, None)),
    ("caller_suspended", "/admin/callers/billing", ("billing", "/pay/x"), (403, "caller_suspended")),
    ("caller_suspended_everywhere", "/admin/callers/billing", ("billing", "/ship/x"), (403, "caller_suspended")),
    ("other_caller_unaffected", "/admin/callers/billing", ("checkout", "/pay/x"), (200, None)),
]


@pytest.mark.parametrize("case, target, call, expected", SWITCH_CASES, ids=[c[0] for c in SWITCH_CASES])
async def test_suspend_then_resume(switched, case, target, call, expected):
    handle, fake = switched
    caller, path = call
    assert await status_of(handle, path, caller) == (200, None)
    hits = fake.hits
    status, record = await admin(handle, target + "/suspend", {"reason": "partner compromised", "by": "alice"})
    assert status == 200 and record["suspended"] is True and record["reason"] == "partner compromised"
    assert await status_of(handle, path, caller) == expected
    if expected[0] != 200:
        assert fake.hits == hits, "nothing is sent while suspended"
    assert (await admin(handle, target + "/resume", {"reason": "rotated"}))[0] == 200
    assert await status_of(handle, path, caller) == (200, None)


async def test_problem_body_names_the_reason_and_no_operator_text(switched):
    handle, _ = switched
    await admin(handle, "/admin/upstreams/pay/suspend", {"reason": "ticket SEC-42 MARKER"})
    async with handle.request("GET", "/pay/x") as resp:
        doc = await resp.json()
    assert doc["reason"] == "upstream_suspended" and doc["upstream"] == "pay" and doc["status"] == 503
    assert "MARKER" not in str(doc)


BAD_ADMIN_CASES = [
    ("no_reason", "/admin/upstreams/pay/suspend", {}, 400),
    ("blank_reason", "/admin/upstreams/pay/suspend", {"reason": "  \n "}, 400),
    ("reason_not_text", "/admin/upstreams/pay/suspend", {"reason": 5}, 400),
    ("body_not_object", "/admin/upstreams/pay/suspend", ["x"], 400),
    ("unknown_upstream", "/admin/upstreams/nope/suspend", {"reason": "x"}, 404),
]


@pytest.mark.parametrize("case, path, body, expected", BAD_ADMIN_CASES, ids=[c[0] for c in BAD_ADMIN_CASES])
async def test_bad_admin_requests_are_refused_clearly(switched, case, path, body, expected):
    handle, _ = switched
    status, doc = await admin(handle, path, body)
    assert status == expected and doc["error"]
    assert (await admin(handle, "/admin/suspensions", method="GET"))[1] == {"suspended": []}


async def test_audit_line_inventory_and_listing(switched, caplog):
    caplog.set_level(logging.INFO, logger="egress")
    handle, _ = switched
    await admin(handle, "/admin/upstreams/pay/suspend", {"reason": "partner compromised", "by": "alice"})
    await admin(handle, "/admin/callers/billing/suspend", {"reason": "leaked key"})
    audit = [r.fields for r in caplog.records if getattr(r, "fields", {}).get("audit") == "kill_switch"]
    assert [(a["target"], a["name"], a["suspended"], a["reason"], a["by"]) for a in audit] == [
        ("upstream", "pay", True, "partner compromised", "alice (admin_token)"),
        ("caller", "billing", True, "leaked key", "admin_token")]
    assert not any(TOKEN in str(getattr(r, "fields", "")) + r.getMessage() for r in caplog.records)
    _, listing = await admin(handle, "/admin/suspensions", method="GET")
    assert [(s["target"], s["name"]) for s in listing["suspended"]] == [("caller", "billing"), ("upstream", "pay")]
    _, inventory = await admin(handle, "/admin/inventory", method="GET")
    by_name = {u["name"]: u for u in inventory["upstreams"]}
    assert by_name["pay"]["suspended"]["reason"] == "partner compromised"
    assert by_name["ship"]["suspended"] is None
    assert {s["name"] for s in inventory["suspended"]} == {"pay", "billing"}


async def test_kept_across_reload(switched, tmp_path):
    handle, fake = switched
    await admin(handle, "/admin/upstreams/pay/suspend", {"reason": "partner compromised"})
    config = tmp_path / "egress.yaml"
    doc = two_upstreams(fake.url)
    doc["admin_token"] = TOKEN
    config.write_text(yaml.safe_dump(doc))
    assert await handle.state.reload(config) == []
    assert await status_of(handle, "/pay/x") == (503, "upstream_suspended")


# ---------------------------------------------------------------- across replicas


@pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON)
async def test_replicas_obey_within_a_second_through_redis(tmp_path, redis_server, provider):
    fake = await provider()
    doc = {"store": redis_server.url, "admin_token": "${ADMIN_TOKEN}", "drain_timeout": 2, "upstreams": [
        {"name": "pay", "url": fake.url + "/v1", "allow_private_addresses": True, "retry": {"attempts": 1}}]}
    env = {"ADMIN_TOKEN": TOKEN}
    a, b = EgressProcess(doc, tmp_path, env=env), EgressProcess(doc, tmp_path, env=env)
    late = None
    await asyncio.gather(a.astart(), b.astart())
    try:
        await asyncio.sleep(0.5)   # each replica's store connects and subscribes
        async with aiohttp.ClientSession() as session:
            async def get(proc):
                async with session.get(proc.url + "/pay/x", headers={"X-Egress-Caller": "checkout"}) as resp:
                    return resp.status, resp.headers.get("X-Egress-Error")

            async def until(proc, expected, limit=1.0):
                started = time.monotonic()
                while (got := await get(proc)) != expected:
                    assert time.monotonic() - started < limit, f"{proc.url} still answers {got}"
                    await asyncio.sleep(0.01)
                return time.monotonic() - started

            assert await get(b) == (200, None)
            async with session.post(a.admin_url + "/admin/upstreams/pay/suspend", headers=AUTH,
                                    json={"reason": "partner compromised"}) as resp:
                assert resp.status == 200
            took = await until(b, (503, "upstream_suspended"))
            print(f"\nsuspension reached the other replica in {took * 1000:.0f} ms")
            late = await EgressProcess(doc, tmp_path, env=env).astart()   # a replica started afterwards
            await until(late, (503, "upstream_suspended"), limit=3.0)
            async with session.post(b.admin_url + "/admin/upstreams/pay/resume", headers=AUTH,
                                    json={"reason": "rotated"}) as resp:
                assert resp.status == 200
            took = await until(a, (200, None))
            await until(late, (200, None))
            print(f"resume reached the other replica in {took * 1000:.0f} ms")
        assert "kill_switch" in a.logs() and "kill_switch" in b.logs() and TOKEN not in a.logs() + b.logs()
    finally:
        for proc in (a, b, late):
            if proc is not None:
                await asyncio.to_thread(proc.stop)


@pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON)
async def test_survives_a_redis_restart_and_changes_made_while_it_was_down(proxy, provider, redis_server):
    fake = await provider()
    doc = two_upstreams(fake.url)
    doc["store"] = redis_server.url
    env = {"ADMIN_TOKEN": TOKEN}
    a, b = await proxy(doc, environ=env), await proxy(doc, environ=env)

    async def until(handle, expected, limit=10.0):
        started = time.monotonic()
        while (got := await status_of(handle, "/pay/x")) != expected:
            assert time.monotonic() - started < limit, f"still {got}"
            await asyncio.sleep(0.05)

    await admin(a, "/admin/upstreams/pay/suspend", {"reason": "partner compromised"})
    await until(b, (503, "upstream_suspended"))
    redis_server.kill()
    redis_server.start()                     # empty: no persistence; the replicas write back
    await asyncio.sleep(1.0)
    c = await proxy(doc, environ=env)        # started after the restart: learns it from Redis
    await until(c, (503, "upstream_suspended"))
    redis_server.kill()
    assert (await admin(b, "/admin/upstreams/pay/resume", {"reason": "rotated"}))[0] == 200
    assert await status_of(b, "/pay/x") == (200, None), "local at once, Redis down or not"
    redis_server.start()
    await until(a, (200, None))              # queued on b, written once Redis was back
    await until(c, (200, None))
