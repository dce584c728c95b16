"""The promised work written flat: issue 18's experiment on what the pipeline's scaffolding costs.

    python bench/flat.py PORT CONFIG      # the config egress-quiet serves (bench/fixtures.py)

One coroutine per request and no stage structure.  It calls egress's own pieces where they ARE
the check (Router.resolve, Identity.identify and both authorizations, Sanitizer.path / headers /
query / body, the static credential, Contract.match, Operation.check: the guarded parse and the
validation), and the plainest aiohttp for the rest: one deadline for the exchange (egress's
send/deadline.py, the timer egress's attempts use), one
ClientSession.request, the body read whole under max_response_bytes, the provider's headers by
egress's own allowlist (respond.forwarded_headers).  Same server and client settings as egress
(web.Server with its HANDLER_ARGS, handler_cancellation, gc.freeze + threshold).

What it leaves out, so what `egress-quiet - flat` holds: the retry loop, the breaker and the
retry budget, limits (holds, concurrency, rate), the Attempt records, the pass-through decision,
metrics, inventory and baselines (egress-quiet keeps them; only the access line and spans are
off there), X-Egress-Contract and trace context, the problem+json answers (a refusal here is a
bare 403/502: the bench's ablation only sends valid requests, and wrk counts anything else as
an error, which fails the run).  It is a measuring instrument, not a proxy: never deploy it.

    FLAT_WITHOUT=route+identity python bench/flat.py PORT CONFIG   # the accounting (instructions.py)

FLAT_WITHOUT removes pieces of the checks, one experiment each: what flat costs less without
them is what they cost.  Pieces (WITHOUT): route (Router.resolve once per path, then reused),
identity (the caller identified and authorized once, then reused), sanitize (no Sanitizer call:
the forwarder's hop-by-hop filter instead; the credential is still injected), match
(Contract.match once per path), check (no parse, no validation), guarded (the floor's orjson +
jsonschema-rs in place of Operation.check: what egress's guarded parse and error-collecting
validation cost beyond the floor), timeout (no deadline), answer (the forwarder's header
filter in place of forwarded_headers).  The bench sends the same valid request again and
again, so reusing a first answer changes no outcome.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from pathlib import Path

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from forwarder import serve_until_sigterm

from egress import identity
from egress.app import HANDLER_ARGS
from egress.config import load_settings
from egress.credentials.static import inject
from egress.errors import EgressError
from egress.exchange import Exchange
from egress.generation import build_generation
from egress.respond import forwarded_headers
from egress.send.bodies import read_request_body
from egress.send.deadline import deadline


PIECES = ("route", "identity", "sanitize", "match", "check", "guarded", "timeout", "answer")
HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
       "host", "content-length", "x-egress-caller"}  # the forwarder's filter (+ egress's caller header)


def pieces_without(text: str | None) -> frozenset[str]:
    """FLAT_WITHOUT's pieces ('+' or ','-separated); an unknown piece is an error, not ignored."""
    chosen = frozenset(p for p in (text or "").replace(",", "+").split("+") if p)
    unknown = chosen - set(PIECES)
    if unknown:
        raise SystemExit(f"flat.py: FLAT_WITHOUT names no piece {', '.join(sorted(unknown))} (pieces: {', '.join(PIECES)})")
    return chosen


def _first(memo: dict, key, make):
    """The first answer per key, reused (the bench repeats one request)."""
    if key not in memo:
        memo[key] = make()
    return memo[key]


async def main(port: int, config: Path) -> None:
    without = pieces_without(os.environ.get("FLAT_WITHOUT"))
    rt = build_generation(load_settings(config, os.environ))
    routes: dict = {}
    callers: dict = {}
    ops: dict = {}
    floor = None
    if "guarded" in without:
        import orjson
        from cost_rows import floor_validators
        floor = floor_validators()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=256), auto_decompress=False,
        trust_env=False, cookie_jar=aiohttp.DummyCookieJar(), skip_auto_headers=("User-Agent",))

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        ex = Exchange(request.method)  # the sanitizer records what it strips on it
        try:
            target = (request.method, request.raw_path, request.headers.get("Host"))
            if "route" in without:
                route = _first(routes, target, lambda: rt.router.resolve(*target))
            else:
                route = rt.router.resolve(*target)
            up = route.upstream
            caller = callers.get(up.name) if "identity" in without else None
            if caller is None:
                caller = await rt.identity.identify(request, up.name)
                identity.authorize(up, caller.name)
                identity.authorize_operation(rt.grants.get(up.name), caller, request.method, route.path or "/")
                callers[up.name] = caller  # an authorized caller only
            if "match" in without:
                op = _first(ops, (request.method, route.path), lambda: rt.contract_for(up).match(request.method, route.path or "/"))
            else:
                op = rt.contract_for(up).match(request.method, route.path or "/")
            if op is None:
                return web.Response(status=403)
            body = await read_request_body(request.content, request.content_length, up.limits.max_request_bytes)
            if "sanitize" in without:
                headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in HOP)
                inject(headers, up, ex)
                query = route.query
            else:
                rt.sanitizer.path(route.path, ex)
                headers = rt.sanitizer.headers(request.headers, up, ex)
                inject(headers, up, ex)
                query = rt.sanitizer.query(route.query, ex)
                body = rt.sanitizer.body(body, request.headers.get("Content-Type"), ex, max_decoded=up.limits.max_decompressed_bytes)
            request_cm = session.request(request.method, up.origin + route.upstream_target(query),
                                         headers=headers, data=body or None, allow_redirects=False)
            if "timeout" in without:
                resp, data = await _fetch(request_cm, up)
            else:
                with deadline(up.timeout.total):
                    resp, data = await _fetch(request_cm, up)
            if data is None:
                return web.Response(status=502)
            status = resp.status
            if floor is not None:
                if status == 200 and not floor["list" if "/accounts/" in request.raw_path else "charge"].is_valid(orjson.loads(data)):
                    return web.Response(status=502)
            elif "check" not in without:
                result = op.check(status, resp.headers.get("Content-Type"), data,
                                  max_depth=up.limits.max_json_depth, max_violations=up.limits.max_violations)
                if result.outcome == "violated":
                    return web.Response(status=502)
            if "answer" in without:
                return web.Response(status=status, body=data, headers={
                    k: v for k, v in resp.headers.items() if k.lower() not in HOP})
            return web.Response(status=status, body=data, headers=forwarded_headers(resp, ex))
        except EgressError as err:
            return web.Response(status=err.status)

    async def _fetch(request_cm, up):
        async with request_cm as resp:
            if (resp.content_length or 0) > up.limits.max_response_bytes:
                return resp, None
            return resp, await resp.read()  # as the forwarder reads (egress caps every chunk)

    gc.set_threshold(50_000, 20, 100)  # as egress's serve()
    await serve_until_sigterm(web.Server(handle, handler_cancellation=True, **HANDLER_ARGS), port)
    await session.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2])))
