"""Composition of the observers: one `Observability` per process builds baselines, metrics,
inventory, access log and traces from settings + OTEL_* environment, and fans one exchange
out to them in a fixed order (baselines first, so their `egress.anomaly` events reach the
metrics, the log and the span).

    obs = Observability(settings, tracer_provider=None, environ=os.environ)
    state.observers.append(obs.observe)         # once per exchange, errors included
    obs.admin_routes()                          # GET /metrics, GET /admin/inventory
    obs.on_breaker_change(key, old, new); obs.on_store_event(kind, detail)
    obs.set_breaker_snapshot(fn); obs.reconfigure(settings); await obs.shutdown()

Tuning (environment): EGRESS_ANOMALY_FACTOR (3.0), EGRESS_ANOMALY_WARMUP (50),
EGRESS_MAX_OPERATIONS_PER_UPSTREAM (200).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Callable, Mapping

import orjson
from aiohttp import web

from egress.exchange import Exchange
from egress.observe import accesslog, telemetry
from egress.observe.anomalies import Baselines, BaselineSettings
from egress.observe.inventory import Inventory
from egress.observe.logs import log
from egress.observe.metrics import CONTENT_TYPE, Metrics
from egress.observe.templating import OTHER, OperationNames


def _configured(settings) -> dict[str, dict]:
    return {up.name: {"url": str(up.url), "contract": up.contract, "mode": up.mode if up.contract else None,
                      "grants": dict(up.grants)}
            for up in settings.upstreams}


def baseline_settings_from_env(environ: Mapping[str, str]) -> BaselineSettings:
    kwargs = {}
    for key, name, cast in (("EGRESS_ANOMALY_FACTOR", "factor", float), ("EGRESS_ANOMALY_WARMUP", "warmup", int)):
        if environ.get(key):
            try:
                kwargs[name] = cast(environ[key])
            except ValueError:
                log(logging.WARNING, "ignoring invalid setting", key=key)
    try:
        return BaselineSettings(**kwargs)
    except ValueError as exc:
        log(logging.WARNING, "ignoring invalid anomaly settings", problem=str(exc))
        return BaselineSettings()


class Observability:
    def __init__(self, settings, *, tracer_provider=None, environ: Mapping[str, str] = os.environ,
                 baselines: BaselineSettings | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = Metrics()
        per_upstream = int(environ.get("EGRESS_MAX_OPERATIONS_PER_UPSTREAM") or 200)
        self.names = OperationNames(per_upstream)
        self.inventory = Inventory(_configured(settings))
        self.baselines = Baselines(baselines or baseline_settings_from_env(environ), clock=clock)
        self.sampler = telemetry.Sampler.from_env(environ)
        self._owned = None
        provider = tracer_provider
        if provider is None:
            built = telemetry.provider_from_env(environ, self._count_spans)
            if built is not None:
                provider, self._owned = built[0], built
        processor = self._owned[1] if self._owned is not None else None
        self.spans = telemetry.span_builder(provider, processor) if provider is not None else None
        if self.spans is not None:
            log(logging.INFO, "tracing enabled", sampler=self.sampler.name, ratio=self.sampler.ratio,
                exporter="injected" if self._owned is None else "otlp")

    # ------------------------------------------------------------ per exchange
    def observe(self, ex: Exchange) -> None:
        up = ex.upstream_name
        op = self.names.name(up, ex.method, ex.path, ex.operation)
        if ex.attempts and op and op != OTHER:
            self._baseline(ex, up, op)
        self.metrics.observe(ex, op)
        self.inventory.observe(ex, op)
        accesslog.write(ex, op)
        if self.spans is not None and (
                ex.anomalous or self.sampler.keep(ex.trace_id, ex.parent_sampled)):
            self.spans.build(ex, op)
            self.metrics.inc("spans", ("ended",), 1 + len(ex.attempts))

    def _baseline(self, ex: Exchange, up: str, op: str) -> None:
        last = ex.attempts[-1]
        failed = last.error is not None or (last.status or 0) >= 500
        latency = (last.end_ns - last.start_ns) / 1e9 if last.end_ns and not failed else None
        size = ex.response_bytes if not failed and last.status is not None and ex.reason is None else None
        found = self.baselines.observe((up, op), latency, size, failed)
        for a in found:
            ex.event("egress.anomaly", kind=a.kind, observed=round(a.observed, 6), baseline=round(a.baseline, 6))

    # ------------------------------------------------------------ other sources
    def on_breaker_change(self, key: str, old: str, new: str) -> None:
        self.metrics.breaker_changed(key, new)

    def on_store_event(self, kind: str, detail: str) -> None:
        self.metrics.store_event(kind)  # the lifecycle log line is state.py's

    def set_breaker_snapshot(self, fn: Callable[[], dict]) -> None:
        self.metrics.breaker_snapshot = fn
        self.inventory.breakers = fn

    def set_limits(self, limiter) -> None:
        """Rate limits, concurrency and holds (send/limits.py): metrics and inventory read them."""
        from egress.observe.limits import LimitsCollector
        self.metrics.registry.register(LimitsCollector(limiter))
        self.inventory.limits = limiter.snapshot

    def reconfigure(self, settings) -> None:
        self.inventory.configured = _configured(settings)

    def _count_spans(self, stage: str, n: int) -> None:
        self.metrics.inc("spans", (stage,), n)

    # ------------------------------------------------------------ admin
    async def metrics_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def inventory_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.inventory.snapshot()), content_type="application/json")

    def admin_routes(self) -> list[tuple]:
        return [("GET", "/metrics", self.metrics_handler), ("GET", "/admin/inventory", self.inventory_handler)]

    async def shutdown(self) -> None:
        """Flush and stop the exporter we built (an injected provider is only flushed)."""
        if self._owned is not None:
            provider, _ = self._owned
            await asyncio.to_thread(provider.shutdown)
            self._owned = None
        elif self.spans is not None and hasattr(self.spans.tracer, "span_processor"):
            await asyncio.to_thread(self.spans.tracer.span_processor.force_flush)
