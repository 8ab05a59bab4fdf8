"""One bad project does not lose the others: an unknown slug and a project whose Insights
calls keep failing are reported, the rest lands and builds, the run is Partially Completed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from flow_helpers import NOW, TOKEN, make_sim, run_nightly, truth_since

from circleci_analytics.connectors import ServerError
from circleci_analytics.simulator import Simulator
from circleci_analytics.simulator.server import running_server

pytestmark = pytest.mark.xdist_group("prefect")

UNKNOWN = "gh/acme-robotics/no-such-project"
TESTS_LOOKBACK_DAYS = 2


@dataclass
class Partial:
    root: Path
    sim: Simulator
    state: Any
    failing: str
    attempts: Counter


@pytest.fixture(scope="module")
def partial(prefect_harness, tmp_path_factory) -> Partial:
    from circleci_analytics.flows import steps

    root = tmp_path_factory.mktemp("partial")
    sim = make_sim()
    failing = sim.projects[1].slug
    attempts: Counter = Counter()
    real = steps.extract_project_streams

    async def flaky_insights(client, project_slug, state, settings, *rest):
        attempts[project_slug] += 1
        if project_slug == failing:
            raise ServerError(500, "simulated outage", "GET", f"/insights/{project_slug}/workflows")
        return await real(client, project_slug, state, settings, *rest)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIRCLECI_TOKEN", TOKEN)
        mp.setattr(steps, "extract_project_streams", flaky_insights)
        with running_server(sim) as url:
            state = run_nightly(sim, url, root, extra_projects=(UNKNOWN,), initial_lookback_days=7,
                                tests_lookback_days=TESTS_LOOKBACK_DAYS)  # fmt: skip
    return Partial(root, sim, state, failing, attempts)


def test_run_is_partially_completed(partial: Partial) -> None:
    assert partial.state.is_completed()
    assert partial.state.name == "Partially Completed"
    s = partial.state.result()
    assert s.status == "partial"
    assert s.unknown_projects == [UNKNOWN]
    assert list(s.failed_projects) == [partial.failing]
    assert "simulated outage" in s.failed_projects[partial.failing]
    assert partial.state.message == "1 project(s) failed; 1 unknown project(s)"
    md = s.markdown()
    assert (
        md.index("Heals on the next run") < md.index(partial.failing) < md.index("Needs attention") < md.index(UNKNOWN)
    )


def test_failing_project_is_not_retried_by_prefect_on_top_of_the_client(partial: Partial) -> None:
    # The client already retried the 5xx; the next night heals the project from its cursors.
    assert all(partial.attempts[p.slug] == 1 for p in partial.sim.projects)


def test_other_projects_landed_and_built(partial: Partial) -> None:
    from circleci_analytics.flows.state import PipelineState
    from circleci_analytics.warehouse import Lake

    s = partial.state.result()
    others = {p.slug for p in partial.sim.projects} - {partial.failing}
    assert s.rows_landed["projects"] == len(others) + 1  # every resolvable project
    assert s.data_tests_failed == [] and s.models_built > 0
    con = duckdb.connect(str(partial.root / "warehouse.duckdb"), read_only=True)
    try:
        landed = {
            r[0]
            for r in con.execute(
                "select distinct project_slug from fct_workflow_runs where source <> 'usage_export'"
            ).fetchall()
        }
        tested = {r[0] for r in con.execute("select distinct project_slug from stg_circleci__job_tests").fetchall()}
        usage = con.execute("select count(*) from fct_job_runs").fetchone()[0]
    finally:
        con.close()
    assert landed == others
    assert tested and tested <= others  # no test metadata fetched for the failed project
    assert usage > 0  # the usage export is org-wide and unaffected
    # The failed project keeps no watermark, so the next run pulls its whole look-back, and its
    # jobs were not probed for tests: they are left for the next run.
    state = PipelineState.load(Lake(str(partial.root / "lake")).documents(), partial.sim.org.id)
    assert {project for project, _ in state.watermarks.keys("workflow_runs")} == others
    assert {project for (project,) in state.watermarks.keys("flaky_tests")} == others
    assert state.usage_exported_until is not None
    recent = truth_since(partial.sim, NOW - timedelta(days=TESTS_LOOKBACK_DAYS)).job_runs()
    assert s.tests_jobs_deferred == recent.column("project_slug").to_pylist().count(partial.failing) > 0
