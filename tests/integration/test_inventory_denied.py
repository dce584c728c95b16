"""The inventory's denied destinations record what was asked for (prefix name, absolute-form
host, Host header) and who asked (the caller, identified although routing refused)."""

import orjson
import pytest

from tests.conftest import base_config


def _cases(provider_port: int):
    return [
        # (request path or absolute URL, extra headers, caller, expected host, via, caller)
        ("/evil/exfiltrate?q=secret", {}, "checkout", "evil", "prefix", "checkout"),
        ("/Evil/x", {}, "billing", "evil", "prefix", "billing"),
        ("/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln/x", {}, "checkout", "(invalid)", "prefix", "checkout"),  # a token: {id}
        ("http://api.unknown.example/v1/x?token=t0p", {}, "checkout", "api.unknown.example", "proxy", "checkout"),
        ("/other/path", {"Host": f"127.0.0.1:{provider_port}"}, "checkout", "127.0.0.1", "host", "checkout"),
        ("/evil/x", {}, None, "evil", "prefix", "-"),                 # no caller header: "-"
        ("/evil/x", {}, "bad name!", "evil", "prefix", "-"),          # not a service name: "-"
        ("/evil/x", {}, "reporting", "evil", "prefix", "reporting"),  # any named caller is recorded
    ]


CASE_IDS = ["prefix", "prefix-lower-cased", "prefix-token-never-recorded", "absolute-form", "host-header-wrong-path",
            "caller-missing", "caller-malformed", "caller-not-in-any-allowlist"]


@pytest.mark.parametrize("index", range(8), ids=CASE_IDS)
async def test_denied_destination_records_target_and_caller(proxy, provider, index):
    p = await provider()
    target, headers, caller, host, via, who = _cases(p.port)[index]
    doc = base_config([{"name": "payments", "url": f"{p.url}/v1", "callers": ["checkout", "billing"],
                        "allow_private_addresses": True}], callers={"required": True})
    px = await proxy(doc)
    if target.startswith("http://"):
        hdrs = {**headers, **({"X-Egress-Caller": caller} if caller else {})}
        resp = await px.session.get(target, proxy=px.url, headers=hdrs)
    else:
        resp = await px.request("GET", target, caller=caller, headers=headers)
    body = await resp.json(content_type=None)
    assert resp.status == 403, body
    assert body["reason"] == "destination_not_allowed" and resp.headers["X-Egress-Error"] == body["reason"]
    assert p.hits == 0
    async with px.session.get(px.admin_url + "/admin/inventory") as inv_resp:
        inv = orjson.loads(await inv_resp.read())
    assert inv["denied_destinations"] == [
        {"host": host, "via": via, "caller": who, "count": 1, "last_seen": inv["denied_destinations"][0]["last_seen"]}]
    text = orjson.dumps(inv).decode()
    for secret in ("secret", "t0p", "exfiltrate", "eyJ"):  # never the path, the query or a token
        assert secret not in text
