"""Admin listener (never on the data port): health, readiness, metrics, inventory, reload,
the kill switch (suspend/resume upstreams and callers); /admin/* behind admin_auth.py."""

from __future__ import annotations

import orjson
from aiohttp import web

from egress.admin_auth import AdminAuth, holder
from egress.suspensions import clean_reason

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


async def _suspension(request: web.Request, target: str, suspended: bool) -> web.Response:
    """POST /admin/{upstreams|callers}/{name}/{suspend|resume}, body {"reason": "...", "by": "..."}."""
    state, name = request.app[STATE], request.match_info["name"]
    if target == "upstream" and state.generation.settings.upstream(name) is None:
        return web.json_response({"error": f"no upstream named {name!r} in the current config"}, status=404)
    if not name.isprintable() or len(name) > 200:
        return web.json_response({"error": "caller names are printable and at most 200 characters"}, status=400)
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return web.json_response({"error": 'the body must be a JSON object: {"reason": "..."}'}, status=400)
    reason = clean_reason(body.get("reason")) or (None if suspended else "resumed")
    if reason is None:
        return web.json_response({"error": 'a suspension needs a reason: {"reason": "..."}'}, status=400)
    actor = clean_reason(body.get("by"))
    by = f"{actor[:64]} ({holder(request)})" if actor else holder(request)
    record = state.suspensions.change(target, name, suspended=suspended, reason=reason, by=by)
    return web.json_response({"target": target, **record.value(), "name": name})


def _suspension_handler(target: str, suspended: bool):
    async def handler(request: web.Request) -> web.Response:
        return await _suspension(request, target, suspended)
    return handler


async def suspensions(request: web.Request) -> web.Response:
    return web.json_response({"suspended": request.app[STATE].suspensions.active()})


def build_admin_app(state, extra_routes=()) -> web.Application:
    app = web.Application(middlewares=[AdminAuth(state).middleware])
    app[STATE] = state
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/admin/reload", reload)
    app.router.add_get("/admin/breakers", breakers)
    app.router.add_get("/admin/suspensions", suspensions)
    for target, plural in (("upstream", "upstreams"), ("caller", "callers")):
        for action, suspended in (("suspend", True), ("resume", False)):
            app.router.add_post(f"/admin/{plural}/{{name}}/{action}", _suspension_handler(target, suspended))
    for method, path, handler in extra_routes:
        app.router.add_route(method, path, handler)
    return app
