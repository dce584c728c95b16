"""OTLP/protobuf spans written straight from an Exchange: the wire bytes of the spans that
`telemetry.SpanBuilder` builds with the SDK, without the SDK's per-span objects (no Span, no
BoundedAttributes, no pb2 messages), so a kept exchange costs a few µs of encoding, not ~250.

- `encode_exchange(ex, operation, server_attrs, client_attrs)` -> the encoded `Span` messages
  (CLIENT spans first, then the SERVER span: the order in which SpanBuilder ends them), or
  raises `Unencodable` for what the fast path leaves to the SDK (a value protobuf would refuse,
  more events or attributes than the limits let through): the caller then builds that
  exchange with the SDK, whose answer is the reference.
- `request(resource, scope, spans)` -> one `ExportTraceServiceRequest` body around encoded
  spans, given the encoded Resource and InstrumentationScope (telemetry.py takes them from the
  SDK's own encoding of a probe span: one resource, one scope, as the SDK would group them).

Field numbers: opentelemetry/proto/trace/v1/trace.proto and common/v1/common.proto; fields are
written in field-number order and proto3 defaults left out, as upb writes them, so the bytes are
the SDK's bytes (tests/unit/observe/test_otlp.py compares them).  Nothing here reads a header,
a query or a body: the attributes are the ones telemetry.py allowlisted.
"""

from __future__ import annotations

import random
import struct
from typing import Any, Callable, Iterable

_PACK_Q = struct.Struct("<Q").pack
_PACK_I = struct.Struct("<I").pack
_PACK_D = struct.Struct("<d").pack
_MASK64 = (1 << 64) - 1
_INT64 = (-(1 << 63), (1 << 63) - 1)
_VARINTS = [bytes((n,)) if n < 0x80 else bytes(((n & 0x7F) | 0x80, n >> 7)) for n in range(1 << 14)]
_rand = random.Random()  # span ids must be unique, not unpredictable (as the SDK's generator)

KIND_SERVER, KIND_CLIENT = 2, 3                 # Span.SpanKind
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2  # Status.StatusCode
FLAGS_HAS_IS_REMOTE, FLAGS_IS_REMOTE = 0x100, 0x200  # SpanFlags


class Unencodable(ValueError):
    """This exchange is the SDK's to encode (the fast path would not give its exact bytes)."""


def varint(n: int) -> bytes:
    if n < 16384:
        return _VARINTS[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _len_field(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def any_value(v: Any) -> bytes:
    """An AnyValue message (the SDK's `_encode_value`, in its order: bool before int)."""
    t = type(v)
    if t is str:
        b = v.encode()
        return b"\x0a" + varint(len(b)) + b
    if t is bool:
        return b"\x10\x01" if v else b"\x10\x00"
    if t is int:
        if not _INT64[0] <= v <= _INT64[1]:
            raise Unencodable("int attribute outside int64")
        return b"\x18" + varint(v & _MASK64)
    if t is float:
        return b"\x21" + _PACK_D(v)
    if isinstance(v, bool):
        return any_value(bool(v))
    if isinstance(v, str):
        return any_value(str(v))
    if isinstance(v, int):
        return any_value(int(v))
    if isinstance(v, float):
        return any_value(float(v))
    if isinstance(v, (list, tuple)):
        values = b"".join(_len_field(b"\x0a", any_value(x)) for x in v)
        return _len_field(b"\x2a", values)
    raise Unencodable(f"attribute value of type {t.__name__}")


_KEYS: dict[str, bytes] = {}  # KeyValue.key field of each attribute name seen (names are ours: bounded)
_FIELDS: dict[tuple, bytes] = {}  # (tag, key, value) -> the whole encoded field, for str and int values
_MAX_CACHED = 8192  # entries of each cache; beyond it, encoded every time (the answer is the same)
UNCACHED = frozenset({"url.full", "egress.denied_host"})  # values that rarely repeat


def key_value(key: str, v: Any) -> bytes:
    k = _KEYS.get(key)
    if k is None:
        k = _len_field(b"\x0a", key.encode())
        if len(_KEYS) < _MAX_CACHED:
            _KEYS[key] = k
    return k + _len_field(b"\x12", any_value(v))


def attributes(tag: bytes, attrs: dict[str, Any], limit: int | None) -> bytes:
    """Repeated KeyValue under `tag`; keys the SDK would drop (empty, not a string) or more
    attributes than `limit` are the SDK's case.  Fields of str and int values are kept once
    encoded (a str never equals an int, and bools are not looked up, so no two values share
    an entry)."""
    if limit is not None and len(attrs) > limit:
        raise Unencodable("more attributes than the limit")
    out = []
    get = _FIELDS.get
    for key, v in attrs.items():
        t = type(v)
        if t is str or t is int:
            cache_key = (tag, key, v)
            field = get(cache_key)
            if field is None:
                if not key or type(key) is not str:
                    raise Unencodable("attribute key")
                field = _len_field(tag, key_value(key, v))
                if len(_FIELDS) < _MAX_CACHED and key not in UNCACHED:
                    _FIELDS[cache_key] = field
            out.append(field)
            continue
        if not key or type(key) is not str:
            raise Unencodable("attribute key")
        out.append(_len_field(tag, key_value(key, v)))
    return b"".join(out)


def _status(code: int, message: str | None) -> bytes:
    body = (_len_field(b"\x12", message.encode()) if message else b"") + (b"\x18" + varint(code) if code else b"")
    return _len_field(b"\x7a", body)


def span(trace_id: bytes, span_id: bytes, parent_id: bytes | None, name: str, kind: int, start: int, end: int,
         attrs: bytes, events: bytes, status: bytes, flags: int) -> bytes:
    """One Span message from its parts (attrs/events/status already encoded)."""
    name_b = name.encode()
    return b"".join((
        b"\x0a\x10", trace_id, b"\x12\x08", span_id,
        b"\x22\x08" + parent_id if parent_id else b"",
        b"\x2a" + varint(len(name_b)) + name_b if name_b else b"",
        b"\x30" + varint(kind),
        b"\x39" + _PACK_Q(start) if start else b"",
        b"\x41" + _PACK_Q(end) if end else b"",
        attrs, events, status,
        b"\x85\x01" + _PACK_I(flags),
    ))


def event(name: str, time_ns: int, attrs: dict[str, Any], limit: int | None) -> bytes:
    name_b = name.encode()
    body = b"".join((b"\x09" + _PACK_Q(time_ns) if time_ns else b"",
                     b"\x12" + varint(len(name_b)) + name_b if name_b else b"",
                     attributes(b"\x1a", attrs, limit)))
    return _len_field(b"\x5a", body)


def encode_exchange(ex, operation: str, server_attrs: Callable, client_attrs: Callable, clean: Callable, *,
                    max_attributes: int | None = 128, max_events: int | None = 128,
                    max_event_attributes: int | None = 128) -> list[bytes]:
    """The spans SpanBuilder.build(ex, operation) would end, encoded (clients, then server)."""
    if max_events is not None and len(ex.events) > max_events:
        raise Unencodable("more events than the limit")
    trace_int = int(ex.trace_id, 16) if ex.trace_id else 0
    if ex.traceparent and trace_int:
        parent, flags = int(ex.traceparent, 16).to_bytes(8, "big"), FLAGS_HAS_IS_REMOTE | FLAGS_IS_REMOTE
    else:
        parent, flags = None, FLAGS_HAS_IS_REMOTE
        trace_int = trace_int or _rand.getrandbits(128) or 1
    trace_id = trace_int.to_bytes(16, "big")
    server_id = ((int(ex.span_id, 16) if ex.span_id else 0) or _rand.getrandbits(64) or 1).to_bytes(8, "big")
    name = operation or ex.method[:16]
    end = ex.end_ns or ex.start_ns
    out = []
    for a in ex.attempts:
        failed = a.error or (a.status is not None and a.status >= 400)
        out.append(span(trace_id, (_rand.getrandbits(64) or 1).to_bytes(8, "big"), server_id, name, KIND_CLIENT,
                        a.start_ns, a.end_ns or end, attributes(b"\x4a", client_attrs(ex, a), max_attributes), b"",
                        _status(STATUS_ERROR, None) if failed else _status(STATUS_UNSET, None),
                        FLAGS_HAS_IS_REMOTE))
    events = b"".join(event(e.name[:64], e.time_ns, clean(e.attrs), max_event_attributes) for e in ex.events)
    status = (_status(STATUS_ERROR, ex.reason or None) if ex.status is not None and ex.status >= 500
              else _status(STATUS_UNSET, None))
    out.append(span(trace_id, server_id, parent, name, KIND_SERVER, ex.start_ns, end,
                    attributes(b"\x4a", server_attrs(ex, operation), max_attributes), events, status, flags))
    return out


def request(resource: bytes, scope: bytes, spans: Iterable[bytes], resource_schema: str = "",
            scope_schema: str = "") -> bytes:
    """ExportTraceServiceRequest{resource_spans: [{resource, scope_spans: [{scope, spans}]}]}."""
    scope_spans = b"".join((_len_field(b"\x0a", scope), b"".join(_len_field(b"\x12", s) for s in spans),
                            _len_field(b"\x1a", scope_schema.encode()) if scope_schema else b""))
    resource_spans = b"".join((_len_field(b"\x0a", resource), _len_field(b"\x12", scope_spans),
                               _len_field(b"\x1a", resource_schema.encode()) if resource_schema else b""))
    return _len_field(b"\x0a", resource_spans)
