"""Proxy state that outlives a config generation: the current Runtime, breakers, retry
budgets, observers and the draining flag.  Reload swaps the Runtime atomically."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from pathlib import Path
from typing import Callable

from .errors import ConfigError
from .exchange import Exchange
from .logs import log
from .resilience import BreakerRegistry, RetryBudget
from .runtime import Runtime, build_runtime
from .settings import load_settings

Observer = Callable[[Exchange], None]
DRIFT_SAMPLES_PER_OPERATION = 50


class ProxyState:
    def __init__(self, runtime: Runtime, *, observers: list[Observer] | None = None, resolver=None,
                 obs=None) -> None:
        self.runtime = runtime
        self.obs = obs  # observe.Observability: metrics, traces, inventory, access log
        self.breakers = BreakerRegistry(on_change=self._breaker_changed)
        self.observers: list[Observer] = list(observers or ())
        self.draining = False
        self.resolver = resolver
        self._budgets: dict[str, RetryBudget] = {}
        self._drift_counts: dict[tuple[str, str | None], int] = {}
        self._reload_lock = asyncio.Lock()
        self.store = None  # RedisBreakerStore when breaker_store is redis://
        if obs is not None:
            obs.set_breaker_snapshot(self.breakers.snapshot)

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Background parts (shared breaker store); nothing here sits on the request path.

        `breaker_store` is read at start only: changing it needs a restart."""
        url = self.runtime.settings.breaker_store
        if url != "memory":
            from .breaker_store import RedisBreakerStore
            instance = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
            self.store = RedisBreakerStore(url, self.breakers, instance_id=instance,
                                           on_event=self._store_event)
            await self.store.start()

    async def stop(self) -> None:
        """Stop what start() started."""
        if self.store is not None:
            await self.store.stop()

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
        return self.store is not None and not self.store.connected

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
        from .pipeline import CURRENT
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
                runtime = build_runtime(settings, resolver=self.resolver)
            except ConfigError as exc:
                log(logging.ERROR, "reload refused", problems=len(exc.problems))
                return exc.problems
            await runtime.start()
            old, self.runtime = self.runtime, runtime
            if self.obs is not None:
                self.obs.reconfigure(settings)
            grace = max((up.timeout.total for up in old.settings.upstreams), default=10.0)
            asyncio.get_running_loop().create_task(old.close(grace=grace))
            log(logging.INFO, "reloaded", generation=runtime.generation,
                upstreams=len(settings.upstreams))
            return []
