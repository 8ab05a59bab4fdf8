"""The fault plan: decides, per request, which configured fault (if any) fires."""

from __future__ import annotations

import random
import threading
from collections import Counter

from .config import FaultRule

__all__ = ["FaultPlan"]


class FaultPlan:
    """Scripted (by call number) or probabilistic (seeded) faults, per route."""

    def __init__(self, rules: tuple[FaultRule, ...], seed: int):
        self.rules = rules
        self._rng = random.Random(f"{seed}:faults")
        self._calls: Counter[str] = Counter()
        self._fired: Counter[int] = Counter()
        self._lock = threading.Lock()

    def call(self, route: str) -> int:
        """Count a call of `route`; return its 1-based number."""
        with self._lock:
            self._calls[route] += 1
            return self._calls[route]

    def calls(self, route: str) -> int:
        return self._calls[route]

    def pick(self, route: str, call_number: int, kinds: tuple[str, ...]) -> FaultRule | None:
        """The first rule of one of `kinds` that fires for this call of `route`."""
        with self._lock:
            for i, rule in enumerate(self.rules):
                if rule.kind not in kinds or rule.route not in ("*", route):
                    continue
                if rule.limit is not None and self._fired[i] >= rule.limit:
                    continue
                if rule.calls:
                    fire = call_number in rule.calls
                else:
                    fire = rule.probability > 0 and self._rng.random() < rule.probability
                if fire:
                    self._fired[i] += 1
                    return rule
        return None
