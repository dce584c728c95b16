"""Admin port authentication: `admin_token` (or `admin_token_file`) guards every admin path
except the open ones (/healthz, /readyz, /metrics: probes and Prometheus).

An allowlist: any other path, known or not, needs `Authorization: Bearer <token>`, compared
in constant time (`hmac.compare_digest`).  The token is read from the current config
generation on each request (a reload can rotate it; a `admin_token_file` is re-read when it
changes).  Refusals answer 401 `admin_unauthenticated` and log the method, path and peer,
never what was sent.  `holder(request)` names who made a change, for the audit line.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from egress.config.secrets import admin_exposed_problem
from egress.credentials.file import FileValue
from egress.errors import ConfigError
from egress.observe.logs import log

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
REASON = "admin_unauthenticated"
HOLDER = web.RequestKey("admin_holder", str)


def refuse_exposed_admin(settings) -> None:
    """At start: no unauthenticated admin port beyond loopback unless admin_insecure says so."""
    if settings.admin_token or settings.admin_token_file:
        return
    problem = admin_exposed_problem(settings.admin_listen, settings.admin_insecure)
    if problem:
        raise ConfigError([problem])


class AdminAuth:
    def __init__(self, state) -> None:
        self._state = state
        self._files: dict[str, FileValue] = {}

    def _token(self) -> str | None:
        settings = self._state.generation.settings
        if settings.admin_token:
            return settings.admin_token
        path = settings.admin_token_file
        if not path:
            return None
        source = self._files.get(path)
        if source is None:
            source = self._files[path] = FileValue(path)
        return source.get() or "\x00unreadable"   # configured but unreadable: nothing matches

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        if request.path in OPEN_PATHS and request.method in ("GET", "HEAD"):
            return await handler(request)
        expected = self._token()
        if expected is None:
            request[HOLDER] = "no admin_token"
            return await handler(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8", "replace"),
                                                                 expected.encode("utf-8"))
        if not ok:
            log(logging.WARNING, "admin request refused", reason=REASON, method=request.method,
                path=request.path[:200], peer=request.remote)
            return web.json_response(
                {"error": "this admin endpoint needs Authorization: Bearer <admin_token>", "reason": REASON},
                status=401, headers={"WWW-Authenticate": 'Bearer realm="egress-admin"', "X-Egress-Error": REASON})
        request[HOLDER] = "admin_token"
        return await handler(request)


def holder(request: web.Request) -> str:
    return request.get(HOLDER, "unknown")
