"""The fast span path (otlp.py + telemetry.FastSpans) against the SDK path (SpanBuilder +
the SDK's own OTLP encoder): the same exchange must give the same ExportTraceServiceRequest
bytes, ids and all; what the fast path leaves to the SDK still leaves complete."""

from __future__ import annotations

import random

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from egress.exchange import StreamFacts
from egress.observe import otlp, telemetry
from egress.observe.observe import Observability

from .factories import exchange, settings

RESOURCE = Resource.create({"service.name": "egress-test", "team": "platform"})


def _sdk(ex, operation, seed):
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    builder = telemetry.SpanBuilder(provider)
    builder.ids._rand = random.Random(seed)
    builder.build(ex, operation)
    return encode_spans(memory.get_finished_spans()).SerializeToString()


def _fast(ex, operation, seed, monkeypatch):
    monkeypatch.setattr(otlp, "_rand", random.Random(seed))
    exporter = telemetry._OtlpBytes(None)
    exporter.set_resource(RESOURCE, telemetry.SCOPE)
    resource, scope, rschema, sschema = exporter.envelope
    spans = otlp.encode_exchange(ex, operation, telemetry.server_attrs, telemetry.client_attrs,
                                 telemetry.clean_attrs)
    return otlp.request(resource, scope, spans, rschema, sschema)


def _up():
    return settings("pay").upstreams[0]


def normal():
    ex = exchange(_up(), path="/charges/ch_1", operation="GET /charges/{id}")
    ex.event("egress.token_stripped", anomaly=False, where="header", name="authorization", kind="configured")
    ex.event("egress.credential_injected", anomaly=False, header="authorization")
    return ex


def continued():
    ex = normal()
    ex.traceparent, ex.parent_sampled = "00f067aa0ba902b7", True
    return ex


def failed_with_retries():
    ex = exchange(_up(), status=504, reason="upstream_timeout", attempts=3)
    ex.attempts[0].status, ex.attempts[1].status, ex.attempts[1].error = 503, None, "upstream_timeout"
    ex.attempts[2].end_ns = 0  # never ended: the span ends with the exchange
    ex.event("egress.retry", cause="status:503", attempt=2, delay=0.01)
    ex.event("egress.retry", cause="timeout", attempt=3, delay=-0.5)
    return ex


def denied():
    ex = exchange(None, status=403, reason="destination_not_allowed", caller=None)
    ex.denied_host = "evil.example"
    ex.event("egress.destination_denied", reason="destination_not_allowed", host="evil.example", via="prefix")
    return ex


def values():
    """Every attribute type an event may carry once clean_attrs passed it."""
    ex = exchange(_up(), status=502, reason="contract_violation", path="/caf\u00e9/\u00fcber")
    ex.event("egress.contract_drift", anomaly=False, fields=["/a", "/b\u00e9", "/" + "x" * 300])
    ex.event("egress.contract_violation", instance_path="", schema_path="/properties/amount/minimum",
             keyword="minimum", ints=[1, -2, 2**40], mixed=[1, "a", True], bools=[True, False], floats=[1.5, -0.0],
             big=-(2**63), zero=0, no=False, nested={"k": "v"}, nothing=None, empty=[], ratio=float("inf"))
    ex.event("", anomaly=False)
    return ex


def streamed():
    ex = normal()
    ex.stream = StreamFacts("sse", first_byte_s=0.0123456, items=7, bytes=1234, violations=1, end="complete")
    return ex


def no_operation():
    ex = exchange(_up(), path="/items/1", status=404, caller=None)
    ex.method = "PROPFIND-A-VERY-LONG-METHOD"
    return ex


CASES = [("normal", normal, "GET /charges/{id}"), ("continued-trace", continued, "GET /charges/{id}"),
         ("failed-retries", failed_with_retries, "GET /items/{id}"), ("denied", denied, ""),
         ("value-types", values, "GET /caf\u00e9/{id}"), ("streamed", streamed, "GET /charges/{id}"),
         ("no-operation-long-method", no_operation, "")]


@pytest.mark.parametrize("make, operation", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fast_bytes_are_the_sdk_bytes(make, operation, monkeypatch):
    ex = make()
    fast = _fast(ex, operation, 7, monkeypatch)
    sdk = _sdk(ex, operation, 7)
    assert fast == sdk
    msg = ExportTraceServiceRequest.FromString(fast)  # and a receiver reads it
    spans = msg.resource_spans[0].scope_spans[0].spans
    assert len(spans) == 1 + len(ex.attempts)
    assert spans[-1].trace_id.hex() == ex.trace_id and spans[-1].span_id.hex() == ex.span_id


def test_client_span_ids_differ_and_parent_the_server(monkeypatch):
    ex = failed_with_retries()
    spans = ExportTraceServiceRequest.FromString(_fast(ex, "x", 1, monkeypatch)).resource_spans[0].scope_spans[0].spans
    server = spans[-1]
    assert len({s.span_id for s in spans}) == 4
    assert all(c.parent_span_id == server.span_id and c.trace_id == server.trace_id for c in spans[:-1])


@pytest.mark.parametrize("why, make, limits", [
    ("int-outside-int64", lambda: _with_event(big=2**63), {}),
    ("more-events-than-limit", lambda: _with_event(a=1), {"max_events": 1}),
    ("more-event-attributes-than-limit", lambda: _with_event(a=1, b=2), {"max_event_attributes": 1}),
    ("more-span-attributes-than-limit", normal, {"max_attributes": 3}),
], ids=lambda v: v if isinstance(v, str) else "")
def test_unencodable_goes_to_the_sdk(why, make, limits):
    ex = make()
    with pytest.raises(otlp.Unencodable):
        otlp.encode_exchange(ex, "op", telemetry.server_attrs, telemetry.client_attrs, telemetry.clean_attrs,
                             **limits)


def _with_event(**attrs):
    ex = normal()
    ex.event("egress.anomaly", **attrs)
    return ex


def test_varint_and_any_value_edges():
    for n in (0, 1, 127, 128, 16383, 16384, 2**35, 2**64 - 1):
        from google.protobuf.internal.decoder import _DecodeVarint
        assert _DecodeVarint(otlp.varint(n), 0) == (n, len(otlp.varint(n)))
    with pytest.raises(otlp.Unencodable):
        otlp.any_value(b"bytes")
    with pytest.raises(otlp.Unencodable):
        otlp.any_value(-(2**63) - 1)


def test_our_otlp_http_exporter_takes_the_fast_path():
    """With the installed SDK the seam exists; if a release moves it this fails (the plain
    exporter would still export, only slower)."""
    obs = Observability(settings("pay"), environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    try:
        assert isinstance(obs.spans, telemetry.FastSpans)
        assert telemetry._OtlpBytes.usable(OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces"))
    finally:
        obs._owned[0].shutdown()


@pytest.mark.parametrize("environ, fast", [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, False),
    ({"OTEL_TRACES_EXPORTER": "console"}, False),
], ids=["grpc", "console"])
def test_other_exporters_keep_the_sdk_path(environ, fast):
    obs = Observability(settings("pay"), environ=environ)
    try:
        assert isinstance(obs.spans, telemetry.FastSpans) is fast
        assert isinstance(obs.spans, telemetry.SpanBuilder)
    finally:
        obs._owned[0].shutdown()


def test_a_value_length_limit_keeps_the_sdk_path(monkeypatch):
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "8")
    assert SpanLimits().max_attribute_length == 8
    obs = Observability(settings("pay"), environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    try:
        assert type(obs.spans) is telemetry.SpanBuilder
    finally:
        obs._owned[0].shutdown()


def _transport(monkeypatch, home, **env):
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NETRC",
                "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "OTEL_EXPORTER_OTLP_CERTIFICATE",
                "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(home))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    exporter = telemetry._exporter({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector.example:4318"})
    return exporter.inner._client._transport


def test_urllib3_transport_when_requests_would_add_nothing(monkeypatch, tmp_path):
    from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport
    from requests.utils import DEFAULT_CA_BUNDLE_PATH
    t = _transport(monkeypatch, tmp_path)
    assert type(t) is Urllib3HTTPTransport
    assert t._pool.connection_pool_kw["ca_certs"] == DEFAULT_CA_BUNDLE_PATH   # requests' own bundle
    assert t._pool.connection_pool_kw["cert_reqs"] == "CERT_REQUIRED"


def test_ca_bundle_and_certificate_files_carry_over(monkeypatch, tmp_path):
    bundle, ca = tmp_path / "bundle.pem", tmp_path / "ca.pem"
    bundle.write_text("x")
    ca.write_text("y")
    t = _transport(monkeypatch, tmp_path, OTEL_EXPORTER_OTLP_CERTIFICATE=str(ca))
    assert t._pool.connection_pool_kw["ca_certs"] == str(ca)
    t = _transport(monkeypatch, tmp_path, OTEL_EXPORTER_OTLP_CERTIFICATE=str(ca), REQUESTS_CA_BUNDLE=str(bundle))
    assert t._pool.connection_pool_kw["ca_certs"] == str(bundle)   # requests lets the environment win


@pytest.mark.parametrize("env, netrc", [
    ({"HTTPS_PROXY": "http://proxy.internal:3128"}, False), ({"http_proxy": "http://proxy.internal:3128"}, False),
    ({"ALL_PROXY": "socks5://proxy.internal"}, False), ({"NETRC": "/etc/netrc"}, False), ({}, True),
    ({"OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER": "pkg:provider"}, False),
    ({"REQUESTS_CA_BUNDLE": "DIR"}, False),
], ids=["https-proxy", "lowercase-proxy", "all-proxy", "netrc-env", "netrc-file", "credential-provider",
        "ca-directory"])
def test_requests_stays_when_it_would_differ(monkeypatch, tmp_path, env, netrc):
    from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport
    if netrc:
        (tmp_path / ".netrc").write_text("machine collector.example login a password b\n")
    env = {k: (str(tmp_path) if v == "DIR" else v) for k, v in env.items()}
    if "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER" in env:
        # the SDK would load that session itself (and fail on this made-up name): only our gate is tested
        assert telemetry.requests_would_differ(env) == "otel_python_exporter_otlp_http_traces_credential_provider"
        return
    assert type(_transport(monkeypatch, tmp_path, **env)) is RequestsHTTPTransport
