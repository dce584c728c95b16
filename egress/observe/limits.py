"""Metrics of the limits (send/limits.py), read when /metrics is scraped: nothing on the hot path.

egress_rate_limit_decisions_total{upstream, caller, outcome}   admitted | rate_limited |
    provider_hold | concurrency_limited (caller: configured names, then at most 100, then `other`)
egress_rate_limit_local_decisions_total{upstream}   decided on local buckets (store unreachable)
egress_upstream_in_flight{upstream}                 requests holding a concurrency slot
egress_provider_ratelimit_remaining{upstream}       the provider's RateLimit-Remaining, last seen
egress_provider_ratelimit_reset_seconds{upstream}   ... and its reset, in seconds, when sent
egress_provider_hold_seconds{hold}                  seconds left of each provider hold
egress_rate_limit_replicas                          replicas sharing the limits (the store's
    heartbeat; 1 with store: memory): a fallback gives each 1/this of every limit
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class LimitsCollector:
    def __init__(self, limiter) -> None:
        self.limiter = limiter

    def collect(self):
        lim = self.limiter
        decisions = CounterMetricFamily("egress_rate_limit_decisions", "Limit decisions per upstream and caller",
                                        labels=["upstream", "caller", "outcome"])
        for labels, n in list(lim.counts.items()):
            decisions.add_metric(list(labels), n)
        yield decisions
        local = CounterMetricFamily("egress_rate_limit_local_decisions",
                                    "Rate-limit decisions made on local buckets (shared store unreachable)",
                                    labels=["upstream"])
        for name, n in list(lim.local_decisions.items()):
            local.add_metric([name], n)
        yield local
        flight = GaugeMetricFamily("egress_upstream_in_flight", "Requests in flight (concurrency slots)",
                                   labels=["upstream"])
        for name, n in list(lim.in_flight.items()):
            flight.add_metric([name], n)
        yield flight
        remaining = GaugeMetricFamily("egress_provider_ratelimit_remaining",
                                      "The provider's remaining quota (its RateLimit-Remaining header)",
                                      labels=["upstream"])
        reset = GaugeMetricFamily("egress_provider_ratelimit_reset_seconds",
                                  "Seconds until the provider's quota resets, as it said", labels=["upstream"])
        for name, info in list(lim.provider.items()):
            remaining.add_metric([name], info["remaining"])
            if info["reset"] >= 0:
                reset.add_metric([name], info["reset"])
        yield remaining
        yield reset
        holds = GaugeMetricFamily("egress_provider_hold_seconds", "Seconds left of a provider hold",
                                  labels=["hold"])
        for name, info in sorted(lim.snapshot().items()):
            for key, left in (info.get("held") or {}).items():
                holds.add_metric([key[:200]], left)
        yield holds
        yield GaugeMetricFamily("egress_rate_limit_replicas", "Replicas sharing the rate limits (store heartbeat)",
                                value=float(getattr(lim.store, "replicas", 1)))
