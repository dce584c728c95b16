"""Spans built after the fact from an Exchange: the attributes (one function per span kind,
shared by both paths), the SDK path (`SpanBuilder`: any TracerProvider, injected or ours) and
the fast path for our own OTLP/HTTP exporter (`FastSpans`: otlp.py's bytes queued in the batch
processor, the SDK for what otlp.py leaves).

- `SpanBuilder.build(ex, operation)`: one SERVER span with the exchange's own ids
  (trace_id / span_id, parent = the caller's span), one CLIENT span per attempt, the
  exchange's events on the SERVER span; explicit start/end times.  Attribute values pass an
  allowlist of types, strings are cut to 256 characters; `url.full` has no query and its
  secret-looking path segments masked (`templating.mask_secrets`).
- `FastSpans.build(ex, operation)`: the same spans, the same bytes on the wire
  (tests/unit/observe/test_otlp.py), ~20x cheaper.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode

from egress.exchange import Exchange
from egress.observe import otlp
from egress.observe.templating import mask_secrets

MAX_STR = 256
MAX_LIST = 64
SCOPE = "egress.observe"  # the instrumentation scope of every span


class _Encoded:
    """A span already encoded by otlp.py, queued in the BatchSpanProcessor as a ReadableSpan
    would be (the processor keeps only what carries a sampled context: ours always does, the
    keep-or-drop decision was made before building, in observe.py)."""

    __slots__ = ("data",)
    context = trace_api.SpanContext(1, 1, is_remote=False, trace_flags=trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED))

    def __init__(self, data: bytes) -> None:
        self.data = data


def clean_value(value: Any) -> Any:
    """An attribute value allowed out (str/int/float/bool or a list of them), else None."""
    if isinstance(value, str):
        return value[:MAX_STR]
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        items = [clean_value(v) for v in value[:MAX_LIST] if isinstance(v, (str, bool, int, float))]
        kinds = {type(v) for v in items}
        return items if len(kinds) == 1 else ([str(v) for v in items] if items else None)
    return None


def clean_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in attrs.items():
        v = clean_value(value)
        if v is not None and isinstance(key, str):
            out[key[:64]] = v
    return out


def server_attrs(ex: Exchange, operation: str) -> dict[str, Any]:
    """The SERVER span's attributes (both span paths use this one function)."""
    up = ex.upstream
    attrs: dict[str, Any] = {"http.request.method": ex.method[:16], "egress.contract.result": ex.contract}
    if ex.status is not None:
        attrs["http.response.status_code"] = ex.status
    if ex.reason:
        attrs["error.type"] = ex.reason
    if ex.caller:
        attrs["egress.caller"] = ex.caller
    if up is not None:
        attrs["egress.upstream"] = up.name
        attrs["egress.operation"] = operation
        if ex.operation:
            attrs["http.route"] = ex.operation
    if ex.stream is not None:
        attrs.update({"egress.stream.kind": ex.stream.kind, "egress.stream.end": ex.stream.end,
                      "egress.stream.items": ex.stream.items, "egress.stream.bytes": ex.stream.bytes,
                      "egress.stream.violations": ex.stream.violations})
        if ex.stream.first_byte_s is not None:
            attrs["egress.stream.first_byte_ms"] = round(ex.stream.first_byte_s * 1000, 3)
    denied = ex.denied_host
    if denied:
        attrs["egress.denied_host"] = str(denied)[:MAX_STR]
    return attrs


def client_attrs(ex: Exchange, a) -> dict[str, Any]:
    """One CLIENT span's attributes (an Attempt of the exchange)."""
    up = ex.upstream
    cattrs: dict[str, Any] = {"http.request.method": ex.method[:16], "url.full": mask_secrets(a.url)[:MAX_STR],
                              "egress.upstream": up.name if up else "", "egress.attempt": a.number}
    if up is not None:
        cattrs["server.address"], cattrs["server.port"] = up.host, up.port
    if a.number > 1:
        cattrs["http.request.resend_count"] = a.number - 1
    if a.status is not None:
        cattrs["http.response.status_code"] = a.status
    if a.error:
        cattrs["error.type"] = a.error
    elif a.status is not None and a.status >= 500:
        cattrs["error.type"] = str(a.status)
    return cattrs


class _PresetIds(IdGenerator):
    """Hands out the ids the pipeline already chose (set just before start_span), else random."""

    def __init__(self) -> None:
        self.trace_id = 0
        self.span_id = 0
        self._rand = random.Random()

    def generate_trace_id(self) -> int:
        value, self.trace_id = self.trace_id, 0
        return value or self._rand.getrandbits(128) or 1

    def generate_span_id(self) -> int:
        value, self.span_id = self.span_id, 0
        return value or self._rand.getrandbits(64) or 1


class SpanBuilder:
    def __init__(self, provider) -> None:
        tracer = provider.get_tracer(SCOPE)
        # our own decision was made before building (observe.py): record every span built,
        # with the ids the pipeline already put in the problem+json answer and the logs
        self.ids = _PresetIds()
        tracer.sampler, tracer.id_generator = ALWAYS_ON, self.ids
        self.tracer = tracer

    def build(self, ex: Exchange, operation: str) -> None:
        end = ex.end_ns or ex.start_ns
        trace_id = int(ex.trace_id, 16) if ex.trace_id else 0
        if ex.traceparent and trace_id:
            parent = trace_api.SpanContext(trace_id, int(ex.traceparent, 16), is_remote=True,
                                           trace_flags=trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED))
            ctx = trace_api.set_span_in_context(trace_api.NonRecordingSpan(parent), Context())
        else:
            ctx = Context()
            self.ids.trace_id = trace_id
        self.ids.span_id = int(ex.span_id, 16) if ex.span_id else 0
        server = self.tracer.start_span(operation or ex.method[:16], ctx, SpanKind.SERVER,
                                        server_attrs(ex, operation), start_time=ex.start_ns)
        if ex.status is not None and ex.status >= 500:
            server.set_status(Status(StatusCode.ERROR, ex.reason or None))
        for e in ex.events:
            server.add_event(e.name[:64], clean_attrs(e.attrs), timestamp=e.time_ns)
        child_ctx = trace_api.set_span_in_context(server, Context())
        for a in ex.attempts:
            client = self.tracer.start_span(operation or ex.method[:16], child_ctx, SpanKind.CLIENT,
                                            client_attrs(ex, a), start_time=a.start_ns)
            if a.error or (a.status is not None and a.status >= 400):
                client.set_status(Status(StatusCode.ERROR))
            client.end(end_time=a.end_ns or end)
        server.end(end_time=end)


class FastSpans:
    """`build(ex, operation)` as SpanBuilder's, for our own OTLP/HTTP exporter: the spans are
    encoded from the exchange (otlp.py, the same attribute functions) and queued in the batch
    processor as bytes; an exchange the fast path leaves (otlp.Unencodable) goes through the
    SDK (SpanBuilder, same processor), so the output is the SDK's either way."""

    def __init__(self, provider, processor, limits: SpanLimits) -> None:
        self.sdk = SpanBuilder(provider)
        self.tracer = self.sdk.tracer
        self.processor = processor
        self.limits = {"max_attributes": limits.max_span_attributes, "max_events": limits.max_events,
                       "max_event_attributes": limits.max_event_attributes}

    def build(self, ex: Exchange, operation: str) -> None:
        try:
            spans = otlp.encode_exchange(ex, operation, server_attrs, client_attrs, clean_attrs, **self.limits)
        except (otlp.Unencodable, UnicodeEncodeError):
            self.sdk.build(ex, operation)
            return
        on_end = self.processor.on_end
        for data in spans:
            on_end(_Encoded(data))
