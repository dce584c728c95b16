"""No token, credential, header value or payload value reaches a span, a log line, /metrics
or the inventory: marker values go through every path, then every output is searched."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.fakes import make_jwt

MARK = "zqxmark"   # every planted value contains this; no egress-written text does
ISSUER = "https://auth.internal.example"


def body_with_markers(request_path: str) -> dict:
    return {"id": "ch_1", "amount": f"{MARK}-amount", "currency": "usd", "status": "succeeded",
            "created": "2024-01-01T00:00:00Z", "secret": f"{MARK}-resp-body", "nested": {"k": f"{MARK}-n"}}


async def provider_handler(request):
    await request.read()
    path = request.path
    if path.endswith("/slow"):
        await asyncio.sleep(2)
    if path.endswith("/fail"):
        return web.json_response({"error": f"{MARK}-5xx-body"}, status=503,
                                 headers={"X-Provider-Secret": f"{MARK}-resp-hdr"})
    if path.endswith("/redirect"):
        return web.Response(status=302, headers={"Location": f"http://169.254.169.254/{MARK}-loc"})
    if path.endswith("/notjson"):
        return web.Response(body=f"{{{MARK}-broken".encode(), content_type="application/json")
    return web.json_response(body_with_markers(path), headers={
        "Set-Cookie": f"s={MARK}-set-cookie", "X-Provider-Secret": f"{MARK}-resp-hdr"})


@pytest.mark.parametrize("sink", ["sdk-in-memory", "otlp-fast-path"])
async def test_no_marker_anywhere(egress, providers, egress_logs, otlp_receiver, sink):
    """Both span paths: the SDK's (an injected provider) and ours to a real OTLP receiver."""
    p = await providers(provider_handler)
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    common = {"callers": ["checkout"], "allow_private_addresses": True, "retry": {"attempts": 2, "backoff": 0.01,
              "budget": 1.0}, "timeout": {"connect": 1, "total": 1},
              "credential": {"header": "Authorization", "value": f"Bearer {MARK}-credential"}}
    proxy = await egress([
        {"name": "pay", "url": p.url + "/v1", "contract": "payments.yaml", "mode": "enforce", **common},
        {"name": "rep", "url": p.url + "/v2", "contract": "payments.yaml", "mode": "report", **common},
        {"name": "free", "url": p.url + "/v3", **common},
        {"name": "blocked", "url": "http://127.0.0.1:9/v4", "callers": ["checkout"]},
    ], environ={"OTEL_TRACES_SAMPLER": "always_on",
                **({"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url} if sink == "otlp-fast-path" else {})},
        tracer_provider=tp if sink == "sdk-in-memory" else None)
    jwt = make_jwt(ISSUER, sub=f"{MARK}-jwt-sub")
    headers = {"Authorization": f"Bearer {MARK}-auth", "Cookie": f"sid={MARK}-cookie",
               "X-Internal-Token": f"{MARK}-internal", "X-Custom": f"{MARK}-custom", "X-Debug": jwt,
               "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
               "baggage": f"user={MARK}-baggage"}
    query = f"?access_token={MARK}-qtoken&q={MARK}-qvalue&id_token={jwt}"
    body = orjson.dumps({"card": f"{MARK}-req-body", "nested": {"v": f"{MARK}-req-nested"}})
    calls = [
        ("GET", "/pay/charges/ch_1"),       # enforce: violation (amount is a string)
        ("GET", "/rep/charges/ch_1"),       # report: violation recorded, answer passed on
        ("GET", "/free/anything/123"),      # no contract
        ("POST", "/free/fail"),             # 5xx (not retried: POST)
        ("GET", "/free/fail"),              # 5xx retried
        ("GET", "/free/slow"),              # timeout
        ("GET", "/free/redirect"),          # redirect blocked
        ("GET", "/pay/notjson"),            # invalid json / unmatched
        ("GET", "/blocked/x"),              # address blocked
        ("GET", "/nowhere/x"),              # destination denied
    ]
    for method, path in calls:
        await proxy.call(method, path + query, headers=headers, data=body)
    await proxy.call("GET", "/pay/charges/ch_1" + query, caller="reporting", headers=headers)  # caller denied
    await proxy.call("POST", "/free/x", headers={**headers, "Content-Type": "application/json"},
                     data=orjson.dumps({"token": jwt, "v": f"{MARK}-blocked-body"}))        # token in body
    proxy.obs.on_store_event("redis_down", "ConnectionError talking to redis:6379/0")

    if sink == "otlp-fast-path":
        assert type(proxy.obs.spans).__name__ == "FastSpans"
        await proxy.obs.shutdown()  # flush: every span reached the receiver
        exported = [s for _, s in otlp_receiver.spans()]
        span_text = "\n".join(r.SerializeToString().decode("utf-8", "replace") for r in otlp_receiver.requests)
        span_text += "\n".join(str(r) for r in otlp_receiver.requests)
        names = {e.name for s in exported for e in s.events}
    else:
        exported = spans.get_finished_spans()
        span_text = "\n".join(s.to_json() for s in exported)
        names = {e.name for s in exported for e in s.events}
    outputs = {
        "spans": span_text,
        "logs": "\n".join(egress_logs.lines),
        "metrics": (await proxy.admin_get("/metrics")).decode(),
        "inventory": (await proxy.admin_get("/admin/inventory")).decode(),
    }
    assert len(exported) >= len(calls) + 2
    assert sum('"msg": "access"' in l or '"msg":"access"' in l for l in egress_logs.lines) == len(calls) + 2
    for where, text in outputs.items():
        assert MARK not in text, f"marker leaked into {where}: ...{text[max(0, text.find(MARK) - 200):text.find(MARK) + 60]}"
        assert jwt.split(".")[1] not in text, where
    # the anomalies themselves are there, by name
    assert {"egress.token_stripped", "egress.contract_violation", "egress.retry", "egress.redirect_blocked",
            "egress.address_blocked", "egress.credential_injected"} <= names
