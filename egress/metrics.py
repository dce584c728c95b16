"""Prometheus metrics of one Observability: its own CollectorRegistry, bounded labels only.

Label values come from config (upstream names), from `templating.OperationNames` (at most
N operations per upstream, then `other`), from fixed vocabularies (status class, reasons,
event names, token kinds) or are capped here; never a raw path, caller name or payload
value.  Children are cached per label tuple so the hot path skips `labels()`.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from .exchange import Exchange

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BREAKER_STATES = ("closed", "open", "half_open")
MAX_LABEL_VALUES = 100  # per open vocabulary (keywords, reasons, event names, causes)


def status_class(status: int | None) -> str:
    return f"{status // 100}xx" if status and 100 <= status < 600 else "none"


class _Vocabulary:
    """At most `limit` distinct values (truncated to 64 chars); later ones become `other`."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self.limit, self.seen = limit, set()

    def __call__(self, value: object) -> str:
        text = str(value)[:64] if value is not None else ""
        if text in self.seen:
            return text
        if len(self.seen) >= self.limit:
            return "other"
        self.seen.add(text)
        return text


class _BreakerCollector:
    """`egress_breaker_state{breaker,state}` 1/0, read from the snapshot fn at scrape time."""

    def __init__(self) -> None:
        self.snapshot: Callable[[], dict] | None = None

    def collect(self):
        family = GaugeMetricFamily("egress_breaker_state", "Circuit breaker state (1 = current state)",
                                   labels=["breaker", "state"])
        try:
            breakers = self.snapshot() if self.snapshot is not None else {}
        except Exception:
            breakers = {}
        for key, info in sorted(breakers.items())[:2000]:
            for state in BREAKER_STATES:
                family.add_metric([str(key)[:200], state], 1.0 if info.get("state") == state else 0.0)
        yield family


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter("egress_requests", "Exchanges handled",
                                ["upstream", "operation", "status_class", "outcome"], registry=r)
        self.request_duration = Histogram("egress_request_duration_seconds", "Whole exchange duration",
                                          ["upstream"], buckets=DURATION_BUCKETS, registry=r)
        self.attempt_duration = Histogram("egress_upstream_attempt_duration_seconds",
                                          "One upstream attempt, connect to last byte",
                                          ["upstream"], buckets=DURATION_BUCKETS, registry=r)
        self.violations = Counter("egress_contract_violations", "Contract violations by keyword",
                                  ["upstream", "keyword"], registry=r)
        self.tokens = Counter("egress_tokens_stripped", "Internal tokens stripped or found",
                              ["where", "kind"], registry=r)
        self.retries = Counter("egress_retries", "Retries", ["upstream"], registry=r)
        self.events = Counter("egress_events", "Span events (egress.*) recorded",
                              ["upstream", "event"], registry=r)
        self.anomalies = Counter("egress_anomalies", "Baseline anomalies", ["upstream", "kind"], registry=r)
        self.breaker_changes = Counter("egress_breaker_transitions", "Breaker state changes",
                                       ["breaker", "to"], registry=r)
        self.store_up = Gauge("egress_breaker_store_up", "Shared breaker store reachable (1) or not (0)",
                              registry=r)
        self.store_events = Counter("egress_breaker_store_events", "Shared breaker store events",
                                    ["kind"], registry=r)
        self.spans = Counter("egress_trace_spans", "Spans handed to / exported by the trace pipeline",
                             ["stage"], registry=r)
        self.breaker_state = _BreakerCollector()
        r.register(self.breaker_state)
        self.store_up.set(1)
        self._children: dict[tuple, object] = {}
        self._keywords, self._reasons, self._names = _Vocabulary(), _Vocabulary(), _Vocabulary()
        self._breakers = _Vocabulary(2000)

    def _child(self, metric, *labels: str):
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # ------------------------------------------------------------ per exchange
    def observe(self, ex: Exchange, operation: str) -> None:
        up = ex.upstream_name
        outcome = self._reasons(ex.reason) if ex.reason else "ok"
        self._child(self.requests, up, operation, status_class(ex.status), outcome).inc()
        self._child(self.request_duration, up).observe(ex.duration_s)
        if ex.attempts:
            hist = self._child(self.attempt_duration, up)
            for a in ex.attempts:
                if a.end_ns:
                    hist.observe(max(0, a.end_ns - a.start_ns) / 1e9)
        for e in ex.events:
            name = e.name
            self._child(self.events, up, self._names(name)).inc()
            if name == "egress.token_stripped" or name == "egress.internal_token_in_body":
                self._child(self.tokens, self._names(e.attrs.get("where")), self._names(e.attrs.get("kind"))).inc()
            elif name == "egress.contract_violation":
                self._child(self.violations, up, self._keywords(e.attrs.get("keyword") or "unknown")).inc()
            elif name == "egress.retry":
                self._child(self.retries, up).inc()
            elif name == "egress.anomaly":
                self._child(self.anomalies, up, self._names(e.attrs.get("kind"))).inc()

    # ------------------------------------------------------------ other sources
    def breaker_changed(self, key: str, new: str) -> None:
        self._child(self.breaker_changes, self._breakers(key), self._names(new)).inc()

    def store_event(self, kind: str) -> None:
        self._child(self.store_events, self._names(kind)).inc()
        if kind == "redis_down":
            self.store_up.set(0)
        elif kind == "redis_up":
            self.store_up.set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
