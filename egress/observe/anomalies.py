"""Per-operation baselines and anomaly classification (pure: no I/O, clock injected).

For each (upstream, operation) an exponentially weighted moving average of the upstream
latency, the response size and the share of error statuses (5xx or a failed attempt).
After `warmup` samples, one exchange is anomalous when:

- latency: observed > factor x baseline and exceeds it by >= min_latency_s;
- size: observed > factor x baseline or < baseline / factor, differing by >= min_bytes;
- status: it failed, the recent error share (fast EWMA) > factor x the baseline share
  (slow EWMA) and >= min_error_share.

Outliers update the baseline clamped to factor x baseline, so one spike cannot drag it; a
lasting shift still becomes the new normal.  A baseline idle for `stale_after` seconds
starts its warm-up again.  Memory: one small record per operation, at most `max_operations`
(least recently seen evicted first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: str        # latency | size | status
    observed: float  # seconds, bytes, or recent error share
    baseline: float


@dataclass(frozen=True)
class BaselineSettings:
    factor: float = 3.0
    warmup: int = 50
    alpha: float = 0.05          # weight of one sample in the latency/size/error baselines
    fast_alpha: float = 0.2      # weight of one sample in the recent error share
    min_latency_s: float = 0.05
    min_bytes: int = 1024
    min_error_share: float = 0.3  # one failure after clean traffic (0.2) is not yet a burst
    max_operations: int = 2000
    stale_after: float = 3600.0

    def __post_init__(self) -> None:
        if self.factor <= 1:
            raise ValueError(f"anomalies.factor must be > 1, got {self.factor}")
        if not 0 < self.alpha <= 1 or not 0 < self.fast_alpha <= 1:
            raise ValueError(f"anomalies.alpha must be in (0, 1], got {self.alpha}, {self.fast_alpha}")
        if self.warmup < 1 or self.max_operations < 1:
            raise ValueError("anomalies.warmup and anomalies.max_operations must be >= 1")


class _Baseline:
    __slots__ = ("n", "latency", "size", "errors", "recent_errors", "seen")

    def __init__(self, now: float) -> None:
        self.n = 0
        self.latency = 0.0
        self.size = 0.0
        self.errors = 0.0
        self.recent_errors = 0.0
        self.seen = now


class Baselines:
    """`observe(key, latency_s, size, failed)` -> the anomalies of this sample (often [])."""

    def __init__(self, settings: BaselineSettings = BaselineSettings(), *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._ops: OrderedDict[tuple[str, str], _Baseline] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ops)

    def observe(self, key: tuple[str, str], latency_s: float | None, size: int | None,
                failed: bool) -> list[Anomaly]:
        s, now = self.settings, self._clock()
        b = self._ops.get(key)
        if b is None or now - b.seen > s.stale_after:
            if b is None and len(self._ops) >= s.max_operations:
                self._ops.popitem(last=False)
            b = self._ops[key] = _Baseline(now)
        else:
            self._ops.move_to_end(key)
        b.seen = now
        found: list[Anomaly] = []
        warm = b.n >= s.warmup
        f = s.factor
        err = 1.0 if failed else 0.0
        if b.n == 0:
            b.latency = latency_s or 0.0
            b.size = float(size or 0)
            b.errors = b.recent_errors = err
            b.n = 1
            return found
        b.n += 1
        a = s.alpha
        if latency_s is not None:
            base = b.latency
            if warm and latency_s > f * base and latency_s - base >= s.min_latency_s:
                found.append(Anomaly("latency", latency_s, base))
            b.latency = base + a * (min(latency_s, f * base if warm and base > 0 else latency_s) - base)
        if size is not None and not failed:
            base = b.size
            if warm and abs(size - base) >= s.min_bytes and (size > f * base or size * f < base):
                found.append(Anomaly("size", float(size), base))
            clamped = min(max(size, base / f), f * base) if warm and base > 0 else size
            b.size = base + a * (clamped - base)
        base = b.errors
        b.recent_errors += s.fast_alpha * (err - b.recent_errors)
        if warm and failed and b.recent_errors >= s.min_error_share and b.recent_errors > f * base:
            found.append(Anomaly("status", b.recent_errors, base))
        b.errors = base + a * (err - base)
        return found

    def snapshot(self, key: tuple[str, str]) -> dict | None:
        b = self._ops.get(key)
        if b is None:
            return None
        return {"samples": b.n, "latency_s": b.latency, "size": b.size, "error_share": b.errors}
