"""A passed-through body (no contract checks it): time to first byte, bytes and end reason on the span,
in /metrics and in the access line written when the body ends — a complete one and one cut at a cap —
and no byte of either body anywhere."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.stream_fakes import Script

MARK = b"zqxmark-passthrough-"
BLOCK = (MARK * 4096)[:65536]  # 64 KiB; over the read-ahead window after two


async def test_passthrough_observed_without_values(egress, providers, egress_logs):
    complete = Script([(0.02, BLOCK)] * 4, content_type="application/octet-stream")
    endless = Script([(0.01, BLOCK)], content_type="application/octet-stream", forever=True)
    p1, p2 = await providers(complete.handler), await providers(endless.handler)
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    common = {"callers": ["checkout"], "allow_private_addresses": True, "retry": {"attempts": 1}, "mode": "off"}
    proxy = await egress([{"name": "dl", "url": p1.url + "/v1", **common},
                          {"name": "cut", "url": p2.url + "/v1", "limits": {"max_response_bytes": 1_000_000},
                           **common}],
                         environ={"OTEL_TRACES_SAMPLER": "always_on"}, tracer_provider=tp)
    status, headers, body = await proxy.call("GET", "/dl/file.bin")
    assert status == 200 and body == BLOCK * 4 and "Content-Length" not in headers
    with pytest.raises(aiohttp.ClientPayloadError):
        await proxy.call("GET", "/cut/file.bin")
    await asyncio.sleep(0.1)
    servers = {s.attributes["egress.upstream"]: s.attributes for s in spans.get_finished_spans()
               if s.kind.name == "SERVER"}
    done, cut = servers["dl"], servers["cut"]
    assert (done["egress.stream.kind"], done["egress.stream.end"], done["egress.stream.bytes"]) == \
        ("passthrough", "complete", 4 * len(BLOCK))
    assert done["egress.stream.first_byte_ms"] >= 0 and "error.type" not in done
    assert (cut["egress.stream.end"], cut["error.type"], cut["http.response.status_code"]) == \
        ("response_too_large", "response_too_large", 200)
    metrics = (await proxy.admin_get("/metrics")).decode()
    assert 'egress_streams_total{end="complete",upstream="dl"} 1.0' in metrics
    assert 'egress_streams_total{end="response_too_large",upstream="cut"} 1.0' in metrics
    assert f'egress_stream_bytes_total{{upstream="dl"}} {4 * len(BLOCK)}.0' in metrics
    assert 'egress_stream_first_byte_seconds_count{upstream="dl"} 1.0' in metrics
    access = {line["upstream"]: line for line in (orjson.loads(x) for x in egress_logs.lines if '"access"' in x)}
    assert (access["dl"]["stream_end"], access["dl"]["stream_bytes"]) == ("complete", 4 * len(BLOCK))
    assert (access["cut"]["stream_end"], access["cut"]["reason"]) == ("response_too_large", "response_too_large")
    everything = "\n".join([*(s.to_json() for s in spans.get_finished_spans()), *egress_logs.lines, metrics])
    assert MARK.decode()[:10] not in everything
