"""Project discovery (`connectors.projects.discover_projects`) against the in-process simulator:
every kind of org (a GitHub org, a GitHub-App org with opaque slugs), pagination and its
bounds, and the cross-check with Insights' org summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from connector_helpers import FakeSleep, run

from circleci_analytics.connectors import CircleCIClient, RetryPolicy, discover_projects
from circleci_analytics.connectors.projects import DISCOVERY_LOOKBACK, pipeline_project_slugs
from circleci_analytics.simulator import OrgSpec, SimConfig, Simulator, create_app

NOW = datetime(2026, 6, 1, tzinfo=UTC)
NO_LIMITS = {f: None for f in ("core", "insights", "tests", "usage_export")}


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return Simulator(SimConfig(seed=7, preset="tiny", now=NOW, page_size=50, extra_orgs=(OrgSpec("acme-labs"),)))


def _with(sim: Simulator, fn, *args, calls: list | None = None, **kwargs):
    class Recording(httpx.ASGITransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if calls is not None:
                calls.append(request.url)
            return await super().handle_async_request(request)

    async def go():
        async with CircleCIClient(sim.token, "http://sim/api/v2", transport=Recording(app=create_app(sim)),
                                  rate_limits=NO_LIMITS, retry=RetryPolicy(max_attempts=2, sleep=FakeSleep())) as client:  # fmt: skip
            return await fn(client, *args, **kwargs)

    return run(go())


@pytest.mark.parametrize("which", [0, 1], ids=["github-org", "github-app-org"])
def test_discovery_finds_every_project_of_each_kind_of_org(sim: Simulator, which: int) -> None:
    org = sim.orgs[which]
    found = _with(sim, discover_projects, org.slug, sim.history.now)
    expected = sorted(p.slug for p in sim.projects_of(org))
    assert found.slugs == expected  # opaque circleci/<org>/<project> slugs as the API spells them
    assert any(s.startswith("circleci/") for s in found.slugs)  # no <org_slug>/<name> built for them
    assert found.insights_names == sorted(p.name for p in sim.projects_of(org))
    assert found.mismatches({p.slug: p.name for p in sim.projects_of(org)}) == []
    assert not found.truncated


def test_discovery_pages_until_the_look_back_and_no_further(sim: Simulator) -> None:
    org = sim.orgs[0]
    everything = sim.backend.list_org_pipelines(org.slug, False)[0:100_000]
    newest = datetime.fromisoformat(everything[0]["created_at"].replace("Z", "+00:00"))
    since = newest - timedelta(days=3)  # a few days: a couple of pages of the ~11 the history fills
    calls: list = []
    slugs, pages, truncated = _with(sim, pipeline_project_slugs, org.slug, since, calls=calls)
    recent = [p for p in everything if datetime.fromisoformat(p["created_at"].replace("Z", "+00:00")) >= since]
    assert slugs == sorted({p["project_slug"] for p in recent})
    assert pages == len(calls) == len(recent) // 50 + 1 < len(everything) // 50
    assert not truncated
    assert all(u.params["org-slug"] == org.slug for u in calls)


def test_discovery_stops_at_its_page_bound_and_says_so(sim: Simulator) -> None:
    org = sim.orgs[1]
    calls: list = []
    slugs, pages, truncated = _with(sim, pipeline_project_slugs, org.slug, NOW - DISCOVERY_LOOKBACK, max_pages=2,
                                    calls=calls)  # fmt: skip
    assert pages == len(calls) == 2 and truncated
    assert set(slugs) <= {p.slug for p in sim.projects_of(org)}


def test_cross_check_names_what_only_one_source_has(sim: Simulator) -> None:
    org = sim.orgs[0]
    found = _with(sim, discover_projects, org.slug, sim.history.now)
    names = {p.slug: p.name for p in sim.projects_of(org)}
    dropped = found.slugs[0]
    renamed = {**{s: n for s, n in names.items() if s != dropped}, "gh/acme-robotics/newcomer": "newcomer"}
    notes = found.mismatches(renamed)
    assert notes == [f"{names[dropped]}: in Insights' org summary, no pipeline since the look-back",
                     "gh/acme-robotics/newcomer: has pipelines, not in Insights' org summary"]  # fmt: skip
