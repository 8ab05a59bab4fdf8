"""A 429 storm on the simulator's real HTTP server: waited out as told, within the patience.

The simulator's Insights and usage-export budgets are 10 requests per 5 s (``Retry-After: 1``
once spent), the issue's storm; the client's own courtesy limits are off so the server
refuses for real. Nothing is faked: the client really sleeps.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connector_helpers import run

from circleci_analytics.connectors import CircleCIClient, RateLimited, RetryPolicy, render_path
from circleci_analytics.connectors.usage_export import MemoryStateStore, export_usage
from circleci_analytics.simulator import FamilyLimit, SimConfig, Simulator
from circleci_analytics.simulator.server import running_server

STORM = {name: FamilyLimit(10, 5) for name in ("insights", "usage_export_post", "usage_export_get")}
NO_CLIENT_LIMITS = {f: None for f in ("core", "insights", "tests", "usage_export", "download")}
REQUESTS = 24  # 10 at once, then 2 per second


def storm_sim() -> Simulator:
    return Simulator(SimConfig(seed=7, preset="tiny", rate_limits=STORM, export_processing_seconds=3.0))


def insights_paths(sim: Simulator) -> list[str]:
    slugs = [p.slug for p in sim.projects]
    return [
        render_path("/insights/{project_slug}/branches", project_slug=slugs[i % len(slugs)]) for i in range(REQUESTS)
    ]


def test_a_429_storm_is_waited_out_and_every_request_succeeds(tmp_path: Path) -> None:
    sim = storm_sim()

    async def go(url: str) -> tuple[list[object], object, dict]:
        # two attempts only: 429s must not spend them
        async with CircleCIClient(
            sim.token, url, retry=RetryPolicy(max_attempts=2), rate_limits=NO_CLIENT_LIMITS
        ) as client:
            now = datetime.now(UTC)
            results = await asyncio.gather(
                *(client.get_json(p) for p in insights_paths(sim)),
                export_usage(
                    client,
                    sim.org.id,
                    now - timedelta(days=3),
                    now,
                    workdir=tmp_path,
                    state_store=MemoryStateStore(),
                    poll_interval=0.05,
                ),  # fmt: skip
                return_exceptions=True,
            )
            return results[:-1], results[-1], client.stats.as_dict()

    with running_server(sim) as url:
        answers, usage, stats = run(go(url))
    assert [a for a in answers if isinstance(a, BaseException)] == [] and len(answers) == REQUESTS
    assert not isinstance(usage, BaseException), usage
    assert usage.rows > 0 and usage.calls["rate_limited"] > 0  # type: ignore[union-attr]
    assert stats["rate_limited"]["insights"] >= REQUESTS - 10
    assert stats["calls"]["insights"] == REQUESTS + stats["rate_limited"]["insights"]


def test_a_patience_of_seconds_gives_up_with_a_clear_rate_limited_error() -> None:
    sim = storm_sim()

    async def go(url: str) -> list[object]:
        policy = RetryPolicy(patience={"insights": 2.0})
        async with CircleCIClient(sim.token, url, retry=policy, rate_limits=NO_CLIENT_LIMITS) as client:
            return await asyncio.gather(*(client.get_json(p) for p in insights_paths(sim)), return_exceptions=True)

    with running_server(sim) as url:
        started = time.perf_counter()
        answers = run(go(url))
        wall = time.perf_counter() - started
    failed = [a for a in answers if isinstance(a, BaseException)]
    assert failed and all(isinstance(a, RateLimited) for a in failed), failed
    assert len(answers) - len(failed) >= 10
    message = str(failed[0])
    assert "HTTP 429" in message and "(patience for insights: 2s)" in message and "/branches" in message
    assert wall < 10
    assert sim.token not in message
