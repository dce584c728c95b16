"""Prometheus metrics of one Observability: its own CollectorRegistry, bounded labels only.

Label values come from config (upstream names), from `templating.OperationNames` (at most
N operations per upstream, then `other`), from fixed vocabularies (status class, reasons,
event names, token kinds) or are capped here; never a raw path, caller name or payload
value.

The hot path adds to plain dicts (everything runs on the event loop thread: no locks), and
a collector turns them into metric families when /metrics is scraped; prometheus_client's
own Counter/Histogram cost ~1-2 µs per update, too much at several updates per exchange.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from egress.exchange import Exchange

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BREAKER_STATES = ("closed", "open", "half_open")
MAX_LABEL_VALUES = 100  # per open vocabulary (keywords, reasons, event names, kinds)
MEMO_SIZE = 8192  # label tuples kept per Metrics (beyond: computed each time, same answer)


def _status_class(status: int | None) -> str:
    return f"{status // 100}xx" if status and 100 <= status < 600 else "none"


_STATUS_CLASSES = {code: _status_class(code) for code in range(100, 600)}  # formatted once


def status_class(status: int | None) -> str:
    """`2xx` ... `5xx`, or `none`; an int is looked up in the table formatted once (the same
    answer as `_status_class`, which test_metrics_memo.py holds it to), anything else formatted."""
    if type(status) is int:
        return _STATUS_CLASSES.get(status, "none")
    return _status_class(status)


class _Vocabulary:
    """At most `limit` distinct values (truncated to 64 chars); later ones become `other`."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self.limit, self.seen = limit, set()

    def __call__(self, value: object) -> str:
        text = value if type(value) is str and len(value) <= 64 else ("" if value is None else str(value)[:64])
        if text in self.seen:
            return text
        if len(self.seen) >= self.limit:
            return "other"
        self.seen.add(text)
        return text


class _Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(DURATION_BUCKETS, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        out, total = [], 0
        for bound, n in zip((*map(str, DURATION_BUCKETS), "+Inf"), self.counts):
            total += n
            out.append((bound, float(total)))
        return out


# name, help, label names
COUNTERS = {
    "requests": ("egress_requests", "Exchanges handled", ("upstream", "operation", "status_class", "outcome")),
    "violations": ("egress_contract_violations", "Contract violations by keyword", ("upstream", "keyword")),
    "tokens": ("egress_tokens_stripped", "Internal tokens stripped or refused", ("where", "kind")),
    "retries": ("egress_retries", "Retries", ("upstream",)),
    "events": ("egress_events", "Span events (egress.*) recorded", ("upstream", "event")),
    "anomalies": ("egress_anomalies", "Baseline anomalies", ("upstream", "kind")),
    "breaker_changes": ("egress_breaker_transitions", "Breaker state changes", ("breaker", "to")),
    "store_events": ("egress_breaker_store_events", "Shared breaker store events", ("kind",)),
    "spans": ("egress_trace_spans", "Spans built (ended) / exported / failed to export", ("stage",)),
    "streams": ("egress_streams", "Streamed responses, by how they ended", ("upstream", "end")),
    "stream_items": ("egress_stream_items", "Stream items (SSE events, lines, records) forwarded", ("upstream",)),
    "stream_bytes": ("egress_stream_bytes", "Stream body bytes forwarded", ("upstream",)),
}
HISTOGRAMS = {
    "attempt_duration": ("egress_upstream_attempt_duration_seconds",
                         "One upstream attempt, connect to last byte", ("upstream",)),
    "request_duration": ("egress_request_duration_seconds", "Whole exchange, as the caller saw it", ("upstream",)),
    "stream_first_byte": ("egress_stream_first_byte_seconds",
                          "Streamed response: from its headers to its first body byte", ("upstream",)),
}


class Metrics:
    def __init__(self) -> None:
        self.counters: dict[str, dict[tuple, float]] = {k: {} for k in COUNTERS}
        self.histograms: dict[str, dict[tuple, _Histogram]] = {k: {} for k in HISTOGRAMS}
        self.store_up = 1.0
        self.breaker_snapshot: Callable[[], dict] | None = None
        self._keywords, self._reasons, self._names = _Vocabulary(), _Vocabulary(), _Vocabulary()
        self._breakers = _Vocabulary(2000)
        self._memo: dict[tuple, tuple] = {}  # values -> their label tuple (vocabularies' answers, kept)
        self._per_upstream: dict[str, list] = {}  # upstream -> [request, attempt] histograms
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def inc(self, counter: str, labels: tuple, n: float = 1.0) -> None:
        d = self.counters[counter]
        d[labels] = d.get(labels, 0.0) + n

    def _hist(self, name: str, labels: tuple) -> _Histogram:
        d = self.histograms[name]
        h = d.get(labels)
        if h is None:
            h = d[labels] = _Histogram()
        return h

    # ------------------------------------------------------------ per exchange
    def observe(self, ex: Exchange, operation: str) -> None:
        up = ex.upstream_name
        reason = ex.reason
        memo = self._memo
        key = (up, operation, ex.status, reason)
        labels = memo.get(key)
        if labels is None:  # a vocabulary's answer for a value never changes: keep it
            labels = (up, operation, status_class(ex.status), self._reasons(reason) if reason else "ok")
            if len(memo) < MEMO_SIZE:
                memo[key] = labels
        d = self.counters["requests"]
        d[labels] = d.get(labels, 0.0) + 1.0
        hists = self._per_upstream.get(up)
        if hists is None:
            hists = [self._hist("request_duration", (up,)), None]  # an attempt's: when there is one
            if len(self._per_upstream) < MEMO_SIZE:
                self._per_upstream[up] = hists
        hists[0].observe(ex.duration_s)
        if ex.attempts:
            h = hists[1]
            if h is None:
                h = hists[1] = self._hist("attempt_duration", (up,))
            for a in ex.attempts:
                if a.end_ns:
                    h.observe(max(0, a.end_ns - a.start_ns) / 1e9)
        stream = ex.stream
        if stream is not None:
            self.inc("streams", (up, self._reasons(stream.end)))
            self.inc("stream_items", (up,), stream.items)
            self.inc("stream_bytes", (up,), stream.bytes)
            if stream.first_byte_s is not None:
                self._hist("stream_first_byte", (up,)).observe(stream.first_byte_s)
        if ex.events:
            self._events(ex.events, up)

    def _events(self, events, up: str) -> None:
        names, inc, memo = self._names, self.inc, self._memo
        counts = self.counters["events"]
        for e in events:
            name = e.name
            key = ("events", up, name)
            labels = memo.get(key)
            if labels is None:
                labels = (up, names(name))
                if len(memo) < MEMO_SIZE:
                    memo[key] = labels
            counts[labels] = counts.get(labels, 0.0) + 1.0
            if name == "egress.token_stripped" or name == "egress.internal_token_in_body":
                attrs = e.attrs
                where, kind = attrs.get("where"), attrs.get("kind")
                key = ("tokens", where, kind) if type(where) is str and type(kind) is str else None
                labels = memo.get(key) if key is not None else None
                if labels is None:
                    labels = (names(where), names(kind))
                    if key is not None and len(memo) < MEMO_SIZE:
                        memo[key] = labels
                inc("tokens", labels)
            elif name == "egress.contract_violation":
                inc("violations", (up, self._keywords(e.attrs.get("keyword") or "unknown")))
            elif name == "egress.retry":
                inc("retries", (up,))
            elif name == "egress.anomaly":
                inc("anomalies", (up, names(e.attrs.get("kind"))))

    # ------------------------------------------------------------ other sources
    def breaker_changed(self, key: str, new: str) -> None:
        self.inc("breaker_changes", (self._breakers(key), self._names(new)))

    def store_event(self, kind: str) -> None:
        self.inc("store_events", (self._names(kind),))
        if kind == "redis_down":
            self.store_up = 0.0
        elif kind == "redis_up":
            self.store_up = 1.0

    # ------------------------------------------------------------ scrape
    def collect(self):
        for key, (name, doc, labels) in COUNTERS.items():
            family = CounterMetricFamily(name, doc, labels=labels)
            for values, n in list(self.counters[key].items()):
                family.add_metric(values, n)
            yield family
        for key, (name, doc, labels) in HISTOGRAMS.items():
            family = HistogramMetricFamily(name, doc, labels=labels)
            for values, h in list(self.histograms[key].items()):
                family.add_metric(values, h.buckets(), h.sum)
            yield family
        yield GaugeMetricFamily("egress_breaker_store_up", "Shared breaker store reachable (1) or not (0)",
                                value=self.store_up)
        family = GaugeMetricFamily("egress_breaker_state", "Circuit breaker state (1 = current state)",
                                   labels=["breaker", "state"])
        try:
            breakers = self.breaker_snapshot() if self.breaker_snapshot is not None else {}
        except Exception:
            breakers = {}
        for key, info in sorted(breakers.items())[:2000]:
            for state in BREAKER_STATES:
                family.add_metric([str(key)[:200], state], 1.0 if info.get("state") == state else 0.0)
        yield family

    def render(self) -> bytes:
        return generate_latest(self.registry)
