"""Chaos on the simulator: a bad night heals on the next, and nothing is lost for good.

Each case is compared with clean runs of the same seed, warehouse against warehouse: every
`stg_/int_/fct_/dim_` table holds the same rows (`EXCEPT ALL` both ways, see
`flow_helpers.warehouse_diffs`).

- an Insights outage night (`getFlakyTests` answers 500, so every project fails) then a clean
  night = two clean nights;
- 30 % of the test-metadata probes answer 404: the run is Partially Completed and counts them;
  a clean re-run = one clean run;
- a project added on a later run = one run with every project from the start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flow_helpers import NOW, TOKEN, freeze_models, make_sim, run_nightly, warehouse_diffs

from circleci_analytics.simulator.config import FaultRule
from circleci_analytics.simulator.server import running_server

pytestmark = pytest.mark.xdist_group("prefect")

#: A week of history keeps each run to a few seconds; test metadata for all of it, on every
#: night (a job that leaves the tests look-back between two nights is not fetched by design).
#: Every Insights snapshot every night: a snapshot says what the API answered the night it was
#: read, so a night that missed one (the outage) equals a clean one only if both read it the
#: next night (test_flow_steps covers the cadence).
RUN = {"initial_lookback_days": 7, "tests_lookback_days": 14, "snapshot_refresh_days": 1}
NEXT_NIGHT = NOW + timedelta(days=1)
FLAKY_OUTAGE = FaultRule("status", route="getFlakyTests", probability=1.0, status=500)
TESTS_404 = FaultRule("status", route="getTests", probability=0.3, status=404)


def night(root: Path, now=NOW, *, faults: tuple[FaultRule, ...] = (), keep_as: str | None = None, **kwargs: Any):
    """One nightly run into `root` against a fresh simulator; optionally keep a snapshot of the
    models it built (`root/<keep_as>`). Returns (final state, simulator)."""
    sim = make_sim(now, faults=faults)
    with running_server(sim) as url:
        state = run_nightly(sim, url, root, **{**RUN, **kwargs})
    if keep_as:
        freeze_models(root / "warehouse.duckdb", root / keep_as)
    return state, sim


def job_tests_rows(db: Path) -> int:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("select count(*) from stg_circleci__job_tests").fetchone()[0]
    finally:
        con.close()


@dataclass
class Clean:
    night1: Path  # the warehouse after one clean night
    night2: Path  # ... and after a second clean night


@pytest.fixture(scope="module")
def clean(prefect_harness, tmp_path_factory) -> Clean:
    root = tmp_path_factory.mktemp("clean")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIRCLECI_TOKEN", TOKEN)
        first, _ = night(root, keep_as="night1.duckdb")
        second, _ = night(root, NEXT_NIGHT, keep_as="night2.duckdb")
    for state in (first, second):
        assert state.name == "Completed", state.result().markdown()
    assert job_tests_rows(root / "night1.duckdb") > 100
    return Clean(root / "night1.duckdb", root / "night2.duckdb")


# -- an Insights outage night, then a clean night ---------------------------------------------
@pytest.fixture(scope="module")
def outage(prefect_harness, tmp_path_factory) -> tuple[Any, Any, Path]:
    root = tmp_path_factory.mktemp("outage")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIRCLECI_TOKEN", TOKEN)
        bad, _ = night(root, faults=(FLAKY_OUTAGE,))
        healed, _ = night(root, NEXT_NIGHT)
    return bad, healed, root / "warehouse.duckdb"


def test_outage_night_is_partially_completed_and_says_what_heals(outage) -> None:
    bad, _, _ = outage
    assert bad.is_completed() and bad.name == "Partially Completed"
    s = bad.result()
    assert s.status == "partial"
    assert len(s.failed_projects) == 3 and all("HTTP 500" in e for e in s.failed_projects.values())
    assert s.tests_jobs_deferred > 0  # the failed projects' jobs are left for the next run
    md = s.markdown()
    assert "Heals on the next run" in md and "HTTP 500" in md


def test_night_after_an_outage_equals_two_clean_nights(outage, clean: Clean) -> None:
    _, healed, warehouse = outage
    assert healed.name == "Completed", healed.result().markdown()
    assert warehouse_diffs(warehouse, clean.night2) == {}


# -- 30 % of the test probes answer 404, then a clean re-run -----------------------------------
@pytest.fixture(scope="module")
def lost_probes(prefect_harness, tmp_path_factory) -> tuple[Any, Any, Any, Path]:
    root = tmp_path_factory.mktemp("probes")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIRCLECI_TOKEN", TOKEN)
        bad, sim = night(root, faults=(TESTS_404,), keep_as="bad.duckdb")
        rerun, _ = night(root)
    return bad, sim, rerun, root


def test_failed_probes_make_the_run_partial_and_are_counted(lost_probes, clean: Clean) -> None:
    bad, sim, _, root = lost_probes
    assert bad.is_completed() and bad.name == "Partially Completed"
    s = bad.result()
    fired = sum(sim.backend.faults._fired.values())  # 404s the simulator answered (one page per job)
    assert fired > 10
    assert s.tests_jobs_failed == fired
    assert s.failed_projects == {} and s.unknown_projects == []
    assert f"{fired} test-metadata probes failed" in s.markdown()
    assert job_tests_rows(root / "bad.duckdb") < job_tests_rows(clean.night1)


def test_clean_rerun_after_failed_probes_equals_a_clean_run(lost_probes, clean: Clean) -> None:
    _, _, rerun, root = lost_probes
    assert rerun.name == "Completed", rerun.result().markdown()
    assert rerun.result().tests_jobs_failed == 0
    assert warehouse_diffs(root / "warehouse.duckdb", clean.night1) == {}


# -- a project added later ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def added_later(prefect_harness, tmp_path_factory) -> tuple[Any, Path]:
    root = tmp_path_factory.mktemp("added")
    sim = make_sim()
    first_two = [p.slug for p in sim.projects[:2]]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIRCLECI_TOKEN", TOKEN)
        before, _ = night(root, projects=first_two)
        after, _ = night(root)
    assert before.name == after.name == "Completed"
    return after, root / "warehouse.duckdb"


def test_project_added_later_equals_one_run_with_every_project(added_later, clean: Clean) -> None:
    _, warehouse = added_later
    assert job_tests_rows(warehouse) == job_tests_rows(clean.night1)
    assert warehouse_diffs(warehouse, clean.night1) == {}
