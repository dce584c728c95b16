"""W3C trace context: continue a caller's `traceparent` or start a new trace (pure, cheap)."""

from __future__ import annotations

import random
import re

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
# ids need to be unique, not unpredictable (the OpenTelemetry SDK uses the same generator);
# SystemRandom would cost a syscall per id on the hot path
_rand = random.Random()


def parse_traceparent(value: str | None) -> tuple[str, str, bool] | None:
    """(trace_id, parent_span_id, sampled) from a valid version-00 header, else None."""
    if not value:
        return None
    m = _TRACEPARENT.match(value.strip().lower())
    if m is None or m.group(1) == "0" * 32 or m.group(2) == "0" * 16:
        return None
    return m.group(1), m.group(2), bool(int(m.group(3), 16) & 1)


def new_trace_id() -> str:  # (to_bytes().hex(): the same 32 lowercase digits as f"{n:032x}", cheaper)
    return (_rand.getrandbits(128) or 1).to_bytes(16, "big").hex()


def new_span_id() -> str:
    return (_rand.getrandbits(64) or 1).to_bytes(8, "big").hex()
