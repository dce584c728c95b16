"""The Python ceiling: a minimal aiohttp forwarder (no checks at all), same start-up as egress
(low-level web.Server, access log off, gc.freeze() after start-up).

    python bench/forwarder.py PORT UPSTREAM_BASE_URL     # GET /x -> UPSTREAM_BASE_URL/x
    python bench/forwarder.py PORT UPSTREAM_BASE_URL --validate

With --validate it is the floor of issue 18 running as a proxy ("floor-proxy" in the ablation):
every 200 body is parsed with orjson and validated with jsonschema-rs against the bench schema
of its path (cost_rows.floor_validators, the very validators the in-process floor row times), a
502 when it does not pass.  Nothing else: no duplicate keys, depth or exact numbers, no
sanitizing, no caller.  It shows what the floor's sum (forwarder + in-process parse/validate)
becomes when the same calls run inside a proxy's request.
"""

import asyncio
import gc
import signal
import sys

import aiohttp
from aiohttp import web

HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
       "host", "content-length"}


async def main(port: int, base: str, validate: bool = False) -> None:
    validators = None
    if validate:
        import orjson
        from cost_rows import floor_validators

        validators = floor_validators()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=256), auto_decompress=False,
        skip_auto_headers=("User-Agent",), cookie_jar=aiohttp.DummyCookieJar())

    async def handle(request: web.BaseRequest) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        body = await request.read()
        async with session.request(request.method, base + request.raw_path, headers=headers,
                                   data=body or None, allow_redirects=False) as resp:
            data = await resp.read()
            out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP}
        if validators is not None and resp.status == 200:
            validator = validators["list" if "/accounts/" in request.raw_path else "charge"]
            if not validator.is_valid(orjson.loads(data)):
                return web.Response(status=502)
        return web.Response(status=resp.status, body=data, headers=out)

    await serve_until_sigterm(web.Server(handle), port)
    await session.close()


async def serve_until_sigterm(server: web.Server, port: int) -> None:
    """Listen on 127.0.0.1:`port` until SIGTERM, start-up objects frozen out of the gc (as egress)."""
    runner = web.ServerRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2].rstrip("/"), validate="--validate" in sys.argv[3:]))
