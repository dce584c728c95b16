"""The process: what outlives every config generation — the current Generation, the store,
breakers, retry budgets, observers and the draining flag.  Reload swaps the Generation
atomically; a request keeps the generation it started with (exchange.py: one request)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import uuid
from pathlib import Path
from typing import Callable

from egress.config import load_settings
from egress.credentials import Credentials
from egress.errors import ConfigError
from egress.exchange import CURRENT, Exchange
from egress.generation import Generation, build_generation
from egress.observe.logs import log
from egress.send.limits import Limiter, workers_from_env
from egress.send.inflight import InflightBudget
from egress.send.resilience import BreakerRegistry, RetryBudget
from egress.store import MemoryStore, open_store
from egress.suspensions import Suspensions

Observer = Callable[[Exchange], None]
DRIFT_SAMPLES_PER_OPERATION = 50


_KEY_PATH = re.compile(r"^[A-Za-z_][\w\-]*(?:\[\d+\]|\.[A-Za-z_][\w\-]*)*")


def problem_keys(problems: list[str]) -> list[str]:
    """The key paths config problems name (`upstreams[0].timeout.total`), never their values."""
    return sorted({m.group(0) if (m := _KEY_PATH.match(p)) else "(unnamed)" for p in problems})[:50]


class ProcessState:
    def __init__(self, generation: Generation, *, observers: list[Observer] | None = None, resolver=None,
                 obs=None) -> None:
        self.generation = generation
        self.obs = obs  # observe.Observability: metrics, traces, inventory, access log
        self.breakers = BreakerRegistry(on_change=self._breaker_changed)
        self.observers: list[Observer] = list(observers or ())
        self.draining = False
        self.drain_cut = False  # drain_timeout passed: in-flight requests answer 503 shutting_down
        self.resolver = resolver
        self._budgets: dict[str, RetryBudget] = {}
        self._drift_counts: dict[tuple[str, str | None], int] = {}
        self._reload_lock = asyncio.Lock()
        self.store = MemoryStore()  # replaced at start() by the configured `store:`
        self.suspensions = Suspensions()  # the kill switch: outlives reloads, shared through the store
        self.credentials = Credentials(resolver=resolver)  # token caches and rotating files per upstream
        if obs is not None and hasattr(obs, "inventory"):
            obs.inventory.suspensions = self.suspensions.active
        self.limits = Limiter(workers=workers_from_env(os.environ))  # rate limits, concurrency, holds
        self.inflight = InflightBudget(generation.settings.limits.max_inflight_bytes)
        if obs is not None:
            obs.set_breaker_snapshot(self.breakers.snapshot)
            obs.set_limits(self.limits)

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Background parts (the shared store); nothing here sits on the request path.

        `store` is read at start only: changing it needs a restart."""
        instance = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.store = open_store(self.generation.settings.store, instance_id=instance,
                                on_event=self._store_event)
        self.breakers.share_through(self.store)
        self.suspensions.share_through(self.store)
        self.limits.share_through(self.store)
        await self.store.start()

    async def stop(self) -> None:
        """Stop what start() started."""
        self.breakers.set_publisher(None)
        await self.store.stop()
        await self.credentials.close()

    def _store_event(self, kind: str, detail: str) -> None:
        """Called from the store's background task (no exchange is current there): one log
        line and a metric; the requests served meanwhile carry a span event (store_down)."""
        level = logging.WARNING if kind == "redis_down" else logging.INFO
        log(level, "breaker store " + ("unreachable; serving on local state" if kind == "redis_down"
                                       else "reachable again"), kind=kind, store=detail)
        if self.obs is not None:
            self.obs.on_store_event(kind, detail)

    def admin_routes(self) -> list[tuple]:
        """Admin endpoints contributed by observability: (method, path, handler)."""
        return self.obs.admin_routes() if self.obs is not None else []

    # ------------------------------------------------------------ per request
    def store_down(self) -> bool:
        """The shared breaker store is configured but unreachable (breakers are local now)."""
        return not self.store.connected

    def budget(self, upstream: str, ratio: float) -> RetryBudget:
        budget = self._budgets.get(upstream)
        if budget is None:
            budget = self._budgets[upstream] = RetryBudget(ratio)
        return budget

    def wants_drift(self, upstream: str, operation: str | None) -> bool:
        if operation is None:
            return False
        key = (upstream, operation)
        seen = self._drift_counts.get(key, 0)
        if seen >= DRIFT_SAMPLES_PER_OPERATION or len(self._drift_counts) > 10000:
            return False
        self._drift_counts[key] = seen + 1
        return True

    def resilience_event(self, ex: Exchange, event) -> None:
        attrs = {k: v for k, v in vars(event).items() if k != "kind" and v is not None}
        ex.event(f"egress.{event.kind}", **attrs)

    def _breaker_changed(self, key: str, old: str, new: str) -> None:
        ex = CURRENT.get()
        if ex is not None:
            ex.event("egress.breaker_state_change", breaker=key, old=old, new=new)
        log(logging.WARNING, "breaker state change", breaker=key, old=old, new=new)
        if self.obs is not None:
            self.obs.on_breaker_change(key, old, new)

    def observe(self, ex: Exchange) -> None:
        for observer in self.observers:
            try:
                observer(ex)
            except Exception:  # an observer must never break the answer
                logging.getLogger("egress").exception("observer failed")

    # ------------------------------------------------------------ reload
    async def reload(self, path: str | Path) -> list[str]:
        """Compile the new config and contracts completely, then swap; [] on success, else
        every problem (the old generation keeps serving)."""
        async with self._reload_lock:
            try:
                settings = load_settings(path, os.environ)
                generation = build_generation(settings, resolver=self.resolver)
            except ConfigError as exc:
                log(logging.ERROR, "reload refused", problems=len(exc.problems), keys=problem_keys(exc.problems))
                return exc.problems
            generation.inherit(self.generation)
            await generation.start()
            old, self.generation = self.generation, generation
            self.inflight.limit = settings.limits.max_inflight_bytes
            if self.obs is not None:
                self.obs.reconfigure(settings)
            grace = max((up.timeout.total for up in old.settings.upstreams), default=10.0)
            asyncio.get_running_loop().create_task(old.close(grace=grace))
            log(logging.INFO, "reloaded", generation=generation.number,
                upstreams=len(settings.upstreams))
            return []
