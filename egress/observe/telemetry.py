"""Traces: the only module importing opentelemetry.  Sampling, exporter set-up from the
standard OTEL_* environment, and hand-made spans built after the fact from an Exchange.

- `Sampler.from_env(environ)`: OTEL_TRACES_SAMPLER / _ARG (always_on, always_off,
  traceidratio, parentbased_*).  Defaults: `parentbased_traceidratio`, ratio 0.1.  The
  decision is a pure function of the trace id (same as the SDK's TraceIdRatioBased) and
  the caller's sampled flag; anomalous exchanges are kept regardless (observe.py).
- `provider_from_env(environ)`: a TracerProvider with a BatchSpanProcessor to an OTLP
  exporter (http/protobuf or grpc), or None when no exporter is configured.
- `SpanBuilder.build(ex, operation)`: one SERVER span with the exchange's own ids
  (trace_id / span_id, parent = the caller's span), one CLIENT span per attempt, the
  exchange's events on the SERVER span; explicit start/end times.  Attribute values pass an
  allowlist of types, strings are cut to 256 characters; `url.full` has no query and its
  secret-looking path segments masked (`templating.mask_secrets`).
"""

from __future__ import annotations

import logging
import random
from typing import Any, Mapping

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.re import parse_env_headers

from egress.exchange import Exchange
from egress.observe.templating import mask_secrets

log = logging.getLogger("egress")

MAX_STR = 256
MAX_LIST = 64
_RATIO_LIMIT = (1 << 64) - 1
DEFAULT_SAMPLER, DEFAULT_RATIO = "parentbased_traceidratio", 0.1
BSP_DEFAULTS = {"OTEL_BSP_MAX_QUEUE_SIZE": 16384, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": 1024,
                "OTEL_BSP_SCHEDULE_DELAY": 1000, "OTEL_BSP_EXPORT_TIMEOUT": 30000}


# ---------------------------------------------------------------- sampling
class Sampler:
    """Keep a normal exchange? `root` for new traces; parent-based follows the caller's flag."""

    def __init__(self, name: str = DEFAULT_SAMPLER, ratio: float = DEFAULT_RATIO) -> None:
        self.name = name
        self.parent_based = name.startswith("parentbased_")
        root = name.removeprefix("parentbased_")
        self.ratio = {"always_on": 1.0, "always_off": 0.0}.get(root, min(1.0, max(0.0, ratio)))
        self._bound = round(self.ratio * (_RATIO_LIMIT + 1))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Sampler":
        name = (environ.get("OTEL_TRACES_SAMPLER") or DEFAULT_SAMPLER).strip().lower()
        known = {f"{p}{r}" for p in ("", "parentbased_") for r in ("always_on", "always_off", "traceidratio")}
        if name not in known:
            log.warning("OTEL_TRACES_SAMPLER %s is not supported; using %s", name[:64], DEFAULT_SAMPLER)
            name = DEFAULT_SAMPLER
        try:
            ratio = float(environ.get("OTEL_TRACES_SAMPLER_ARG") or DEFAULT_RATIO)
        except ValueError:
            log.warning("OTEL_TRACES_SAMPLER_ARG is not a number; using %s", DEFAULT_RATIO)
            ratio = DEFAULT_RATIO
        return cls(name, ratio)

    def keep(self, trace_id: str | None, parent_sampled: bool | None) -> bool:
        if self.parent_based and parent_sampled is not None:
            return parent_sampled
        if self.ratio >= 1.0:
            return True
        if self.ratio <= 0.0 or not trace_id:
            return False
        return (int(trace_id[16:], 16) & _RATIO_LIMIT) < self._bound


# ---------------------------------------------------------------- export set-up
class _Counting(SpanExporter):
    """Wraps the real exporter to count exported / failed spans (drops = ended - both)."""

    def __init__(self, inner: SpanExporter, count) -> None:
        self.inner, self.count = inner, count

    def export(self, spans):
        result = self.inner.export(spans)
        self.count("exported" if result is SpanExportResult.SUCCESS else "export_failed", len(spans))
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _env_int(environ: Mapping[str, str], key: str) -> int:
    try:
        return int(environ.get(key) or BSP_DEFAULTS[key])
    except ValueError:
        return BSP_DEFAULTS[key]


def exporter_configured(environ: Mapping[str, str]) -> bool:
    if (environ.get("OTEL_SDK_DISABLED") or "").lower() == "true":
        return False
    names = {n.strip().lower() for n in (environ.get("OTEL_TRACES_EXPORTER") or "").split(",") if n.strip()}
    if names:
        return bool(names & {"otlp", "console"})
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def resource_from_env(environ: Mapping[str, str]) -> Resource:
    attrs: dict[str, Any] = {"service.name": "egress"}
    attrs.update(parse_env_headers(environ.get("OTEL_RESOURCE_ATTRIBUTES", ""), liberal=True))
    if environ.get("OTEL_SERVICE_NAME"):
        attrs["service.name"] = environ["OTEL_SERVICE_NAME"]
    return Resource.create(attrs)


def _exporter(environ: Mapping[str, str]) -> SpanExporter:
    names = {n.strip().lower() for n in (environ.get("OTEL_TRACES_EXPORTER") or "otlp").split(",")}
    if "otlp" not in names:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter
        return ConsoleSpanExporter()
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").strip().lower()
    headers = parse_env_headers(environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
                                or environ.get("OTEL_EXPORTER_OTLP_HEADERS") or "", liberal=True)
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
        return Grpc(endpoint=endpoint or base or None, headers=headers or None)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http
    if endpoint is None:
        endpoint = (base.rstrip("/") + "/v1/traces") if base else "http://localhost:4318/v1/traces"
    return Http(endpoint=endpoint, headers=headers or None)


def provider_from_env(environ: Mapping[str, str], count) -> tuple[TracerProvider, SpanProcessor] | None:
    """TracerProvider + BatchSpanProcessor (queue 16384 unless OTEL_BSP_MAX_QUEUE_SIZE), or None."""
    if not exporter_configured(environ):
        return None
    processor = BatchSpanProcessor(
        _Counting(_exporter(environ), count),
        max_queue_size=_env_int(environ, "OTEL_BSP_MAX_QUEUE_SIZE"),
        max_export_batch_size=_env_int(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
        schedule_delay_millis=_env_int(environ, "OTEL_BSP_SCHEDULE_DELAY"),
        export_timeout_millis=_env_int(environ, "OTEL_BSP_EXPORT_TIMEOUT"))
    provider = TracerProvider(resource=resource_from_env(environ))
    provider.add_span_processor(processor)
    return provider, processor


# ---------------------------------------------------------------- span building
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
        tracer = provider.get_tracer("egress.observe")
        # our own decision was made before building (observe.py): record every span built,
        # with the ids the pipeline already put in the problem+json answer and the logs
        self.ids = _PresetIds()
        tracer.sampler, tracer.id_generator = ALWAYS_ON, self.ids
        self.tracer = tracer

    def build(self, ex: Exchange, operation: str) -> None:
        up = ex.upstream
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
        server = self.tracer.start_span(operation or ex.method[:16], ctx, SpanKind.SERVER, attrs,
                                        start_time=ex.start_ns)
        if ex.status is not None and ex.status >= 500:
            server.set_status(Status(StatusCode.ERROR, ex.reason or None))
        for e in ex.events:
            server.add_event(e.name[:64], clean_attrs(e.attrs), timestamp=e.time_ns)
        child_ctx = trace_api.set_span_in_context(server, Context())
        for a in ex.attempts:
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
            client = self.tracer.start_span(operation or ex.method[:16], child_ctx, SpanKind.CLIENT, cattrs,
                                            start_time=a.start_ns)
            if a.error or (a.status is not None and a.status >= 400):
                client.set_status(Status(StatusCode.ERROR))
            client.end(end_time=a.end_ns or end)
        server.end(end_time=end)
