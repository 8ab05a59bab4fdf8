"""Interrupted runs resume: a nightly run that dies after the usage-export POST, and a
backfill stopped after one window. Neither re-run creates a second export job for a
window (CircleCI allows 10 an hour); both land everything and build."""

from __future__ import annotations

import asyncio
import importlib
import json
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from flow_helpers import NOW, TOKEN, export_posts, make_sim, midnight, run_backfill, run_nightly, truth_since

from circleci_analytics.connectors.usage_export.state import state_key
from circleci_analytics.connectors.usage_export.windows import Window
from circleci_analytics.simulator import Simulator
from circleci_analytics.simulator.server import running_server

pytestmark = pytest.mark.xdist_group("prefect")


class SimulatedCrash(RuntimeError):
    """The worker died (stands in for a killed process)."""


def job_runs(db: Path) -> tuple[int, int, Decimal]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("select count(*), count(distinct job_id), sum(total_credits) from fct_job_runs").fetchone()
    finally:
        con.close()


# -- nightly: crash between the POST and the export's completion ------------------------------
@dataclass
class Crash:
    root: Path
    sim: Simulator
    crashed: Any
    posts_after_crash: list
    export_doc_after_crash: dict
    exported_until_after_crash: Any
    resumed: Any


@pytest.fixture(scope="module")
def crash(prefect_harness, tmp_path_factory) -> Crash:
    from circleci_analytics.flows import steps
    from circleci_analytics.flows.state import PipelineState
    from circleci_analytics.warehouse import Lake

    tasks_module = importlib.import_module("circleci_analytics.flows.tasks")  # the module (its usage_export_task)
    root = tmp_path_factory.mktemp("crash")
    # Exports take 3 s, so the first poll (right after the POST) always finds the job unfinished.
    sim = make_sim(export_processing_seconds=3.0)
    real = steps.export_usage_window
    sleeps = []

    async def dies_after_first_poll(client, settings, org, store, start, end, workdir, **kwargs):
        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            if len(sleeps) > 1:  # the wait after the first poll
                raise SimulatedCrash("worker lost while waiting for the usage export")
            await asyncio.sleep(0)

        return await real(client, settings, org, store, start, end, workdir, sleep=sleep, **kwargs)

    kwargs = {"initial_lookback_days": 7, "tests_lookback_days": 1}
    with pytest.MonkeyPatch.context() as mp, running_server(sim) as url:
        mp.setenv("CIRCLECI_TOKEN", TOKEN)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(steps, "export_usage_window", dies_after_first_poll)
            patch.setattr(tasks_module, "usage_export_task", tasks_module.usage_export_task.with_options(retries=0))
            crashed = run_nightly(sim, url, root, export_poll_seconds=5.0, **kwargs)
        assert len(sleeps) == 2, sleeps
        posts = list(sim.backend.export_posts)
        lake = Lake(str(root / "lake"))
        (_, start, end, _) = posts[0]
        store = lake.documents()
        export_doc = json.loads(store.get(state_key(sim.org.id, Window(start, end))))
        until = PipelineState.load(store, sim.org.id).usage_exported_until
        resumed = run_nightly(sim, url, root, **kwargs)
    return Crash(root, sim, crashed, posts, export_doc, until, resumed)


def test_crash_fails_the_run_after_one_post(crash: Crash) -> None:
    assert crash.crashed.is_failed()
    assert len(crash.posts_after_crash) == 1
    # The job id is durable; the run's cursor was not advanced.
    (_, _, _, job_id) = crash.posts_after_crash[0]
    assert crash.export_doc_after_crash["usage_export_job_id"] == job_id
    assert crash.export_doc_after_crash["state"] in ("created", "processing")
    assert crash.exported_until_after_crash is None


def test_rerun_resumes_the_same_export_job_and_lands(crash: Crash) -> None:
    assert crash.resumed.is_completed() and crash.resumed.name == "Completed"
    assert list(crash.sim.backend.export_posts) == crash.posts_after_crash  # no second POST
    s = crash.resumed.result()
    truth = truth_since(crash.sim, midnight(NOW - timedelta(days=7))).job_runs()
    assert s.rows_landed["usage_job_runs"] == truth.num_rows > 0
    n, distinct, credits = job_runs(crash.root / "warehouse.duckdb")
    assert n == distinct == truth.num_rows
    assert credits == sum(truth.column("total_credits").to_pylist(), Decimal(0))


# -- backfill: stopped after one window, then finished ----------------------------------------
@dataclass
class Backfill:
    root: Path
    sim: Simulator
    windows: list
    first: Any
    posts_after_first: list
    second: Any


@pytest.fixture(scope="module")
def backfilled(prefect_harness, tmp_path_factory) -> Backfill:
    from circleci_analytics.flows import backfill_windows

    root = tmp_path_factory.mktemp("backfill")
    sim = make_sim()
    start, end = sim.history.start.date(), (sim.history.end - timedelta(days=1)).date()  # the whole history
    windows = backfill_windows(start, end, NOW)
    with pytest.MonkeyPatch.context() as mp, running_server(sim) as url:
        mp.setenv("CIRCLECI_TOKEN", TOKEN)
        first = run_backfill(sim, url, root, start, end, stop_after_windows=1)
        posts = export_posts(sim)
        second = run_backfill(sim, url, root, start, end)
    return Backfill(root, sim, windows, first, posts, second)


def test_backfill_stopped_early_is_partially_completed(backfilled: Backfill) -> None:
    b = backfilled
    assert len(b.windows) == 2
    assert b.first.is_completed() and b.first.name == "Partially Completed"
    assert b.posts_after_first == [b.windows[0]]
    assert b.first.result().rows_landed["usage_job_runs"] > 0
    assert b.first.result().models_built == 0  # no build until every window has landed


def test_backfill_rerun_exports_only_the_rest_and_builds(backfilled: Backfill) -> None:
    b = backfilled
    assert b.second.is_completed() and b.second.name == "Completed"
    assert export_posts(b.sim) == b.windows  # the landed window was not exported again
    s = b.second.result()
    assert s.usage_windows == [f"{b.windows[1][0]:%Y-%m-%d}..{b.windows[1][1]:%Y-%m-%d}"]
    assert s.status == "success", s.markdown()
    truth = b.sim.truth().job_runs()
    n, distinct, credits = job_runs(b.root / "warehouse.duckdb")
    assert n == distinct == truth.num_rows  # the shared boundary instant is not double counted
    assert credits == sum(truth.column("total_credits").to_pylist(), Decimal(0))
    assert s.dashboard_path and Path(s.dashboard_path).exists()
