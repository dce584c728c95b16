"""Respond with a stream: each event forwarded as soon as it is complete and checked; a cut stream ends with one error event.

    if facts.sequential: ...   # check.ResponseFacts, read once by the send stage's stream_if
    return await stream_respond.relay(request, resp, op, up, ex, has_contract=...)

Reads the open UpstreamStream on `resp`, frames it (contracts/items.py), checks each item in
enforce/report mode, and writes the provider's bytes unchanged, chunked, without Content-Length
(Content-Encoding is undone under the caps, so the caller gets identity).  Enforce mode: the
violating item is never written; instead one last item, SSE `event: error` (NDJSON / json-seq:
a last line / record) holding the problem+json document plus an OpenAI-style `error` member,
and the provider connection is closed.  The same ending for `upstream_timeout` (idle / whole
stream), `response_too_large` (stream or one item) and `upstream_unavailable` (dropped).
A caller that goes away closes the provider connection at once.  Writes `ex.stream`
(StreamFacts) and span events with item indexes, never item values.  Raises (before anything
is written) UnexpectedContentType in enforce mode; never raises once the answer has started.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from aiohttp import web

from egress.config import Upstream
from egress.contracts.items import ItemTooLarge, check_item, framer_for, plan_stream
from egress.errors import ContractViolation, EgressError, InvalidJson, ResponseTooLarge, UnexpectedContentType
from egress.exchange import Exchange, StreamFacts
from egress.problem import problem_document
from egress.respond import forwarded_headers
from egress.send.client import UpstreamResponse

MAX_VIOLATION_EVENTS = 20  # span events per stream (report mode may see many more; all counted)
_ENFORCE_ERRORS = {"contract_violation": ContractViolation, "invalid_json": InvalidJson}


def error_item(kind: str, document: dict) -> bytes:
    """The last item of a cut stream: the problem+json document, framed as the stream is."""
    reason = document.get("reason")
    err = {"message": f"{reason}: {document.get('detail') or document.get('title')}", "type": "egress_error",
           "code": reason}
    data = orjson.dumps({**document, "error": err})
    if kind == "sse":
        return b"event: error\ndata: " + data + b"\n\n"
    if kind == "json-seq":
        return b"\x1e" + data + b"\n"
    return data + b"\n"


async def relay(request: web.BaseRequest, resp: UpstreamResponse, op, up: Upstream, ex: Exchange, *,
                has_contract: bool, recorder=None) -> web.StreamResponse:
    try:
        return await _relay(request, resp, op, up, ex, has_contract=has_contract, recorder=recorder)
    finally:
        settle_unended(resp.stream)


def settle_unended(stream) -> None:
    """Whatever happened, no provider connection (or breaker permit) outlives the exchange."""
    if not stream.closed:
        stream.close()
        stream.settle(EgressError("the stream ended unexpectedly"))


class CallerGone:
    """Around a relay's writes to the caller: a caller that went away ends the stream as `caller_gone`.

    Cancellation (the handler was cancelled) is recorded and goes on; a ConnectionError (a write
    to a closed socket) is recorded and swallowed, and `gone` tells the relay to stop writing."""

    def __init__(self, ex: Exchange, stream, facts: StreamFacts) -> None:
        self.ex, self.stream, self.facts, self.gone = ex, stream, facts, False

    def __enter__(self) -> CallerGone:
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is not None and issubclass(kind, asyncio.CancelledError):
            end_stream(self.ex, self.stream, self.facts, "caller_gone", exc)
        elif kind is not None and issubclass(kind, ConnectionError):
            end_stream(self.ex, self.stream, self.facts, "caller_gone", asyncio.CancelledError())
            self.gone = True
            return True
        return False


async def _relay(request: web.BaseRequest, resp: UpstreamResponse, op, up: Upstream, ex: Exchange, *,
                 has_contract: bool, recorder=None) -> web.StreamResponse:
    stream = resp.stream
    mode = (op.mode or up.mode) if op is not None else up.mode
    plan = plan_stream(op, mode, resp.status, resp.headers.get("Content-Type"), has_contract=has_contract)
    facts = ex.stream = StreamFacts(plan.kind)
    ex.contract = plan.outcome
    if plan.reason is not None:
        ex.event("egress.contract_violation", reason=plan.reason, instance_path="", schema_path="",
                 keyword=plan.reason)
        if mode == "enforce":
            err = UnexpectedContentType(f"the stream of {op.template} (status {resp.status}) has a content "
                                        "type its contract does not declare", extra={"operation": op.template})
            stream.close()
            stream.settle(err)
            raise err
    headers = forwarded_headers(resp, ex)
    headers.popall("Content-Encoding", None)  # decoded under the caps for framing
    headers["X-Egress-Contract"] = ex.contract
    headers.setdefault("Cache-Control", "no-cache")
    response = web.StreamResponse(status=resp.status, headers=headers)
    response.enable_chunked_encoding()
    ex.finish(resp.status)
    cut: EgressError | None = None
    with CallerGone(ex, stream, facts) as caller:
        await response.prepare(request)
        cut = await _pump(response, resp, op, up, ex, plan, enforce=mode == "enforce" and plan.checked,
                          checked=plan.checked, record=_recording(recorder, request.method, resp, ex))
    if caller.gone:
        return response
    if cut is None:
        end_stream(ex, stream, facts, "complete", None)
    else:
        end_stream(ex, stream, facts, cut.reason, cut)
        ex.finish(resp.status, cut.reason)
        try:
            tail = error_item(plan.kind, problem_document(cut, ex))
            await response.write(tail)
            facts.bytes += len(tail)
        except ConnectionError:
            facts.end = "caller_gone"
            return response
    try:
        await response.write_eof()
    except ConnectionError:
        facts.end = facts.end if facts.end != "complete" else "caller_gone"
    return response


async def _pump(response: web.StreamResponse, resp: UpstreamResponse, op, up: Upstream, ex: Exchange,
                plan, *, enforce: bool, checked: bool, record=None) -> EgressError | None:
    """Forward items until the stream ends (None) or is cut (the error that cut it)."""
    stream, facts, limits = resp.stream, ex.stream, up.limits
    framer = framer_for(plan.kind, limits.max_event_bytes)
    started = time.monotonic()
    try:
        async for chunk in stream.chunks():
            if facts.first_byte_s is None:
                facts.first_byte_s = time.monotonic() - started
            out, cut = _judge(framer.feed(chunk), op, plan, limits, ex, enforce=enforce, checked=checked,
                              record=record)
            if out:
                await response.write(out)
                facts.bytes += len(out)
            if cut is not None:
                return cut
            # a read from a full buffer and a write below the high-water mark never suspend: without
            # this, one fast stream would hold the event loop while other callers wait for headers
            await asyncio.sleep(0)
        out, cut = _judge(framer.finish(), op, plan, limits, ex, enforce=enforce, checked=checked,
                          record=record)
        if out:
            await response.write(out)
            facts.bytes += len(out)
        return cut
    except ConnectionError:  # the caller is gone: relay() ends the stream
        raise
    except Exception as exc:
        return cut_by(exc, ex, limits, stream)


def cut_by(exc: Exception, ex: Exchange, limits, stream) -> EgressError:
    """The error that ends a started stream (ours or passthrough.py's), with its span event."""
    facts = ex.stream
    if isinstance(exc, ItemTooLarge):
        ex.event("egress.limit_exceeded", limit="max_event_bytes", value=limits.max_event_bytes, item=facts.items)
        return ResponseTooLarge(f"one item of the stream is over limits.max_event_bytes ({limits.max_event_bytes})")
    if isinstance(exc, ResponseTooLarge):  # the wire bytes, or what they decode to
        wire = stream.wire_bytes > limits.max_response_bytes
        limit = "max_response_bytes" if wire else "max_decompressed_bytes"
        ex.event("egress.limit_exceeded", limit=limit, value=getattr(limits, limit), item=facts.items)
        return exc
    if isinstance(exc, EgressError):  # upstream_timeout (idle / stream / first byte), dropped, bad encoding
        ex.event("egress.stream_cut", reason=exc.reason, item=facts.items, **exc.extra)
        return exc
    # a bug of ours mid-stream: end it clearly, log the type only (no payloads)
    logging.getLogger("egress").error("unhandled error while relaying a stream", exc_info=exc)
    return EgressError("egress failed while relaying this stream; see its logs")


def _judge(items, op, plan, limits, ex: Exchange, *, enforce: bool, checked: bool, record=None):
    """The bytes of the items that may go out, and the error that cuts the stream (or None)."""
    facts = ex.stream
    out = []
    for item in items:
        if checked:
            result = check_item(item, plan.schema, max_depth=limits.max_json_depth,
                                max_violations=limits.max_violations)
            if result.outcome == "violated":
                facts.violations += 1
                ex.contract = "violated"
                violations = _record(ex, result, facts.items)
                if record is not None and facts.violations == 1:  # the stream's first violating item
                    record(item.data)
                if enforce:
                    error = _ENFORCE_ERRORS.get(result.reason or "contract_violation", ContractViolation)
                    return b"".join(out), error(
                        f"item {facts.items} of the stream of {op.template} failed its contract",
                        extra={"violations": violations, "operation": op.template, "item": facts.items})
        out.append(item.raw)
        facts.items += 1
    return b"".join(out), None


def _recording(recorder, method: str, resp: UpstreamResponse, ex: Exchange):
    """What writes a violating item for `learn` (the recorder bounds size and count), or None."""
    if recorder is None:
        return None
    operation = ex.operation or f"{method} {ex.path}"
    return lambda data: recorder.record(ex.upstream_name, operation, resp.status,
                                        resp.headers.get("Content-Type"), data)


def _record(ex: Exchange, result, index: int) -> list[dict]:
    violations = [{"instance_path": v.instance_path, "schema_path": v.schema_path, "keyword": v.keyword,
                   "message": v.message} for v in result.violations]
    if ex.stream.violations <= MAX_VIOLATION_EVENTS:
        for v in violations or [{"instance_path": "", "schema_path": "", "keyword": result.reason or ""}]:
            ex.event("egress.contract_violation", reason=result.reason, item=index, **v)
    return violations


def end_stream(ex: Exchange, stream, facts: StreamFacts, end: str, exc: BaseException | None) -> None:
    """The stream ended (`end`): facts recorded, provider connection closed, the breaker told once."""
    facts.end = end
    ex.response_bytes = stream.decoded_bytes
    stream.close()
    stream.settle(exc)
    ex.end_ns = time.time_ns()
