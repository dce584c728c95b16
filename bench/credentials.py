"""CPU cost of the credential stage and the kill switch check, side by side (in-process).

    .venv/bin/python bench/credentials.py [--n 200000] [--repeat 5]

Per call, min over repeats (a shared machine only ever adds time): the credential stage for a
static value (the baseline), a `value_file` (a stat once a second), an OAuth2 token held in
the cache (fetched once from a local token endpoint), and `Suspensions.check` with nothing
and with 100 suspensions held.  Prints a table with ratios to static; writes
bench/results/credentials.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web
from multidict import CIMultiDict

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from egress.config import settings_from_dict  # noqa: E402
from egress.credentials import Credentials  # noqa: E402
from egress.exchange import Exchange  # noqa: E402
from egress.suspensions import Suspensions  # noqa: E402


async def idp() -> web.AppRunner:
    async def token(request):
        return web.json_response({"access_token": "bench-token", "token_type": "Bearer", "expires_in": 3600})
    app = web.Application()
    app.router.add_post("/token", token)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def per_call(fn, n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    runner = await idp()
    port = runner.addresses[0][1]
    work = Path(tempfile.mkdtemp())
    (work / "key").write_text("file-value\n")
    doc = {"upstreams": [
        {"name": "static", "url": "https://a.example", "credential": {"header": "X-Key", "value": "v"}},
        {"name": "file", "url": "https://b.example", "credential": {"header": "X-Key", "value_file": "key"}},
        {"name": "oauth2", "url": "https://c.example", "allow_private_addresses": True, "credential": {
            "header": "Authorization",
            "oauth2": {"token_url": f"http://127.0.0.1:{port}/token", "client_id": "c", "client_secret": "s"}}},
    ]}
    settings = settings_from_dict(doc, base_dir=work, environ={})
    creds = Credentials()
    ups = {up.name: up for up in settings.upstreams}
    headers = CIMultiDict()
    await creds.inject(headers, ups["oauth2"], Exchange("GET"))   # the one fetch
    results = {}
    for name, up in ups.items():
        async def inject(up=up):
            await creds.inject(headers, up, Exchange("GET"))
        results[f"credential {name}"] = await per_call(inject, args.n, args.repeat)
    import logging
    logging.getLogger("egress").setLevel(logging.ERROR)   # the 100 audit lines below
    none, many = Suspensions(), Suspensions()
    for i in range(100):
        many.change("caller", f"c{i}", suspended=True, reason="bench", by="bench")

    async def check_none():
        none.check("static", "checkout")

    async def check_many():
        many.check("static", "checkout")

    results["suspensions.check, none held"] = await per_call(check_none, args.n, args.repeat)
    results["suspensions.check, 100 held"] = await per_call(check_many, args.n, args.repeat)
    await creds.close()
    await runner.cleanup()
    base = results["credential static"]
    print(f"{'case':34} {'µs/call':>8} {'x static':>9}")
    for name, us in results.items():
        print(f"{name:34} {us:8.2f} {us / base:9.2f}")
    out = HERE / "results" / "credentials.json"
    out.write_text(json.dumps({"n": args.n, "repeat": args.repeat, "us_per_call": results}, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
