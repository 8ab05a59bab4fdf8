"""The `rate_limit_patience_seconds` setting reaches the client the flows make: against the
simulator's real HTTP server, with an Insights budget of 5 requests a second (``Retry-After:
1`` once spent), a patience shorter than the server's ask gives the project up with
``RateLimited``, and the default patience waits as told and extracts every stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from flow_helpers import TOKEN, make_sim, settings

from circleci_analytics.connectors import RateLimited
from circleci_analytics.connectors.ratelimit import DEFAULT_PATIENCE
from circleci_analytics.flows import steps
from circleci_analytics.flows.state import PipelineState
from circleci_analytics.settings import Settings
from circleci_analytics.simulator import FamilyLimit, Simulator
from circleci_analytics.simulator.server import running_server


def storm() -> Simulator:
    return make_sim(time_scale=1.0, rate_limits={"insights": FamilyLimit(5, 1)})


def extract_one_project(sim: Simulator, s: Settings) -> tuple[steps.ProjectStreams | BaseException, dict]:
    async def go() -> tuple[steps.ProjectStreams | BaseException, dict]:
        async with steps.make_client(s, TOKEN) as client:
            try:
                out: steps.ProjectStreams | BaseException = await steps.extract_project_streams(
                    client, sim.projects[0].slug, PipelineState(sim.org.id), s
                )
            except RateLimited as e:
                out = e
            return out, client.stats.as_dict()

    return asyncio.run(go())


def test_the_default_patience_is_declared_once_and_a_partial_setting_keeps_the_rest(tmp_path: Path) -> None:
    assert Settings().rate_limit_patience_seconds == DEFAULT_PATIENCE
    s = Settings(rate_limit_patience_seconds={"insights": 2})
    assert s.rate_limit_patience_seconds == {**DEFAULT_PATIENCE, "insights": 2.0}
    with pytest.raises(ValueError, match="unknown endpoint family insight"):
        Settings(rate_limit_patience_seconds={"insight": 2})


def test_a_short_patience_gives_the_project_up(tmp_path: Path) -> None:
    sim = storm()
    with running_server(sim) as url:
        out, stats = extract_one_project(
            sim, settings(sim, url, tmp_path, rate_limit_patience_seconds={"insights": 0.5})
        )
    assert isinstance(out, RateLimited), out
    assert "HTTP 429" in str(out) and "patience for insights" in str(out)
    assert stats["rate_limited"]["insights"] >= 1


def test_the_default_patience_waits_as_told_and_extracts_every_stream(tmp_path: Path) -> None:
    sim = storm()
    with running_server(sim) as url:
        out, stats = extract_one_project(sim, settings(sim, url, tmp_path))
    assert not isinstance(out, BaseException), out
    assert stats["rate_limited"]["insights"] >= 1  # the storm was real, and waited out
    landed = {e.stream for e in out.extracts}
    assert {"workflow_metrics", "workflow_runs", "flaky_tests", "workflow_summary"} <= landed
