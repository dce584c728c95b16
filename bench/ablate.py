"""egress with pieces of its scaffolding taken out: issue 18's experiment on what each piece costs.

    python bench/ablate.py PIECES serve --config CONFIG --workers 1     # PIECES: limits+metrics, ...

Each piece is replaced, in this process only, by the least that still answers the bench's valid
requests, and `bench/instructions.py --accounting` counts egress-quiet's instructions per request
with and without it: the difference is what the piece costs.  Pieces:

  limits      Limiter.admit answers no permit, provider_answered does nothing (holds, concurrency,
              rate limits, their counts)
  resilience  call_with_resilience makes the one attempt (no breaker permit, no retry budget,
              no retry loop)
  metrics     Metrics.observe does nothing (every per-request metric)
  inventory   Inventory.observe does nothing (the operations inventory)
  baselines   Observability._baseline does nothing (latency / size baselines and their anomalies)
  observe     ProcessState.observe does nothing (all three above, and the access line and spans)

Every piece is a promise of DESIGN.md: this is a measuring instrument, never deploy it.  An
unknown piece is an error (a typo must not measure egress whole and call it a removal).
"""

from __future__ import annotations

import sys


def _limits() -> None:
    from egress.send.limits import Limiter

    async def admit(self, up, caller, operation, ex):
        return None

    Limiter.admit = admit
    Limiter.provider_answered = lambda self, *a, **k: None


def _resilience() -> None:
    from egress.send import resilience

    def call_with_resilience(attempt, **_):
        return attempt(1)

    resilience.call_with_resilience = call_with_resilience


def _metrics() -> None:
    from egress.observe.metrics import Metrics
    Metrics.observe = lambda self, ex, operation: None


def _inventory() -> None:
    from egress.observe.inventory import Inventory
    Inventory.observe = lambda self, ex, operation: None


def _baselines() -> None:
    from egress.observe.observe import Observability
    Observability._baseline = lambda self, ex, up, op: None


def _observe() -> None:
    from egress.process import ProcessState
    ProcessState.observe = lambda self, ex: None


PIECES = {"limits": _limits, "resilience": _resilience, "metrics": _metrics, "inventory": _inventory,
          "baselines": _baselines, "observe": _observe}


def pieces(text: str) -> list[str]:
    chosen = [p for p in text.replace(",", "+").split("+") if p]
    unknown = sorted(set(chosen) - set(PIECES))
    if unknown or not chosen:
        raise SystemExit(f"ablate.py: no piece named {', '.join(unknown) or '(none)'}; pieces: {', '.join(PIECES)}")
    return chosen


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    for name in pieces(argv[0]):
        PIECES[name]()
    from egress.cli import main as egress_main
    return egress_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
