"""End to end: OTLP/HTTP export to a real receiver, /metrics, /admin/inventory, access log."""

from __future__ import annotations

import orjson
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from egress.observe.inventory import render_table


async def ok(request):
    return web.json_response({"ok": True})


async def not_found(request):
    return web.json_response({"error": "nope"}, status=404)


def upstream(url, **over):
    doc = {"name": "pay", "url": url + "/v1", "callers": ["checkout", "billing"], "allow_private_addresses": True,
           "timeout": {"connect": 1, "total": 2}, "retry": {"attempts": 1}}
    doc.update(over)
    return doc


def attrs(kvs):
    out = {}
    for kv in kvs:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value"))
    return out


async def test_otlp_http_export_end_to_end(egress, providers, otlp_receiver):
    p = await providers(ok)
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url, "OTEL_SERVICE_NAME": "egress-test",
               "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci,team=platform",
               "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme",
               "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}
    proxy = await egress([upstream(p.url)], environ=environ)
    status, _, body = await proxy.call("GET", "/nowhere/x")          # anomalous: kept
    assert status == 403
    trace_id = orjson.loads(body)["trace_id"]
    assert (await proxy.call("GET", "/pay/items/1"))[0] == 200     # normal at ratio 0: dropped
    await proxy.obs.shutdown()                                      # flush the batch processor
    spans = list(otlp_receiver.spans())
    assert len(spans) == 1
    resource, span = spans[0]
    res = attrs(resource.attributes)
    assert res["service.name"] == "egress-test" and res["deployment.environment"] == "ci"
    assert span.trace_id.hex() == trace_id
    assert span.kind == span.SPAN_KIND_SERVER
    a = attrs(span.attributes)
    assert a["error.type"] == "destination_not_allowed" and a["http.request.method"] == "GET"
    assert a["http.response.status_code"] == 403
    assert otlp_receiver.headers[0].get("x-tenant") == "acme"
    metrics = (await proxy.admin_get("/metrics")).decode()
    assert 'egress_trace_spans_total{stage="exported"} 1.0' in metrics
    assert 'egress_trace_spans_total{stage="ended"} 1.0' in metrics


async def test_otlp_export_carries_events_and_client_spans(egress, providers, otlp_receiver):
    calls = []

    async def flaky(request):
        calls.append(1)
        return web.json_response({}, status=502 if len(calls) == 1 else 200)
    p = await providers(flaky)
    environ = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp_receiver.url + "/v1/traces",
               "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "OTEL_TRACES_SAMPLER": "always_off"}
    proxy = await egress([upstream(p.url, retry={"attempts": 2, "backoff": 0.01, "budget": 1.0})], environ=environ)
    assert (await proxy.call("GET", "/pay/items/1"))[0] == 200
    await proxy.obs.shutdown()
    spans = [s for _, s in otlp_receiver.spans()]
    server = [s for s in spans if s.kind == s.SPAN_KIND_SERVER]
    clients = [s for s in spans if s.kind == s.SPAN_KIND_CLIENT]
    assert len(server) == 1 and len(clients) == 2
    assert {c.parent_span_id for c in clients} == {server[0].span_id}
    [retry] = [e for e in server[0].events if e.name == "egress.retry"]
    assert attrs(retry.attributes)["cause"] == "status:502"
    assert sorted(attrs(c.attributes)["http.response.status_code"] for c in clients) == [200, 502]


async def test_metrics_text(egress, providers):
    p = await providers(ok)
    q = await providers(not_found)
    proxy = await egress([upstream(p.url), upstream(q.url, name="maps", contract="payments.yaml")])
    for i in range(5):
        await proxy.call("GET", f"/pay/users/{1000 + i}/orders")
    await proxy.call("GET", "/maps/charges/ch_9")
    await proxy.call("GET", "/pay/x", caller="reporting")
    await proxy.call("GET", "/elsewhere")
    text = (await proxy.admin_get("/metrics")).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    req = {tuple(sorted(s.labels.items())): s.value for s in families["egress_requests"].samples
           if s.name == "egress_requests_total"}
    assert req[(("operation", "GET /users/{id}/orders"), ("outcome", "ok"), ("status_class", "2xx"),
                ("upstream", "pay"))] == 5
    # the 404 body does not follow contracts/schemas/error.json: enforced as a violation
    assert req[(("operation", "GET /charges/{id}"), ("outcome", "contract_violation"), ("status_class", "5xx"),
                ("upstream", "maps"))] == 1
    violations = [s for s in families["egress_contract_violations"].samples if s.name.endswith("_total")]
    assert violations and all(s.labels["upstream"] == "maps" and s.labels["keyword"] for s in violations)
    assert req[(("operation", "GET /x"), ("outcome", "caller_not_allowed"), ("status_class", "4xx"),
                ("upstream", "pay"))] == 1
    assert req[(("operation", ""), ("outcome", "destination_not_allowed"), ("status_class", "4xx"),
                ("upstream", ""))] == 1
    hist = [s for s in families["egress_upstream_attempt_duration_seconds"].samples
            if s.name.endswith("_count") and s.labels["upstream"] == "pay"]
    assert hist[0].value == 5
    assert "egress_breaker_state" in families and "egress_breaker_store_up" in families
    proxy.obs.on_store_event("redis_down", "ConnectionError talking to redis:6379/0")
    text = (await proxy.admin_get("/metrics")).decode()
    assert "egress_breaker_store_up 0.0" in text
    assert 'egress_breaker_store_events_total{kind="redis_down"} 1.0' in text


async def test_breaker_state_metric_and_inventory(egress, providers):
    async def down(request):
        return web.json_response({}, status=503)
    p = await providers(down)
    proxy = await egress([upstream(p.url, breaker={"failures": 2, "reset_after": 30})])
    for _ in range(3):
        await proxy.call("GET", "/pay/items/1")
    text = (await proxy.admin_get("/metrics")).decode()
    assert 'egress_breaker_state{breaker="pay",state="open"} 1.0' in text
    assert 'egress_breaker_transitions_total{breaker="pay",to="open"} 1.0' in text
    inv = orjson.loads(await proxy.admin_get("/admin/inventory"))
    [pay] = inv["upstreams"]
    assert pay["breakers"]["pay"]["state"] == "open"
    assert pay["reasons"] == {"circuit_open": 1}


async def test_inventory(egress, providers, egress_logs):
    async def drifting(request):
        return web.json_response({"id": "ch_1", "amount": 5, "currency": "usd", "status": "succeeded",
                                  "created": "2024-01-01T00:00:00Z", "surprise": 1})
    p = await providers(drifting)
    proxy = await egress([upstream(p.url, contract="payments.yaml")])
    await proxy.call("GET", "/pay/charges/ch_1")
    await proxy.call("GET", "/pay/charges/ch_2", caller="billing")
    await proxy.call("GET", "/pay/refunds/re_123456")
    await proxy.call("GET", "/somewhere/else")
    inv = orjson.loads(await proxy.admin_get("/admin/inventory"))
    [pay] = inv["upstreams"]
    assert pay["calls"] == 3 and pay["contract"] == "payments.yaml" and pay["mode"] == "enforce"
    assert pay["contract_coverage"] == round(2 / 3, 4)
    ops = {o["operation"]: o for o in pay["operations"]}
    assert ops["GET /charges/{id}"]["callers"] == {"billing": 1, "checkout": 1}
    assert ops["GET /charges/{id}"]["matched_contract"] is True
    assert ops["GET /charges/{id}"]["drift_fields"] == ["/surprise"]
    assert ops["GET /refunds/{id}"]["matched_contract"] is False
    assert inv["denied_destinations"][0]["count"] == 1
    table = render_table(inv)
    assert "GET /charges/{id}" in table and "coverage=67%" in table and "denied destinations" in table
    access = [orjson.loads(line) for line in egress_logs.lines if '"msg":"access"' in line]
    assert len(access) == 4
    first = access[0]
    assert first["operation"] == "GET /charges/{id}" and first["status"] == 200 and first["caller"] == "checkout"
    assert len(first["trace_id"]) == 32 and len(first["span_id"]) == 16 and first["attempts"] == 1
    assert set(first) >= {"caller", "upstream", "operation", "method", "status", "duration_ms", "contract",
                          "reason", "attempts", "trace_id", "span_id"}
