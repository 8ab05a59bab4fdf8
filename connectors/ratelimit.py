"""Client-side rate limiting per endpoint family (aiolimiter token buckets).

CircleCI publishes no global limits; these are courtesy limits so a run does not
provoke 429s. Families:

* ``insights``      ``/insights/...``
* ``tests``         ``/project/{slug}/{job-number}/tests``
* ``usage_export``  ``/organizations/{org_id}/usage_export_job...`` (10/hour/org on the real API;
  the client still honours ``Retry-After`` on 429, so the default here is not that strict)
* ``core``          everything else (projects, pipelines, workflows, jobs)
* ``download``      pre-signed usage-export part URLs (a storage host, not the API: no limit)

Rates are requests per second; ``None`` or ``0`` disables limiting for a family.
After a 429 with a wait hint the client pauses the whole family for that long, so
concurrent requests do not stampede into more 429s.

``DEFAULT_PATIENCE`` is how long one request may spend waiting out 429s (as long as
``Retry-After`` / ``RateLimit-Reset`` ask) before it gives up with ``RateLimited``: ten
minutes for the per-minute API budgets, an hour for the usage export, whose budget is
10 requests per hour per org (within an hour all of it has come back, so a longer wait
means something else is spending it).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping

from aiolimiter import AsyncLimiter

__all__ = ["DEFAULT_PATIENCE", "DEFAULT_RATE_LIMITS", "FAMILIES", "RateLimiters", "family_for_path"]

FAMILIES = ("core", "insights", "tests", "usage_export", "download")

DEFAULT_RATE_LIMITS: dict[str, float | None] = {
    "core": 20.0,
    "insights": 10.0,
    "tests": 20.0,
    "usage_export": 1.0,
    "download": None,
}

#: Seconds one request may spend waiting out 429s, per family (see the module docstring).
DEFAULT_PATIENCE: dict[str, float] = {
    "core": 600.0,
    "insights": 600.0,
    "tests": 600.0,
    "usage_export": 3600.0,
    "download": 600.0,
}

_TESTS_PATH = re.compile(r"^/project/.+/\d+/tests/?$")


def family_for_path(path: str) -> str:
    """Endpoint family of an API path (relative to the ``/api/v2`` base)."""
    if path.startswith("/insights/"):
        return "insights"
    if "/usage_export_job" in path:
        return "usage_export"
    if _TESTS_PATH.match(path):
        return "tests"
    return "core"


def _limiter(rate: float | None) -> AsyncLimiter | None:
    if not rate or rate <= 0 or rate == float("inf"):
        return None
    if rate >= 1:
        return AsyncLimiter(rate, 1.0)
    return AsyncLimiter(1, 1.0 / rate)


class RateLimiters:
    """One token bucket per family; unknown families share the ``core`` bucket."""

    def __init__(self, rates: Mapping[str, float | None] | None = None) -> None:
        merged = dict(DEFAULT_RATE_LIMITS)
        merged.update(rates or {})
        self.rates: dict[str, float | None] = merged
        self._limiters = {family: _limiter(rate) for family, rate in merged.items()}
        self._paused_until: dict[str, float] = {}

    def limiter(self, family: str) -> AsyncLimiter | None:
        if family in self._limiters:
            return self._limiters[family]
        return self._limiters.get("core")

    def pause(self, family: str, seconds: float) -> None:
        """Hold back all requests of ``family`` for ``seconds`` (after a 429 with a wait hint)."""
        until = time.monotonic() + max(0.0, seconds)
        self._paused_until[family] = max(self._paused_until.get(family, 0.0), until)

    async def acquire(self, family: str, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Wait out a pause of the family, then take a token from its bucket."""
        delay = self._paused_until.get(family, 0.0) - time.monotonic()
        if delay > 0:
            await sleep(delay)
        limiter = self.limiter(family)
        if limiter is not None:
            await limiter.acquire()

    def __repr__(self) -> str:
        return f"RateLimiters({self.rates!r})"
