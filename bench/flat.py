"""The promised work written flat: issue 18's experiment on what the pipeline's scaffolding costs.

    python bench/flat.py PORT CONFIG      # the config egress-quiet serves (bench/fixtures.py)

One coroutine per request and no stage structure.  It calls egress's own pieces where they ARE
the check (Router.resolve, Identity.identify and both authorizations, Sanitizer.path / headers /
query / body, the static credential, Contract.match, Operation.check: the guarded parse and the
validation), and the plainest aiohttp for the rest: one asyncio.timeout for the exchange, one
ClientSession.request, the body read whole under max_response_bytes, the provider's headers by
egress's own allowlist (respond.forwarded_headers).  Same server and client settings as egress
(web.Server with its HANDLER_ARGS, handler_cancellation, gc.freeze + threshold).

What it leaves out, so what `egress-quiet - flat` holds: the retry loop, the breaker and the
retry budget, limits (holds, concurrency, rate), the Attempt records, the pass-through decision,
metrics, inventory and baselines (egress-quiet keeps them; only the access line and spans are
off there), X-Egress-Contract and trace context, the problem+json answers (a refusal here is a
bare 403/502: the bench's ablation only sends valid requests, and wrk counts anything else as
an error, which fails the run).  It is a measuring instrument, not a proxy: never deploy it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from pathlib import Path

import aiohttp
from aiohttp import web
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


async def main(port: int, config: Path) -> None:
    rt = build_generation(load_settings(config, os.environ))
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=256), auto_decompress=False,
        trust_env=False, cookie_jar=aiohttp.DummyCookieJar(), skip_auto_headers=("User-Agent",))

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        ex = Exchange(request.method)  # the sanitizer records what it strips on it
        try:
            route = rt.router.resolve(request.method, request.raw_path, request.headers.get("Host"))
            up = route.upstream
            caller = await rt.identity.identify(request, up.name)
            identity.authorize(up, caller.name)
            identity.authorize_operation(rt.grants.get(up.name), caller, request.method, route.path or "/")
            op = rt.contract_for(up).match(request.method, route.path or "/")
            if op is None:
                return web.Response(status=403)
            rt.sanitizer.path(route.path, ex)
            body = await read_request_body(request.content, request.content_length, up.limits.max_request_bytes)
            headers = rt.sanitizer.headers(request.headers, up, ex)
            inject(headers, up, ex)
            query = rt.sanitizer.query(route.query, ex)
            body = rt.sanitizer.body(body, request.headers.get("Content-Type"), ex, max_decoded=up.limits.max_decompressed_bytes)
            async with asyncio.timeout(up.timeout.total):
                async with session.request(request.method, up.origin + route.upstream_target(query),
                                           headers=headers, data=body or None, allow_redirects=False) as resp:
                    if (resp.content_length or 0) > up.limits.max_response_bytes:
                        return web.Response(status=502)
                    data = await resp.read()  # as the forwarder reads (egress caps every chunk)
            result = op.check(resp.status, resp.headers.get("Content-Type"), data,
                              max_depth=up.limits.max_json_depth, max_violations=up.limits.max_violations)
            if result.outcome == "violated":
                return web.Response(status=502)
            return web.Response(status=resp.status, body=data, headers=forwarded_headers(resp, ex))
        except EgressError as err:
            return web.Response(status=err.status)

    gc.set_threshold(50_000, 20, 100)  # as egress's serve()
    await serve_until_sigterm(web.Server(handle, handler_cancellation=True, **HANDLER_ARGS), port)
    await session.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2])))
