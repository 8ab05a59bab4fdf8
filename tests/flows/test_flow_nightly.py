"""The nightly flow on a real loopback simulator: marts equal the ground truth of the
exported window, a second run a day later is incremental, and the token leaks nowhere."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from flow_helpers import (
    LOOKBACK_DAYS,
    NOW,
    TOKEN,
    Captured,
    capture_logs,
    export_posts,
    make_sim,
    midnight,
    run_nightly,
    truth_since,
)

from circleci_analytics.simulator import Simulator
from circleci_analytics.simulator.server import running_server

pytestmark = pytest.mark.xdist_group("prefect")

JOB_RUNS = "select count(*), count(distinct job_id), sum(total_credits) from fct_job_runs"
USAGE_START = midnight(NOW - timedelta(days=LOOKBACK_DAYS))  # the first run's usage window
RUNS_START = USAGE_START  # ... and its Insights workflow runs (the history starts at the same instant)
TESTS_START = NOW - timedelta(days=7)  # ... and its test metadata (tests_lookback_days=7)


@dataclass
class Runs:
    root: Path
    sim1: Simulator
    sim2: Simulator
    state1: Any
    state2: Any
    warehouse1: Path  # a copy of the warehouse as the first run left it
    logs: Captured

    @property
    def summary1(self):
        return self.state1.result()

    @property
    def summary2(self):
        return self.state2.result()


@pytest.fixture(scope="module")
def runs(prefect_harness, tmp_path_factory) -> Runs:
    root = tmp_path_factory.mktemp("nightly")
    # History is keyed by calendar day, so a simulator one day later has the same earlier days.
    sim1, sim2 = make_sim(NOW), make_sim(NOW + timedelta(days=1))
    with pytest.MonkeyPatch.context() as mp, capture_logs() as logs:
        mp.setenv("CIRCLECI_TOKEN", TOKEN)
        with running_server(sim1) as url:
            state1 = run_nightly(sim1, url, root)
        warehouse1 = root / "warehouse-run1.duckdb"
        shutil.copy(root / "warehouse.duckdb", warehouse1)
        with running_server(sim2) as url:
            state2 = run_nightly(sim2, url, root)
    return Runs(root, sim1, sim2, state1, state2, warehouse1, logs)


def query(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_first_run_completes(runs: Runs) -> None:
    assert runs.state1.is_completed() and runs.state1.name == "Completed"
    s = runs.summary1
    assert s.status == "success", s.markdown()
    assert s.failed_projects == {} and s.unknown_projects == []
    assert s.data_tests > 50 and s.data_tests_failed == []
    assert s.usage_windows == [f"{USAGE_START:%Y-%m-%d}..{NOW:%Y-%m-%d}"]
    ((start, end),) = export_posts(runs.sim1)
    assert start == USAGE_START and NOW - timedelta(minutes=2) <= end <= NOW
    assert s.highlights["as_of_date"] == NOW.date() - timedelta(days=1)


def test_first_run_job_runs_equal_truth_of_the_window(runs: Runs) -> None:
    truth = truth_since(runs.sim1, USAGE_START).job_runs()
    assert truth.num_rows > 500
    ((n, distinct, credits),) = query(runs.warehouse1, JOB_RUNS)
    assert n == distinct == truth.num_rows
    assert credits == sum(truth.column("total_credits").to_pylist(), Decimal(0))
    assert runs.summary1.rows_landed["usage_job_runs"] == truth.num_rows
    assert runs.summary1.rows_landed["projects"] == len(runs.sim1.projects)


def test_first_run_recoveries_equal_truth(runs: Runs) -> None:
    expected = {(r.first_failed_run_id, r.recovered_run_id, r.seconds, r.failed_runs)
                for r in truth_since(runs.sim1, RUNS_START).recoveries()}  # fmt: skip
    got = set(query(runs.warehouse1, "select first_failed_run_id, recovered_run_id, recovery_seconds, failed_runs "
                                     "from fct_recoveries"))  # fmt: skip
    assert expected and got == expected


def test_first_run_flaky_tests_equal_truth(runs: Runs) -> None:
    # Test metadata is fetched for the jobs of the last `tests_lookback_days` (7) days.
    expected = truth_since(runs.sim1, TESTS_START).flaky_tests()
    rows = query(runs.warehouse1, "select project_slug, job_name, classname, test_name, times_flaked "
                                  "from fct_flaky_tests")  # fmt: skip
    got = {(p, j, c, t): n for p, j, c, t, n in rows}
    assert expected and set(got) == set(expected)
    assert got == {k: v["times_flaked"] for k, v in expected.items()}


def test_second_run_is_incremental(runs: Runs) -> None:
    s1, s2 = runs.summary1, runs.summary2
    assert runs.state2.is_completed() and s2.status == "success", s2.markdown()
    # Usage: only the last exported day minus the 2-day overlap is exported again.
    ((start, _),) = export_posts(runs.sim2)
    assert start == midnight(NOW - timedelta(days=2))
    assert s2.rows_landed["usage_job_runs"] < s1.rows_landed["usage_job_runs"] / 5
    # Workflow runs from the watermarks, test metadata only for jobs not probed before.
    assert s2.rows_landed["workflow_runs"] < s1.rows_landed["workflow_runs"] / 5
    assert s2.tests_jobs_probed < s1.tests_jobs_probed / 2
    assert s2.api_calls["total_calls"] < s1.api_calls["total_calls"] / 2, (s1.api_calls, s2.api_calls)


def test_second_run_has_no_duplicates_and_equals_truth(runs: Runs) -> None:
    jobs = truth_since(runs.sim2, USAGE_START).job_runs()
    db = runs.root / "warehouse.duckdb"
    ((n, distinct, credits),) = query(db, JOB_RUNS)
    assert n == distinct == jobs.num_rows > runs.summary1.rows_landed["usage_job_runs"]
    assert credits == sum(jobs.column("total_credits").to_pylist(), Decimal(0))
    ((w, w_distinct),) = query(
        db, "select count(*), count(distinct workflow_id) from fct_workflow_runs where source <> 'usage_export'"
    )
    assert w == w_distinct == truth_since(runs.sim2, RUNS_START).workflow_runs().num_rows
    ((as_of,),) = query(db, "select as_of_date from warehouse_meta")
    assert as_of == NOW.date()  # the new day landed


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_token_never_in_logs_summary_or_files(runs: Runs) -> None:
    assert TOKEN not in runs.logs.text
    assert "flow_runs" in runs.logs.text and "Finished in state" in runs.logs.text  # the capture worked
    for state in (runs.state1, runs.state2):
        assert TOKEN not in state.result().markdown()
        assert TOKEN not in repr(state.result())
    files = _files(runs.root / "lake")
    assert any(p.suffix == ".parquet" for p in files) and any(p.suffix == ".json" for p in files)
    for p in [*files, runs.root / "warehouse.duckdb"]:
        assert TOKEN.encode() not in p.read_bytes(), p


def test_token_never_in_prefect_run_logs_or_parameters(runs: Runs) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async def read() -> tuple[list[str], list[str]]:
        async with get_client() as client:
            texts, params = [], []
            for state in (runs.state1, runs.state2):
                run_id = state.state_details.flow_run_id
                logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
                texts += [log.message for log in logs]
                run = await client.read_flow_run(run_id)
                params.append(repr(run.parameters))
            return texts, params

    texts, params = asyncio.run(read())
    assert texts and params
    assert not [t for t in texts if TOKEN in t]
    assert not [p for p in params if TOKEN in p]
