"""Two orgs in one nightly, neither with a project listed: a GitHub org and a GitHub-App org
(opaque project slugs) are both discovered and analysed, each equal to its own ground truth;
an org that fails does not stop the other and makes the run partial, naming it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.compute as pc
import pytest
from flow_helpers import LOOKBACK_DAYS, NOW, TOKEN, make_sim, midnight, settings

from circleci_analytics.settings import Org
from circleci_analytics.simulator import FaultRule, OrgSpec, Simulator
from circleci_analytics.simulator.server import running_server

pytestmark = pytest.mark.xdist_group("prefect")

USAGE_START = midnight(NOW - timedelta(days=LOOKBACK_DAYS))  # job runs and Insights workflow runs since
TESTS_START = NOW - timedelta(days=7)  # test metadata since (tests_lookback_days=7)
EXTRA = (OrgSpec("acme-labs"),)


@dataclass
class Night:
    sim: Simulator
    state: Any
    db: Path

    @property
    def summary(self):
        return self.state.result()

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        con = duckdb.connect(str(self.db), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()


def night(root: Path, *, app_org_first: bool = False, faults: tuple[FaultRule, ...] = ()) -> Night:
    """One nightly of both orgs, no projects listed (discovered), against a fresh simulator."""
    from circleci_analytics.flows import nightly

    sim = make_sim(NOW, extra_orgs=EXTRA, faults=faults)
    orgs = [Org(id=o.id, slug=o.slug) for o in sim.orgs]
    with running_server(sim) as url:
        s = settings(sim, url, root).model_copy(update={"orgs": orgs[::-1] if app_org_first else orgs})
        state = asyncio.run(nightly(s, return_state=True))
    return Night(sim, state, root / "warehouse.duckdb")


@pytest.fixture(scope="module")
def both(prefect_harness, tmp_path_factory) -> Night:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIRCLECI_TOKEN", TOKEN)
        return night(tmp_path_factory.mktemp("orgs"))


@pytest.fixture(scope="module")
def one_fails(prefect_harness, tmp_path_factory) -> Night:
    # The App org runs first; the first listPipelines call (its discovery) answers 404.
    fault = FaultRule(kind="status", route="listPipelines", calls=(1,), status=404)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIRCLECI_TOKEN", TOKEN)
        return night(tmp_path_factory.mktemp("orgs-fail"), app_org_first=True, faults=(fault,))


def slugs_of(sim: Simulator, org) -> list[str]:
    return sorted(p.slug for p in sim.projects_of(org))


def assert_org_equals_truth(n: Night, org) -> None:
    slugs = slugs_of(n.sim, org)
    truth = n.sim.truth(org=org)
    jobs = truth.job_runs()
    jobs = jobs.filter(pc.greater_equal(jobs.column("started_at"), USAGE_START))
    ((rows, credits),) = n.query("select count(*), sum(total_credits) from fct_job_runs where project_slug in "
                                 "(select unnest(?))", [slugs])  # fmt: skip
    assert rows == jobs.num_rows > 100
    assert credits == sum(jobs.column("total_credits").to_pylist(), Decimal(0))
    runs = truth.workflow_runs()
    runs = runs.filter(pc.greater_equal(runs.column("created_at"), USAGE_START))
    # Insights' runs (the export also brings runs of pipelines created before its window)
    got = n.query("select workflow_id from fct_workflow_runs where source <> 'usage_export' "
                  "and project_slug in (select unnest(?))", [slugs])  # fmt: skip
    assert sorted(r for (r,) in got) == sorted(runs.column("id").to_pylist())
    tests = truth.test_runs()
    tests = tests.filter(pc.greater_equal(tests.column("job_started_at"), TESTS_START))
    ((n_tests,),) = n.query("select count(*) from fct_test_runs where project_slug in (select unnest(?))", [slugs])
    assert n_tests == tests.num_rows > 0


def test_both_orgs_are_discovered_and_complete(both: Night) -> None:
    s = both.summary
    assert both.state.name == "Completed", s.markdown()
    assert s.projects_per_org == {o.slug: len(both.sim.projects_of(o)) for o in both.sim.orgs}
    assert s.discovery_mismatches == [] and s.unknown_projects == []
    landed = {slug for (slug,) in both.query("select project_slug from dim_projects")}
    assert landed == {p.slug for p in both.sim.projects}
    assert any(slug.startswith("circleci/") for slug in slugs_of(both.sim, both.sim.orgs[1]))


@pytest.mark.parametrize("which", [0, 1], ids=["github-org", "github-app-org"])
def test_each_org_equals_its_ground_truth(both: Night, which: int) -> None:
    assert_org_equals_truth(both, both.sim.orgs[which])


def test_a_failing_org_does_not_stop_the_other(one_fails: Night) -> None:
    github, app = one_fails.sim.orgs
    s = one_fails.summary
    assert one_fails.state.name == "Partially Completed"
    assert f"org {app.slug} failed" in one_fails.state.message
    assert list(s.failed_org_calls) == [f"org {app.slug}"]
    assert s.projects_per_org == {github.slug: len(one_fails.sim.projects_of(github))}
    assert_org_equals_truth(one_fails, github)
    ((n,),) = one_fails.query("select count(*) from fct_job_runs where project_slug in (select unnest(?))",
                              [slugs_of(one_fails.sim, app)])  # fmt: skip
    assert n == 0
