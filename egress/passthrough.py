"""Pass-through: a body that no contract checks is forwarded as it arrives, never buffered whole.

    stream_if = passthrough.stream_if(op, up, method, has_contract=..., keep_unmatched=...)   # send stage
    return await passthrough.relay(request, resp, op, up, ex, hold, has_contract=..., recorder=...)

Which bodies (`wanted`): those nothing will validate — `mode: off`, no contract, an unmatched
operation, a matched one whose response for this status declares no content or a media type that
is not JSON (binary, text/csv, an image, an octet-stream download), an undeclared 4xx/5xx.  Read
whole and checked as before: HEAD, 204, 205, 304 (no body), every redirect (check_redirect reads
it), a status the retry policy may retry (429, `retry.on_status`: a discarded attempt never holds
a stream), several differing Content-Types, an undeclared 2xx, a media type the contract does not
declare, every JSON body that is validated; with a recorder, an unmatched JSON body (`learn`).

Caps: a declared Content-Length over `max_response_bytes` is refused before (client.py).  Up to
WINDOW bytes (wire or decoded) are read ahead, within `timeout.total`: a body that ends there is
answered as before (Content-Length; compressed bytes to a caller that accepts them; every refusal
a 502 problem+json with its reason).  A longer body is committed: allowlisted headers, decoded
(the caller gets identity), chunked.  Then a cap (`response_too_large`), a decode error
(`unexpected_content_encoding`), `timeout.idle` / `timeout.stream` (`upstream_timeout`) or a
dropped provider (`upstream_unavailable`) CUTS the caller's connection: no last zero-length chunk,
so every HTTP client sees an incomplete body, never a truncated "complete" one.  The provider
connection is closed; `ex.stream` (StreamFacts kind `passthrough`) and span events say why, the
breaker counts the outcome once, at the end (stream_respond.end_stream).  Memory per stream: the
window, then one chunk (and what streaming.SLICE bytes inflate to); only the window is charged
to the in-flight budget.  A caller that goes away closes the provider connection at once.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from egress import check
from egress.config import Upstream
from egress.errors import EgressError, ProxyOverloaded, ResponseTooLarge, UpstreamTimeout
from egress.exchange import Exchange, StreamFacts
from egress.respond import build_response, forwarded_headers
from egress.send.bodies import parse_encodings
from egress.send.client import UpstreamResponse, is_redirect
from egress.send.deadline import deadline
from egress.send.inflight import Hold
from egress.stream_respond import CallerGone, cut_by, end_stream, settle_unended

WINDOW = 65536  # bytes read ahead: a body that ends within them is answered whole, as before
_NO_BODY = frozenset({204, 205, 304})


def wanted(op, up: Upstream, method: str, status: int, headers, *, has_contract: bool,
           keep_unmatched: bool) -> bool:
    """Whether nothing will validate this response's body (so it may pass as it arrives)."""
    return _wanted(check.response_facts(op, status, headers), op, up, method, has_contract, keep_unmatched)


def _wanted(facts: check.ResponseFacts, op, up: Upstream, method: str, has_contract: bool,
            keep_unmatched: bool) -> bool:
    status = facts.status
    if method == "HEAD" or status in _NO_BODY or is_redirect(status) or status == 429 \
            or status in up.retry.on_status:
        return False
    if not has_contract or ((op.mode or up.mode) if op is not None else up.mode) == "off":
        return True
    learn = keep_unmatched and facts.json  # the recorder wants it whole
    if op is None:
        return not learn
    spec = facts.spec
    if spec is None:  # undeclared: a 2xx/3xx is a violation (read whole), a 4xx/5xx passes unmatched
        return status >= 400 and not learn
    if facts.content_type is check.AMBIGUOUS:
        return False
    if not spec.content:  # declared without content: any body
        return True
    return facts.entry is not None and not facts.json


class Decision:
    """The send stage's hook (`stream_if`): called with an attempt's status and headers, True for
    a sequential stream (stream_respond.py) or a pass-through body.  It reads each response once
    (check.ResponseFacts) and keeps what it read of the last one for the stages after it."""

    __slots__ = ("facts", "has_contract", "keep_unmatched", "method", "op", "up")

    def __init__(self, op, up: Upstream, method: str, has_contract: bool, keep_unmatched: bool) -> None:
        self.op, self.up, self.method = op, up, method
        self.has_contract, self.keep_unmatched = has_contract, keep_unmatched
        self.facts: check.ResponseFacts | None = None  # of the last response decided

    def __call__(self, status: int, headers) -> bool:
        facts = self.facts = check.response_facts(self.op, status, headers)
        return facts.sequential or _wanted(facts, self.op, self.up, self.method, self.has_contract,
                                           self.keep_unmatched)

    def facts_of(self, resp: UpstreamResponse) -> check.ResponseFacts:
        """What was read of this response when it was decided (read now if it never was)."""
        facts = self.facts
        if facts is None or not facts.of(self.op, resp):
            facts = check.response_facts(self.op, resp.status, resp.headers)
        return facts


def stream_if(op, up: Upstream, method: str, *, has_contract: bool, keep_unmatched: bool) -> Decision:
    """The send stage's hook: True for a sequential stream (stream_respond.py) or a pass-through body."""
    return Decision(op, up, method, has_contract, keep_unmatched)


async def relay(request: web.BaseRequest, resp: UpstreamResponse, op, up: Upstream, ex: Exchange, hold: Hold, *,
                has_contract: bool, recorder=None, facts: check.ResponseFacts | None = None) -> web.StreamResponse:
    """`facts`: what the pass-through decision read of this response (Decision.facts_of), not read again."""
    stream = resp.stream
    try:
        return await _relay(request, resp, op, up, ex, hold, has_contract=has_contract, recorder=recorder,
                            facts=facts)
    finally:
        settle_unended(stream)


async def _relay(request: web.BaseRequest, resp: UpstreamResponse, op, up: Upstream, ex: Exchange, hold: Hold,
                 *, has_contract: bool, recorder, facts=None) -> web.StreamResponse:
    if has_contract:  # the verdict does not depend on the body (wanted): valid, unmatched or unchecked
        check.check_contract(op, resp, b"", up, ex, facts=facts)
    stream, wire, decoded = resp.stream, [], []
    stream.keep_wire = wire
    chunks = stream.chunks()
    ended = await _read_window(chunks, stream, decoded, up, ex, hold)
    stream.keep_wire = None
    if ended:  # answered whole, exactly as a buffered body
        stream.release()
        stream.settle(None)
        body = b"".join(wire)
        identity = not parse_encodings(resp.headers.getall("Content-Encoding", []))
        checked = check.Checked(body if identity else b"".join(decoded), not identity, hold)
        ex.response_bytes = len(checked.body)
        _record(recorder, request.method, resp, ex, checked.body)
        ex.finish(resp.status)
        return build_response(resp._replace(body=body, stream=None), checked, ex,
                              request.headers.get("Accept-Encoding"))
    del wire[:]
    _record(recorder, request.method, resp, ex, b"")  # longer than the window: its content type only
    headers = forwarded_headers(resp, ex)
    headers.popall("Content-Encoding", None)  # decoded under the caps
    headers["X-Egress-Contract"] = ex.contract
    response = web.StreamResponse(status=resp.status, headers=headers)
    response.enable_chunked_encoding()
    facts = ex.stream = StreamFacts("passthrough")
    facts.first_byte_s = stream.first_byte_at - stream.started
    ex.finish(resp.status)
    cut: EgressError | None = None
    try:
        with CallerGone(ex, stream, facts) as caller:
            await response.prepare(request)
            for piece in decoded:
                await response.write(piece)
                facts.bytes += len(piece)
            del decoded[:]
            hold.release()
            cut = await _pump(response, chunks, stream, up, ex)
    finally:
        hold.release()
    if caller.gone:
        return response
    if cut is None:
        end_stream(ex, stream, facts, "complete", None)
        try:
            await response.write_eof()
        except ConnectionError:
            facts.end = "caller_gone"
        return response
    end_stream(ex, stream, facts, cut.reason, cut)
    ex.finish(resp.status, cut.reason)
    if request.transport is not None:  # cut: the last chunk is never written
        request.transport.close()
    return response


async def _read_window(chunks, stream, decoded: list[bytes], up: Upstream, ex: Exchange, hold: Hold) -> bool:
    """Read ahead up to WINDOW bytes within timeout.total; True when the body ended there.
    A refusal is raised as the buffered path raises it (with the same span events)."""
    size = 0
    try:
        with deadline(ex.start_mono + up.timeout.total - asyncio.get_running_loop().time()):
            async for piece in chunks:
                decoded.append(piece)
                size += len(piece)
                hold.grow(len(piece))
                if size >= WINDOW or stream.wire_bytes >= WINDOW:
                    return False
        return True
    except BaseException as exc:
        hold.release()
        if isinstance(exc, TimeoutError):
            exc = UpstreamTimeout(f"no complete answer from {up.name} within the timeout")
        if isinstance(exc, ResponseTooLarge):
            limit = "max_response_bytes" if stream.wire_bytes > up.limits.max_response_bytes \
                else "max_decompressed_bytes"
            ex.event("egress.limit_exceeded", limit=limit, value=getattr(up.limits, limit))
        elif isinstance(exc, ProxyOverloaded):
            ex.event("egress.limit_exceeded", limit="max_inflight_bytes", value=hold.limit)
        stream.close()
        stream.settle(exc)
        if isinstance(exc, UpstreamTimeout):
            raise exc from None
        raise


async def _pump(response: web.StreamResponse, chunks, stream, up: Upstream, ex: Exchange) -> EgressError | None:
    """Forward decoded chunks until the body ends (None) or is cut (the error that cut it)."""
    facts = ex.stream
    try:
        async for piece in chunks:
            await response.write(piece)
            facts.bytes += len(piece)
            await asyncio.sleep(0)  # one fast body must not hold the event loop (see stream_respond)
    except ConnectionError:  # the caller is gone: _relay ends the stream
        raise
    except Exception as exc:
        return cut_by(exc, ex, up.limits, stream)
    return None


def _record(recorder, method: str, resp: UpstreamResponse, ex: Exchange, body: bytes) -> None:
    """An unmatched body for `learn`, as the pipeline records a buffered one."""
    if recorder is not None and ex.contract == "unmatched":
        recorder.record(ex.upstream_name, ex.operation or f"{method} {ex.path}", resp.status,
                        resp.headers.get("Content-Type"), body)
