"""Traces: with spans.py, the only modules importing opentelemetry.  Sampling and exporter
set-up from the standard OTEL_* environment; the spans themselves are built in spans.py.

- `Sampler.from_env(environ)`: OTEL_TRACES_SAMPLER / _ARG (always_on, always_off,
  traceidratio, parentbased_*).  Defaults: `parentbased_traceidratio`, ratio 0.1.  The
  decision is a pure function of the trace id (same as the SDK's TraceIdRatioBased) and
  the caller's sampled flag; anomalous exchanges are kept regardless (observe.py).
- `provider_from_env(environ)`: a TracerProvider with a BatchSpanProcessor to an OTLP
  exporter (http/protobuf or grpc), or None when no exporter is configured.  For
  http/protobuf the exporter is `_OtlpBytes`: the SDK exporter's transport fed bytes
  encoded by otlp.py (`span_builder` then gives `spans.FastSpans`, else `spans.SpanBuilder`).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.util.re import parse_env_headers

from egress.observe import otlp
from egress.observe.spans import (  # noqa: F401 (re-exported: the names telemetry always had)
    MAX_LIST, MAX_STR, SCOPE, FastSpans, SpanBuilder, _Encoded, clean_attrs, clean_value, client_attrs, server_attrs)

log = logging.getLogger("egress")

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
    http = Http(endpoint=endpoint, headers=headers or None)
    _lighter_transport(http)
    return _OtlpBytes(http) if _OtlpBytes.usable(http) else http


_REQUESTS_ENV = ("http_proxy", "https_proxy", "all_proxy", "netrc",
                 "otel_python_exporter_otlp_http_credential_provider",
                 "otel_python_exporter_otlp_http_traces_credential_provider")


def requests_would_differ(environ: Mapping[str, str] = os.environ) -> str | None:
    """What, if anything, a requests.Session would add to a plain urllib3 pool for the
    exporter's POST: a proxy or netrc credentials from the environment, a credential-provider
    session.  None: the two send the same request to the same place (the CA bundle requests
    would take from the environment is resolved in _lighter_transport)."""
    for key in environ:
        if key.lower() in _REQUESTS_ENV:
            return key.lower()
    home = os.path.expanduser("~")
    for name in (".netrc", "_netrc"):
        if os.path.exists(os.path.join(home, name)):
            return name
    return None


def _lighter_transport(http) -> None:
    """The SDK's own urllib3 transport in place of its requests one (~2.3x less CPU per
    export: requests merges environment settings, hooks and adapters on every POST), with
    the same TLS settings (requests' CA bundle when verify is on, the OTEL_* certificate
    files); only when requests_would_differ() finds nothing, else requests stays."""
    try:
        from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport
        from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport
        from requests.utils import DEFAULT_CA_BUNDLE_PATH
    except ImportError:
        return
    client = getattr(http, "_client", None)
    current = getattr(client, "_transport", None)
    session = getattr(current, "_session", None)
    if type(current) is not RequestsHTTPTransport or session is None or requests_would_differ():
        return
    # requests: REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE win over the session's verify; True is its
    # bundled CA file; a directory is loaded as a CA directory (not what urllib3's ca_certs does)
    verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or session.verify
    if verify is True:
        verify = DEFAULT_CA_BUNDLE_PATH
    if isinstance(verify, str) and os.path.isdir(verify):
        return
    client._transport = Urllib3HTTPTransport(verify=verify, cert=session.cert)
    current.close()


def _sdk_span_bytes(span: ReadableSpan) -> bytes:
    """The SDK's own encoding of one span (the exchanges the fast path left to SpanBuilder)."""
    return encode_spans([span]).resource_spans[0].scope_spans[0].spans[0].SerializeToString()


class _OtlpBytes(SpanExporter):
    """The OTLP/HTTP exporter's transport (endpoint, headers, TLS, compression, retries, timeout)
    fed one ExportTraceServiceRequest built from encoded spans (`_Encoded`, from otlp.py) and
    SDK spans (encoded here by the SDK's encoder), instead of encode_spans over the whole batch
    in the exporter thread.  `usable()`: the installed exporter still has the seam used
    (`_client.export(bytes)`); if a release moves it, the plain exporter is used (slower, same
    output; tests/unit/observe/test_otlp.py fails so the change is seen)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.envelope: tuple[bytes, bytes, str, str] | None = None  # resource, scope (set_resource)

    @staticmethod
    def usable(inner) -> bool:
        return callable(getattr(getattr(inner, "_client", None), "export", None))

    def set_resource(self, resource: Resource, scope_name: str) -> None:
        """Encode the resource and the scope once, from a probe span of the SDK's own making."""
        probe_provider = TracerProvider(resource=resource)
        tracer = probe_provider.get_tracer(scope_name)
        tracer.sampler = ALWAYS_ON
        probe = tracer.start_span("probe")
        probe.end()
        rs = encode_spans([probe]).resource_spans[0]
        ss = rs.scope_spans[0]
        self.envelope = (rs.resource.SerializeToString(), ss.scope.SerializeToString(), rs.schema_url, ss.schema_url)

    def export(self, spans) -> SpanExportResult:
        if getattr(self.inner, "_shutdown", False) or self.envelope is None:
            return SpanExportResult.FAILURE
        encoded = []
        for item in spans:
            if type(item) is _Encoded:
                encoded.append(item.data)
                continue
            try:
                encoded.append(_sdk_span_bytes(item))
            except Exception as exc:  # protobuf refused a value: that span only is lost
                log.error("Failed to encode span: %s", type(exc).__name__)
        resource, scope, rschema, sschema = self.envelope
        data = otlp.request(resource, scope, encoded, rschema, sschema)
        limit = getattr(self.inner, "_max_request_size", 0) or 0
        if limit > 0 and len(data) > limit:
            log.warning("Dropping span batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                        len(data), limit)
            return SpanExportResult.FAILURE
        result = self.inner._client.export(data)
        return SpanExportResult.SUCCESS if getattr(result, "success", False) else SpanExportResult.FAILURE

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


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
    if isinstance(processor.span_exporter.inner, _OtlpBytes):
        processor.span_exporter.inner.set_resource(provider.resource, SCOPE)
    return provider, processor


def span_builder(provider, processor: SpanProcessor | None = None):
    """FastSpans for our own OTLP/HTTP exporter when the SDK's limits cannot cut what we
    write; else SpanBuilder (an injected provider: tests, embedders; grpc; console)."""
    exporter = getattr(getattr(processor, "span_exporter", None), "inner", None)
    if isinstance(exporter, _OtlpBytes):
        limits = SpanLimits()
        if limits.max_attribute_length is None and limits.max_span_attribute_length is None:
            return FastSpans(provider, processor, limits)
    return SpanBuilder(provider)
