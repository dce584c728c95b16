"""In-flight bytes: one process-wide budget of decoded response bytes held at once.

Per-response limits (`max_decompressed_bytes`) bound one answer; they do not bound forty slow
callers each holding one.  Every exchange takes what it decodes from `InflightBudget`
through its own `Hold` as the bytes appear; past `limits.max_inflight_bytes` the exchange is
refused with 503 `proxy_overloaded` (Retry-After) and gives back what it held.  A hold is
given back when the answer has been written to the caller (`respond.HeldResponse`), when
the exchange ends without one, or, as a last resort, when the object holding it is
collected (a caller that hung up mid-write).  Giving back is idempotent.
"""

from __future__ import annotations

from egress.errors import ProxyOverloaded

RETRY_AFTER_SECONDS = 1.0


class InflightBudget:
    """Bytes in flight for the whole process; `limit` may change on reload."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self.peak = 0
        self.refused = 0

    def hold(self) -> "Hold":
        return Hold(self)

    def _take(self, n: int) -> None:
        if self.in_use + n > self.limit:
            self.refused += 1
            raise ProxyOverloaded("egress holds as many response bytes as it may; retry shortly",
                                  retry_after=RETRY_AFTER_SECONDS)
        self.in_use += n
        self.peak = max(self.peak, self.in_use)

    def _give(self, n: int) -> None:
        self.in_use = max(0, self.in_use - n)


class Hold:
    """What one exchange holds of the budget."""

    __slots__ = ("_budget", "held")

    def __init__(self, budget: InflightBudget) -> None:
        self._budget = budget
        self.held = 0

    @property
    def limit(self) -> int:
        return self._budget.limit

    def grow(self, n: int) -> None:
        """Take `n` more bytes; ProxyOverloaded (and everything given back) past the budget."""
        if n <= 0:
            return
        try:
            self._budget._take(n)
        except ProxyOverloaded:
            self.release()
            raise
        self.held += n

    def resize(self, n: int) -> None:
        """Keep only `n` bytes (the answer forwards fewer bytes than were decoded)."""
        if n < self.held:
            self._budget._give(self.held - n)
            self.held = n

    def release(self) -> None:
        if self.held:
            self._budget._give(self.held)
            self.held = 0

    def __del__(self) -> None:  # the last resort: whoever held this is gone
        self.release()
