"""The fast span path's exporter (telemetry._OtlpBytes) against a real OTLP/HTTP receiver: one
request per batch whether its spans were encoded by otlp.py or left to the SDK, failures
counted as failures, nothing sent after shutdown."""

from __future__ import annotations

import asyncio

from aiohttp import web
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from egress.observe import otlp, telemetry
from tests.fakes import Served
from tests.unit.observe.test_otlp import failed_with_retries, normal, _with_event

RESOURCE = Resource.create({"service.name": "egress-test"})


def _exporter(url, **kw):
    exporter = telemetry._OtlpBytes(OTLPSpanExporter(endpoint=url + "/v1/traces", timeout=2, **kw))
    exporter.set_resource(RESOURCE, telemetry.SCOPE)
    return exporter


def _spans(receiver):
    return [s for _, s in receiver.spans()]


async def test_mixed_batch_of_encoded_and_sdk_spans_is_one_request(otlp_receiver):
    exporter = _exporter(otlp_receiver.url)
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    a, b = normal(), failed_with_retries()
    telemetry.SpanBuilder(provider).build(b, "GET /items/{id}")
    sdk_spans = list(memory.get_finished_spans())
    encoded = [telemetry._Encoded(d) for d in otlp.encode_exchange(
        a, "GET /charges/{id}", telemetry.server_attrs, telemetry.client_attrs, telemetry.clean_attrs)]
    assert await asyncio.to_thread(exporter.export, encoded + sdk_spans) is SpanExportResult.SUCCESS
    [req] = otlp_receiver.requests
    assert len(req.resource_spans) == 1 and len(req.resource_spans[0].scope_spans) == 1
    spans = _spans(otlp_receiver)
    assert [s.span_id.hex() for s in spans if s.kind == s.SPAN_KIND_SERVER] == [a.span_id, b.span_id]
    assert len(spans) == 2 + 4
    assert spans[2:] == list(encode_spans(sdk_spans).resource_spans[0].scope_spans[0].spans)
    exporter.shutdown()
    assert await asyncio.to_thread(exporter.export, encoded) is SpanExportResult.FAILURE
    assert len(otlp_receiver.requests) == 1


async def test_fast_spans_leaves_what_it_cannot_write_to_the_sdk(otlp_receiver):
    exporter = _exporter(otlp_receiver.url)
    processor = SimpleSpanProcessor(telemetry._Counting(exporter, lambda stage, n: None))
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(processor)
    fast = telemetry.FastSpans(provider, processor, SpanLimits())
    odd, ok = _with_event(big=2**63, small=1), normal()   # protobuf refuses 2**63: the SDK drops it alone
    await asyncio.to_thread(fast.build, odd, "GET /charges/{id}")
    await asyncio.to_thread(fast.build, ok, "GET /charges/{id}")
    spans = _spans(otlp_receiver)
    servers = [s for s in spans if s.kind == s.SPAN_KIND_SERVER]
    assert [s.span_id.hex() for s in servers] == [odd.span_id, ok.span_id]
    [anomaly] = [e for e in servers[0].events if e.name == "egress.anomaly"]
    assert [kv.key for kv in anomaly.attributes] == ["small"]
    assert [e.name for e in servers[1].events] == ["egress.token_stripped", "egress.credential_injected"]


class Refusing(Served):
    async def start(self):
        async def handle(request):
            await request.read()
            self.hits += 1
            return web.Response(status=400)
        self.hits = 0
        await self.serve(handle, post="/v1/traces")
        return self


async def test_failures_are_failures(otlp_receiver):
    encoded = [telemetry._Encoded(d) for d in otlp.encode_exchange(
        normal(), "x", telemetry.server_attrs, telemetry.client_attrs, telemetry.clean_attrs)]
    async with Refusing() as refusing:
        exporter = _exporter(refusing.base_url)
        assert await asyncio.to_thread(exporter.export, encoded) is SpanExportResult.FAILURE
        assert refusing.hits == 1
    too_small = _exporter(otlp_receiver.url, max_request_size=10)
    assert await asyncio.to_thread(too_small.export, encoded) is SpanExportResult.FAILURE
    assert otlp_receiver.requests == []


async def test_urllib3_and_requests_transports_send_the_same_request(otlp_receiver, monkeypatch, tmp_path):
    """The lighter transport (no proxy, netrc or credential provider in the environment) and
    requests (kept when a proxy variable is set; NO_PROXY sends this one direct) deliver the
    same body and the same OTLP headers to a real receiver."""
    from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport
    from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport
    encoded = [telemetry._Encoded(d) for d in otlp.encode_exchange(
        normal(), "x", telemetry.server_attrs, telemetry.client_attrs, telemetry.clean_attrs)]
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url, "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme"}
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NETRC"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    kinds = []
    for proxy in (None, "http://127.0.0.1:9"):
        if proxy:
            monkeypatch.setenv("HTTP_PROXY", proxy)
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        exporter = telemetry._exporter(environ)
        exporter.set_resource(RESOURCE, telemetry.SCOPE)
        kinds.append(type(exporter.inner._client._transport))
        assert await asyncio.to_thread(exporter.export, encoded) is SpanExportResult.SUCCESS
        exporter.shutdown()
    assert kinds == [Urllib3HTTPTransport, RequestsHTTPTransport]
    a, b = otlp_receiver.requests
    assert a == b and a.SerializeToString() == b.SerializeToString()
    for h in otlp_receiver.headers:
        assert h["Content-Type"] == "application/x-protobuf" and h["x-tenant"] == "acme"
        assert h["User-Agent"].startswith("OTel-OTLP-Exporter-Python/")
