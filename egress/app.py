"""Builds the two listeners (data and admin) and runs them: start-up, SIGHUP reload,
SIGTERM drain (readiness false at once, in-flight requests finish within drain_timeout)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from dataclasses import dataclass

from aiohttp import web

from egress import pipeline
from egress.admin import build_admin_app
from egress.config import Settings
from egress.generation import build_generation
from egress.identity.mtls import server_context
from egress.observe.logs import log
from egress.observe.observe import Observability
from egress.process import ProcessState

# bounded request heads: over these, aiohttp answers 400 before any handler runs
HANDLER_ARGS = {"max_line_size": 8190, "max_field_size": 8190, "max_headers": 100}


@dataclass
class Running:
    state: ProcessState
    data_runner: web.BaseRunner
    admin_runner: web.BaseRunner

    @property
    def data_port(self) -> int:
        return self.data_runner.addresses[0][1]

    @property
    def admin_port(self) -> int:
        return self.admin_runner.addresses[0][1]

    async def drain(self, timeout: float) -> None:
        """Readiness false, stop accepting, let in-flight requests finish, close upstreams."""
        self.state.draining = True
        log(logging.INFO, "draining", in_flight=self.state.generation.in_flight, timeout=timeout)
        await self.data_runner.cleanup()
        await self.state.generation.close(grace=timeout)
        await self.admin_runner.cleanup()
        await self.state.stop()
        await self.state.obs.shutdown()


async def start(settings: Settings, *, data_port: int | None = None, admin_port: int | None = None,
                reuse_port: bool = False, resolver=None, observers=None, observability=None) -> Running:
    """Start both listeners; ports default to the config's (0 = any free port)."""
    generation = build_generation(settings, resolver=resolver)
    await generation.start()
    obs = observability or Observability(settings, environ=os.environ)
    state = ProcessState(generation, resolver=resolver, observers=[*(observers or ()), obs.observe], obs=obs)
    await state.start()

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return await pipeline.handle(request, state)

    server = web.Server(handler, handler_cancellation=True, **HANDLER_ARGS)
    data_runner = web.ServerRunner(server, access_log=None, shutdown_timeout=settings.drain_timeout)
    admin_runner = web.AppRunner(build_admin_app(state, state.admin_routes()), access_log=None)
    try:
        await data_runner.setup()
        host, port = settings.listen
        await web.TCPSite(data_runner, host, port if data_port is None else data_port,
                          reuse_port=reuse_port or None, backlog=1024,
                          ssl_context=server_context(settings.listen_tls)).start()
        await admin_runner.setup()
        ahost, aport = settings.admin_listen
        await web.TCPSite(admin_runner, ahost, aport if admin_port is None else admin_port,
                          reuse_port=reuse_port or None).start()
    except BaseException:  # a port in use: release everything started so far, then fail fast
        await data_runner.cleanup()
        await admin_runner.cleanup()
        await generation.close()
        await state.stop()
        raise
    return Running(state, data_runner, admin_runner)


async def serve(settings: Settings, *, reuse_port: bool = False) -> int:
    running = await start(settings, reuse_port=reuse_port)
    log(logging.INFO, "listening", data=f"{settings.listen[0]}:{running.data_port}",
        admin=f"{settings.admin_listen[0]}:{running.admin_port}", pid=os.getpid(),
        upstreams=[up.name for up in settings.upstreams])
    gc.collect()
    gc.freeze()  # start-up objects never need scanning again
    # fewer young collections: a request allocates a few thousand objects, almost none cyclic
    gc.set_threshold(50_000, 20, 100)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    def on_hup() -> None:
        async def reload() -> None:
            problems = await running.state.reload(settings.source)
            for problem in problems:
                log(logging.ERROR, "reload problem", problem=problem)
        loop.create_task(reload())

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    await stop.wait()
    await running.drain(settings.drain_timeout)
    log(logging.INFO, "stopped")
    return 0
