"""`egress serve --workers N`: a parent that compiles once, forks N workers, and answers the
admin port for all of them.

- The parent loads the config and compiles the first generation (contracts included) BEFORE
  forking, then `gc.freeze()`s it: workers share those pages copy-on-write instead of
  compiling N times, and nothing is re-imported from the working directory (no re-exec).
- Workers share the data port (SO_REUSEPORT); each one's admin listener is a private Unix
  socket.  The parent owns `admin_listen`: `/metrics` and `/admin/inventory` add up every
  worker (observe/aggregate.py), `/readyz` is ready when every worker is, `POST` admin calls
  (reload, suspensions) go to every worker, other `GET`s to the first.
- Signals: SIGTERM/SIGINT readiness false at once, then every worker drains (app.py);
  SIGHUP reloads every worker.  A worker that exits on its own stops the others and the
  parent exits 1, so the orchestrator restarts the whole set on one config.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import signal
import sys
import tempfile
import traceback
import types

import aiohttp
import orjson
from aiohttp import web

from egress.admin_auth import AdminAuth, refuse_exposed_admin
from egress.config import Settings
from egress.errors import ConfigError
from egress.observe.aggregate import merge_inventories, merge_metrics
from egress.observe.logs import log
from egress.observe.metrics import CONTENT_TYPE

FETCH_TIMEOUT = 5.0


def run(settings: Settings, workers: int) -> int:
    """Compile, fork `workers` processes, supervise them; the exit code of the whole set."""
    from egress.generation import build_generation
    try:
        refuse_exposed_admin(settings)   # the parent answers admin_listen
        generation = build_generation(settings)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"egress: {problem}", file=sys.stderr)
        return 1
    sockets = tempfile.mkdtemp(prefix="egress-workers-")
    paths = [os.path.join(sockets, f"worker-{i}.sock") for i in range(workers)]
    os.environ["EGRESS_WORKERS"] = str(workers)  # memory-store rate limits: 1/N each (send/limits.py)
    gc.collect()
    gc.freeze()  # compiled contracts and config stay shared (copy-on-write) in every worker
    sys.stdout.flush()
    sys.stderr.flush()
    pids = []
    try:
        for path in paths:
            pid = os.fork()
            if pid == 0:
                _worker(settings, generation, path)  # never returns
            pids.append(pid)
        return asyncio.run(Supervisor(settings, pids, paths).run())
    finally:
        for pid in pids:  # only ours, by PID; normally all have exited already
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        shutil.rmtree(sockets, ignore_errors=True)


def _worker(settings: Settings, generation, admin_path: str) -> None:
    code = 1
    try:
        _die_with_parent()
        from egress.app import serve
        code = asyncio.run(serve(settings, reuse_port=True, generation=generation, admin_path=admin_path))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"egress: {problem}", file=sys.stderr)
    except OSError as exc:
        print(f"egress: cannot listen: {exc.strerror or exc}", file=sys.stderr)
    except BaseException:  # noqa: BLE001 (a worker must always end in os._exit)
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker if the parent dies (no orphans holding the port)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Supervisor:
    def __init__(self, settings: Settings, pids: list[int], paths: list[str]) -> None:
        self.settings, self.pids, self.paths = settings, pids, paths
        self.codes: dict[int, int] = {}
        self.draining = False
        self.failed = False
        self.sessions: list[aiohttp.ClientSession] = []

    def _signal(self, sig: int) -> None:
        for pid in self.pids:
            if pid not in self.codes:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass

    def _stop(self) -> None:
        if not self.draining:
            self.draining = True
            log(logging.INFO, "draining workers", workers=len(self.pids))
        self._signal(signal.SIGTERM)

    def _reap(self) -> None:
        for pid in self.pids:
            if pid in self.codes:
                continue
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                self.codes[pid] = os.waitstatus_to_exitcode(status)
                if not self.draining:
                    log(logging.ERROR, "worker exited; stopping the others", pid=pid, code=self.codes[pid])
                    self.failed = True
                    self._stop()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop)
        loop.add_signal_handler(signal.SIGINT, self._stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._signal(signal.SIGHUP))
        self.sessions = [aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=p),
                                               timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT))
                         for p in self.paths]
        runner = web.AppRunner(self.admin_app(), access_log=None)
        await runner.setup()
        host, port = self.settings.admin_listen
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            print(f"egress: cannot listen: {exc.strerror or exc}", file=sys.stderr)
            self.failed = True
            self._stop()
        else:
            log(logging.INFO, "workers started", admin=f"{host}:{runner.addresses[0][1]}", workers=self.pids)
        while len(self.codes) < len(self.pids):
            self._reap()
            await asyncio.sleep(0.1)
        await runner.cleanup()
        for session in self.sessions:
            await session.close()
        worst = max(self.codes.values(), default=0)
        return max(worst, 1) if self.failed else (1 if worst else 0)

    # ------------------------------------------------------------ the admin port
    async def _fetch(self, session, method: str, path: str, body: bytes | None = None, auth: str | None = None):
        headers = {"Authorization": auth} if auth else None   # the admin token, for the worker's own check
        try:
            async with session.request(method, "http://worker" + path, data=body, headers=headers) as resp:
                return resp.status, resp.headers.get("Content-Type"), await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return None

    async def _all(self, method: str, path: str, body: bytes | None = None, auth: str | None = None):
        return await asyncio.gather(*(self._fetch(s, method, path, body, auth) for s in self.sessions))

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "workers": len(self.pids) - len(self.codes)})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.draining:
            return web.json_response({"ready": False, "reason": "draining"}, status=503)
        answers = await self._all("GET", "/readyz")
        if all(a is not None and a[0] == 200 for a in answers):
            first = orjson.loads(answers[0][2])
            return web.json_response({"ready": True, "generation": first.get("generation"),
                                      "workers": len(answers)})
        return web.json_response({"ready": False, "reason": "worker not ready"}, status=503)

    async def metrics(self, request: web.Request) -> web.Response:
        answers = await self._all("GET", "/metrics")
        texts = [a[2].decode() for a in answers if a is not None and a[0] == 200]
        body = merge_metrics(texts, workers=len(answers), unreachable=len(answers) - len(texts))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def inventory(self, request: web.Request) -> web.Response:
        answers = await self._all("GET", "/admin/inventory", auth=request.headers.get("Authorization"))
        docs = [orjson.loads(a[2]) for a in answers if a is not None and a[0] == 200]
        if not docs:
            return web.json_response({"error": "no worker answered"}, status=503)
        return web.Response(body=orjson.dumps(merge_inventories(docs, workers=len(answers))),
                            content_type="application/json")

    async def forward(self, request: web.Request) -> web.Response:
        """GET: the first worker's answer; anything else (reload, suspend): every worker's,
        the first refusal if any worker refused."""
        body = await request.read()
        if request.method == "GET":
            answers = [await self._fetch(self.sessions[0], "GET", request.path_qs,
                                         auth=request.headers.get("Authorization"))]
        else:
            answers = await self._all(request.method, request.path_qs, body, auth=request.headers.get("Authorization"))
        if any(a is None for a in answers):
            return web.json_response({"error": "a worker did not answer"}, status=502)
        status, ctype, text = next((a for a in answers if a[0] >= 300), answers[0])
        return web.Response(status=status, body=text, headers={"Content-Type": ctype or "application/json"})

    def admin_app(self) -> web.Application:
        # the same admin_token check as a single process's admin port (admin_auth.py)
        view = types.SimpleNamespace(generation=types.SimpleNamespace(settings=self.settings))
        app = web.Application(middlewares=[AdminAuth(view).middleware])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/admin/inventory", self.inventory)
        app.router.add_route("*", "/{tail:.*}", self.forward)
        return app
