"""Resilience for the send stage: circuit breakers (breaker.py) around retries (retry.py).

The pipeline imports from here only:

    registry = BreakerRegistry(clock=time.monotonic, on_change=cb)
    breaker = registry.get(upstream.name, upstream.breaker, operation)
    budget = RetryBudget(upstream.retry.budget)
    resp = await call_with_resilience(attempt, method=..., idempotency_key=..., retry=upstream.retry,
                                      breaker=breaker, budget=budget, deadline=...)
    breaker.record_violation()        # after the body was checked and found in breach

pybreaker is translated into CircuitOpen in breaker.py, tenacity's RetryError in retry.py;
no foreign exception leaves either.  Cross-replica state: breakers.py through store/.
"""

from egress.send.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, BreakerChange, Permit
from egress.send.breakers import BreakerRegistry
from egress.send.retry import IDEMPOTENT_METHODS, RetryBudget, RetryEvent, call_with_resilience, retry_after_seconds

__all__ = [
    "CLOSED", "HALF_OPEN", "OPEN", "Breaker", "BreakerChange", "BreakerRegistry", "Permit",
    "IDEMPOTENT_METHODS", "RetryBudget", "RetryEvent", "call_with_resilience", "retry_after_seconds",
]
