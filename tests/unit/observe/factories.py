"""Synthetic exchanges for the observability unit tests (no sockets)."""

from __future__ import annotations

from pathlib import Path

from egress.config import settings_from_dict
from egress.exchange import Attempt, Exchange
from egress.observe.tracecontext import new_span_id, new_trace_id


def settings(*names: str, **extra):
    ups = [{"name": n, "url": f"http://127.0.0.1:1/{n}", "allow_private_addresses": True, **extra}
           for n in (names or ("pay",))]
    return settings_from_dict({"upstreams": ups}, base_dir=Path("."), environ={})


class _Exchange(Exchange):
    """Exchange plus a __dict__, for fields the pipeline does not record yet (denied_host)."""


def denied(host, caller="checkout") -> Exchange:
    ex = exchange(None, status=403, reason="destination_not_allowed", caller=caller)
    ex.denied_host = host
    return ex


def exchange(up=None, *, path="/items/1", operation=None, status=200, reason=None, latency_ns=1_000_000,
             size=1000, caller="checkout", attempts=1, trace_id=None) -> Exchange:
    ex = _Exchange("GET")
    ex.upstream, ex.caller, ex.path, ex.operation = up, caller, path, operation
    ex.trace_id, ex.span_id = trace_id or new_trace_id(), new_span_id()
    for n in range(1, attempts + 1 if up is not None else 1):
        a = Attempt(n, ex.start_ns, url=f"http://127.0.0.1:1{path}")
        a.end_ns, a.status = a.start_ns + latency_ns, status
        ex.attempts.append(a)
    ex.response_bytes = size
    ex.finish(status, reason)
    return ex
