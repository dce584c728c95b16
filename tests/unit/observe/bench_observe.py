"""Cost of obs.observe per exchange (µs), min of 5 rounds: python -m tests.unit.observe.bench_observe"""

from __future__ import annotations

import logging
import os
import time

from egress.observe.logs import JsonFormatter
from egress.observe.observe import Observability

from .factories import exchange, settings
from .test_observe import traced


def rounds(obs, up, n, repeat=5) -> float:
    best = float("inf")
    for _ in range(repeat):
        exs = [exchange(up, path="/charges/ch_1", operation="GET /charges/{id}") for _ in range(n)]
        start = time.perf_counter()
        for ex in exs:
            obs.observe(ex)
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def main() -> None:
    logger = logging.getLogger("egress")
    logger.propagate, logger.level = False, logging.WARNING
    s = settings("pay")
    print(f"no exporter configured, access log off : {rounds(Observability(s, environ={}), s.upstreams[0], 5000):6.1f} µs")
    obs, up, _, _ = traced({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"})
    print(f"tracing on, unsampled, access log off  : {rounds(obs, up, 5000):6.1f} µs")
    handler = logging.StreamHandler(open(os.devnull, "w"))
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    print(f"tracing on, unsampled, access log on   : {rounds(obs, up, 5000):6.1f} µs")
    logger.setLevel(logging.WARNING)
    obs, up, _, _ = traced({"OTEL_TRACES_SAMPLER": "always_on"})
    print(f"sampled: SERVER+CLIENT span, in-memory : {rounds(obs, up, 1000):6.1f} µs")


if __name__ == "__main__":
    main()
