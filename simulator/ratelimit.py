"""Token buckets per (endpoint family, key), with a time-scale factor for tests."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from .config import FamilyLimit

__all__ = ["RateLimiter", "Decision"]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # real seconds until the bucket is full again
    retry_after: int  # real seconds until one more request is allowed (0 if allowed)


class RateLimiter:
    """`capacity` requests per `period_seconds / time_scale` real seconds, refilled evenly."""

    def __init__(self, limits: dict[str, FamilyLimit], time_scale: float, clock):
        self.limits = limits
        self.time_scale = max(time_scale, 1e-9)
        self.clock = clock
        self._state: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, family: str, key: str) -> Decision | None:
        limit = self.limits.get(family)
        if limit is None:
            return None
        period = limit.period_seconds / self.time_scale
        rate = limit.capacity / period  # tokens per real second
        now = self.clock()
        with self._lock:
            tokens, last = self._state.get((family, key), (float(limit.capacity), now))
            tokens = min(limit.capacity, tokens + (now - last) * rate)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            self._state[(family, key)] = (tokens, now)
        reset = math.ceil((limit.capacity - tokens) / rate)
        retry = 0 if allowed else max(1, math.ceil((1 - tokens) / rate))
        return Decision(allowed, limit.capacity, int(tokens), reset, retry)
