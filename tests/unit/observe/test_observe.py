"""Observability over synthetic exchanges: sampling, span building, cardinality, bounds, cost."""

from __future__ import annotations

import time

import orjson
import pytest
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from egress.observe import inventory as inv_mod
from egress.observe.observe import Observability
from egress.observe.telemetry import Sampler, clean_attrs, exporter_configured

from .factories import denied, exchange, settings


class CountingStarts(SpanProcessor):
    def __init__(self) -> None:
        self.started = 0

    def on_start(self, span, parent_context=None) -> None:
        self.started += 1


def traced(environ):
    exporter, counter = InMemorySpanExporter(), CountingStarts()
    provider = TracerProvider()
    provider.add_span_processor(counter)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    s = settings("pay")
    return Observability(s, tracer_provider=provider, environ=environ), s.upstreams[0], exporter, counter


SAMPLER_CASES = [
    # id, environ, trace id, parent sampled flag, kept
    ("default-ratio-0.1-low-id", {}, "0" * 16 + "0" * 15 + "1", None, True),
    ("default-ratio-0.1-high-id", {}, "0" * 16 + "f" * 16, None, False),
    ("default-follows-sampled-parent", {}, "0" * 16 + "f" * 16, True, True),
    ("default-follows-unsampled-parent", {}, "0" * 32, False, False),
    ("always_on", {"OTEL_TRACES_SAMPLER": "always_on"}, "f" * 32, False, True),
    ("always_off", {"OTEL_TRACES_SAMPLER": "always_off"}, "0" * 32, True, False),
    ("parentbased_always_off-root", {"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, "0" * 32, None, False),
    ("ratio-0.5", {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"},
     "0" * 16 + "7" + "f" * 15, True, True),
    ("unknown-sampler-falls-back", {"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "0" * 16 + "f" * 16, None, False),
    ("bad-arg-falls-back", {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "x"},
     "0" * 32, None, True),
]


@pytest.mark.parametrize("environ, trace_id, parent, kept", [c[1:] for c in SAMPLER_CASES],
                         ids=[c[0] for c in SAMPLER_CASES])
def test_sampler(environ, trace_id, parent, kept):
    assert Sampler.from_env(environ).keep(trace_id, parent) is kept


def test_ratio_matches_sdk_share():
    import random
    s = Sampler("traceidratio", 0.25)
    rng = random.Random(7)
    kept = sum(s.keep(f"{rng.getrandbits(128):032x}", None) for _ in range(20000))
    assert 4500 < kept < 5500


EXPORTER_CASES = [
    ("nothing", {}, False),
    ("endpoint", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ("traces-endpoint", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
    ("explicit-otlp", {"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ("explicit-none", {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, False),
    ("sdk-disabled", {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
]


@pytest.mark.parametrize("environ, on", [c[1:] for c in EXPORTER_CASES], ids=[c[0] for c in EXPORTER_CASES])
def test_exporter_configured(environ, on):
    assert exporter_configured(environ) is on


def test_no_exporter_no_span_builder():
    obs = Observability(settings("pay"), environ={})
    assert obs.spans is None
    obs.observe(exchange(settings("pay").upstreams[0]))


def test_ratio_zero_builds_nothing_for_normal_and_everything_for_anomalies():
    obs, up, exporter, counter = traced({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"})
    for _ in range(100):
        obs.observe(exchange(up))
    assert counter.started == 0 and exporter.get_finished_spans() == ()
    denied = exchange(None, status=403, reason="destination_not_allowed")
    failed = exchange(up, status=504, reason="upstream_timeout", attempts=2)
    stripped = exchange(up)
    stripped.event("egress.token_stripped", where="header", name="x-debug", kind="internal_jwt")
    for ex in (denied, failed, stripped):
        obs.observe(ex)
    assert counter.started == 1 + 3 + 2
    servers = [s for s in exporter.get_finished_spans() if s.kind.name == "SERVER"]
    assert sorted(f"{s.context.trace_id:032x}" for s in servers) == sorted(
        ex.trace_id for ex in (denied, failed, stripped))
    assert {f"{s.context.span_id:016x}" for s in servers} == {ex.span_id for ex in (denied, failed, stripped)}


def test_span_times_are_the_exchange_times():
    obs, up, exporter, _ = traced({"OTEL_TRACES_SAMPLER": "always_on"})
    ex = exchange(up, latency_ns=5_000_000)
    obs.observe(ex)
    server, client = sorted(exporter.get_finished_spans(), key=lambda s: s.kind.name, reverse=True)
    assert (server.start_time, server.end_time) == (ex.start_ns, ex.end_ns)
    assert (client.start_time, client.end_time) == (ex.attempts[0].start_ns, ex.attempts[0].end_ns)


def test_event_attributes_pass_an_allowlist():
    assert clean_attrs({"a": "x" * 300, "b": 1, "c": 1.5, "d": True, "e": None, "f": {"k": "v"},
                        "g": ["a", "b"], "h": [1, "a"], "i": list(range(100)), "j": b"bytes"}) == {
        "a": "x" * 256, "b": 1, "c": 1.5, "d": True, "g": ["a", "b"], "h": ["1", "a"], "i": list(range(64))}


def series(obs) -> int:
    text = obs.metrics.render().decode()
    return sum(len(f.samples) for f in text_string_to_metric_families(text))


def test_cardinality_ten_thousand_raw_paths():
    s = settings("pay", "maps")
    obs = Observability(s, environ={})
    pay, maps = s.upstreams
    for i in range(10_000):
        up = pay if i % 2 else maps
        word = "".join(chr(97 + (i // 26 ** k) % 26) for k in range(3))
        obs.observe(exchange(up, path=f"/{word}/{i}/item-{i}x/{'a' * (i % 7)}", status=200 + (i % 3) * 100))
    names = {lbl.get("operation") for f in text_string_to_metric_families(obs.metrics.render().decode())
             for lbl in (smp.labels for smp in f.samples) if "operation" in lbl}
    assert len(names) <= 2 * 200 + 1 and "other" in names
    assert series(obs) < 3000
    doc = obs.inventory.snapshot()
    assert all(len(u["operations"]) <= 201 for u in doc["upstreams"])
    assert len(obs.baselines) <= 400
    assert len(orjson.dumps(doc)) < 2_000_000


def test_inventory_bounds_callers_and_denied():
    s = settings("pay", callers=["*"])
    obs = Observability(s, environ={})
    up = s.upstreams[0]
    for i in range(200):
        obs.observe(exchange(up, path="/x", caller=f"svc-{i}"))
    for i in range(3000):
        obs.observe(denied("evil.example" if i % 2 else f"h{i}.example"))
    doc = obs.inventory.snapshot()
    [op] = doc["upstreams"][0]["operations"]
    assert len(op["callers"]) == inv_mod.MAX_CALLERS + 1 and op["callers"]["other"] == 150
    assert len(doc["denied_destinations"]) == inv_mod.TOP_DENIED
    assert doc["denied_destinations"][0] == {"host": "evil.example", "via": "-", "caller": "checkout", "count": 1500,
                                             "last_seen": doc["denied_destinations"][0]["last_seen"]}
    assert len(obs.inventory._denied) <= inv_mod.MAX_DENIED


def test_denied_host_is_checked_and_table_renders():
    obs = Observability(settings("pay"), environ={})
    obs.observe(denied("bad host\nwith newline"))
    doc = obs.inventory.snapshot()
    assert doc["denied_destinations"][0]["host"] == "(invalid)"
    text = inv_mod.render_table(doc)
    assert text.startswith("pay  http://127.0.0.1:1/pay") and "(invalid)" in text


def _cost(obs, make, n):
    exs = [make() for _ in range(n)]
    for ex in exs[:200]:
        obs.observe(ex)
    start = time.perf_counter()
    for ex in exs[200:]:
        obs.observe(ex)
    return (time.perf_counter() - start) / (n - 200) * 1e6


def test_cost_per_exchange(capsys):
    """Reported numbers (µs per obs.observe); the bounds are loose so CI noise cannot fail them."""
    obs, up, _, _ = traced({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"})
    unsampled = _cost(obs, lambda: exchange(up, path="/charges/ch_1", operation="GET /charges/{id}"), 20000)
    obs2, up2, _, _ = traced({"OTEL_TRACES_SAMPLER": "always_on"})
    sampled = _cost(obs2, lambda: exchange(up2, path="/charges/ch_1", operation="GET /charges/{id}"), 3000)
    with capsys.disabled():
        print(f"\nobs.observe: unsampled {unsampled:.1f} µs, sampled (2 spans, in-memory) {sampled:.1f} µs")
    assert unsampled < 100 and sampled < 2000
