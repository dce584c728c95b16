"""The access log: one JSON line per exchange (via egress.logs), egress-written fields only.

Fields (an allowlist; nothing from headers, queries or bodies): caller, upstream,
operation (contract template or bounded templated path), method, status, duration_ms,
contract, reason, attempts, request_bytes, response_bytes, anomalies (event names), via,
trace_id, span_id; for a streamed response also stream_end, stream_items, stream_bytes.
"""

from __future__ import annotations

import logging

import orjson

from egress.exchange import Exchange
from egress.observe.logs import LOGGER, direct, log_fast, now, queue

MESSAGE = "access"


def access_fields(ex: Exchange, operation: str) -> dict:
    names = [e.name for e in ex.events if e.name != "egress.credential_injected"]
    anomalies = sorted(set(names)) if len(names) > 1 else names
    fields = {
        "caller": ex.caller,
        "upstream": ex.upstream_name or None,
        "operation": operation or None,
        "method": ex.method if len(ex.method) <= 16 else ex.method[:16],
        "status": ex.status,
        # whole microseconds, in ms (integer arithmetic: round(x, 3) of a float costs ~5 k instructions)
        "duration_ms": ex.duration_ns // 1000 / 1000,
        "contract": ex.contract,
        "reason": ex.reason,
        "attempts": len(ex.attempts),
        "request_bytes": ex.request_bytes,
        "response_bytes": ex.response_bytes,
        "events": anomalies,
        "via": ex.target_kind or None,
        "trace_id": ex.trace_id,
        "span_id": ex.span_id,
    }
    if ex.stream is not None:  # written when the stream ended
        fields.update(stream_end=ex.stream.end, stream_items=ex.stream.items, stream_bytes=ex.stream.bytes)
    return fields


def _line(ex: Exchange, operation: str) -> bytes:
    """The whole JSON line log_fast would write for access_fields(ex, operation): its four leading
    members written once as bytes before orjson's writing of the fields, instead of a merged
    dict (test_accesslog_direct.py holds the two to the same bytes).  `now()` is ASCII digits
    and punctuation: nothing in it needs escaping."""
    return b"".join((b'{"ts":"', now().encode(), _HEAD, orjson.dumps(access_fields(ex, operation), default=str)[1:]))


_HEAD = b'","level":"info","logger":"egress","msg":"' + MESSAGE.encode() + b'",'


def write(ex: Exchange, operation: str) -> None:
    """INFO line; skipped cheaply when the egress logger is above INFO.  When log_fast would
    write the line itself, it is built here as one dict and queued (no second level check,
    no merge of the fields into log_fast's document)."""
    if LOGGER.isEnabledFor(logging.INFO):
        if direct():
            queue(_line(ex, operation))
        else:
            log_fast(MESSAGE, access_fields(ex, operation))
