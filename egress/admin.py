"""Admin listener (never on the data port): health, readiness, metrics, inventory, reload."""

from __future__ import annotations

import orjson
from aiohttp import web

STATE = web.AppKey("state", object)
METRICS = web.AppKey("metrics", object)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.draining:
        return web.json_response({"ready": False, "reason": "draining"}, status=503)
    return web.json_response({"ready": True, "generation": state.generation.number})


async def reload(request: web.Request) -> web.Response:
    state = request.app[STATE]
    source = state.generation.settings.source
    if source is None:
        return web.json_response({"reloaded": False, "errors": ["no config file to reload from"]}, status=409)
    problems = await state.reload(source)
    if problems:
        return web.json_response({"reloaded": False, "errors": problems}, status=422)
    return web.json_response({"reloaded": True, "generation": state.generation.number})


async def breakers(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.Response(body=orjson.dumps(state.breakers.snapshot()), content_type="application/json")


def build_admin_app(state, extra_routes=()) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/admin/reload", reload)
    app.router.add_get("/admin/breakers", breakers)
    for method, path, handler in extra_routes:
        app.router.add_route(method, path, handler)
    return app
