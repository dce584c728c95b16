"""Spans and events from the real proxy, one named case per anomaly, into an in-memory exporter.

Sampling is `traceidratio` at 0: every span seen here was kept because the exchange was
anomalous; normal exchanges must produce no span at all."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.fakes import make_jwt

RATIO_0 = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}
ISSUER = "https://auth.internal.example"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    exporter.provider = provider
    return exporter


def upstream(url, **over):
    doc = {"name": "pay", "url": url + "/v1", "callers": ["checkout"], "allow_private_addresses": True,
           "timeout": {"connect": 1, "total": 2}, "retry": {"attempts": 1}}
    doc.update(over)
    return doc


async def ok(request):
    return web.json_response({"ok": True})


def server_and_clients(exporter):
    done = exporter.get_finished_spans()
    servers = [s for s in done if s.kind is SpanKind.SERVER]
    assert len(servers) == 1, [s.name for s in done]
    server = servers[0]
    clients = sorted((s for s in done if s.kind is SpanKind.CLIENT), key=lambda s: s.attributes["egress.attempt"])
    for c in clients:
        assert c.parent.span_id == server.context.span_id
        assert c.context.trace_id == server.context.trace_id
    return server, clients


def events(span, name):
    return [e for e in span.events if e.name == name]


async def test_normal_traffic_at_ratio_zero_builds_no_span(egress, providers, spans):
    p = await providers(ok)
    proxy = await egress([upstream(p.url)], environ=RATIO_0, tracer_provider=spans.provider)
    for i in range(20):
        status, _, _ = await proxy.call("GET", f"/pay/items/{i}")
        assert status == 200
    assert spans.get_finished_spans() == ()


async def test_destination_denied(egress, providers, spans):
    p = await providers(ok)
    proxy = await egress([upstream(p.url)], environ=RATIO_0, tracer_provider=spans.provider)
    status, headers, body = await proxy.call("GET", "/unknown/x")
    assert status == 403 and headers["X-Egress-Error"] == "destination_not_allowed"
    server, clients = server_and_clients(spans)
    assert clients == []
    assert server.attributes["error.type"] == "destination_not_allowed"
    assert server.attributes["http.response.status_code"] == 403
    assert f"{server.context.trace_id:032x}" == orjson.loads(body)["trace_id"]


async def test_caller_denied(egress, providers, spans):
    p = await providers(ok)
    proxy = await egress([upstream(p.url)], environ=RATIO_0, tracer_provider=spans.provider)
    status, _, body = await proxy.call("GET", "/pay/x", caller="reporting")
    assert status == 403
    server, clients = server_and_clients(spans)
    assert server.attributes["error.type"] == "caller_not_allowed"
    assert server.attributes["egress.caller"] == "reporting"
    assert server.attributes["egress.upstream"] == "pay"
    assert clients == [] and p.hits == 0


async def test_upstream_timeout(egress, providers, spans):
    async def slow(request):
        await asyncio.sleep(3)
        return web.json_response({})
    p = await providers(slow)
    proxy = await egress([upstream(p.url, timeout={"connect": 0.5, "total": 0.5})], environ=RATIO_0,
                         tracer_provider=spans.provider)
    status, _, body = await proxy.call("GET", "/pay/slow")
    assert status == 504
    server, clients = server_and_clients(spans)
    assert server.attributes["error.type"] == "upstream_timeout"
    assert server.status.status_code is StatusCode.ERROR
    assert len(clients) == 1 and clients[0].attributes["url.full"] == p.url + "/v1/slow"
    assert clients[0].end_time >= clients[0].start_time
    assert f"{server.context.trace_id:032x}" == orjson.loads(body)["trace_id"]


async def test_address_blocked(egress, providers, spans):
    p = await providers(ok)
    proxy = await egress([upstream(p.url, allow_private_addresses=False)], environ=RATIO_0,
                         tracer_provider=spans.provider)
    status, headers, _ = await proxy.call("GET", "/pay/x")
    assert status == 502 and headers["X-Egress-Error"] == "address_blocked"
    server, clients = server_and_clients(spans)
    assert server.attributes["error.type"] == "address_blocked"
    [event] = events(server, "egress.address_blocked")
    assert event.attributes["host"] == "127.0.0.1"
    assert clients[0].attributes["error.type"] == "address_blocked"
    assert p.hits == 0


async def test_retry_after_5xx(egress, providers, spans):
    seen = []

    async def flaky(request):
        seen.append(1)
        return web.json_response({"n": len(seen)}, status=503 if len(seen) < 3 else 200)
    p = await providers(flaky)
    proxy = await egress([upstream(p.url, retry={"attempts": 3, "backoff": 0.01, "max_backoff": 0.02,
                                                  "budget": 1.0})],
                         environ=RATIO_0, tracer_provider=spans.provider)
    status, _, _ = await proxy.call("GET", "/pay/flaky")
    assert status == 200
    server, clients = server_and_clients(spans)
    retries = events(server, "egress.retry")
    assert len(retries) == 2 and retries[0].attributes["cause"] == "status:503"
    assert [c.attributes["http.response.status_code"] for c in clients] == [503, 503, 200]
    assert [c.attributes.get("http.request.resend_count") for c in clients] == [None, 1, 2]
    assert clients[0].attributes["error.type"] == "503"
    assert clients[0].attributes["server.address"] == "127.0.0.1"
    assert "error.type" not in server.attributes


async def test_internal_token_stripped(egress, providers, spans):
    p = await providers(ok)
    proxy = await egress([upstream(p.url)], environ=RATIO_0, tracer_provider=spans.provider)
    token = make_jwt(ISSUER)
    status, _, _ = await proxy.call("GET", "/pay/x", headers={"X-Debug": token})
    assert status == 200
    server, _ = server_and_clients(spans)
    [event] = events(server, "egress.token_stripped")
    assert dict(event.attributes) == {"where": "header", "name": "x-debug", "kind": "internal_jwt"}


async def test_contract_violation_names_operation_and_keyword(egress, providers, spans):
    async def bad_charge(request):
        return web.json_response({"id": "ch_1", "amount": -5, "currency": "usd", "status": "succeeded",
                                  "created": "2024-01-01T00:00:00Z"})
    p = await providers(bad_charge)
    proxy = await egress([upstream(p.url, contract="payments.yaml")], environ=RATIO_0,
                         tracer_provider=spans.provider)
    status, headers, _ = await proxy.call("GET", "/pay/charges/ch_1")
    assert status == 502 and headers["X-Egress-Error"] == "contract_violation"
    server, clients = server_and_clients(spans)
    assert server.name == "GET /charges/{id}"
    assert server.attributes["egress.operation"] == "GET /charges/{id}"
    assert server.attributes["http.route"] == "GET /charges/{id}"
    assert server.attributes["egress.contract.result"] == "violated"
    [event] = events(server, "egress.contract_violation")
    assert event.attributes["keyword"] == "minimum"
    assert event.attributes["instance_path"] == "/amount"
    assert "-5" not in repr(dict(event.attributes))


async def test_continues_caller_trace_and_keeps_ids(egress, providers, spans):
    p = await providers(ok)
    proxy = await egress([upstream(p.url)], environ={"OTEL_TRACES_SAMPLER": "always_on"},
                         tracer_provider=spans.provider)
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    status, _, _ = await proxy.call("GET", "/pay/x", headers={"traceparent": f"00-{trace_id}-{parent}-01"})
    assert status == 200
    server, clients = server_and_clients(spans)
    assert f"{server.context.trace_id:032x}" == trace_id
    assert f"{server.parent.span_id:016x}" == parent and server.parent.is_remote
    assert len(clients) == 1 and clients[0].attributes["http.response.status_code"] == 200


async def test_anomaly_event_from_baseline(egress, providers, spans):
    delay = {"s": 0.0}

    async def timed(request):
        await asyncio.sleep(delay["s"])
        return web.json_response({"ok": True})
    p = await providers(timed)
    proxy = await egress([upstream(p.url)], environ={**RATIO_0, "EGRESS_ANOMALY_WARMUP": "10"},
                         tracer_provider=spans.provider)
    for _ in range(12):
        assert (await proxy.call("GET", "/pay/items/1"))[0] == 200
    assert spans.get_finished_spans() == ()
    delay["s"] = 0.3
    assert (await proxy.call("GET", "/pay/items/1"))[0] == 200
    server, _ = server_and_clients(spans)
    [event] = events(server, "egress.anomaly")
    assert event.attributes["kind"] == "latency"
    assert event.attributes["observed"] > 3 * event.attributes["baseline"]
