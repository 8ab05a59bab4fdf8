"""One bad project does not lose the others: an unknown slug and a project whose Insights
calls keep failing are reported, the rest lands and builds, the run is Partially Completed."""

from __future__ import annotations

import importlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from flow_helpers import TOKEN, make_sim, run_nightly

from circleci_analytics.connectors import ServerError
from circleci_analytics.simulator import Simulator
from circleci_analytics.simulator.server import running_server

pytestmark = pytest.mark.xdist_group("prefect")

UNKNOWN = "gh/acme-robotics/no-such-project"


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

    nightly_module = importlib.import_module("circleci_analytics.flows.nightly")  # the module, not the flow

    root = tmp_path_factory.mktemp("partial")
    sim = make_sim()
    failing = sim.projects[1].slug
    attempts: Counter = Counter()
    real = steps.extract_project_insights

    async def flaky_insights(client, project_slug, state, cfg):
        attempts[project_slug] += 1
        if project_slug == failing:
            raise ServerError(500, "simulated outage", "GET", f"/insights/{project_slug}/workflows")
        return await real(client, project_slug, state, cfg)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIRCLECI_TOKEN", TOKEN)
        mp.setattr(steps, "extract_project_insights", flaky_insights)
        # Keep the task's retries, without their 5 s pauses.
        mp.setattr(nightly_module, "project_insights_task",
                   nightly_module.project_insights_task.with_options(retry_delay_seconds=0))  # fmt: skip
        with running_server(sim) as url:
            state = run_nightly(sim, url, root, extra_projects=(UNKNOWN,), initial_lookback_days=7,
                                tests_lookback_days=1)  # fmt: skip
    return Partial(root, sim, state, failing, attempts)


def test_run_is_partially_completed(partial: Partial) -> None:
    assert partial.state.is_completed()
    assert partial.state.name == "Partially Completed"
    s = partial.state.result()
    assert s.status == "partial"
    assert s.unknown_projects == [UNKNOWN]
    assert list(s.failed_projects) == [partial.failing]
    assert "simulated outage" in s.failed_projects[partial.failing]
    md = s.markdown()
    assert UNKNOWN in md and partial.failing in md and "Projects not updated" in md


def test_failing_project_was_retried_by_the_task(partial: Partial) -> None:
    assert partial.attempts[partial.failing] == 3  # 1 + 2 retries
    assert all(partial.attempts[p.slug] == 1 for p in partial.sim.projects if p.slug != partial.failing)


def test_other_projects_landed_and_built(partial: Partial) -> None:
    from circleci_analytics.flows.state import LakeStateStore, PipelineState
    from circleci_analytics.warehouse import Lake

    s = partial.state.result()
    others = {p.slug for p in partial.sim.projects} - {partial.failing}
    assert s.rows_landed["projects"] == len(others) + 1  # every resolvable project
    assert s.data_tests_failed == [] and s.models_built > 0
    con = duckdb.connect(str(partial.root / "warehouse.duckdb"), read_only=True)
    try:
        landed = {r[0] for r in con.execute("select distinct project_slug from fct_workflow_runs").fetchall()}
        tested = {r[0] for r in con.execute("select distinct project_slug from stg_circleci__job_tests").fetchall()}
        usage = con.execute("select count(*) from fct_job_runs").fetchone()[0]
    finally:
        con.close()
    assert landed == others
    assert tested and tested <= others  # no test metadata fetched for the failed project
    assert usage > 0  # the usage export is org-wide and unaffected
    # The failed project keeps no watermark, so the next run pulls its whole look-back.
    state = PipelineState.load(LakeStateStore(Lake(str(partial.root / "lake"))), partial.sim.org.id)
    keys = {k.split("\t")[0] for k in state.workflow_run_watermarks}
    assert keys == others
    assert state.usage_exported_until is not None

