"""The pipeline: the ONLY place that knows the order of the stages (DESIGN "request path").

route -> caller (+ limits) -> sanitize -> send -> check -> observe -> respond.  Each stage is a plain
function or a small object over frozen config; they record facts on the Exchange and raise
EgressError subclasses, which become problem+json answers here.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from egress import check, identity, passthrough, stream_respond
from egress.errors import EgressError, OperationNotAllowed, ShuttingDown, UpstreamTimeout
from egress.exchange import CURRENT, Attempt, Exchange
from egress.observe.tracecontext import new_span_id, new_trace_id, parse_traceparent
from egress.problem import problem_response
from egress.respond import build_response
from egress.routes import asked_for
from egress.send import bodies, resilience

_DEADLINE_MARGIN = 0.05
# refusals inside an attempt (upstream.py) that DESIGN names a span event for
_ATTEMPT_EVENTS = {
    "address_blocked": ("egress.address_blocked", lambda up: {"host": up.host}),
    "redirect_blocked": ("egress.redirect_blocked", lambda up: {"followed": True}),
    "response_too_large": ("egress.limit_exceeded",
                           lambda up: {"limit": "max_response_bytes", "value": up.limits.max_response_bytes}),
}


async def handle(request: web.BaseRequest, state) -> web.StreamResponse:
    generation = state.generation  # this request keeps the config generation it started with
    generation.in_flight += 1
    ex = Exchange(request.method)
    parent = parse_traceparent(request.headers.get("traceparent"))
    ex.traceparent, ex.parent_sampled = (parent[1], parent[2]) if parent else (None, None)
    ex.trace_id, ex.span_id = (parent[0] if parent else new_trace_id()), new_span_id()
    token = CURRENT.set(ex)
    try:
        response = await _proxy(request, generation, state, ex)
    except EgressError as err:
        ex.finish(err.status, err.reason)
        response = problem_response(err, ex)
    except asyncio.CancelledError:
        if not state.drain_cut:  # the caller went away: nothing to answer; a stream it read is recorded
            if ex.stream is not None:
                state.observe(ex)
            raise
        asyncio.current_task().uncancel()  # drain_timeout passed (app.py): answer, and log it
        err = ShuttingDown("drain_timeout passed before this request finished; retry on another replica")
        ex.finish(err.status, err.reason)
        response = problem_response(err, ex)
    except Exception as exc:  # a bug of ours: answer clearly, log the type only (no payloads)
        logging.getLogger("egress").error("unhandled error in pipeline", exc_info=exc)
        err = EgressError("egress failed to handle this request; see its logs")
        ex.finish(err.status, err.reason)
        response = problem_response(err, ex)
    finally:
        generation.in_flight -= 1
        if ex.permit is not None:
            ex.permit.release()
        CURRENT.reset(token)
    state.observe(ex)
    return response


async def _proxy(request: web.BaseRequest, rt, state, ex: Exchange) -> web.StreamResponse:
    # route
    try:
        route = rt.router.resolve(request.method, request.raw_path, request.headers.get("Host"))
    except EgressError as err:  # record what was asked for, and who asked (never refused for that)
        ex.denied_via, ex.denied_host = asked_for(rt.router, request.raw_path, request.headers.get("Host"))
        ex.caller = await _asking_caller(request, rt)
        ex.event("egress.destination_denied", reason=err.reason, host=ex.denied_host, via=ex.denied_via)
        raise
    up = ex.upstream = route.upstream
    ex.target_kind, ex.path = route.via, route.path or "/"
    # caller
    caller = await rt.identity.identify(request, up.name)
    ex.caller = caller.name
    state.suspensions.check(up.name, ex.caller)  # the kill switch: nothing sent
    identity.authorize(up, ex.caller)
    ex.grant = identity.authorize_operation(rt.grants.get(up.name), caller, request.method, ex.path)
    contract = rt.contract_for(up)
    op = contract.match(request.method, ex.path) if contract is not None else None
    ex.operation = op.template if op is not None else None
    if contract is not None and op is None and up.mode != "off":
        if up.unmatched == "block":
            raise OperationNotAllowed(f"{request.method} on this path is not in the contract of {up.name}")
        if up.unmatched == "report":
            ex.event("egress.contract_unmatched", anomaly=False, method=request.method)
    rt.sanitizer.path(route.path, ex)  # a token in the path: refused before it spends any quota
    # limits: holds, concurrency, rate limits (nothing read from the body yet)
    ex.permit = await state.limits.admit(up, ex.caller, ex.operation, ex)
    # sanitize
    body = await bodies.read_request_body(request.content, request.content_length,
                                          up.limits.max_request_bytes)
    ex.request_bytes = len(body)
    headers = rt.sanitizer.headers(request.headers, up, ex)
    await state.credentials.inject(headers, up, ex)
    query = rt.sanitizer.query(route.query, ex)
    body = rt.sanitizer.body(body, request.headers.get("Content-Type"), ex,
                             content_encoding=",".join(request.headers.getall("Content-Encoding", ())),
                             max_decoded=up.limits.max_decompressed_bytes)
    target = route.upstream_target(query)
    # send
    breaker = state.breakers.get(up.name, up.breaker, ex.operation)
    if state.store_down():  # on the span, not an anomaly: every request would be traced
        ex.event("egress.breaker_store_down", anomaly=False, breaker=breaker.key)
    streams = passthrough.stream_if(op, up, request.method, has_contract=contract is not None,
                                    keep_unmatched=rt.recorder is not None)  # bodies read as they arrive
    def send():
        return _send(rt.clients[up.name], request.method, target, headers, body, ex, state, breaker,
                     idempotency_key="Idempotency-Key" in request.headers, stream_if=streams)
    resp = await send()
    # a 401 to an oauth2 token (the partner refused before acting): once more with a new token
    if resp.status == 401 and await state.credentials.renew_after_401(headers, up, ex):
        await resp.release()
        resp = await send()
    state.limits.provider_answered(up, ex.operation, resp.status, resp.headers, ex)
    facts = streams.facts_of(resp)  # read once when it was decided (check.ResponseFacts)
    if resp.stream is not None and facts.sequential:
        # SSE / NDJSON: checked and forwarded event by event (stream_respond.py)
        return await stream_respond.relay(request, resp, op, up, ex, has_contract=contract is not None,
                                          recorder=rt.recorder)
    if resp.stream is not None:  # nothing validates this body: forwarded as it arrives (passthrough.py)
        return await passthrough.relay(request, resp, op, up, ex, state.inflight.hold(),
                                       has_contract=contract is not None, recorder=rt.recorder, facts=facts)
    # check
    check.check_redirect(resp, rt.router, ex)
    checked = check.decode_body(resp, up, ex, state.inflight.hold())
    if contract is not None:
        try:
            check.check_contract(op, resp, checked.body, up, ex,
                                 drift=state.wants_drift(up.name, ex.operation), facts=facts)
        except BaseException:
            checked.release()  # refused: this body is not forwarded
            raise
        finally:
            if ex.contract == "violated" and up.breaker.count_violations:
                breaker.record_violation(resp.status)
            if rt.recorder is not None and ex.contract in ("violated", "unmatched"):
                rt.recorder.record(up.name, ex.operation or f"{request.method} {ex.path}", resp.status,
                                   resp.headers.get("Content-Type"), checked.body)
    # respond (observe runs in handle(), after the answer is built, for errors too)
    ex.finish(resp.status)
    return build_response(resp, checked, ex, request.headers.get("Accept-Encoding"))


async def _asking_caller(request: web.BaseRequest, rt) -> str | None:
    """The caller of a request that routing refused, for the record only (None if unproven)."""
    try:
        return (await rt.identity.identify(request)).name
    except EgressError:
        return None


async def _send(client, method, target, headers, body, ex: Exchange, state, breaker, *, idempotency_key,
                stream_if=None):
    up = client.upstream
    loop = asyncio.get_running_loop()
    deadline = ex.start_mono + up.timeout.total

    async def attempt(n: int):
        rec = Attempt(n, time.time_ns(), url=up.origin + target.split("?", 1)[0])
        ex.attempts.append(rec)
        try:
            resp = await client.send(method, target, headers, body, timeout=deadline - loop.time(),
                                     stream_if=stream_if)
        except EgressError as err:
            rec.error, rec.end_ns = err.reason, time.time_ns()
            if err.reason in _ATTEMPT_EVENTS:
                name, attrs = _ATTEMPT_EVENTS[err.reason]
                ex.event(name, **attrs(up))
            raise
        rec.status, rec.end_ns = resp.status, time.time_ns()
        return resp

    def bound():  # the exchange's deadline around retry waits; a small margin: an attempt's own
        # timeout fires first, so the breaker counts it
        return asyncio.timeout(max(0.0, deadline - loop.time()) + _DEADLINE_MARGIN)

    try:
        return await resilience.call_with_resilience(
            attempt, method=method, idempotency_key=idempotency_key, retry=up.retry,
            breaker=breaker, budget=state.budget(up.name, up.retry.budget), deadline=deadline,
            clock=loop.time, on_event=lambda e: state.resilience_event(ex, e), bound=bound)
    except TimeoutError as exc:
        raise UpstreamTimeout(f"{up.name} did not answer within timeout.total") from exc
