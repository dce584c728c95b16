"""Builds the two listeners (data and admin) and runs them: start-up, SIGHUP reload,
SIGTERM drain (readiness false at once; in-flight requests finish within drain_timeout, or
answer 503 shutting_down when it passes; then the process exits)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from dataclasses import dataclass, field

from aiohttp import web

from egress import pipeline
from egress.admin import build_admin_app
from egress.admin_auth import refuse_exposed_admin
from egress.config import Settings
from egress.generation import Generation, build_generation
from egress.identity.mtls import server_context
from egress.observe.logs import log
from egress.observe.observe import Observability
from egress.process import ProcessState

# bounded request heads: over these, aiohttp answers 400 before any handler runs
HANDLER_ARGS = {"max_line_size": 8190, "max_field_size": 8190, "max_headers": 100,
                # egress must see the bytes the caller sent (decoded for inspection by
                # send/bodies.py, forwarded as received), never aiohttp's unbounded inflate
                "auto_decompress": False}


# after the drain, answers already built (the 503s included) get this long to be written
FLUSH_TIMEOUT = 1.0


@dataclass
class Running:
    state: ProcessState
    data_runner: web.BaseRunner
    admin_runner: web.BaseRunner
    in_flight: set = field(default_factory=set)  # the handler tasks of requests being served

    @property
    def data_port(self) -> int:
        return self.data_runner.addresses[0][1]

    @property
    def admin_port(self) -> int:
        addr = self.admin_runner.addresses[0]
        return addr[1] if isinstance(addr, tuple) else 0

    async def drain(self, timeout: float) -> None:
        """Bounded by `timeout` (drain_timeout): readiness false and no new connections at
        once; in-flight requests get `timeout` seconds to finish, then each answers 503
        `shutting_down` (with its access line); upstream connections close; admin stops last."""
        state, loop = self.state, asyncio.get_running_loop()
        state.draining = True
        log(logging.INFO, "draining", in_flight=len(self.in_flight), timeout=timeout)
        for site in list(self.data_runner.sites):
            await site.stop()  # the listening socket closes: no new connections
        server = self.data_runner.server
        if server is not None:
            server.pre_shutdown()  # idle keep-alive connections close; busy ones after their answer
        deadline = loop.time() + timeout
        while self.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if self.in_flight:
            log(logging.WARNING, "drain_timeout passed: answering in-flight requests 503 shutting_down",
                in_flight=len(self.in_flight), timeout=timeout)
            state.drain_cut = True
            for task in list(self.in_flight):
                task.cancel()
            flush = loop.time() + FLUSH_TIMEOUT
            while self.in_flight and loop.time() < flush:
                await asyncio.sleep(0.01)
        await self.data_runner.cleanup()
        await state.generation.close()
        await self.admin_runner.cleanup()
        await state.stop()
        await state.obs.shutdown()


async def start(settings: Settings, *, data_port: int | None = None, admin_port: int | None = None,
                reuse_port: bool = False, resolver=None, observers=None, observability=None,
                generation: Generation | None = None, admin_path: str | None = None) -> Running:
    """Start both listeners; ports default to the config's (0 = any free port).

    `generation`: one compiled before the fork (workers.py); `admin_path`: a worker's private
    admin listener (a Unix socket the aggregating parent reads) instead of admin_listen."""
    refuse_exposed_admin(settings)
    generation = generation or build_generation(settings, resolver=resolver)
    await generation.start()
    obs = observability or Observability(settings, environ=os.environ)
    state = ProcessState(generation, resolver=resolver, observers=[*(observers or ()), obs.observe], obs=obs)
    await state.start()

    in_flight: set[asyncio.Task] = set()

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        task = asyncio.current_task()
        in_flight.add(task)
        try:
            return await pipeline.handle(request, state)
        finally:
            in_flight.discard(task)

    server = web.Server(handler, handler_cancellation=True, **HANDLER_ARGS)
    data_runner = web.ServerRunner(server, access_log=None, shutdown_timeout=FLUSH_TIMEOUT)
    admin_runner = web.AppRunner(build_admin_app(state, state.admin_routes()), access_log=None)
    try:
        await data_runner.setup()
        host, port = settings.listen
        await web.TCPSite(data_runner, host, port if data_port is None else data_port,
                          reuse_port=reuse_port or None, backlog=1024,
                          ssl_context=server_context(settings.listen_tls)).start()
        await admin_runner.setup()
        ahost, aport = settings.admin_listen
        if admin_path is not None:
            await web.UnixSite(admin_runner, admin_path).start()
        else:
            await web.TCPSite(admin_runner, ahost, aport if admin_port is None else admin_port,
                              reuse_port=reuse_port or None).start()
    except BaseException:  # a port in use: release everything started so far, then fail fast
        await data_runner.cleanup()
        await admin_runner.cleanup()
        await generation.close()
        await state.stop()
        raise
    return Running(state, data_runner, admin_runner, in_flight)


async def serve(settings: Settings, *, reuse_port: bool = False, generation: Generation | None = None,
                admin_path: str | None = None) -> int:
    running = await start(settings, reuse_port=reuse_port, generation=generation, admin_path=admin_path)
    log(logging.INFO, "listening", data=f"{settings.listen[0]}:{running.data_port}",
        admin=admin_path or f"{settings.admin_listen[0]}:{running.admin_port}", pid=os.getpid(),
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
        # a refusal is logged by reload() itself: its key paths, never the values
        loop.create_task(running.state.reload(settings.source))

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    await stop.wait()
    await running.drain(settings.drain_timeout)
    log(logging.INFO, "stopped")
    return 0
