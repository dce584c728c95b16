"""Errors to callers: RFC 9457 application/problem+json, with the reason in X-Egress-Error.

Every field is written by egress; none comes from a header, a token or a third-party body.
"""

from __future__ import annotations

import math

import orjson
from aiohttp import web

from egress.errors import CircuitOpen, ConcurrencyLimited, EgressError, RateLimited
from egress.exchange import Exchange

CONTENT_TYPE = "application/problem+json"


def problem_response(err: EgressError, ex: Exchange) -> web.Response:
    body = problem_document(err, ex)
    headers = {"X-Egress-Error": err.reason, "Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}
    if isinstance(err, (CircuitOpen, RateLimited, ConcurrencyLimited)):
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after)))
        headers.update(getattr(err, "headers", None) or {})
    elif getattr(err, "retry_after", None) is not None:  # ProxyOverloaded and the like
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after)))
    if ex.upstream is not None:
        headers["X-Egress-Contract"] = ex.contract
    return web.Response(status=err.status, body=orjson.dumps(body), headers=headers)


def problem_document(err: EgressError, ex: Exchange) -> dict:
    """The RFC 9457 document (also the data of a stream's last `event: error`)."""
    body = {
        "type": f"urn:egress:problem:{err.reason}",
        "title": err.title,
        "status": err.status,
        "detail": err.detail,
        "reason": err.reason,
        "upstream": ex.upstream_name or None,
    }
    if ex.trace_id:
        body["trace_id"] = ex.trace_id
    body.update(err.extra)
    return body
