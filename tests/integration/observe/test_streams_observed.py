"""A stream's time to first byte, items, bytes and end reason on the span, in /metrics and in the
access line (written when the stream ends) — and no value of any event anywhere."""

from __future__ import annotations

import asyncio

import orjson
import yaml
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.stream_fakes import Script, sse

MARK = "zqxmark"
ITEM = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}, "object": {"const": "c"}}}


async def test_stream_observed_without_values(egress, providers, egress_logs, contracts_dir):
    ops = {"POST /chat/completions": {"responses": {"200": {"content_type": "text/event-stream",
                                                            "item_schema": ITEM}}}}
    (contracts_dir / "ai-stream.yaml").write_text(yaml.safe_dump({"operations": ops}))
    good = sse({"id": "a", "object": "c"})
    bad = sse({"id": f"{MARK}-id", "object": f"{MARK}-object"})
    enforce_script = Script([(0.02, good), (0.02, bad)], forever=True)
    report_script = Script([(0.02, good), (0.02, bad), (0.02, good)])
    p1, p2 = await providers(enforce_script.handler), await providers(report_script.handler)
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    common = {"callers": ["checkout"], "allow_private_addresses": True, "retry": {"attempts": 1},
              "contract": "ai-stream.yaml"}
    proxy = await egress([{"name": "ai", "url": p1.url + "/v1", "mode": "enforce", **common},
                          {"name": "air", "url": p2.url + "/v1", "mode": "report", **common}],
                         environ={"OTEL_TRACES_SAMPLER": "always_on"}, tracer_provider=tp)
    status, headers, body = await proxy.call("POST", "/ai/chat/completions")
    assert status == 200 and b"event: error" in body and MARK.encode() not in body
    status, headers, body = await proxy.call("POST", "/air/chat/completions")
    assert status == 200 and body.count(b"data: ") == 3
    await asyncio.sleep(0.1)
    servers = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    by_upstream = {s.attributes["egress.upstream"]: s for s in servers}
    cut, reported = by_upstream["ai"].attributes, by_upstream["air"].attributes
    assert (cut["egress.stream.end"], cut["egress.stream.items"], cut["error.type"]) == \
        ("contract_violation", 1, "contract_violation")
    assert (reported["egress.stream.end"], reported["egress.stream.items"], reported["egress.stream.violations"]) \
        == ("complete", 3, 1)
    assert "egress.stream.first_byte_ms" in reported and reported["egress.contract.result"] == "violated"
    items = [dict(e.attributes)["item"] for e in by_upstream["air"].events if e.name == "egress.contract_violation"]
    assert items and set(items) == {1}
    metrics = (await proxy.admin_get("/metrics")).decode()
    assert 'egress_streams_total{end="contract_violation",upstream="ai"} 1.0' in metrics
    assert 'egress_streams_total{end="complete",upstream="air"} 1.0' in metrics
    assert 'egress_stream_items_total{upstream="air"} 3.0' in metrics
    assert "egress_stream_first_byte_seconds_bucket" in metrics
    access = [orjson.loads(line) for line in egress_logs.lines if '"access"' in line]
    ends = sorted(line["stream_end"] for line in access)
    assert ends == ["complete", "contract_violation"]
    everything = "\n".join([*(s.to_json() for s in spans.get_finished_spans()), *egress_logs.lines, metrics])
    assert MARK not in everything
